"""`avfrepo doctor` (issue 24, item 6): one line per check, ok or MISSING with what to set;
exit 0 when everything holds, 1 otherwise. Real gpg keys, real config files, real tools."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from avfrepo.cli import main
from avfrepo.config import SigningConfig
from avfrepo.demo import write_config
from avfrepo.signing import export_public, import_public, signing_key

from .conftest import require_build_user, require_tools

SERVER = "https://github.com/someone/avf-fork/releases/download"
IMAGE = '\n[image]\navf_source = "server"\n'


def good_config(tmp_path: Path, home: Path, *, server: str = SERVER, image: str = IMAGE) -> Path:
    path = write_config(tmp_path / "avfrepo.toml", str(tmp_path / "upstream"), home, extra=image)
    text = path.read_text()
    text = re.sub(r'^server = ".*"$', f'server = "{server}"', text, count=1, flags=re.M)
    path.write_text(text)
    return path


def doctor(capsys, config: Path, *extra: str) -> tuple[int, dict[str, str], str]:
    code = main(["--config", str(config), "doctor", *extra])
    out, err = capsys.readouterr()
    lines = {}
    for line in out.splitlines():
        name, rest = line.split(None, 1)
        lines[name] = rest
    return code, lines, out


@pytest.fixture
def fingerprint(signing_home) -> str:
    return signing_key(SigningConfig(None, signing_home)).fingerprint


@pytest.fixture
def tools_here():
    require_tools("makepkg", "repo-add", "bsdtar", "gpg", "zstd")
    require_build_user()


def test_a_good_config_passes_every_check(capsys, tmp_path, signing_home, fingerprint, tools_here, monkeypatch):
    monkeypatch.setenv("AVF_SIGNING_FINGERPRINT", fingerprint.lower())
    code, lines, out = doctor(capsys, good_config(tmp_path, signing_home))
    assert code == 0, out
    assert list(lines) == ["config", "key", "fingerprint", "server", "image", "tools"]
    assert all(v.startswith("ok: ") for v in lines.values()), out
    assert fingerprint in lines["key"] and f"names the key {fingerprint}" in lines["fingerprint"]
    code, lines, out = doctor(capsys, good_config(tmp_path, signing_home), "--publish")
    assert code == 0 and "can sign" in lines["key"], out


def test_a_placeholder_server_is_named_with_the_fix(capsys, tmp_path, signing_home):
    code, lines, out = doctor(capsys, good_config(tmp_path, signing_home, server="https://example.invalid/avf"))
    assert code == 1
    assert lines["server"].startswith("MISSING: [repo] server https://example.invalid/avf is a placeholder")
    assert "set [repo] server in " in lines["server"] and "releases/download" in lines["server"]
    assert lines["config"].startswith("ok") and lines["key"].startswith("ok")


def test_a_server_ending_in_arch_is_named_by_the_config_check(capsys, tmp_path, signing_home):
    code, lines, out = doctor(capsys, good_config(tmp_path, signing_home, server=SERVER + "/$arch"))
    assert code == 1 and list(lines) == ["config"]
    assert lines["config"].startswith("MISSING: ") and "without /$arch" in lines["config"]
    assert f'set server = "{SERVER}"' in lines["config"]


def test_a_fingerprint_that_names_another_key_is_named(capsys, tmp_path, signing_home, fingerprint, monkeypatch):
    monkeypatch.setenv("AVF_SIGNING_FINGERPRINT", "F" * 40)
    code, lines, out = doctor(capsys, good_config(tmp_path, signing_home))
    assert code == 1
    assert lines["fingerprint"] == (f"MISSING: AVF_SIGNING_FINGERPRINT={'F' * 40} but the key is {fingerprint}: "
                                    f"set the variable AVF_SIGNING_FINGERPRINT to {fingerprint}, or import the key "
                                    "it names")
    monkeypatch.setenv("AVF_SIGNING_FINGERPRINT", "not-hex")
    code, lines, out = doctor(capsys, good_config(tmp_path, signing_home))
    assert code == 1 and "is not a 40-hex-digit fingerprint" in lines["fingerprint"]


def test_a_missing_key_is_named_with_how_to_get_one(capsys, tmp_path, monkeypatch):
    require_tools("gpg")
    monkeypatch.setenv("AVF_SIGNING_FINGERPRINT", "A" * 40)
    empty = tmp_path / "gnupg-empty"
    code, lines, out = doctor(capsys, good_config(tmp_path, empty))
    assert code == 1
    assert lines["key"].startswith("MISSING: no signing key in ") and "avfrepo key init" in lines["key"]
    assert "AVF_PUBLIC_KEY" in lines["key"]
    assert lines["fingerprint"].startswith("MISSING: ") and "no key" in lines["fingerprint"]
    assert not empty.exists()                   # doctor writes nothing


def test_the_public_key_suffices_unless_publishing(capsys, tmp_path, signing_home, fingerprint):
    public_only = tmp_path / "gnupg-public"
    import_public(SigningConfig(None, public_only), export_public(SigningConfig(None, signing_home), fingerprint,
                                                                  armor=True))
    config = good_config(tmp_path, public_only)
    code, lines, out = doctor(capsys, config)
    assert lines["key"] .startswith(f"ok: {fingerprint}"), out
    code, lines, out = doctor(capsys, config, "--publish")
    assert code == 1 and lines["key"].startswith("MISSING: ") and "AVF_SIGNING_KEY" in lines["key"], out


@pytest.mark.parametrize("image,words", [
    ("", 'no [image] section in '),
    ('\n[image]\navf_source = "local"\n', '[image] avf_source = "local" reads [avf] from the local '),
    ('\n[image]\navf_source = "server"\nrepos = [{name = "core", server = "https://mirror.example.org/$arch/$repo"}]\n',
     "[image] repos core: server https://mirror.example.org/$arch/$repo is a placeholder"),
    ('\n[image]\navf_source = "server"\nrepos = [{name = "core", server = "file:///srv/alarm/$arch/$repo"}]\n',
     "is not an http(s) URL a CI runner can reach"),
])
def test_an_image_source_a_ci_job_cannot_read_is_named(capsys, tmp_path, signing_home, image, words):
    code, lines, out = doctor(capsys, good_config(tmp_path, signing_home, image=image))
    assert code == 1
    assert lines["image"].startswith("MISSING: ") and words in lines["image"], out
    assert 'avf_source = "server"' in lines["image"] or "set a real mirror" in lines["image"]


def test_a_config_that_does_not_load_is_one_missing_line_and_json_says_the_same(capsys, tmp_path):
    bad = tmp_path / "avfrepo.toml"
    bad.write_text("[repo]\nsevrer = 1\n")
    code, lines, out = doctor(capsys, bad)
    assert code == 1 and list(lines) == ["config"] and lines["config"].startswith("MISSING: ")
    assert main(["--config", str(bad), "doctor", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and [c["name"] for c in report["checks"]] == ["config"]


def test_tools_the_backend_needs_come_from_preflight(capsys, tmp_path, signing_home, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    code, lines, out = doctor(capsys, good_config(tmp_path, signing_home))
    assert code == 1
    assert lines["tools"].startswith("MISSING: makepkg, bsdtar, zstd") and "not found on PATH" in lines["tools"], out
