"""`avfrepo sync` when something is refused or fails: protections that no refusal turns off,
failures that refuse only what depends on them, refusals kept by input digest, and a new tag
whose files are byte-identical (an AOSP snap commit) that changes nothing.

linux-avf is refused the way the real one is today: a kernel point release its AVF patch no
longer fits (a synthetic 6.1 tarball on 127.0.0.1, as in tests/packages/test_linux_avf.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from avfrepo import config as config_mod
from avfrepo import state as state_mod
from avfrepo.demo import unit_text, write_config
from avfrepo.packages import linux_avf
from avfrepo.sync import sync

from .conftest import require_tools
from .packages.alarm_fixture import make_alarm
from .packages.test_linux_avf import kernel, make_kcfg  # noqa: F401 (kernel: the fixture)
from .sources.conftest import http_server, no_proxy_and_recorded_sleeps  # noqa: F401 (fixtures)
from .test_sync import actions, snapshot, with_avf

BREAKS_THE_PATCH = {"arch/arm64/Kconfig": "config ARM64\n\tdef_bool y\n\tselect HAVE_ARCH_KGDB\n"}


def kernel_cfg(tmp_path, avf, kernel, signing_home, enable=("avf-config", "linux-avf")) -> config_mod.Config:
    alarm = make_alarm(tmp_path / "upstream" / "PKGBUILDs")
    return make_kcfg(tmp_path, avf, kernel, alarm, signing_home, name="kernel.toml", enable=enable)


@pytest.fixture
def refused_kernel(tmp_path, avf, kernel, signing_home):
    """avf-config renders; linux-avf is refused (6.1.159 breaks AVF's patch) and stays so."""
    cfg = kernel_cfg(tmp_path, avf, kernel, signing_home)
    kernel.release("6.1.159", BREAKS_THE_PATCH)
    report = sync(cfg)
    assert actions(report) == {"avf-config": "new", "linux-avf": "refused"}
    assert "does not apply to Linux 6.1.159" in report.packages[1].problems[0]
    assert not report.packages[1].transient and report.to_json()["refusals"][0].startswith("linux-avf: AVF")
    return cfg


# --- 4. protections that no refusal turns off ----------------------------------------------

def test_every_release_tag_seen_is_recorded_with_its_commit_whatever_rendered(refused_kernel, avf):
    st = state_mod.load(refused_kernel.state_file)
    assert "avf" not in st.upstreams            # linux-avf (reads avf) was refused: not applied
    seen = st.seen["avf"]
    assert set(seen) == {f"android-16.0.0_r{r}" for r in range(1, 11)}      # the pattern's family only
    assert seen["android-16.0.0_r10"].commit == avf.repo.git.rev_parse("android-16.0.0_r10^{commit}")
    assert seen["android-16.0.0_r10"].pkgver == "16.0.0.r10"
    assert not any(t.startswith("android-platform") for t in seen)     # other families are not releases
    assert st.seen["kernel"]["6.1.159"].pkgver == "6.1.159"
    assert "alarm-pkgbuilds" not in st.seen      # a branch head: no name to trust, no order


def test_a_moved_tag_alarms_while_a_package_reading_its_upstream_is_refused(refused_kernel, avf):
    cfg = refused_kernel
    before = snapshot(cfg)
    avf.commit({"guest/shutdown_runner/debian/service": unit_text("shutdown_runner", " --evil")}, "re-pointed")
    avf.tag("android-16.0.0_r10", force=True, message="Android 16.0.0 release 10")
    report = sync(cfg)
    assert report.refused
    alarm = next(p for p in report.problems if "moved" in p)
    assert "tag android-16.0.0_r10 moved from" in alarm and "until a maintainer reviews it" in alarm
    assert actions(report) == {"avf-config": "refused", "linux-avf": "refused"}
    assert alarm in report.packages[0].problems
    assert snapshot(cfg) == before


def test_an_older_seen_tag_that_moves_alarms_too(cfg, avf):
    sync(cfg)
    avf.commit({"README.md": "rewritten history\n"}, "rewrite")
    avf.tag("android-16.0.0_r4", force=True)
    report = sync(cfg)
    assert any("tag android-16.0.0_r4 moved" in p for p in report.problems)
    assert actions(report)["avf-config"] == "refused"


def test_older_than_the_newest_seen_is_refused_while_a_reader_is_refused(refused_kernel, avf):
    avf.commit({"README.md": "r11\n"}, "r11")
    avf.tag("android-16.0.0_r11")
    sync(refused_kernel)                                     # linux-avf still refused: r11 only seen
    assert "avf" not in state_mod.load(refused_kernel.state_file).upstreams
    narrowed = with_avf(refused_kernel, tag_pattern=r"^android-16\.0\.0_r([1-9])$")
    report = sync(narrowed)
    assert any("android-16.0.0_r9 is older than the recorded android-16.0.0_r11" in p for p in report.problems)
    assert actions(report) == {"avf-config": "refused", "linux-avf": "refused"}


def test_a_state_from_before_seen_releases_starts_from_its_applied_record(cfg, avf):
    sync(cfg)
    data = json.loads(cfg.state_file.read_text())
    del data["seen"]
    cfg.state_file.write_text(json.dumps(data))
    avf.commit({"README.md": "moved\n"}, "moved")
    avf.tag("android-16.0.0_r10", force=True)
    report = sync(cfg)
    assert any("tag android-16.0.0_r10 moved" in p for p in report.problems)


# --- 5. one failure refuses only what depends on it ----------------------------------------

def test_an_unreachable_download_refuses_only_the_package_that_needs_it(tmp_path, avf, kernel, signing_home):
    cfg = kernel_cfg(tmp_path, avf, kernel, signing_home)
    del kernel.srv.routes["/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz"]
    report = sync(cfg)
    assert actions(report) == {"avf-config": "new", "linux-avf": "refused"}
    assert "linux-6.1.158.tar.xz" in report.packages[1].problems[0]
    assert report.packages[1].transient and report.to_json()["refusals"] == []     # an outage, no verdict
    assert (cfg.pkgbuilds / "avf-config/PKGBUILD").is_file() and not (cfg.pkgbuilds / "linux-avf").exists()
    # a failed download is no verdict on the inputs: the next sync tries again, and renders
    kernel.srv.routes["/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz"] = kernel.tarballs["6.1.158"]
    assert actions(sync(cfg))["linux-avf"] == "new"


def test_json_is_a_complete_report_on_a_network_failure(cfg, tmp_path, capsys):
    from avfrepo.cli import main
    sync(cfg)
    broken = cfg.file.read_text().replace(cfg.upstream("avf").url, (tmp_path / "offline").as_uri())
    (tmp_path / "broken.toml").write_text(broken)
    assert main(["--config", str(tmp_path / "broken.toml"), "sync", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["refused"] is True and data["error"] is None
    assert "offline" in data["upstreams"]["avf"]["error"] and data["refusals"] == []
    assert data["packages"][0]["transient"] is True
    assert {p["name"]: p["action"] for p in data["packages"]} == {"avf-config": "refused", "avf-keyring": "unchanged"}


def test_json_is_a_report_with_the_error_when_sync_stops(cfg, capsys):
    from avfrepo.cli import main
    cfg.state_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.state_file.write_text("{not json")
    assert main(["--config", str(cfg.file), "sync", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert "corrupt state file" in data["error"] and data["refused"] is True and data["packages"] == []


def test_a_refusal_is_kept_by_input_digest_and_not_worked_out_again(refused_kernel, kernel, monkeypatch):
    checks = []
    real = linux_avf.check_patches
    monkeypatch.setattr(linux_avf, "check_patches", lambda *a, **kw: (checks.append(a[1]), real(*a, **kw))[1])
    report = sync(refused_kernel)
    p = report.packages[1]
    assert (p.name, p.action) == ("linux-avf", "refused") and checks == []
    assert "does not apply to Linux 6.1.159" in p.problems[0]
    assert any("refused as at the last sync" in r for r in p.reasons)
    assert report.refused
    # an input changes (the kernel moves on, the patch fits again): rendered, and new
    kernel.release("6.1.160")
    report = sync(refused_kernel)
    assert actions(report)["linux-avf"] == "new" and len(checks) == 1


def test_rerender_works_a_kept_refusal_out_again(refused_kernel, monkeypatch):
    checks = []
    real = linux_avf.check_patches
    monkeypatch.setattr(linux_avf, "check_patches", lambda *a, **kw: (checks.append(a[1]), real(*a, **kw))[1])
    report = sync(refused_kernel, rerender=True)
    assert actions(report)["linux-avf"] == "refused" and len(checks) == 1
    assert not any("refused as at the last sync" in r for r in report.packages[1].reasons)


# --- 6. identical content, no bump ---------------------------------------------------------

@pytest.fixture
def agents_cfg(tmp_path, avf, signing_home, monkeypatch):
    require_tools("cargo", "patch")
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    return config_mod.load(write_config(tmp_path / "agents.toml", avf.url, signing_home,
                                        enable=("avf-config", "avf-guest-agents")))


def pinned_commit(cfg) -> str:
    text = (cfg.pkgbuilds / "avf-guest-agents/PKGBUILD").read_text()
    return text.split("#commit=")[1][:40]


def test_an_aosp_snap_commit_with_identical_files_changes_nothing(agents_cfg, avf, monkeypatch):
    from avfrepo.packages import guest_agents
    cfg = agents_cfg
    sync(cfg)
    sync(cfg)       # records the agents' render (the first one saw fewer package names than the next)
    renders = []
    real = guest_agents.render
    monkeypatch.setattr(guest_agents, "render", lambda ctx: (renders.append(ctx), real(ctx))[1])
    r10 = avf.repo.git.rev_parse("android-16.0.0_r10^{commit}")
    assert pinned_commit(cfg) == r10
    before = {k: v for k, v in snapshot(cfg).items() if k != "avfrepo-state.json"}
    snap = avf.snap("android-16.0.0_r10")
    avf.tag("android-16.0.0_r11", snap, message="Android 16.0.0 release 11")
    assert avf.repo.git.rev_parse(f"{snap}^{{tree}}") == avf.repo.git.rev_parse(f"{r10}^{{tree}}")
    report = sync(cfg)
    agents = report.packages[1]
    assert agents.action == "unchanged" and agents.old == "16.0.0.r10-1"
    assert any("byte-identical" in r and "stays at android-16.0.0_r10" in r for r in agents.reasons)
    assert renders == []        # its inputs are those of its last render once pinned: not rendered again
    assert {k: v for k, v in snapshot(cfg).items() if k != "avfrepo-state.json"} == before
    st = state_mod.load(cfg.state_file)
    assert st.upstreams["avf"].version == "android-16.0.0_r11"
    assert st.packages["avf-guest-agents"].trees["avf"].commit == r10
    # a later tag that changes what the agents read: bumped, pinned to that tag's commit
    avf.commit({"guest/shutdown_runner/debian/service": unit_text("shutdown_runner", " --verbose")}, "unit")
    avf.tag("android-16.0.0_r12")
    report = sync(cfg)
    assert (report.packages[1].action, report.packages[1].new) == ("bump", "16.0.0.r12-1")
    assert pinned_commit(cfg) == avf.head()


def test_identical_files_at_a_tag_that_changed_others_change_nothing(agents_cfg, avf):
    cfg = agents_cfg
    sync(cfg)
    avf.commit({"android/virtmgr/src/main.rs": "fn main() { /* elsewhere */ }\n"}, "unrelated")
    avf.tag("android-16.0.0_r11")
    report = sync(cfg)
    assert actions(report) == {"avf-config": "unchanged", "avf-guest-agents": "unchanged"}
    assert pinned_commit(cfg) == avf.repo.git.rev_parse("android-16.0.0_r10^{commit}")


def test_the_files_read_are_recorded_for_a_package_rendered_before_they_were(agents_cfg, avf):
    cfg = agents_cfg
    sync(cfg)
    data = json.loads(cfg.state_file.read_text())
    del data["packages"]["avf-guest-agents"]["trees"]
    cfg.state_file.write_text(json.dumps(data))
    report = sync(cfg, rerender=True)
    assert actions(report)["avf-guest-agents"] == "unchanged"
    rec = state_mod.load(cfg.state_file).packages["avf-guest-agents"].trees["avf"]
    assert (rec.version, len(rec.content)) == ("android-16.0.0_r10", 64)


def test_content_digest_sees_a_mode_change(agents_cfg, avf):
    """The digest is git's modes and blob ids: an executable bit is a change too."""
    cfg = agents_cfg
    sync(cfg)
    main_rs = avf.path / "guest/shutdown_runner/src/main.rs"
    main_rs.chmod(0o755)
    avf.commit({}, "mode only")
    avf.tag("android-16.0.0_r11")
    report = sync(cfg)
    assert not any("byte-identical" in r for r in report.packages[1].reasons)
    assert dataclasses.asdict(state_mod.load(cfg.state_file).packages["avf-guest-agents"].trees["avf"])["version"] \
        == "android-16.0.0_r11"


def test_a_failed_tool_is_not_kept_and_the_next_sync_tries_again(tmp_path, avf, kernel, signing_home, monkeypatch):
    from avfrepo import render_record
    from avfrepo.packages import ToolProblem
    cfg = kernel_cfg(tmp_path, avf, kernel, signing_home)
    real = linux_avf.render

    def broken_tool(ctx):       # an injected failure: patch or cargo missing, a fetch cut off
        raise ToolProblem("patch: command not found (injected by the test)")
    monkeypatch.setattr(linux_avf, "render", broken_tool)
    report = sync(cfg)
    assert actions(report) == {"avf-config": "new", "linux-avf": "refused"}
    assert "linux-avf" not in render_record.load(cfg.cache).refusals
    monkeypatch.setattr(linux_avf, "render", real)
    assert actions(sync(cfg))["linux-avf"] == "new"


def test_a_stalled_fetch_of_an_upstream_tree_is_bounded_by_its_config_and_refuses_its_readers(
        tmp_path, avf, signing_home, monkeypatch):
    """[upstreams.avf] timeout/retries/deadline reach sync's sparse fetch, not a fixed 900 s:
    the listing answers, the object fetch never does (tests/githttp.py)."""
    import time

    from avfrepo.sources import net as netmod

    from .githttp import GitHttp, bare_copy
    require_tools("cargo", "patch", "git")
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    monkeypatch.setattr(netmod, "sleep", lambda s: None)
    bare_copy(avf.path, tmp_path / "srv", "Virtualization.git")
    server = GitHttp(tmp_path / "srv", "stall")
    try:
        url = server.url("Virtualization.git")
        cfg = config_mod.load(write_config(tmp_path / "stall.toml", url, signing_home,
                                           enable=("avf-config", "avf-guest-agents"),
                                           extra="timeout = 1\nretries = 0\ndeadline = 8\n"))
        start = time.monotonic()
        report = sync(cfg)
        took = time.monotonic() - start
    finally:
        server.close()
    assert actions(report) == {"avf-config": "new", "avf-guest-agents": "refused"}
    problem = report.packages[1].problems[0]
    assert "git fetch: no data for 1 s" in problem or "within 8 s (the deadline)" in problem, problem
    assert report.packages[1].transient and server.fetches >= 1 and took < 30, took
