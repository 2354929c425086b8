"""linux-avf: a kernel.org tarball (a synthetic linux-6.1.158.tar.xz made here with tar/xz and
served with a releases.json on 127.0.0.1), AVF's kernel patches of the demo upstream dry-run
against it in series order, a maintainer's carried patches, pins, and the config pieces:
ALARM's linux-aarch64 config (an ALARM-shaped PKGBUILDs repository, alarm_fixture), AVF's
fragment and avfrepo's, checked with `make olddefconfig` on a real 6.1 tree where there is one."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import shutil
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
from .alarm_fixture import linux_config, make_alarm

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
def alarm(tmp_path):
    return make_alarm(tmp_path / "upstream" / "PKGBUILDs")


def make_kcfg(tmp_path, avf, kernel, alarm, signing_home, more: str = "", name: str = "avfrepo.toml",
              enable: tuple[str, ...] | None = None):
    require_tools("git", "patch")
    extra = textwrap.dedent(f"""
        [upstreams.kernel]
        kind = "kernel-org"
        series = "6.1"
        url = "{kernel.srv.url(FEED)}"
        retries = 0

        [upstreams.alarm-pkgbuilds]
        url = "{alarm.url}"
        """) + more
    chosen = {"enable": enable} if enable is not None else {}
    return config_mod.load(write_config(tmp_path / name, avf.url, signing_home, extra=extra, **chosen))


@pytest.fixture
def kcfg(tmp_path, avf, kernel, alarm, signing_home) -> config_mod.Config:
    return make_kcfg(tmp_path, avf, kernel, alarm, signing_home)


def render_at(cfg) -> "linux_avf.Rendered":
    krel = sources.query(cfg.upstream("kernel"))
    arel = latest(cfg.upstream("avf"))
    head = sources.query(cfg.upstream("alarm-pkgbuilds"))
    tree = tree_at("avf", cfg.upstream("avf").url, arel.version, arel.commit, linux_avf.TREES["avf"], cfg.cache)
    return linux_avf.render(Context(cfg, {"kernel": krel, "avf": arel, "alarm-pkgbuilds": head}, {"avf": tree}))


def array(pkgbuild: str, name: str) -> list[str]:
    return [s.strip("'\"") for s in re.search(rf"^{name}=\((.*?)\)", pkgbuild, re.S | re.M).group(1).split()]


def symbols(config: str) -> list[str]:
    return [s for s in map(linux_avf.config_symbol, config.splitlines()) if s]


# --- the render ----------------------------------------------------------------------------

def test_render_pins_the_tarball_and_every_local_source(kcfg, avf, kernel, alarm):
    r = render_at(kcfg)
    assert r.name == "linux-avf" and r.pkgver == "6.1.158"
    assert r.upstreams == {"kernel": "6.1.158", "avf": "android-16.0.0_r10",
                           "alarm-pkgbuilds": alarm.commits["linux 6.2.0-1"]}
    pkgbuild = r.files["PKGBUILD"].decode()
    assert f"pkgver={PKGVER_TOKEN}" in pkgbuild and f"pkgrel={PKGREL_TOKEN}" in pkgbuild
    assert "pkgname=(linux-avf linux-avf-headers)" in pkgbuild and "arch=(aarch64)" in pkgbuild
    assert "_srcname=linux-6.1.158\n" in pkgbuild
    srcs, sums = array(pkgbuild, "source"), array(pkgbuild, "sha256sums")
    assert srcs == [kernel.srv.url("/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz"), "config.alarm", "avf.config",
                    "avfrepo.config", "linux-avf.preset", "avf-arm64-balloon.patch"]
    assert sums[0] == hashlib.sha256(kernel.tarballs["6.1.158"]).hexdigest()
    for name, digest in zip(srcs[1:], sums[1:]):
        assert hashlib.sha256(r.files[name]).hexdigest() == digest, name
    upstream_patch = (avf.path / "build/debian/kernel/patches/avf/arm64-balloon.patch").read_bytes()
    assert r.files["avf-arm64-balloon.patch"] == upstream_patch
    assert 'patch -Np1 -i "$srcdir/"avf-arm64-balloon.patch' in pkgbuild
    assert "make olddefconfig" in pkgbuild and "make Image modules" in pkgbuild
    assert 'install -Dm644 arch/arm64/boot/Image "$modulesdir/vmlinuz"' in pkgbuild
    assert '"$pkgdir/etc/mkinitcpio.d/${pkgbase}.preset"' in pkgbuild
    assert any("arm64-balloon.patch" in n for n in r.notes)


def test_the_tarball_is_downloaded_and_checked_once_and_the_scratch_tree_removed(kcfg, kernel, monkeypatch):
    checks = []
    real = linux_avf.check_patches
    monkeypatch.setattr(linux_avf, "check_patches", lambda *a, **kw: (checks.append(a[1]), real(*a, **kw))[1])
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


def test_the_config_pieces_alarms_avfs_and_ours_merged_in_that_order(kcfg, avf, alarm):
    r = render_at(kcfg)
    # no 6.1 in ALARM's history: the oldest revision of the next series it packaged
    assert r.files["config.alarm"].decode() == linux_config("6.2.0", "CONFIG_FROM_620=y\n")
    assert r.files["avf.config"] == (avf.path / "build/debian/kernel/config").read_bytes()
    assert r.files["avfrepo.config"] == template("linux-avf/avfrepo.config")
    assert "base config: ALARM core/linux-aarch64 6.2.0-1 at" in r.notes[1] and "next series" in r.notes[1]
    pkgbuild = r.files["PKGBUILD"].decode()
    assert 'cp "$srcdir/"config.alarm .config\n' in pkgbuild
    assert 'scripts/kconfig/merge_config.sh -m .config "$srcdir/"avf.config "$srcdir/"avfrepo.config\n' in pkgbuild
    required = array(pkgbuild, "_required")
    assert required == linux_avf.required_symbols(r.files["avfrepo.config"].decode())
    for sym in ("CONFIG_KPROBES", "CONFIG_KPROBE_EVENTS", "CONFIG_FTRACE", "CONFIG_BPF_SYSCALL", "CONFIG_BPF_EVENTS",
                "CONFIG_PERF_EVENTS", "CONFIG_IKHEADERS", "CONFIG_DRM_VIRTIO_GPU", "CONFIG_NF_TABLES",
                "CONFIG_NFT_NAT", "CONFIG_VIRTIO_FS", "CONFIG_FUSE_FS", "CONFIG_VIRTIO_VSOCKETS"):
        assert sym in required, sym


def test_the_series_revision_of_alarms_config_when_there_is_one(kcfg, alarm):
    alarm.linux("6.1.5", extra_config="CONFIG_FROM_615=y\n")
    alarm.linux("6.1.7", extra_config="CONFIG_FROM_617=y\n")
    alarm.linux("6.19.1")
    r = render_at(kcfg)
    assert b"CONFIG_FROM_617=y" in r.files["config.alarm"]
    assert r.upstreams["alarm-pkgbuilds"] == alarm.commits["linux 6.1.7-1"]


def test_required_symbols_and_what_is_missing():
    frag = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_D=\"x\"\nCONFIG_E=n\n"
    assert linux_avf.required_symbols(frag) == ["CONFIG_A", "CONFIG_C"]
    assert linux_avf.missing_symbols("CONFIG_A=m\n# CONFIG_C is not set\n", ["CONFIG_A", "CONFIG_C"]) == ["CONFIG_C"]


def test_the_pkgbuilds_config_check_fails_a_build_that_lost_a_symbol(kcfg, tmp_path):
    """prepare()'s required-symbol loop, run by bash on a .config without one of them."""
    require_tools("bash")
    pkgbuild = render_at(kcfg).files["PKGBUILD"].decode()
    loop = pkgbuild.split("  make olddefconfig\n", 1)[1].split("  make -s kernelrelease", 1)[0]
    required = array(pkgbuild, "_required")
    script = ("error() { echo \"ERROR: $*\"; }\n_required=(" + " ".join(required) + ")\ncheck() {\n" + loop + "}\ncheck\n")
    (tmp_path / ".config").write_text("".join(f"{s}=y\n" for s in required))
    assert run(["bash", "-c", script], cwd=tmp_path).returncode == 0
    (tmp_path / ".config").write_text("".join(f"{s}=y\n" for s in required if s != "CONFIG_BPF_EVENTS"))
    res = run(["bash", "-c", script], cwd=tmp_path, check=False)
    assert res.returncode == 1 and "olddefconfig dropped what [avf] needs: CONFIG_BPF_EVENTS" in res.stdout


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
    assert array(pkgbuild, "source")[5:] == ["avf-arm64-balloon.patch", "avf-balloon-stats.patch"]
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
    assert "hold [upstreams.kernel] (max_version) or carry a rebased patch" in msg
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


# --- "Reversed (or previously applied)", pins and carried patches ---------------------------------

KCONFIG = "arch/arm64/Kconfig"
# stable moved the context of mail 1/2 (what 6.1.188 did to AVF's mail 6/6 in virtio_balloon.c)
MOVED_KCONFIG = ("# SPDX-License-Identifier: GPL-2.0-only\n# fixture: a few arm64 options\n"
                 "config ARM64\n\tdef_bool y\n\tselect ARCH_HAS_SETUP_DMA_OPS\n"
                 "\tselect ARCH_SUPPORTS_MEMORY_FAILURE if ARCH_HAS_STABLE_CHANGE\n"
                 "\tselect HAVE_ARCH_KGDB if ARCH_HAS_STABLE_CHANGE\n\n"
                 "config ARM64_PAGE_SHIFT\n\tint\n\tdefault 12\n")


def rebased_balloon(avf) -> str:
    """A maintainer's rebase of AVF's balloon patch onto MOVED_KCONFIG: mail 1/2 regenerated,
    mail 2/2 as AVF has it."""
    upstream = (avf.path / "build/debian/kernel/patches/avf/arm64-balloon.patch").read_text()
    mail2 = upstream[upstream.index("From 0000000000000000000000000000000000000002"):]
    new = MOVED_KCONFIG.replace("\tselect HAVE_ARCH_KGDB if", "\tselect ARCH_HAS_BALLOON_FREE_PAGE_HINTS\n"
                                                             "\tselect HAVE_ARCH_KGDB if")
    mail1 = "Subject: [PATCH 1/2] arm64: let the balloon hint free pages (rebased)\n\n" + "".join(
        difflib.unified_diff(MOVED_KCONFIG.splitlines(True), new.splitlines(True), f"a/{KCONFIG}", f"b/{KCONFIG}"))
    return mail1 + "\n" + mail2


CARRY = '\n[[packages.linux-avf.carry]]\nfile = "arm64-balloon-rebased.patch"\nreplaces = "avf/arm64-balloon.patch"\n'


def carried_cfg(tmp_path, avf, kernel, alarm, signing_home, text: str | None = None, more: str = CARRY):
    cfg = make_kcfg(tmp_path, avf, kernel, alarm, signing_home, more, name="carry.toml")
    if text is not None:
        (cfg.pkgbuilds / "linux-avf").mkdir(parents=True, exist_ok=True)
        (cfg.pkgbuilds / "linux-avf" / "arm64-balloon-rebased.patch").write_text(text)
    return cfg


def test_a_reversed_or_previously_applied_patch_is_a_failure(kcfg, kernel, avf):
    applied = KERNEL_FILES[KCONFIG].replace("\tselect HAVE_ARCH_KGDB\n",
                                            "\tselect ARCH_HAS_BALLOON_FREE_PAGE_HINTS\n\tselect HAVE_ARCH_KGDB\n")
    kernel.release("6.1.188", {KCONFIG: applied})
    with pytest.raises(RenderProblem) as err:
        render_at(kcfg)
    assert f"does not apply to Linux 6.1.188: {KCONFIG}: reversed or previously applied patch" in str(err.value)
    # GNU patch's own words; and why -N matters: plain --batch "assumes -R" and succeeds
    patch = (avf.path / "build/debian/kernel/patches/avf/arm64-balloon.patch").read_text()
    tree = kernel.workdir / "6.1.188" / "linux-6.1.188"
    out = run(["patch", "-p1", "--dry-run", "-N", "--batch"], cwd=tree, input=patch, check=False)
    assert out.returncode == 1 and "Reversed (or previously applied) patch detected!  Skipping patch." in out.stdout
    lax = run(["patch", "-p1", "--dry-run", "--batch"], cwd=tree, input=patch, check=False)
    assert "Assuming -R" in lax.stdout


def test_a_maximum_holds_the_kernel_where_the_patches_apply(tmp_path, avf, kernel, alarm, signing_home):
    kernel.release("6.1.188", {KCONFIG: MOVED_KCONFIG})
    cfg = make_kcfg(tmp_path, avf, kernel, alarm, signing_home, name="pinned.toml")
    cfg = dataclasses.replace(cfg, upstreams={**cfg.upstreams, "kernel": dataclasses.replace(
        cfg.upstream("kernel"), max_version="6.1.158")})
    kernel.srv.routes["/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz"] = kernel.tarballs["6.1.158"]
    rel = sources.query(cfg.upstream("kernel"))
    assert rel.version == "6.1.158" and rel.url.endswith("/linux-6.1.158.tar.xz") and "newest is 6.1.188" in rel.note
    # releases.json points at kernel.org's CDN for a held release: serve it from the fixture instead
    rel = dataclasses.replace(rel, url=kernel.srv.url("/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz"))
    arel = latest(cfg.upstream("avf"))
    tree = tree_at("avf", cfg.upstream("avf").url, arel.version, arel.commit, linux_avf.TREES["avf"], cfg.cache)
    head = sources.query(cfg.upstream("alarm-pkgbuilds"))
    r = linux_avf.render(Context(cfg, {"kernel": rel, "avf": arel, "alarm-pkgbuilds": head}, {"avf": tree}))
    assert r.pkgver == "6.1.158" and r.notes[0].startswith("Linux held at 6.1.158 by [upstreams.kernel] max_version")


def test_a_carried_patch_stands_in_while_avfs_does_not_apply(tmp_path, avf, kernel, alarm, signing_home):
    kernel.release("6.1.188", {KCONFIG: MOVED_KCONFIG})
    cfg = carried_cfg(tmp_path, avf, kernel, alarm, signing_home, rebased_balloon(avf))
    r = render_at(cfg)
    pkgbuild = r.files["PKGBUILD"].decode()
    assert array(pkgbuild, "source")[5:] == ["arm64-balloon-rebased.patch"]
    assert re.findall(r'patch -Np1 -i "\$srcdir/"(\S+)', pkgbuild) == ["arm64-balloon-rebased.patch"]
    assert r.files["arm64-balloon-rebased.patch"] == rebased_balloon(avf).encode()
    assert "avf-arm64-balloon.patch" not in r.files
    assert any(n.startswith("carrying arm64-balloon-rebased.patch instead of AVF android-16.0.0_r10's "
                            "avf/arm64-balloon.patch, which does not apply to Linux 6.1.188: "
                            f"{KCONFIG}: Hunk #1 FAILED") for n in r.notes), r.notes
    # stable reverts the change: AVF's patch applies again, the carried one is dropped with a notice
    kernel.release("6.1.189")
    r = render_at(cfg)
    assert array(r.files["PKGBUILD"].decode(), "source")[5:] == ["avf-arm64-balloon.patch"]
    assert "arm64-balloon-rebased.patch" not in r.files
    assert ("AVF android-16.0.0_r10's avf/arm64-balloon.patch applies again to Linux 6.1.189: the carried "
            "arm64-balloon-rebased.patch is dropped; remove it from [[packages.linux-avf.carry]]") in r.notes


def test_a_carried_patch_that_does_not_apply_either_refuses_naming_both(tmp_path, avf, kernel, alarm, signing_home):
    kernel.release("6.1.188", {KCONFIG: MOVED_KCONFIG})
    stale = rebased_balloon(avf).replace("if ARCH_HAS_STABLE_CHANGE", "if ARCH_HAS_OTHER_CHANGE")
    cfg = carried_cfg(tmp_path, avf, kernel, alarm, signing_home, stale)
    with pytest.raises(RenderProblem) as err:
        render_at(cfg)
    msg = str(err.value)
    assert "avf/arm64-balloon.patch does not apply to Linux 6.1.188" in msg
    assert f"nor does the carried arm64-balloon-rebased.patch that replaces it: {KCONFIG}: Hunk #1 FAILED" in msg


def test_a_carried_addition_is_applied_after_the_series(tmp_path, avf, kernel, alarm, signing_home):
    more = '\n[[packages.linux-avf.carry]]\nfile = "balloon-stats.patch"\n'
    cfg = make_kcfg(tmp_path, avf, kernel, alarm, signing_home, more, name="add.toml")
    (cfg.pkgbuilds / "linux-avf").mkdir(parents=True)
    (cfg.pkgbuilds / "linux-avf" / "balloon-stats.patch").write_text(STATS_PATCH)
    r = render_at(cfg)
    pkgbuild = r.files["PKGBUILD"].decode()
    assert re.findall(r'patch -Np1 -i "\$srcdir/"(\S+)', pkgbuild) == ["avf-arm64-balloon.patch", "balloon-stats.patch"]
    # once AVF carries the same change, the addition is "previously applied": a failure
    avf.commit({"build/debian/kernel/patches/avf/balloon-stats.patch": STATS_PATCH,
                "build/debian/kernel/patches/series": "avf/arm64-balloon.patch\navf/balloon-stats.patch\n"},
               "AVF takes the stats patch")
    avf.tag("android-16.0.0_r11")
    with pytest.raises(RenderProblem, match=r"carried patch balloon-stats.patch \(pkgbuilds/linux-avf/\) does not "
                                            rf"apply to Linux 6.1.158 after AVF android-16.0.0_r11's series: "
                                            rf"{BALLOON}: reversed or previously applied patch"):
        render_at(cfg)


def test_carried_patch_mistakes_refuse(tmp_path, avf, kernel, alarm, signing_home):
    cfg = carried_cfg(tmp_path, avf, kernel, alarm, signing_home)
    with pytest.raises(RenderProblem, match="carried patch arm64-balloon-rebased.patch is not in .*: commit it there"):
        render_at(cfg)
    more = CARRY.replace('replaces = "avf/arm64-balloon.patch"', 'replaces = "avf/gone.patch"')
    cfg = carried_cfg(tmp_path, avf, kernel, alarm, signing_home, "x\n", more=more)
    with pytest.raises(RenderProblem, match="replaces avf/gone.patch, which AVF's series no longer lists"):
        render_at(cfg)


# --- the required symbols on a real 6.1 tree --------------------------------------------------

DEBIAN_SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")


@pytest.fixture(scope="session")
def linux_6_1_tree(tmp_path_factory) -> Path:
    """A real Linux 6.1 source tree: $AVFREPO_LINUX_6_1 (an unpacked tree), else the Kconfig
    part of Debian's linux-source-6.1 (scripts/setup-debian.sh installs it)."""
    given = os.environ.get("AVFREPO_LINUX_6_1")
    if given:
        return Path(given)
    if not DEBIAN_SOURCE.is_file():
        pytest.skip(f"no real 6.1 tree: {DEBIAN_SOURCE} missing (apt-get install linux-source-6.1) "
                    "and AVFREPO_LINUX_6_1 unset")
    require_tools("tar", "xz", "make", "gcc", "flex", "bison")
    dest = tmp_path_factory.mktemp("linux-6.1")
    # what `make olddefconfig` reads: the Makefiles, every Kconfig, scripts/ (kconfig is built)
    run(["tar", "-xf", DEBIAN_SOURCE, "-C", dest, "--wildcards", "--no-wildcards-match-slash",
         "*/Makefile", "--wildcards-match-slash", "*/Kconfig*", "*/Kbuild*", "*/scripts/*",
         "*/arch/arm64/Makefile", "*/include/config/*"], check=False, timeout=1800)
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    if not (top / "scripts/kconfig/merge_config.sh").is_file():
        pytest.fail(f"{DEBIAN_SOURCE} did not unpack a kernel tree")
    return top


def test_every_required_symbol_survives_olddefconfig_on_a_real_6_1_tree(linux_6_1_tree, tmp_path):
    """Over a nearly empty base (a synthetic ALARM config) and AVF's fragment shape, avfrepo's
    fragment alone must bring every symbol it needs: its dependencies included."""
    ours = template("linux-avf/avfrepo.config")
    configs = {"config.alarm": linux_config("6.2.0").encode(),
               "avf.config": b"CONFIG_SND_VIRTIO=y\nCONFIG_SND=y\nCONFIG_SOUND=y\nCONFIG_DRM=m\n",
               "avfrepo.config": ours}
    config = linux_avf.olddefconfig(linux_6_1_tree, configs, tmp_path / "out")
    assert "Linux/arm64 6.1." in config
    required = linux_avf.required_symbols(ours.decode())
    assert len(required) > 30 and linux_avf.missing_symbols(config, required) == []
    assert "CONFIG_SND_VIRTIO=y" in config.splitlines()          # AVF's fragment is merged too
    # the check can fail: without its dependency, BPF_EVENTS does not survive
    configs["avfrepo.config"] = ours.replace(b"CONFIG_KPROBE_EVENTS=y\n", b"").replace(b"CONFIG_FTRACE=y\n", b"")
    config = linux_avf.olddefconfig(linux_6_1_tree, configs, tmp_path / "out2")
    assert "CONFIG_BPF_EVENTS" in linux_avf.missing_symbols(config, required)


@pytest.mark.parametrize("content", [b'{"url": "x", "used": [["a.patch", "avf"]', b"[" * 100_000 + b"]" * 100_000,
                                     b'{"used": [["a.patch", "elsewhere"]], "notes": []}', b'{"used": [], "notes": [1]}',
                                     b"\xff"])
def test_a_torn_or_strange_remembered_patch_check_is_checked_again(tmp_path, content):
    stamp = tmp_path / "stamp.json"
    stamp.write_bytes(content)
    assert linux_avf.remembered_check(stamp) is None
    stamp.write_bytes(b'{"url": "x", "used": [["a.patch", "avf"], ["b.patch", "carried"]], "notes": ["n"]}')
    assert linux_avf.remembered_check(stamp) == ([("a.patch", "avf"), ("b.patch", "carried")], ["n"])
