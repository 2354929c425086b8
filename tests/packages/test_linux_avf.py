"""linux-avf: a kernel.org tarball (a synthetic linux-6.1.158.tar.xz made here with tar/xz and
served with a releases.json on 127.0.0.1), AVF's kernel patches of the demo upstream dry-run
against it in series order, and the base config merged with AVF's fragment."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from pathlib import Path

import pytest

from avfrepo import config as config_mod
from avfrepo import sources
from avfrepo.checkout import tree_at
from avfrepo.demo import write_config
from avfrepo.formats import srcinfo
from avfrepo.makepkg import printsrcinfo
from avfrepo.packages import PKGREL_TOKEN, PKGVER_TOKEN, Context, RenderProblem, linux_avf, template
from avfrepo.run import run
from avfrepo.sources.git_tags import latest

from ..conftest import require_build_user, require_tools
from ..sources.conftest import http_server, no_proxy_and_recorded_sleeps  # noqa: F401 (fixtures)

FEED = "/releases.json"
BALLOON = "mm/balloon_compaction.c"

# a few files of a synthetic Linux source tree (the AVF demo patch applies to them)
KERNEL_FILES = {
    "Makefile": "# SPDX-License-Identifier: GPL-2.0\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = {sublevel}\n"
                "EXTRAVERSION =\nNAME = Synthetic Fixture\n",
    "arch/arm64/Kconfig": "# SPDX-License-Identifier: GPL-2.0-only\n# fixture: a few arm64 options\n"
                          "config ARM64\n\tdef_bool y\n\tselect ARCH_HAS_SETUP_DMA_OPS\n"
                          "\tselect ARCH_SUPPORTS_MEMORY_FAILURE\n\tselect HAVE_ARCH_KGDB\n\n"
                          "config ARM64_PAGE_SHIFT\n\tint\n\tdefault 12\n",
    BALLOON: textwrap.dedent("""\
        // SPDX-License-Identifier: GPL-2.0-only
        /* fixture: a stand-in for the balloon page bookkeeping */
        #include <linux/balloon_compaction.h>

        int balloon_page_enqueue_one(struct balloon_dev_info *b, struct page *page)
        {
        \tlist_add(&page->lru, &b->pages);
        \treturn 0;
        }

        int balloon_page_dequeue_one(struct balloon_dev_info *b)
        {
        \tif (list_empty(&b->pages))
        \t\treturn -ENOMEM;
        \treturn 0;
        }
        """),
    "include/linux/balloon_compaction.h": "struct balloon_dev_info { int inflated; };\n",
    "README": "Linux kernel (synthetic test fixture)\n",
}

# a second AVF patch that builds on the demo's arm64-balloon.patch (it needs `b->inflated++;`)
STATS_PATCH = textwrap.dedent("""\
    Subject: [PATCH] mm: balloon: count inflations in the stats too

    diff --git a/mm/balloon_compaction.c b/mm/balloon_compaction.c
    --- a/mm/balloon_compaction.c
    +++ b/mm/balloon_compaction.c
    @@ -6,6 +6,7 @@
     {
     \tlist_add(&page->lru, &b->pages);
     \tb->inflated++;
    +\tb->stats_inflations++;
     \treturn 0;
     }
     
    """)


def make_tarball(dest: Path, version: str, changes: dict[str, str] | None = None) -> bytes:
    require_tools("tar", "xz")
    top = dest / f"linux-{version}"
    files = {k: v.replace("{sublevel}", version.split(".")[2]) for k, v in KERNEL_FILES.items()}
    files.update(changes or {})
    for rel, text in files.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(text)
    out = dest / f"linux-{version}.tar.xz"
    run(["tar", "-cJf", out, "-C", dest, top.name])
    return out.read_bytes()


class Kernel:
    """kernel.org's shape on 127.0.0.1: releases.json and the tarballs it points at."""

    def __init__(self, server, workdir: Path):
        self.srv = server
        self.workdir = workdir
        self.tarballs: dict[str, bytes] = {}

    def release(self, version: str, changes: dict[str, str] | None = None) -> bytes:
        d = self.workdir / version
        d.mkdir(parents=True, exist_ok=True)
        data = make_tarball(d, version, changes)
        path = f"/pub/linux/kernel/v6.x/linux-{version}.tar.xz"
        self.tarballs[version] = data
        self.srv.routes[path] = data
        self.srv.routes[FEED] = json.dumps({"releases": [
            {"moniker": "stable", "version": "6.17.9", "source": self.srv.url("/pub/linux-6.17.9.tar.xz")},
            {"moniker": "longterm", "version": version, "source": self.srv.url(path), "iseol": False},
        ]}).encode()
        return data


@pytest.fixture
def kernel(http_server, tmp_path) -> Kernel:  # noqa: F811 (the imported fixture)
    k = Kernel(http_server({}), tmp_path / "kernel.org")
    k.release("6.1.158")
    return k


@pytest.fixture
def kcfg(tmp_path, avf, kernel, signing_home) -> config_mod.Config:
    require_tools("git", "patch")
    extra = textwrap.dedent(f"""
        [upstreams.kernel]
        kind = "kernel-org"
        series = "6.1"
        url = "{kernel.srv.url(FEED)}"
        retries = 0
        """)
    return config_mod.load(write_config(tmp_path / "avfrepo.toml", avf.url, signing_home, extra=extra))


def render_at(cfg) -> "linux_avf.Rendered":
    krel = sources.query(cfg.upstream("kernel"))
    arel = latest(cfg.upstream("avf"))
    tree = tree_at("avf", cfg.upstream("avf").url, arel.version, arel.commit, linux_avf.TREES["avf"], cfg.cache)
    return linux_avf.render(Context(cfg, {"kernel": krel, "avf": arel}, {"avf": tree}))


def array(pkgbuild: str, name: str) -> list[str]:
    return [s.strip("'\"") for s in re.search(rf"^{name}=\((.*?)\)", pkgbuild, re.S | re.M).group(1).split()]


def symbols(config: str) -> list[str]:
    return [s for s in map(linux_avf.config_symbol, config.splitlines()) if s]


# --- the render ----------------------------------------------------------------------------

def test_render_pins_the_tarball_and_every_local_source(kcfg, avf, kernel):
    r = render_at(kcfg)
    assert r.name == "linux-avf" and r.pkgver == "6.1.158"
    assert r.upstreams == {"kernel": "6.1.158", "avf": "android-16.0.0_r10"}
    pkgbuild = r.files["PKGBUILD"].decode()
    assert f"pkgver={PKGVER_TOKEN}" in pkgbuild and f"pkgrel={PKGREL_TOKEN}" in pkgbuild
    assert "pkgname=(linux-avf linux-avf-headers)" in pkgbuild and "arch=(aarch64)" in pkgbuild
    assert "_srcname=linux-6.1.158\n" in pkgbuild
    srcs, sums = array(pkgbuild, "source"), array(pkgbuild, "sha256sums")
    assert srcs == [kernel.srv.url("/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz"), "config", "avf-arm64-balloon.patch"]
    assert sums[0] == hashlib.sha256(kernel.tarballs["6.1.158"]).hexdigest()
    for name, digest in zip(srcs[1:], sums[1:]):
        assert hashlib.sha256(r.files[name]).hexdigest() == digest, name
    upstream_patch = (avf.path / "build/debian/kernel/patches/avf/arm64-balloon.patch").read_bytes()
    assert r.files["avf-arm64-balloon.patch"] == upstream_patch
    assert 'patch -Np1 -i "$srcdir/"avf-arm64-balloon.patch' in pkgbuild
    assert "make olddefconfig" in pkgbuild and "make Image modules" in pkgbuild
    assert 'install -Dm644 arch/arm64/boot/Image "$modulesdir/vmlinuz"' in pkgbuild
    assert any("arm64-balloon.patch" in n for n in r.notes)


def test_the_tarball_is_downloaded_and_checked_once_and_the_scratch_tree_removed(kcfg, kernel, monkeypatch):
    checks = []
    real = linux_avf.check_patches
    monkeypatch.setattr(linux_avf, "check_patches", lambda *a, **kw: (checks.append(a[1]), real(*a, **kw)))
    a = render_at(kcfg)
    b = render_at(kcfg)
    assert checks == ["linux-6.1.158"]          # the second render trusts the first check
    assert a.inputs_hash() == b.inputs_hash()
    tarball_gets = [p for p in kernel.srv.requests if p.endswith(".tar.xz")]
    assert tarball_gets == ["/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz"]
    assert list((kcfg.cache / "scratch").iterdir()) == []


def test_an_avf_tag_that_changes_nothing_of_the_kernel_changes_no_input(kcfg, avf):
    a = render_at(kcfg)
    avf.commit({"docs/README.md": "unrelated\n"}, "unrelated")
    avf.tag("android-16.0.0_r11")
    b = render_at(kcfg)
    assert b.upstreams["avf"] == "android-16.0.0_r11"
    assert a.files == b.files and a.inputs_hash() == b.inputs_hash()


def test_a_new_kernel_release_changes_the_inputs_and_the_pkgver(kcfg, kernel):
    a = render_at(kcfg)
    kernel.release("6.1.159", {"README": "Linux kernel 6.1.159 (synthetic)\n"})
    b = render_at(kcfg)
    assert (b.pkgver, b.upstreams["kernel"]) == ("6.1.159", "6.1.159")
    assert array(b.files["PKGBUILD"].decode(), "sha256sums")[0] == hashlib.sha256(kernel.tarballs["6.1.159"]).hexdigest()
    assert a.inputs_hash() != b.inputs_hash()


def test_the_config_is_the_base_with_avfs_fragment_merged_over_it(kcfg):
    config = render_at(kcfg).files["config"].decode()
    base = template("linux-avf/config.base").decode()
    # overrides replace the base line of the same symbol, in place, in both spellings
    assert "# CONFIG_DRM is not set" in base and "CONFIG_DRM=m" not in base
    assert "CONFIG_DRM=m" in config and "# CONFIG_DRM is not set" not in config
    assert "CONFIG_MAGIC_SYSRQ=y" in base
    assert "# CONFIG_MAGIC_SYSRQ is not set" in config and "CONFIG_MAGIC_SYSRQ=y" not in config
    assert config.splitlines().index("CONFIG_SOUND=y") == base.splitlines().index("# CONFIG_SOUND is not set")
    # symbols the base does not name are appended; none appears twice
    assert config.splitlines()[-3:] == ["# from build/debian/kernel/config", "CONFIG_SND_VIRTIO=y", "CONFIG_SND=y"]
    assert len(symbols(config)) == len(set(symbols(config)))
    for needed in ("CONFIG_VIRTIO_BLK=y", "CONFIG_VIRTIO_NET=y", "CONFIG_VIRTIO_CONSOLE=y",
                   "CONFIG_VIRTIO_VSOCKETS=y", "CONFIG_VIRTIO_BALLOON=y", "CONFIG_VIRTIO_FS=y",
                   "CONFIG_FUSE_FS=y", "CONFIG_EXT4_FS=y", "CONFIG_VFAT_FS=y", "CONFIG_EFI_STUB=y",
                   "CONFIG_ZRAM=y", "CONFIG_CGROUPS=y", "CONFIG_USER_NS=y", "CONFIG_DEVTMPFS=y"):
        assert needed in config.splitlines(), needed


def test_merge_config_rules():
    base = "# head\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_A=n\n"
    frag = "# AVF\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=\"x\"\nCONFIG_D=\"y\"\n\n"
    merged = linux_avf.merge_config(base, frag, fragment_name="frag")
    assert merged == ("# head\nCONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_A=n\n"
                      "\n# from frag\nCONFIG_D=\"y\"\n")
    assert linux_avf.merge_config("CONFIG_A=y\n", "") == "CONFIG_A=y\n"
    with pytest.raises(ValueError, match=r"frag line 2: not a config line: 'CONFIG_E y'"):
        linux_avf.merge_config(base, "CONFIG_B=y\nCONFIG_E y\n", fragment_name="frag")


def test_a_fragment_line_that_is_not_config_refuses_the_render(kcfg, avf):
    avf.commit({"build/debian/kernel/config": "CONFIG_SND=y\nSND=y\n"}, "broken fragment")
    avf.tag("android-16.0.0_r11")
    with pytest.raises(RenderProblem, match=r"android-16.0.0_r11 build/debian/kernel/config line 2"):
        render_at(kcfg)


# --- series order and patch refusal --------------------------------------------------------

def test_patches_follow_the_series_order_and_build_on_each_other(kcfg, avf):
    avf.commit({"build/debian/kernel/patches/avf/balloon-stats.patch": STATS_PATCH,
                "build/debian/kernel/patches/series": "avf/arm64-balloon.patch\navf/balloon-stats.patch -p1\n"},
               "a second kernel patch")
    avf.tag("android-16.0.0_r11")
    pkgbuild = render_at(kcfg).files["PKGBUILD"].decode()
    assert array(pkgbuild, "source")[2:] == ["avf-arm64-balloon.patch", "avf-balloon-stats.patch"]
    applied = re.findall(r'patch -Np1 -i "\$srcdir/"(\S+)', pkgbuild)
    assert applied == ["avf-arm64-balloon.patch", "avf-balloon-stats.patch"]


def test_a_patch_that_needs_an_earlier_one_refuses_when_listed_first(kcfg, avf):
    avf.commit({"build/debian/kernel/patches/avf/balloon-stats.patch": STATS_PATCH,
                "build/debian/kernel/patches/series": "avf/balloon-stats.patch\navf/arm64-balloon.patch\n"},
               "series in the wrong order")
    avf.tag("android-16.0.0_r11")
    with pytest.raises(RenderProblem) as err:
        render_at(kcfg)
    msg = str(err.value)
    assert "avf/balloon-stats.patch" in msg and BALLOON in msg and "Hunk #1 FAILED" in msg
    assert "Linux 6.1.158" in msg and "AVF android-16.0.0_r11" in msg
    assert "arm64-balloon.patch" not in msg


def test_a_kernel_update_the_patch_no_longer_fits_refuses_naming_patch_file_and_versions(kcfg, kernel):
    kernel.release("6.1.159", {"arch/arm64/Kconfig": "config ARM64\n\tdef_bool y\n\tselect HAVE_ARCH_KGDB\n"})
    with pytest.raises(RenderProblem) as err:
        render_at(kcfg)
    msg = str(err.value)
    assert msg.startswith("AVF android-16.0.0_r10 kernel patch avf/arm64-balloon.patch does not apply to Linux 6.1.159")
    assert "arch/arm64/Kconfig: Hunk #1 FAILED" in msg
    assert BALLOON not in msg                     # that part of the mail series still applies
    assert list((kcfg.cache / "scratch").iterdir()) == []


def test_a_patch_for_a_file_the_kernel_lacks_names_that_file(kcfg, kernel):
    kernel.release("6.1.159")                     # the feed lists it; its tarball is replaced below
    work = kernel.workdir / "no-mm"
    work.mkdir()
    top = work / "linux-6.1.159"
    for rel, text in KERNEL_FILES.items():
        if rel != BALLOON:
            (top / rel).parent.mkdir(parents=True, exist_ok=True)
            (top / rel).write_text(text.replace("{sublevel}", "159"))
    run(["tar", "-cJf", work / "t.tar.xz", "-C", work, top.name])
    kernel.srv.routes["/pub/linux/kernel/v6.x/linux-6.1.159.tar.xz"] = (work / "t.tar.xz").read_bytes()
    with pytest.raises(RenderProblem, match=rf"avf/arm64-balloon.patch does not apply to Linux 6.1.159: "
                                            rf"{BALLOON}: file to patch not found"):
        render_at(kcfg)


def test_a_series_entry_without_its_file_refuses(kcfg, avf):
    avf.commit({"build/debian/kernel/patches/series": "avf/arm64-balloon.patch\navf/virtual-cpufreq.patch\n"},
               "series names a patch that is not there")
    avf.tag("android-16.0.0_r11")
    with pytest.raises(RenderProblem) as err:
        render_at(kcfg)
    msg = str(err.value)
    assert "avf/virtual-cpufreq.patch" in msg and "does not exist" in msg
    assert "android-16.0.0_r11" in msg and "6.1.158" in msg


def test_no_kernel_packaging_at_a_tag_refuses(kcfg, avf):
    avf.commit({}, "kernel packaging moved", remove=("build/debian/kernel",))
    avf.tag("android-16.0.0_r11")
    with pytest.raises(RenderProblem, match=r"android-16.0.0_r11 has no build/debian/kernel/patches/series, "
                                            r"build/debian/kernel/config"):
        render_at(kcfg)


@pytest.mark.parametrize("series, expected", [
    ("# c\n\navf/a.patch\nb.patch -p1  # trailing comment\n", ["avf/a.patch", "b.patch"]),
    ("", []),
])
def test_read_series(tmp_path, series, expected):
    (tmp_path / "build/debian/kernel/patches").mkdir(parents=True)
    (tmp_path / "build/debian/kernel/patches/series").write_text(series)
    assert linux_avf.read_series(tmp_path) == expected


@pytest.mark.parametrize("series, reason", [
    ("a.patch -p0\n", "unsupported options '-p0' for a.patch"),
    ("../../evil.patch\n", "points outside patches/"),
    ("/etc/passwd\n", "points outside patches/"),
])
def test_read_series_refuses_what_it_cannot_apply(tmp_path, series, reason):
    (tmp_path / "build/debian/kernel/patches").mkdir(parents=True)
    (tmp_path / "build/debian/kernel/patches/series").write_text(series)
    with pytest.raises(RenderProblem, match=re.escape(reason)):
        linux_avf.read_series(tmp_path)


def test_touched_files_reads_plain_and_git_diffs():
    patch = (b"--- a/x/y.c\t2020-01-01\n+++ b/x/y.c\n--- /dev/null\n+++ b/new.c\n"
             b"diff --git a/old.c b/renamed.c\nrename from old.c\nrename to renamed.c\n")
    assert linux_avf.touched_files(patch) == {"x/y.c", "new.c", "old.c"}


# --- .SRCINFO ------------------------------------------------------------------------------

def test_srcinfo_has_both_split_packages(kcfg, kernel):
    require_build_user()
    r = render_at(kcfg)
    info = srcinfo.parse(printsrcinfo(kcfg, r.finalize(r.pkgver, 1)))
    assert (info.pkgbase, info.pkgnames, info.version) == ("linux-avf", ("linux-avf", "linux-avf-headers"), "6.1.158-1")
    assert info.base["arch"] == ["aarch64"]
    assert info.base["source"][0] == kernel.srv.url("/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz")
    assert info.base["sha256sums"][0] == hashlib.sha256(kernel.tarballs["6.1.158"]).hexdigest()
    assert "initramfs" in info.get("depends", "linux-avf")
    assert info.get("depends", "linux-avf-headers") == ["pahole"]
