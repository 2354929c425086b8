"""`avfrepo sync`: bump rules, refusals, and that a refused or dry run writes nothing."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from avfrepo import state as state_mod
from avfrepo.config import GitTagsUpstream, SigningConfig
from avfrepo import config as config_mod
from avfrepo.demo import unit_text, write_config
from avfrepo.formats import srcinfo
from avfrepo.fsutil import read_tree
from avfrepo.packages import avf_config
from avfrepo.sync import sync

from .conftest import require_tools


def actions(report) -> dict[str, str]:
    return {p.name: p.action for p in report.packages}


def snapshot(cfg) -> dict[str, bytes]:
    return read_tree(cfg.pkgbuilds)


def with_avf(cfg, **changes):
    ups = dict(cfg.upstreams)
    ups["avf"] = dataclasses.replace(ups["avf"], **changes)
    return dataclasses.replace(cfg, upstreams=ups)


def test_first_sync_renders_pkgbuilds_srcinfo_and_state(cfg):
    report = sync(cfg)
    assert actions(report) == {"avf-config": "new", "avf-keyring": "new"}
    info = srcinfo.parse((cfg.pkgbuilds / "avf-config/.SRCINFO").read_text())
    assert (info.pkgbase, info.version) == ("avf-config", "16.0.0.r10-1")
    assert "ttyd.service" in info.get("source") and "forwarder_guest_launcher.service" not in info.get("source")
    st = state_mod.load(cfg.state_file)
    assert st.upstreams["avf"].version == "android-16.0.0_r10"
    assert st.upstreams["avf"].commit == report.upstreams["avf"]["commit"]
    assert st.packages["avf-config"].full_version == "16.0.0.r10-1"
    assert st.packages["avf-config"].upstreams == {"avf": "android-16.0.0_r10"}


def test_dry_run_reports_but_writes_nothing(cfg):
    report = sync(cfg, dry_run=True)
    assert actions(report) == {"avf-config": "new", "avf-keyring": "new"}
    assert not cfg.pkgbuilds.exists() and not report.written


def test_new_tag_on_the_recorded_commit_changes_no_package(cfg, avf):
    sync(cfg)
    before = snapshot(cfg)
    avf.tag("android-16.0.0_r11", "android-16.0.0_r10")
    report = sync(cfg)
    assert actions(report) == {"avf-config": "unchanged", "avf-keyring": "unchanged"}
    assert "same commit" in report.upstreams["avf"]["note"]
    after = snapshot(cfg)
    assert {k: v for k, v in after.items() if k != "avfrepo-state.json"} == \
           {k: v for k, v in before.items() if k != "avfrepo-state.json"}
    assert state_mod.load(cfg.state_file).upstreams["avf"].version == "android-16.0.0_r11"


def test_new_tag_with_unrelated_changes_only_does_not_bump(cfg, avf):
    sync(cfg)
    avf.commit({"android/virtmgr/src/main.rs": "fn main() { /* new */ }\n"}, "unrelated")
    avf.tag("android-16.0.0_r11", message="Android 16.0.0 Release 11")
    report = sync(cfg)
    cfgp = next(p for p in report.packages if p.name == "avf-config")
    assert cfgp.action == "unchanged"
    assert any("inputs unchanged despite avf android-16.0.0_r10 -> android-16.0.0_r11" in r for r in cfgp.reasons)
    assert "pkgver=16.0.0.r10\n" in (cfg.pkgbuilds / "avf-config/PKGBUILD").read_text()


@pytest.fixture
def agents_cfg(cfg, tmp_path, avf, signing_home, monkeypatch):
    """avf-config beside avf-guest-agents: the package that reads AVF's files (cargo, offline)."""
    require_tools("cargo", "patch")
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    return config_mod.load(write_config(tmp_path / "agents.toml", avf.url, signing_home,
                                        enable=("avf-config", "avf-guest-agents")))


def test_new_tag_with_changed_unit_bumps_pkgver_and_resets_pkgrel(agents_cfg, avf):
    cfg = agents_cfg
    sync(cfg)
    avf.commit({"guest/shutdown_runner/debian/service": unit_text("shutdown_runner", " --verbose")}, "unit")
    avf.tag("android-16.0.0_r11")
    report = sync(cfg)
    assert actions(report) == {"avf-config": "unchanged", "avf-guest-agents": "bump"}
    p = report.packages[1]
    assert (p.old, p.new) == ("16.0.0.r10-1", "16.0.0.r11-1")
    assert "--verbose" in (cfg.pkgbuilds / "avf-guest-agents/shutdown_runner.service").read_text()
    info = srcinfo.parse((cfg.pkgbuilds / "avf-guest-agents/.SRCINFO").read_text())
    assert info.version == "16.0.0.r11-1"


def test_changed_inputs_at_the_same_upstream_version_bump_pkgrel(cfg, monkeypatch):
    sync(cfg)
    monkeypatch.setattr(avf_config, "ENABLED", avf_config.ENABLED + ("systemd-timesyncd.service",))
    # a change of avfrepo's code made in memory, which the render record (file digests) cannot see
    report = sync(cfg, rerender=True)
    p = report.packages[0]
    assert (p.action, p.old, p.new) == ("bump", "16.0.0.r10-1", "16.0.0.r10-2")
    assert "pkgrel=2\n" in (cfg.pkgbuilds / "avf-config/PKGBUILD").read_text()
    assert "enable systemd-timesyncd.service" in (cfg.pkgbuilds / "avf-config/80-avf.preset").read_text()


def test_moved_tag_is_refused_and_nothing_is_written(cfg, avf):
    sync(cfg)
    before = snapshot(cfg)
    avf.commit({"guest/shutdown_runner/debian/service": unit_text("shutdown_runner", " --evil")}, "moved")
    avf.tag("android-16.0.0_r10", force=True, message="Android 16.0.0 release 10")
    report = sync(cfg)
    assert report.refused
    assert any("android-16.0.0_r10 moved" in p for p in report.problems)
    assert snapshot(cfg) == before


def test_older_upstream_version_is_refused_never_a_downgrade(cfg):
    sync(cfg)
    before = snapshot(cfg)
    older = with_avf(cfg, tag_pattern=r"^android-(15)\.(\d+)\.(\d+)_r(\d+)$")
    report = sync(older)
    assert report.refused
    assert any("android-15.0.0_r5 is older than the recorded android-16.0.0_r10" in p for p in report.problems)
    assert snapshot(cfg) == before


def test_refused_package_does_not_advance_its_upstream_record(agents_cfg, avf):
    cfg = agents_cfg
    sync(cfg)
    avf.commit({}, "units vanish", remove=tuple(f"guest/{s}/debian" for s in
                                               ("forwarder_guest_launcher", "shutdown_runner", "storage_balloon_agent")))
    avf.tag("android-16.0.0_r11")
    report = sync(cfg)
    assert next(p for p in report.packages if p.name == "avf-guest-agents").action == "refused"
    assert state_mod.load(cfg.state_file).upstreams["avf"].version == "android-16.0.0_r10"


def test_lower_pkgver_with_changed_inputs_is_refused_as_downgrade(cfg, avf):
    sync(cfg)
    st = state_mod.load(cfg.state_file)
    st.packages["avf-config"] = dataclasses.replace(st.packages["avf-config"], pkgver="17.0.0.r1", inputs="0" * 64)
    state_mod.save(cfg.state_file, st)
    report = sync(cfg)
    p = report.packages[0]
    assert p.action == "refused" and "downgrade" in p.problems[0]


def test_unreachable_upstream_refuses_its_packages_and_leaves_pkgbuilds_untouched(cfg, tmp_path):
    sync(cfg)
    before = snapshot(cfg)
    broken = with_avf(cfg, url=(tmp_path / "gone").as_uri())
    report = sync(broken)
    assert report.refused and actions(report) == {"avf-config": "refused", "avf-keyring": "unchanged"}
    assert "gone" in report.upstreams["avf"]["error"] and any("gone" in p for p in report.problems)
    assert "gone" in report.packages[0].problems[0] and report.packages[0].old == "16.0.0.r10-1"
    assert snapshot(cfg) == before


def test_hand_edited_pkgbuild_is_refused_with_the_diff_and_left_as_it_is(cfg, capsys):
    from avfrepo.cli import main
    sync(cfg)
    pkgdir = cfg.pkgbuilds / "avf-config"
    pkgbuild = pkgdir / "PKGBUILD"
    pkgbuild.write_text(pkgbuild.read_text() + "# a maintainer's line\n")
    (pkgdir / "fix.patch").write_text("--- a/x\n+++ b/x\n")
    (pkgdir / "80-avf.preset").unlink()
    before = read_tree(pkgdir)
    assert main(["--config", str(cfg.file), "sync"]) == 1
    out = capsys.readouterr().out
    assert "avf-config             refused" in out
    assert ("changed PKGBUILD; added fix.patch; missing 80-avf.preset): left as it is. "
            f"To drop the edit: `git checkout -- {pkgdir}` and delete the added files; "
            "to let sync rewrite it: `avfrepo sync --discard-edits avf-config`") in out
    assert "--- PKGBUILD (as sync wrote it)\n" in out and "+++ PKGBUILD (now)\n" in out
    assert "\n        +# a maintainer's line\n" in out
    assert read_tree(pkgdir) == before                 # nothing rewritten, nothing deleted
    st = state_mod.load(cfg.state_file)
    assert st.packages["avf-config"].full_version == "16.0.0.r10-1"
    # refused again, as long as the edit is there
    again = sync(cfg)
    assert actions(again)["avf-config"] == "refused" and "changed PKGBUILD" in again.packages[0].problems[0]
    assert read_tree(pkgdir) == before
    # the maintainer lets sync rewrite it
    report = sync(cfg, discard_edits=["avf-config"])
    p = report.packages[0]
    assert (p.action, p.new) == ("restored", "16.0.0.r10-1")
    assert any("--discard-edits: changed PKGBUILD; added fix.patch; missing 80-avf.preset dropped" in r
               for r in p.reasons)
    assert "maintainer" not in pkgbuild.read_text() and not (pkgdir / "fix.patch").exists()
    assert (pkgdir / "80-avf.preset").exists()
    assert actions(sync(cfg)) == {"avf-config": "unchanged", "avf-keyring": "unchanged"}


def test_an_added_file_alone_is_refused_too(cfg):
    sync(cfg)
    (cfg.pkgbuilds / "avf-config/notes.txt").write_text("mine\n")
    report = sync(cfg)
    assert actions(report)["avf-config"] == "refused"
    assert "(added notes.txt): left as it is" in report.packages[0].problems[0]
    assert (cfg.pkgbuilds / "avf-config/notes.txt").read_text() == "mine\n"


def test_a_hand_edit_is_not_lost_to_a_bump_either(cfg, monkeypatch):
    sync(cfg)
    preset = cfg.pkgbuilds / "avf-config/80-avf.preset"
    preset.write_text(preset.read_text() + "enable mine.service\n")
    before = read_tree(cfg.pkgbuilds / "avf-config")
    monkeypatch.setattr(avf_config, "ENABLED", avf_config.ENABLED + ("systemd-timesyncd.service",))
    report = sync(cfg, rerender=True)          # inputs changed: a pkgrel bump would rewrite the directory
    p = report.packages[0]
    assert (p.action, p.new) == ("refused", None)
    assert "(changed 80-avf.preset): left as it is" in p.problems[0]
    # the render changed that file too, so the bytes sync wrote are known only by their sha256
    assert "80-avf.preset: sha256 " in p.problems[0] and "(`git diff` shows the edit)" in p.problems[0]
    assert read_tree(cfg.pkgbuilds / "avf-config") == before
    report = sync(cfg, rerender=True, discard_edits=["avf-config"])
    assert (report.packages[0].action, report.packages[0].new) == ("bump", "16.0.0.r10-2")
    assert "enable mine.service" not in preset.read_text() and "systemd-timesyncd" in preset.read_text()


def test_a_missing_file_is_written_again_without_a_bump(cfg):
    sync(cfg)
    (cfg.pkgbuilds / "avf-config/80-avf.preset").unlink()
    report = sync(cfg)
    p = report.packages[0]
    assert (p.action, p.new) == ("restored", "16.0.0.r10-1")
    assert "80-avf.preset not as rendered at 16.0.0.r10-1" in p.reasons[-1]
    assert (cfg.pkgbuilds / "avf-config/80-avf.preset").exists()


def test_a_state_from_before_files_were_recorded_still_sees_edits_and_records_them(cfg):
    sync(cfg)
    data = json.loads(cfg.state_file.read_text())
    for pk in data["packages"].values():
        del pk["files"]
    cfg.state_file.write_text(json.dumps(data))
    (cfg.pkgbuilds / "avf-config/PKGBUILD").write_text("# replaced\n")
    report = sync(cfg)
    assert actions(report) == {"avf-config": "refused", "avf-keyring": "unchanged"}
    assert "-pkgname=avf-config" in report.packages[0].problems[0]
    st = state_mod.load(cfg.state_file)          # the unchanged keyring's files are recorded now
    assert set(st.packages["avf-keyring"].files) == set(read_tree(cfg.pkgbuilds / "avf-keyring")) - {".SRCINFO"}
    assert st.packages["avf-config"].files == {}


def test_discard_edits_names_a_package_this_sync_renders(cfg):
    with pytest.raises(config_mod.ConfigError, match="--discard-edits: avf-bogus is not a package"):
        sync(cfg, discard_edits=["avf-bogus"])


def test_missing_signing_key_refuses_the_keyring_only(cfg, tmp_path):
    nokey = dataclasses.replace(cfg, signing=SigningConfig(None, tmp_path / "empty-gnupg"))
    report = sync(nokey)
    assert actions(report) == {"avf-config": "new", "avf-keyring": "refused"}
    assert "avfrepo key init" in report.packages[1].problems[0]
    assert (cfg.pkgbuilds / "avf-config/PKGBUILD").exists()
    assert not (cfg.pkgbuilds / "avf-keyring").exists()


def test_the_public_key_alone_renders_the_keyring(cfg, tmp_path, capsys, monkeypatch):
    # CI: the sync job holds only the repository's public key, never the secret
    from avfrepo.cli import main
    from avfrepo.signing import export_public, signing_key
    asc = tmp_path / "avf.asc"
    asc.write_bytes(export_public(cfg.signing, signing_key(cfg.signing).fingerprint, armor=True))
    home = tmp_path / "public-gnupg"
    with monkeypatch.context() as m:
        m.setenv("AVFREPO_GNUPGHOME", str(home))
        assert main(["--config", str(cfg.file), "key", "import", "--public", str(asc)]) == 0
    assert "ready in" in capsys.readouterr().out
    report = sync(dataclasses.replace(cfg, signing=SigningConfig(None, home)))
    assert actions(report) == {"avf-config": "new", "avf-keyring": "new"}
    assert (cfg.pkgbuilds / "avf-keyring/avf.gpg").read_bytes() == export_public(
        cfg.signing, signing_key(cfg.signing).fingerprint, armor=False)


def test_naming_a_package_syncs_only_it_and_skips_its_unused_upstreams(cfg, tmp_path):
    broken = with_avf(cfg, url=(tmp_path / "gone").as_uri())
    report = sync(broken, only=["avf-keyring"])
    assert actions(report) == {"avf-keyring": "new"} and report.upstreams == {}


def test_report_json_is_serialisable(cfg):
    data = json.loads(json.dumps(sync(cfg, dry_run=True).to_json()))
    assert data["dry_run"] is True and data["packages"][0]["new"] == "16.0.0.r10-1"


def test_commit_records_pkgbuilds_in_one_git_commit_listing_packages_and_reasons(cfg, avf, capsys):
    import git
    from avfrepo.cli import main
    repo = git.Repo.init(cfg.root)
    (cfg.root / "README").write_text("x\n")
    repo.git.add("README")
    # the fixture's own commit names its author (no global identity on a fresh machine);
    # the repository keeps none, so sync --commit must fall back to the packager
    repo.git.execute(["git", "-c", "user.name=fixture", "-c", "user.email=fixture@example.invalid",
                      "commit", "-qm", "init"])
    assert main(["--config", str(cfg.file), "sync", "--commit", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    head = repo.head.commit
    assert data["commit"] == head.hexsha
    assert head.message.startswith("sync: avf-config 16.0.0.r10-1, avf-keyring ")
    assert "  - new package at 16.0.0.r10" in head.message
    assert "upstream avf: android-16.0.0_r10" in head.message
    files = set(repo.git.show("--name-only", "--format=", "HEAD").split())
    assert "pkgbuilds/avf-config/PKGBUILD" in files and "pkgbuilds/avfrepo-state.json" in files
    assert all(f.startswith("pkgbuilds/") for f in files)
    # nothing changed: no new commit
    assert main(["--config", str(cfg.file), "sync", "--commit"]) == 0
    assert repo.head.commit == head


def test_commit_without_a_git_identity_commits_as_the_packager(cfg, monkeypatch):
    import git
    from avfrepo.sync import commit
    monkeypatch.setenv("HOME", str(cfg.root))            # no global git identity
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    repo = git.Repo.init(cfg.root)
    report = sync(cfg)
    sha = commit(cfg, report)
    assert repo.head.commit.hexsha == sha
    assert repo.head.commit.author.email == "avfrepo@example.invalid"


def test_sync_of_one_upstream_asks_that_upstream_alone(tmp_path, avf, signing_home, monkeypatch):
    """`sync avf` while GitHub and kernel.org are unreachable: AVF's packages render, the ones
    that also read ttyd or the kernel are skipped with the reason, nothing else is asked."""
    require_tools("cargo", "patch")
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    gone = (tmp_path / "unreachable").as_uri()
    extra = (f'\n[upstreams.ttyd]\nkind = "git-tags"\nurl = "{gone}/ttyd"\ntag_pattern = \'^(\\d+)\\.(\\d+)\\.(\\d+)$\'\n'
             f'\n[upstreams.libwebsockets]\nkind = "git-tags"\nurl = "{gone}/lws"\ntag_pattern = \'^v(4)\\.(\\d+)\\.(\\d+)$\'\n'
             '\n[upstreams.kernel]\nkind = "kernel-org"\nseries = "6.1"\nmethod = "releases-json"\n'
             'url = "http://127.0.0.1:9/releases.json"\n'
             f'\n[upstreams.alarm-pkgbuilds]\nkind = "git-branch"\nurl = "{gone}/PKGBUILDs"\nbranch = "master"\n')
    cfg = config_mod.load(write_config(tmp_path / "avfrepo.toml", avf.url, signing_home, extra=extra,
                                       enable=("avf-config", "ttyd-avf", "linux-avf", "avf-guest-agents")))
    plain = sync(cfg, dry_run=True)     # a plain sync refuses what reads an unreachable upstream, renders the rest
    assert actions(plain) == {"avf-config": "new", "ttyd-avf": "refused", "linux-avf": "refused",
                              "avf-guest-agents": "new"}
    assert {n for n, info in plain.upstreams.items() if "error" in info} == {"ttyd", "kernel", "alarm-pkgbuilds"}
    report = sync(cfg, only=["avf"])
    assert set(report.upstreams) == {"avf"}
    assert actions(report) == {"avf-config": "new", "avf-guest-agents": "new"}
    assert set(report.skipped) == {"ttyd-avf", "linux-avf"}
    assert "also reads alarm-pkgbuilds, kernel," in report.skipped["linux-avf"]
    assert "also reads ttyd," in report.skipped["ttyd-avf"]
    assert report.to_json()["skipped"] == report.skipped


def test_commit_never_records_the_staging_copy_of_a_killed_sync(cfg, avf):
    import git
    from avfrepo.sync import commit
    repo = git.Repo.init(cfg.root)
    (cfg.root / "README").write_text("x\n")
    repo.git.add("README")
    repo.git.execute(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "init"])
    report = sync(cfg)
    stale = cfg.pkgbuilds / ".avf-config.new.k1ll3d"          # what a kill inside replace_dir leaves
    stale.mkdir()
    (stale / "PKGBUILD").write_text("half written\n")
    assert commit(cfg, report)
    files = set(repo.git.show("--name-only", "--format=", "HEAD").split())
    assert not any(".new." in f for f in files), files
    assert not stale.exists()


def test_commit_records_what_this_sync_wrote_never_a_refused_package_s_edit(cfg, avf):
    import git
    from avfrepo.sync import commit
    repo = git.Repo.init(cfg.root)
    repo.git.execute(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q",
                      "--allow-empty", "-m", "init"])
    commit(cfg, sync(cfg))
    pkgbuild = cfg.pkgbuilds / "avf-config/PKGBUILD"
    pkgbuild.write_text(pkgbuild.read_text() + "# mine\n")
    shutil.rmtree(cfg.pkgbuilds / "avf-keyring")
    avf.tag("android-16.0.0_r11", "android-16.0.0_r10")
    report = sync(cfg)
    assert actions(report) == {"avf-config": "refused", "avf-keyring": "restored"}
    assert commit(cfg, report)
    files = set(repo.git.show("--name-only", "--format=", "HEAD").split())
    assert files == {"pkgbuilds/avfrepo-state.json"}         # the keyring came back byte for byte
    assert "pkgbuilds/avf-config/PKGBUILD" in repo.git.status("--porcelain")     # the edit stays, uncommitted
    assert "# mine" in pkgbuild.read_text()


def test_sync_of_an_upstream_no_package_reads_asks_it_and_records_it(tmp_path, avf, signing_home):
    from avfrepo.demo import make_ttyd_upstream
    make_ttyd_upstream(tmp_path / "lws")
    extra = (f'\n[upstreams.libwebsockets]\nkind = "git-tags"\nurl = "{(tmp_path / "lws").as_uri()}"\n'
             "tag_pattern = '^(\\d+)\\.(\\d+)\\.(\\d+)$'\n")
    cfg = config_mod.load(write_config(tmp_path / "avfrepo.toml", avf.url, signing_home, extra=extra))
    report = sync(cfg, only=["libwebsockets"])
    assert list(report.upstreams) == ["libwebsockets"] and report.upstreams["libwebsockets"]["version"] == "1.7.7"
    assert report.packages == [] and report.written
    assert state_mod.load(cfg.state_file).upstreams["libwebsockets"].version == "1.7.7"


# `avfrepo ARGS...` that SIGKILLs itself at rename number N (os.replace, os.rename and the
# directory exchange of fsutil.replace_dir), just before it or just after it; N = -1 counts
# them instead (printed last on stdout)
_KILL_AT_RENAME = """
import os, signal, sys
from avfrepo import fsutil
from avfrepo.cli import main
n, when, count = int(sys.argv[1]), sys.argv[2], [0]
def hooked(real):
    def rename(*args, **kw):
        i = count[0]
        count[0] += 1
        if i == n and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        out = real(*args, **kw)
        if i == n and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return rename
os.replace, os.rename, fsutil._exchange = hooked(os.replace), hooked(os.rename), hooked(fsutil._exchange)
code = main(sys.argv[3:])
print(count[0])
sys.exit(code)
"""


@pytest.mark.slow
def test_sigkill_at_every_rename_of_sync_then_sync_commit_commits_no_leftover(cfg, avf):
    import signal
    import subprocess
    import sys

    import git

    from avfrepo import render_record
    from avfrepo.cli import main
    repo = git.Repo.init(cfg.root)
    repo.git.execute(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q",
                      "--allow-empty", "-m", "init"])
    assert main(["--config", str(cfg.file), "sync", "--commit"]) == 0
    base = repo.head.commit.hexsha
    record = render_record.path(cfg.cache).read_bytes()
    # the sync under the kills: a new tag (the state file changes), a file of one package and
    # another whole package missing (written again: one directory exchanged, one renamed in)
    avf.tag("android-16.0.0_r11", "android-16.0.0_r10")

    def start() -> None:
        repo.git.reset("-q", "--hard", base)           # the test's own repository
        repo.git.clean("-q", "-fdx", "--", str(cfg.pkgbuilds))
        render_record.path(cfg.cache).write_bytes(record)
        (cfg.pkgbuilds / "avf-config/80-avf.preset").unlink()
        shutil.rmtree(cfg.pkgbuilds / "avf-keyring")

    def killed_sync(n: int, when: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _KILL_AT_RENAME, str(n), when, "--config", str(cfg.file),
                               "sync"], capture_output=True, text=True)

    start()
    probe = killed_sync(-1, "-")
    assert probe.returncode == 0, probe.stderr
    renames = int(probe.stdout.split()[-1])
    assert renames >= 4, renames          # the exchange, the rename in, the state file, the render record
    reference, ref_state = read_tree(cfg.pkgbuilds), state_mod.load(cfg.state_file)
    assert "android-16.0.0_r11" in reference["avfrepo-state.json"].decode()
    for n in range(renames):
        for when in ("before", "after"):
            start()
            assert killed_sync(n, when).returncode == -signal.SIGKILL, (n, when)
            assert main(["--config", str(cfg.file), "sync", "--commit"]) == 0, (n, when)
            committed = repo.git.ls_tree("-r", "--name-only", "HEAD").split()
            assert not [f for f in committed if f.endswith(".tmp") or ".new." in f or f.endswith(".old")], \
                (n, when, committed)
            assert sorted(p.name for p in cfg.pkgbuilds.iterdir()) == \
                ["avf-config", "avf-keyring", "avfrepo-state.json"], (n, when)
            now, state = read_tree(cfg.pkgbuilds), state_mod.load(cfg.state_file)
            assert {k: v for k, v in now.items() if k != "avfrepo-state.json"} == \
                {k: v for k, v in reference.items() if k != "avfrepo-state.json"}, (n, when)
            # (a package a killed run already wrote is "unchanged" to this one, so its record
            # keeps the release it was rendered from: only the upstream records must agree)
            assert (state.upstreams, state.seen) == (ref_state.upstreams, ref_state.seen), (n, when)
            assert {p: s.full_version for p, s in state.packages.items()} == \
                {p: s.full_version for p, s in ref_state.packages.items()}, (n, when)
            # committed, unless the killed run had written everything (then there is nothing
            # left for this sync to write, and --commit commits what this sync wrote)
            head = repo.head.commit.hexsha
            assert head == base or not repo.git.status("--porcelain", "--", str(cfg.pkgbuilds)), (n, when)
