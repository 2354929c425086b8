"""Bad inputs: a clear message naming what is missing, and nothing left at --output."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from avfrepo.image import REQUIRED_TOOLS, ImageError, build_image, manifest_path

pytestmark = pytest.mark.slow


def assert_nothing_left(out: Path) -> None:
    assert not out.exists() and not manifest_path(out).exists()
    if out.parent.exists():
        assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.build-")]


def test_missing_package_is_named_with_the_repos(image_cfg_factory, tmp_path):
    cfg = image_cfg_factory(packages=("avf-base", "no-such-pkg"))
    with pytest.raises(ImageError, match=r"not in the configured repositories \[core\], \[avf\]: no-such-pkg"):
        build_image(cfg)
    assert_nothing_left(cfg.image.output)


def test_missing_systemd_boot_is_named(image_cfg_factory):
    cfg = image_cfg_factory(packages=("filesystem", "linux-avf"))
    with pytest.raises(ImageError, match=r"no systemd-boot .*usr/lib/systemd/boot/efi/systemd-bootaa64.efi is missing"):
        build_image(cfg)
    assert_nothing_left(cfg.image.output)


def test_missing_kernel_is_named(image_cfg_factory):
    cfg = image_cfg_factory(packages=("filesystem", "systemd"))
    with pytest.raises(ImageError, match=r"no kernel: no usr/lib/modules/\*/vmlinuz with pkgbase linux-avf"):
        build_image(cfg)
    assert_nothing_left(cfg.image.output)


def test_missing_mkfs_tool_is_named_with_its_package(image_cfg_factory, tmp_path, monkeypatch):
    cfg = image_cfg_factory()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in REQUIRED_TOOLS:
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        if tool != "mkfs.vfat" and real:
            (bin_dir / tool).symlink_to(real)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ImageError, match=r"missing tool\(s\): mkfs.vfat \(Debian: apt-get install dosfstools"):
        build_image(cfg)
    assert_nothing_left(cfg.image.output)


def test_missing_keyring_is_refused_before_anything_is_written(image_cfg_factory, tmp_path):
    cfg = image_cfg_factory()
    import dataclasses
    cfg = dataclasses.replace(cfg, image=dataclasses.replace(cfg.image, gpgdir=tmp_path / "no-keyring"))
    with pytest.raises(ImageError, match=r"no pacman keyring at .*no-keyring"):
        build_image(cfg)
    assert not cfg.image.output.parent.exists()


def test_no_signing_key_is_refused_before_anything_is_written(image_cfg_factory, tmp_path):
    import dataclasses
    cfg = image_cfg_factory()
    cfg = dataclasses.replace(cfg, signing=dataclasses.replace(cfg.signing, gnupg_home=tmp_path / "no-key"))
    with pytest.raises(ImageError, match=r"cannot sign the image: no signing key in .*no-key"):
        build_image(cfg)
    assert not cfg.image.output.parent.exists()
    from avfrepo.image import problems
    assert any("cannot sign the image" in p for p in problems(cfg, cfg.image.output))


@pytest.mark.parametrize("size", ["4m", "48k"])   # enough for pacman, not for the partitions / not for pacman
def test_no_space_is_reported_and_nothing_left(image_cfg_factory, tmp_path, size):
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(small)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs mounts to make a small device")
    try:
        out = small / "images.tar.gz"
        cfg = image_cfg_factory(output=out)
        with pytest.raises(ImageError, match=r"no space") as exc:
            build_image(cfg)
        print(exc.value)
        assert str(small) in str(exc.value)
        assert_nothing_left(out)
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_dry_run_writes_nothing(image_cfg_factory):
    cfg = image_cfg_factory()
    result = build_image(cfg, dry_run=True)
    assert result.dry_run and [r["name"] for r in result.repos] == ["core", "avf"]
    assert result.repos[1]["server"] == cfg.repo.path.as_uri() + "/$arch"
    assert not cfg.image.output.parent.exists()


def test_leftovers_of_a_killed_build_are_removed_a_running_one_kept(image_cfg_factory):
    cfg = image_cfg_factory()
    out = cfg.image.output
    out.parent.mkdir(parents=True)
    dead, alive = out.parent / f".{out.name}.build-dead", out.parent / f".{out.name}.build-alive"
    for d, pid in ((dead, 2 ** 22 + 7), (alive, os.getpid())):
        (d / "root").mkdir(parents=True)
        (d / "pid").write_text(str(pid))
    build_image(cfg)
    assert out.is_file() and not dead.exists() and alive.exists()
