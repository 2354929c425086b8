"""The local render record: a sync renders exactly the packages whose inputs moved, and its
report is the one a full render would give."""

from __future__ import annotations

import json

import pytest

from avfrepo import packages, render_record
from avfrepo.demo import unit_text
from avfrepo.sync import sync


@pytest.fixture
def renders(monkeypatch):
    """Names of the packages rendered, in order (each module's real render, observed)."""
    seen: list[str] = []
    real = packages.registry

    def observed():
        mods = real()
        for name, mod in mods.items():
            orig = mod.render
            if getattr(orig, "_observed", False):
                continue

            def wrapper(ctx, _orig=orig, _name=name):
                seen.append(_name)
                return _orig(ctx)
            wrapper._observed = True
            monkeypatch.setattr(mod, "render", wrapper)
        return mods
    monkeypatch.setattr(packages, "registry", observed)
    return seen


def report_json(report) -> dict:
    data = report.to_json()
    data.pop("written")
    return data


def test_a_second_sync_renders_nothing_and_reports_what_a_render_would(cfg, renders):
    sync(cfg)
    assert renders == ["avf-config", "avf-keyring"]
    assert set(render_record.load(cfg.cache).renders) == {"avf-config", "avf-keyring"}
    renders.clear()
    quick = sync(cfg)
    assert renders == []
    full = sync(cfg, rerender=True)
    assert renders == ["avf-config", "avf-keyring"]
    assert report_json(quick) == report_json(full)
    assert [p.action for p in quick.packages] == ["unchanged", "unchanged"]
    assert quick.packages[0].old == "16.0.0.r10-1"


def test_a_new_tag_with_a_changed_unit_renders_and_bumps(cfg, avf, renders):
    sync(cfg)
    renders.clear()
    avf.commit({"guest/shutdown_runner/debian/service": unit_text("shutdown_runner", " --verbose")}, "unit")
    avf.tag("android-16.0.0_r11")
    report = sync(cfg)
    assert renders == ["avf-config"]                  # the keyring reads no upstream: its inputs did not move
    # avf-config does not ship the agents' units: rendered, and found unchanged
    assert report.packages[0].action == "unchanged"
    assert report.packages[0].reasons == ["inputs unchanged despite avf android-16.0.0_r10 -> android-16.0.0_r11: no bump"]
    renders.clear()
    assert sync(cfg).packages[0].action == "unchanged" and renders == []


def test_a_new_tag_that_changes_an_agent_renders_the_agents_alone(cfg, avf, renders, signing_home, monkeypatch):
    from avfrepo import config as config_mod
    from avfrepo.demo import write_config

    from .conftest import require_tools
    require_tools("cargo", "patch")
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    agents = config_mod.load(write_config(cfg.root / "agents.toml", avf.url, signing_home,
                                          enable=("avf-config", "avf-guest-agents", "avf-base")))
    sync(agents)
    # the first sync's agents and avf-base saw fewer package names than there are now (the
    # packages rendered after them): rendered once more, found unchanged, then recorded
    renders.clear()
    assert [p.action for p in sync(agents).packages] == ["unchanged"] * 3
    assert renders == ["avf-guest-agents", "avf-base"]
    renders.clear()
    assert [p.action for p in sync(agents).packages] == ["unchanged"] * 3 and renders == []
    avf.commit({"guest/shutdown_runner/debian/service": unit_text("shutdown_runner", " --verbose")}, "unit")
    avf.tag("android-16.0.0_r11")
    report = sync(agents)
    assert renders == ["avf-config", "avf-guest-agents"]     # avf-base reads no upstream, and the names stay
    assert {p.name: (p.action, p.new) for p in report.packages} == {
        "avf-config": ("unchanged", None), "avf-guest-agents": ("bump", "16.0.0.r11-1"), "avf-base": ("unchanged", None)}


def test_a_hand_edited_pkgbuild_is_rendered_refused_and_the_refusal_kept(cfg, renders):
    sync(cfg)
    renders.clear()
    pkgbuild = cfg.pkgbuilds / "avf-config/PKGBUILD"
    pkgbuild.write_text(pkgbuild.read_text().replace("sudo", "doas"))
    report = sync(cfg)
    assert renders == ["avf-config"]
    assert report.packages[0].action == "refused" and "doas" in pkgbuild.read_text()
    renders.clear()
    again = sync(cfg)                   # the same directory, the same refusal: not rendered again
    assert renders == [] and again.packages[0].problems == report.packages[0].problems
    # --discard-edits renders it whatever the record says, and writes it
    assert sync(cfg, discard_edits=["avf-config"]).packages[0].action == "restored"
    assert renders == ["avf-config"] and "doas" not in pkgbuild.read_text()
    renders.clear()
    assert [p.action for p in sync(cfg).packages] == ["unchanged", "unchanged"] and renders == []


def test_an_edited_config_file_renders_again(cfg, renders):
    sync(cfg)
    renders.clear()
    cfg.file.write_text(cfg.file.read_text() + "\n# a maintainer's note\n")
    report = sync(cfg)
    assert renders == ["avf-config", "avf-keyring"]
    assert [p.action for p in report.packages] == ["unchanged", "unchanged"]


def test_other_avfrepo_code_renders_again(cfg, renders, monkeypatch):
    sync(cfg)
    renders.clear()
    monkeypatch.setattr(render_record, "code_digest", lambda: "another avfrepo")
    sync(cfg)
    assert renders == ["avf-config", "avf-keyring"]


def test_a_changed_state_file_renders_again(cfg, renders):
    sync(cfg)
    renders.clear()
    data = json.loads(cfg.state_file.read_text())
    data["packages"]["avf-config"]["pkgrel"] = 7        # e.g. a git checkout of another pkgbuilds/
    cfg.state_file.write_text(json.dumps(data))
    sync(cfg)
    assert renders == ["avf-config"]


def test_dry_run_reads_the_record_but_never_writes_it(cfg, renders):
    sync(cfg, dry_run=True)
    assert not render_record.path(cfg.cache).exists()
    sync(cfg)
    before = render_record.path(cfg.cache).read_bytes()
    renders.clear()
    cfg.file.write_text(cfg.file.read_text() + "\n# note\n")
    sync(cfg, dry_run=True)
    assert renders == ["avf-config", "avf-keyring"]
    assert render_record.path(cfg.cache).read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"format": 99, "packages": {}}', b"\xff\xfe"])
def test_an_unreadable_record_renders_everything(cfg, renders, content):
    sync(cfg)
    render_record.path(cfg.cache).write_bytes(content)
    renders.clear()
    report = sync(cfg)
    assert renders == ["avf-config", "avf-keyring"]
    assert [p.action for p in report.packages] == ["unchanged", "unchanged"]
    assert set(render_record.load(cfg.cache).renders) == {"avf-config", "avf-keyring"}


def test_a_refused_package_leaves_the_record_and_is_rendered_next_time(cfg, renders, tmp_path):
    import dataclasses

    from avfrepo.config import SigningConfig
    sync(cfg)
    nokey = dataclasses.replace(cfg, signing=SigningConfig(None, tmp_path / "empty-gnupg"))
    report = sync(nokey)
    assert [p.action for p in report.packages] == ["unchanged", "refused"]
    assert set(render_record.load(cfg.cache).renders) == {"avf-config"}
    renders.clear()
    assert [p.action for p in sync(cfg).packages] == ["unchanged", "unchanged"]
    assert renders == ["avf-keyring"]


def test_a_changed_keyring_file_renders_the_keyring_again(cfg, renders, tmp_path):
    import dataclasses
    import shutil

    from avfrepo.config import SigningConfig
    home = tmp_path / "own-gnupg"
    shutil.copytree(cfg.signing.gnupg_home, home, ignore=shutil.ignore_patterns("S.*"))
    own = dataclasses.replace(cfg, signing=SigningConfig(None, home))
    sync(own)
    renders.clear()
    (home / "pubring.kbx").touch()          # what an import or a new subkey does to the ring
    sync(own)
    assert "avf-keyring" in renders


def test_sync_of_one_package_keeps_the_others_records(cfg, renders):
    sync(cfg)
    before = render_record.load(cfg.cache)
    cfg.file.write_text(cfg.file.read_text() + "\n# note\n")
    renders.clear()
    sync(cfg, only=["avf-config"])
    assert renders == ["avf-config"]
    after = render_record.load(cfg.cache)
    assert after.renders["avf-keyring"] == before.renders["avf-keyring"]
    assert after.renders["avf-config"] != before.renders["avf-config"]


@pytest.mark.parametrize("content", [b"[" * 100_000 + b"]" * 100_000,
                                     b'{"format": 1, "packages": ' + b"[" * 300 + b"]" * 300 + b"}"])
def test_a_record_nested_too_deep_is_an_empty_one_named_in_a_warning(tmp_path, caplog, content):
    render_record.path(tmp_path).write_bytes(content)
    assert render_record.load(tmp_path) == render_record.Record()
    assert f"{render_record.path(tmp_path)}: corrupt file, ignored" in caplog.text
    assert "nested deeper than" in caplog.text
