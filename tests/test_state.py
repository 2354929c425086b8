"""The state file: missing means empty, round trips exactly, refuses corrupt or foreign
content with StateError, and is replaced atomically."""

from __future__ import annotations

import json
import os

import pytest

from avfrepo import state as state_mod
from avfrepo.errors import StateError
from avfrepo.state import PackageState, State, UpstreamState


def sample() -> State:
    return State(
        upstreams={
            "avf": UpstreamState("android-16.0.0_r10", "a" * 40),
            "ttyd": UpstreamState("1.7.7", None),
        },
        packages={
            "avf-config": PackageState("16.0.0.r10", 2, "f" * 64, {"avf": "android-16.0.0_r10"}),
            "avf-keyring": PackageState("20250101", 1, "0" * 64),
        },
    )


def test_missing_file_is_an_empty_state(tmp_path):
    st = state_mod.load(tmp_path / "nope" / "avfrepo-state.json")
    assert st == State()
    assert st.upstreams == {} and st.packages == {}


def test_save_then_load_round_trips(tmp_path):
    path = tmp_path / "pkgbuilds" / "avfrepo-state.json"
    state_mod.save(path, sample())
    assert state_mod.load(path) == sample()
    assert state_mod.load(path).packages["avf-config"].full_version == "16.0.0.r10-2"


def test_saved_file_is_stable_sorted_json_with_format_number(tmp_path):
    path = tmp_path / "s.json"
    state_mod.save(path, sample())
    text = path.read_text()
    data = json.loads(text)
    assert data["format"] == state_mod.FORMAT == 1
    assert list(data["packages"]) == ["avf-config", "avf-keyring"]
    assert data["upstreams"]["ttyd"] == {"version": "1.7.7", "commit": None, "pkgver": None}
    assert text.endswith("\n")
    state_mod.save(path, state_mod.load(path))
    assert path.read_text() == text                  # same state, same bytes (clean git diffs)


def test_empty_state_round_trips(tmp_path):
    path = tmp_path / "s.json"
    state_mod.save(path, State())
    assert state_mod.load(path) == State()


@pytest.mark.parametrize("text", [
    "{not json",
    "",
    "[1, 2]",
    '"format"',
    '{"format": 1, "upstreams": {"avf": "android-16.0.0_r1"}}',
    '{"format": 1, "packages": {"p": {"pkgver": "1"}}}',
    '{"format": 1, "packages": {"p": {"pkgver": "1", "pkgrel": 1, "inputs": "x", "extra": 1}}}',
    '{"format": 1, "upstreams": []}',
])
def test_corrupt_content_raises_state_error_naming_the_file(tmp_path, text):
    path = tmp_path / "avfrepo-state.json"
    path.write_text(text)
    with pytest.raises(StateError) as info:
        state_mod.load(path)
    assert str(path) in str(info.value)


def test_non_utf8_file_raises_state_error(tmp_path):
    path = tmp_path / "avfrepo-state.json"
    path.write_bytes(b'{"format": 1, "upstreams": {"\xff": 1}}')
    with pytest.raises(StateError):
        state_mod.load(path)


@pytest.mark.parametrize("fmt", [0, 2, "1", None])
def test_other_format_numbers_are_refused(tmp_path, fmt):
    path = tmp_path / "avfrepo-state.json"
    path.write_text(json.dumps({"format": fmt, "upstreams": {}, "packages": {}}))
    with pytest.raises(StateError, match="unsupported state format") as info:
        state_mod.load(path)
    assert str(path) in str(info.value)


def test_file_without_format_is_refused(tmp_path):
    path = tmp_path / "avfrepo-state.json"
    path.write_text('{"upstreams": {}, "packages": {}}')
    with pytest.raises(StateError, match="unsupported state format None"):
        state_mod.load(path)


def test_save_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "avfrepo-state.json"
    state_mod.save(path, State())
    state_mod.save(path, sample())
    assert sorted(os.listdir(tmp_path)) == ["avfrepo-state.json"]


def test_failed_save_keeps_the_previous_file_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "avfrepo-state.json"
    state_mod.save(path, sample())
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash before the rename")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        state_mod.save(path, State())
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert state_mod.load(path) == sample()
    assert sorted(os.listdir(tmp_path)) == ["avfrepo-state.json"]


def test_state_file_without_upstream_pkgver_still_loads(tmp_path):
    """Files written before upstream pkgver was recorded stay readable (the field defaults)."""
    path = tmp_path / "s.json"
    path.write_text('{"format": 1, "upstreams": {"avf": {"version": "android-16.0.0_r3", "commit": "abc"}},'
                    ' "packages": {}}')
    st = state_mod.load(path)
    assert st.upstreams["avf"].pkgver is None and st.upstreams["avf"].commit == "abc"


@pytest.mark.parametrize("where, value", [
    (("packages", "avf-config", "pkgrel"), "2"),
    (("packages", "avf-config", "pkgrel"), True),
    (("packages", "avf-config", "pkgver"), 16),
    (("packages", "avf-config", "upstreams"), ["avf"]),
    (("upstreams", "avf", "version"), None),
    (("upstreams", "avf", "commit"), 1234),
])
def test_hand_edited_values_of_the_wrong_type_are_a_state_error(tmp_path, where, value):
    path = tmp_path / "avfrepo-state.json"
    data = json.loads(sample().to_json())
    data[where[0]][where[1]][where[2]] = value
    path.write_text(json.dumps(data))
    with pytest.raises(StateError, match=f"{where[0]}.{where[1]}.{where[2]} must be"):
        state_mod.load(path)



@pytest.mark.parametrize("raw", [
    b'{"format": 1, "seen": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",      # deeper than Python recurses
    b'{"format": 1, "note": ' + b"[" * 200 + b"]" * 200 + b"}",              # parses, deeper than any state
    b'{"format": 1, "upstreams": {"\xff": 1}}',
    b'{"format": 1, "packages": {"p\\nq": {"pkgver": "1", "pkgrel": 1, "inputs": "x", "bad\\nkey": 1}}}',
])
def test_deep_nesting_and_bad_bytes_are_one_line_errors_naming_the_file(tmp_path, raw):
    path = tmp_path / "avfrepo-state.json"
    path.write_bytes(raw)
    with pytest.raises(StateError) as info:
        state_mod.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: corrupt state file (") and "\n" not in message, message
    assert len(message) < 400


def test_the_files_sync_wrote_round_trip_and_are_type_checked(tmp_path):
    path = tmp_path / "avfrepo-state.json"
    st = sample()
    st.packages["avf-config"] = PackageState("16.0.0.r10", 2, "f" * 64, files={"PKGBUILD": "a" * 64})
    state_mod.save(path, st)
    assert state_mod.load(path).packages["avf-config"].files == {"PKGBUILD": "a" * 64}
    data = json.loads(path.read_text())
    data["packages"]["avf-config"]["files"] = {"PKGBUILD": 1}
    path.write_text(json.dumps(data))
    with pytest.raises(StateError, match="packages.avf-config.files must be"):
        state_mod.load(path)


def test_the_command_line_names_a_state_file_nested_too_deep_in_one_line(cfg, capsys):
    from avfrepo.cli import main
    cfg.state_file.parent.mkdir(parents=True)
    cfg.state_file.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    assert main(["--config", str(cfg.file), "sync"]) == 1
    assert capsys.readouterr().err == (f"avfrepo: error: {cfg.state_file}: corrupt state file (not JSON avfrepo reads "
                                       "(nested deeper than 32 levels)); restore it from git\n")
