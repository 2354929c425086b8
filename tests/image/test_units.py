"""Fast checks of the pieces: [image] config, build_id, vm_config template, pacman.conf."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from avfrepo import config as config_mod
from avfrepo.errors import ConfigError
from avfrepo.image import ImageError, rootfs, vmconfig


def parse(image: dict) -> config_mod.Config:
    return config_mod.parse({"image": image}, Path("/x/avfrepo.toml"), Path("/x"))


def test_image_defaults_are_alarm_and_avf_base():
    cfg = config_mod.parse({}, None, Path("/x"))
    img = cfg.image_settings
    assert [r.name for r in img.repos] == ["core", "extra", "alarm"]
    assert img.repos[0].server == "http://mirror.archlinuxarm.org/$arch/$repo"
    assert img.packages == ("avf-base",) and img.output == Path("/x/images.tar.gz")
    conf = rootfs.pacman_conf(cfg, img)
    assert "Architecture = aarch64" in conf
    assert conf.index("[core]") < conf.index("[alarm]") < conf.index("[avf]")
    assert "Server = file:///x/repo/$arch" in conf


def test_image_table_values_and_server_source():
    cfg = parse({"repos": [{"name": "core", "server": "http://m/$repo"}], "packages": ["a", "b"],
                 "headroom_mib": 64, "memory_mib": 8192, "efi_size_mib": 128, "output": "out/i.tar.gz",
                 "avf_source": "server"})
    img = cfg.image
    assert img.packages == ("a", "b") and img.headroom_mib == 64 and img.memory_mib == 8192
    assert img.output == Path("/x/out/i.tar.gz")
    assert [r.name for r in rootfs.repos(cfg, img)] == ["core", "avf"]
    assert rootfs.repos(cfg, img)[-1].server == "https://example.invalid/avf/$arch"


@pytest.mark.parametrize("image, message", [
    ({"packges": ["x"]}, "unknown key"),
    ({"packages": []}, "non-empty list"),
    ({"repos": [{"name": "core"}]}, "entry 1"),
    ({"repos": [{"name": "Core!", "server": "x"}]}, "not a repository name"),
    ({"repos": [{"name": "core", "server": "http://m\nServer = http://evil"}]}, "one URL"),
    ({"repos": [{"name": "core", "server": "http://m", "siglevel": "Never\n[x]"}]}, "siglevel"),
    ({"efi_size_mib": 8}, "at least 33"),
    ({"avf_source": "usb"}, "must be one of"),
])
def test_image_table_errors_name_the_key(image, message):
    with pytest.raises(ConfigError, match=message):
        parse(image)


def test_build_id_last_token_is_the_year():
    bid = vmconfig.build_id("1-3", "aarch64", datetime(2026, 3, 4, 5, 6, tzinfo=timezone.utc))
    assert bid == "avfrepo archlinuxarm-aarch64 avf-base-1-3 20260304T0506Z 2026\n"
    with pytest.raises(ImageError, match="year >= 2025"):
        vmconfig.build_id("1", "aarch64", datetime(2024, 12, 31, tzinfo=timezone.utc))


def test_vm_config_template_is_json_with_the_partitions():
    efi, root = vmconfig.Partition("EFI", "11111111-2222-4333-8444-555555555555"), vmconfig.new_partition("ROOT")
    vm = json.loads(vmconfig.render_vm_config(efi, root, 3000))
    assert vm["name"] == "debian" and vm["memory_mib"] == 3000
    assert [p["guid"] for p in vm["disks"][0]["partitions"]] == [efi.guid, root.guid]
    assert efi.volume_id == "11111111"


def test_tree_bytes_counts_blocks_and_hard_links_once(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 5000)
    (tmp_path / "b").hardlink_to(tmp_path / "a")
    (tmp_path / "d").mkdir()
    total, inodes = rootfs.tree_bytes(tmp_path)
    assert total == 2 * 4096 + 2 * 4096 and inodes == 3


def test_readme_tells_the_display_command_only_when_avf_desktop_is_installed():
    efi, root = vmconfig.new_partition("EFI"), vmconfig.new_partition("ROOT")
    values = dict(build_id="b 2026", repo="avf", efi=efi, root=root, memory_mib=4096, repo_names="[core], [avf]",
                  packages=[], top_packages="avf-base", presets="p", first_boot=[], signing_key="ABCD")
    with_display = vmconfig.render_readme(display=True, **values)
    assert "sudo avf-enable-display" in with_display and "signed by: ABCD" in with_display
    assert "avf-enable-display" not in vmconfig.render_readme(display=False, **values)
