"""`avfrepo image`: the command drives build_image and reports like the other commands."""

from __future__ import annotations

import json
import tarfile

import pytest

from avfrepo.cli import main

pytestmark = pytest.mark.slow


def test_image_json_to_output_with_fresh_guids(image_cfg_factory, built_image, tmp_path, capsys):
    cfg = image_cfg_factory()
    out = tmp_path / "elsewhere" / "custom.tar.gz"
    assert main(["--config", str(cfg.file), "image", "--json", "--output", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output"] == str(out) and out.is_file() and (tmp_path / "elsewhere" / "custom.tar.gz.manifest.json").is_file()
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == sorted(["build_id", "vm_config.json", "README", "efi_part", "root_part"])
    # GUIDs are made per image
    _, first, _ = built_image
    mine = {p["guid"] for p in data["partitions"].values()}
    assert len(mine) == 2 and not mine & {p["guid"] for p in first.partitions.values()}
    assert not cfg.image.output.exists()      # --output wins over [image] output


def test_image_failure_exits_1_with_the_missing_package(image_cfg_factory, capsys):
    cfg = image_cfg_factory(packages=("no-such-pkg",))
    assert main(["--config", str(cfg.file), "image"]) == 1
    err = capsys.readouterr().err
    assert "avfrepo: error:" in err and "no-such-pkg" in err


def test_image_dry_run_text(image_cfg_factory, capsys):
    cfg = image_cfg_factory()
    assert main(["--config", str(cfg.file), "image", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing written" in out and "[core]" in out and "avf-base" in out
    from avfrepo.signing import signing_key
    assert f"would sign with {signing_key(cfg.signing).fingerprint}: " in out and "images.tar.gz.sig" in out
    assert "images.tar.gz.manifest.json.sig" in out
    assert not cfg.image.output.exists()
