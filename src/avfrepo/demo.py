"""A local stand-in for AVF's Virtualization repository, and `avfrepo demo` on top of it.

The stand-in has the real repository's *shape* (facts file §1): the Android 16 layout of
`guest/<svc>/` crates with `debian/service` units, `libs/`, `build/debian/` with the ttyd
and kernel packaging, unrelated components around them, annotated and lightweight tags of
many families, several tags on one commit. Every file in it is written here, small and
synthetic; nothing is copied from upstream.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Callable

import git

GRPC_SERVICES = ("forwarder_guest_launcher", "shutdown_runner", "storage_balloon_agent")
SERVICES = ("forwarder_guest", *GRPC_SERVICES)
DESCRIPTIONS = {
    "forwarder_guest_launcher": "Starts port forwarding of guest TCP listeners to the host",
    "shutdown_runner": "Powers the guest off when the host asks",
    "storage_balloon_agent": "Reports free disk space of the guest to the host",
}

# Tag families that live in the same repository and must never be taken for releases.
DISTRACTOR_TAGS = (
    "android-platform-16.0.0_r12", "android-mainline-16.0.0_r1", "android-security-16.0.0_r14",
    "android-cts-16.0_r1", "android-vts-16.0_r1", "aml_virt_350400000", "platform-tools-35.0.2",
    "frc_350400000", "android-s-beta-4", "android-16.0.0_r0.4", "android-16.0.0_r11-rc1",
)


class Symlink(str):
    """A file of android16_files() that is a symbolic link to this target, not a text."""


# guest/ at the Android 16 base holds 20 directories (facts file §7): the Terminal's agents
# beside Microdroid parts built by Soong. Of the others, some are Cargo crates too; none has
# a debian/service. Which of them carry a Cargo.toml here is this fixture's own choice.
MICRODROID_GUEST_DIRS = (
    "apkdmverity", "authfs", "authfs_service", "compos_key_helper", "compsvc",
    "derive_microdroid_vendor_dice_node", "encryptedstore", "kdump", "kernel", "microdroid_launcher",
    "microdroid_manager", "pvmfw", "rialto", "trusty", "vmbase_example", "zipfuse",
)
_WITH_CARGO_TOML = ("apkdmverity", "authfs", "zipfuse", "microdroid_manager")


@functools.lru_cache(maxsize=None)
def generated_blob(name: str, size: int) -> bytes:
    """Incompressible, reproducible bytes standing in for a prebuilt kernel or test data."""
    return random.Random(name).randbytes(size)


# (path, size): prebuilt kernels of > 4 MiB under guest/ and APK test data of 2 MB under libs/
LARGE_BLOBS = (
    ("guest/kernel/android15-6.6/arm64/kernel-6.6", 4_718_592),
    ("guest/kdump/kernel/arm64/kernel-5.15", 4_030_472),
    ("libs/apkverify/tests/data/v4-digest-v3-Sha256withEC.apk", 2_000_000),
)


# Synthetic sources with the two spots avf-guest-agents patches (facts file §1): the launcher
# runs Debian's tcpstates-bpfcc through python3, the balloon agent hard-codes the root device.
GUEST_MAIN_RS = {
    "forwarder_guest": textwrap.dedent("""\
        fn main() {
            println!("forwarder_guest: {}", forwarder::forward(7681));
        }
        """),
    "forwarder_guest_launcher": textwrap.dedent("""\
        use std::process::{Command, Stdio};

        fn tcp_state_watcher() -> Command {
            let mut cmd = Command::new("python3");
            cmd.args(["-u", "/usr/sbin/tcpstates-bpfcc", "-s", "-L", "4"]).stdout(Stdio::piped());
            cmd
        }

        fn forwarder(port: u16) -> Command {
            let mut cmd = Command::new("forwarder_guest");
            cmd.arg("--port").arg(port.to_string());
            cmd
        }

        fn main() {
            let cmd = tcp_state_watcher();
            println!("forwarder_guest_launcher would run {:?} and {:?}", cmd, forwarder(7681));
        }
        """),
    "storage_balloon_agent": textwrap.dedent("""\
        const ROOT_DEVICE: &str = "vda1";

        fn main() {
            println!("storage_balloon_agent: reporting free space of /dev/{}", ROOT_DEVICE);
        }
        """),
}


def unit_text(svc: str, extra: str = "") -> str:
    return textwrap.dedent(f"""\
        [Unit]
        Description={DESCRIPTIONS.get(svc, svc)}
        After=syslog.target
        After=network.target
        After=virtiofs_internal.service

        [Service]
        ExecStart=/usr/bin/{svc} --grpc-port-file /mnt/internal/debian_service_port{extra}
        Type=simple
        Restart=on-failure
        RestartSec=1
        User=root
        Group=root

        [Install]
        WantedBy=multi-user.target
        """)


def android16_files(revision: int = 1) -> dict[str, str | bytes]:
    """path -> content of an Android-16-shaped tree; `revision` varies unrelated content."""
    f: dict[str, str] = {}
    f["libs/debian_service/proto/DebianService.proto"] = textwrap.dedent("""\
        syntax = "proto3";
        package com.android.virtualization.terminal.proto;
        service DebianService {
          rpc ReportVmActivePorts (ReportVmActivePortsRequest) returns (ReportVmActivePortsResponse) {}
        }
        message ReportVmActivePortsRequest { repeated int32 ports = 1; }
        message ReportVmActivePortsResponse { bool success = 1; }
        """)
    f["libs/libforwarder/Cargo.toml"] = '[package]\nname = "forwarder"\nversion = "1.0.0"\nedition = "2021"\n'
    f["libs/libforwarder/src/lib.rs"] = "pub fn forward(a: u16) -> u16 { a }\n"
    for svc in SERVICES:
        d = f"guest/{svc}"
        dep = '\n[dependencies]\nforwarder = { path = "../../libs/libforwarder" }\n' if svc == "forwarder_guest" else ""
        f[f"{d}/Cargo.toml"] = f'[package]\nname = "{svc}"\nversion = "1.0.0"\nedition = "2021"\n{dep}'
        f[f"{d}/src/main.rs"] = GUEST_MAIN_RS.get(svc, f'fn main() {{ println!("{svc}"); }}\n')
        f[f"{d}/.cargo/config.toml"] = ('[target.aarch64-unknown-linux-gnu]\nlinker = "aarch64-linux-gnu-gcc"\n'
                                        'rustflags = ["-C", "target-feature=+crt-static"]\n')
        if svc in GRPC_SERVICES:
            # upstream's build.rs hands this path to tonic_build; here it only names it
            f[f"{d}/build.rs"] = ('fn main() {\n    let proto_file = "../../libs/debian_service/proto/DebianService.proto";\n'
                                  '    println!("cargo:rerun-if-changed={proto_file}");\n}\n')
            f[f"{d}/debian/service"] = unit_text(svc)
    for other in MICRODROID_GUEST_DIRS:
        d = f"guest/{other}"
        f[f"{d}/Android.bp"] = f'rust_binary {{\n    name: "{other}",\n    srcs: ["src/main.rs"],\n}}\n'
        f[f"{d}/src/main.rs"] = f"// {other}: a Microdroid part built by Soong\nfn main() {{}}\n"
        if other in _WITH_CARGO_TOML:
            f[f"{d}/Cargo.toml"] = f'[package]\nname = "{other}"\nversion = "0.1.0"\nedition = "2021"\n'
    for lib in ("apkverify", "libfdt", "vmbase"):
        f[f"libs/{lib}/Android.bp"] = f'rust_library {{ name: "lib{lib}" }}\n'
        f[f"libs/{lib}/src/lib.rs"] = f"// {lib}\n"
    f["libs/debian_service/Android.bp"] = 'java_library { name: "debian-service-grpclib-lite" }\n'
    for path, size in LARGE_BLOBS:
        f[path] = generated_blob(path, size)
    # upstream's rustfmt.toml is a symlink into the Android source tree: dangling in this repository
    f["guest/storage_balloon_agent/rustfmt.toml"] = Symlink("../../../../build/soong/scripts/rustfmt.toml")
    f["build/debian/ttyd/client_cert.patch"] = "--- a/lib/tls/mbedtls/mbedtls-server.c\n+++ b/lib/tls/mbedtls/mbedtls-server.c\n"
    f["build/debian/ttyd/xtermjs_a11y.patch"] = xtermjs_a11y_patch()
    f["build/debian/ttyd/cross-build.sh"] = "#!/bin/sh\nLWS_VERSION=4.3.3\nMBEDTLS_VERSION=2.28.5\n"
    # kernel: a config fragment, a quilt series and a git-format-patch mail series that applies
    # to the synthetic linux-6.1.158 tarball of tests/packages/test_linux_avf.py
    f["build/debian/kernel/config"] = ("# AVF guest additions\nCONFIG_SND_VIRTIO=y\nCONFIG_SND=y\nCONFIG_SOUND=y\n"
                                       "CONFIG_DRM=m\n# CONFIG_MAGIC_SYSRQ is not set\n")
    f["build/debian/kernel/patches/series"] = "# applied in this order\navf/arm64-balloon.patch\n"
    f["build/debian/kernel/patches/avf/arm64-balloon.patch"] = (
        "From 0000000000000000000000000000000000000001 Mon Sep 17 00:00:00 2001\n"
        "From: AVF Fixture <fixture@example.invalid>\n"
        "Subject: [PATCH 1/2] arm64: let the balloon hint free pages\n"
        "\n"
        "---\n"
        " arch/arm64/Kconfig | 1 +\n"
        " 1 file changed, 1 insertion(+)\n"
        "\n"
        "diff --git a/arch/arm64/Kconfig b/arch/arm64/Kconfig\n"
        "--- a/arch/arm64/Kconfig\n"
        "+++ b/arch/arm64/Kconfig\n"
        "@@ -4,6 +4,7 @@\n"
        " \tdef_bool y\n"
        " \tselect ARCH_HAS_SETUP_DMA_OPS\n"
        " \tselect ARCH_SUPPORTS_MEMORY_FAILURE\n"
        "+\tselect ARCH_HAS_BALLOON_FREE_PAGE_HINTS\n"
        " \tselect HAVE_ARCH_KGDB\n"
        " \n"
        " config ARM64_PAGE_SHIFT\n"
        "-- \n"
        "2.40.0\n"
        "\n"
        "From 0000000000000000000000000000000000000002 Mon Sep 17 00:00:00 2001\n"
        "From: AVF Fixture <fixture@example.invalid>\n"
        "Subject: [PATCH 2/2] mm: balloon: count inflated pages\n"
        "\n"
        "---\n"
        " mm/balloon_compaction.c | 2 ++\n"
        " 1 file changed, 2 insertions(+)\n"
        "\n"
        "diff --git a/mm/balloon_compaction.c b/mm/balloon_compaction.c\n"
        "--- a/mm/balloon_compaction.c\n"
        "+++ b/mm/balloon_compaction.c\n"
        "@@ -5,6 +5,7 @@\n"
        " int balloon_page_enqueue_one(struct balloon_dev_info *b, struct page *page)\n"
        " {\n"
        " \tlist_add(&page->lru, &b->pages);\n"
        "+\tb->inflated++;\n"
        " \treturn 0;\n"
        " }\n"
        " \n"
        "@@ -12,5 +13,6 @@\n"
        " {\n"
        " \tif (list_empty(&b->pages))\n"
        " \t\treturn -ENOMEM;\n"
        "+\tb->inflated--;\n"
        " \treturn 0;\n"
        " }\n"
        "-- \n"
        "2.40.0\n")
    f["build/debian/vm_config.json"] = '{\n  "name": "debian",\n  "memory_mib": 4096\n}\n'
    # unrelated components of the same repository
    f["android/virtmgr/src/main.rs"] = f"// virtmgr revision {revision}\nfn main() {{}}\n"
    f["docs/README.md"] = f"Virtualization docs, revision {revision}\n"
    return f


def ttyd_html(version: str, a11y: bool = False) -> str:
    """A stand-in for ttyd's generated src/html.h (the inlined web page), different per version."""
    seed = sum(map(ord, version)) + (101 if a11y else 0)
    data = ", ".join(f"0x{(seed * (i + 7)) % 256:02x}" for i in range(16))
    return (f"// ttyd {version}: generated from html/dist/inline.html, do not edit\n"
            f"unsigned char index_html[] = {{\n  {data}\n}};\nunsigned int index_html_len = 16;\n")


def xtermjs_a11y_patch(version: str = "1.7.7") -> str:
    """Like AVF's patch: rewrites the generated src/html.h of one ttyd release only."""
    import difflib
    return "".join(difflib.unified_diff(ttyd_html(version).splitlines(True), ttyd_html(version, True).splitlines(True),
                                        "a/src/html.h", "b/src/html.h"))


def make_ttyd_upstream(path: Path) -> "FakeAvf":
    """ttyd's shape: X.Y.Z tags, annotated up to 1.7.4, lightweight from 1.7.5; main moves on."""
    ttyd = FakeAvf(path)
    for version in ("1.7.3", "1.7.4", "1.7.5", "1.7.6", "1.7.7"):
        ttyd.commit({"CMakeLists.txt": f"project(ttyd VERSION {version} LANGUAGES C)\n",
                     "src/server.c": f'const char *ttyd_version = "{version}";\n',
                     "src/html.h": ttyd_html(version)}, f"release {version}")
        ttyd.tag(version, message=f"ttyd {version}" if version <= "1.7.4" else None)
    ttyd.commit({"README.md": "work after the last release\n"}, "main moves on")
    return ttyd


class FakeAvf:
    """A git repository shaped like platform/packages/modules/Virtualization."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.repo = git.Repo.init(path, initial_branch="main")
        with self.repo.config_writer() as cw:
            cw.set_value("user", "name", "AVF Fixture")
            cw.set_value("user", "email", "fixture@example.invalid")
            cw.set_value("uploadpack", "allowFilter", "true")
            cw.set_value("uploadpack", "allowAnySHA1InWant", "true")
            cw.set_value("tag", "gpgSign", "false")
            cw.set_value("commit", "gpgSign", "false")

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()

    def commit(self, files: dict[str, str | bytes], message: str, *, remove: tuple[str, ...] = ()) -> str:
        for rel in remove:
            target = self.path / rel
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        for rel, content in files.items():
            p = self.path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.is_symlink():          # never write through a (dangling) link
                p.unlink()
            if isinstance(content, Symlink):
                os.symlink(content, p)
                continue
            data = content if isinstance(content, bytes) else content.encode()
            if not (p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data):
                p.write_bytes(data)     # unchanged files keep their mtime: git need not hash them again
        self.repo.git.add("-A")
        self.repo.git.commit("-q", "--allow-empty", "-m", message)
        return self.repo.head.commit.hexsha

    def tag(self, name: str, commit: str | None = None, *, message: str | None = None, force: bool = False) -> None:
        args = ["-f"] if force else []
        if message is not None:
            args += ["-a", "-m", message]
        self.repo.git.tag(*args, name, commit or "HEAD")

    def head(self) -> str:
        return self.repo.head.commit.hexsha

    def snap(self, of: str, build: int = 14283720, branch: str = "25Q4-release") -> str:
        """What AOSP tags its releases on: a "Snap for N from X to Y-release" commit on a release
        branch, whose tree is exactly the tree of X. Returns the new commit (main stays)."""
        source = self.repo.git.rev_parse(f"{of}^{{commit}}")
        parent = self.repo.git.rev_parse(f"refs/heads/{branch}") if branch in self.repo.heads else source
        sha = self.repo.git.commit_tree(f"{source}^{{tree}}", "-p", parent,
                                        "-m", f"Snap for {build} from {source} to {branch}")
        self.repo.git.update_ref(f"refs/heads/{branch}", sha)
        return sha


FAI_UNITS = "build/debian/fai_config/files/etc/systemd/system"   # android 15: the image's units (FAI class AVF)
ANDROID15_AGENTS = ("forwarder_guest_launcher", "shutdown_runner", "ip_addr_reporter")


def android15_files() -> dict[str, str | bytes]:
    """The android-15.0.0_r20..r23 shape of the agents (facts file §1): no storage_balloon_agent
    yet, an ip_addr_reporter crate, every agent's unit under build/debian/fai_config (old CLI)."""
    f = {k: v for k, v in android16_files(0).items() if not k.startswith("guest/storage_balloon_agent/")}
    for svc in GRPC_SERVICES:
        f.pop(f"guest/{svc}/debian/service", None)
    d = "guest/ip_addr_reporter"
    f[f"{d}/Cargo.toml"] = '[package]\nname = "ip_addr_reporter"\nversion = "0.1.0"\nedition = "2021"\n'
    f[f"{d}/build.rs"] = f["guest/shutdown_runner/build.rs"]
    f[f"{d}/src/main.rs"] = 'fn main() { println!("ip_addr_reporter"); }\n'
    f[f"{d}/.gitignore"] = "/target\n"
    for svc in ANDROID15_AGENTS:
        f[f"{FAI_UNITS}/{svc}.service/AVF"] = (
            f"[Unit]\nDescription={svc}\nAfter=network.target\nAfter=virtiofs_internal.service\n[Service]\n"
            f"ExecStart=/usr/bin/bash -c '/usr/local/bin/{svc} --grpc_port $(cat /mnt/internal/debian_service_port)'\n"
            "Type=simple\nRestart=on-failure\n[Install]\nWantedBy=multi-user.target\n")
    for unit in ("ttyd", "backup_mount", "virtiofs_internal"):     # the image's own units: no agents
        f[f"{FAI_UNITS}/{unit}.service/AVF"] = f"[Unit]\nDescription={unit}\n"
    return f


def make_demo_upstream(path: Path) -> FakeAvf:
    """Android 15 tags on an older layout, then Android 16 r1..r10 with r2 and r3 on one commit
    (mixed tag kinds and message wording), plus distractor families."""
    avf = FakeAvf(path)
    c15 = avf.commit(android15_files(), "Android 15 layout")
    for r in range(1, 6):
        avf.tag(f"android-15.0.0_r{r}", c15, message=f"Android 15.0.0 release {r}")
    avf.commit(android16_files(1), "Guest agents move to guest/<svc>/debian",
               remove=("build/debian/fai_config", "guest/ip_addr_reporter"))
    avf.tag("android-16.0.0_r1", message="Android 16.0.0 Release 1 (BP2A.250605.031)")
    c2 = avf.commit(android16_files(2), "Unrelated: virtmgr changes")
    avf.tag("android-16.0.0_r2", c2, message="Android 16.0.0 release 2")
    avf.tag("android-16.0.0_r3", c2)            # same commit, lightweight
    for r in range(4, 11):
        avf.commit(android16_files(r), f"Unrelated change {r}")
        avf.tag(f"android-16.0.0_r{r}", message=f"Android 16.0.0 Release {r}" if r % 2 else None)
    for t in DISTRACTOR_TAGS:
        avf.commit(android16_files(100 + len(t)), f"work for {t}")
        avf.tag(t, message=f"{t}")
    return avf


def write_config(path: Path, avf_url: str, gnupg_home: Path, *, backend: str = "makepkg",
                 extra: str = "", enable: tuple[str, ...] = ("avf-config", "avf-keyring")) -> Path:
    path.write_text(textwrap.dedent(f"""\
        # written by avfrepo demo
        [paths]
        pkgbuilds = "pkgbuilds"
        cache = "cache"
        logs = "logs"

        [repo]
        name = "avf"
        path = "repo"
        arch = "aarch64"
        server = "{(path.parent / 'repo').as_uri()}"

        [signing]
        gnupg_home = "{gnupg_home}"

        [build]
        backend = "{backend}"
        user = "{os.environ.get('AVFREPO_BUILD_USER', 'avfbuild')}"

        [packages]
        enable = [{", ".join(f'"{n}"' for n in enable)}]

        [upstreams.avf]
        url = "{avf_url}"
        """) + extra)
    return path


def run_demo(workdir: str | None, *, keep: bool = False, progress: Callable[[str], None] = print) -> int:
    """The whole cycle on the demo upstream; returns an exit code."""
    from . import config as config_mod
    from .build import build
    from .pacman_client import PacmanRoot
    from .repo.verify import verify
    from .signing import init_key
    from .sync import sync

    base = Path(workdir).resolve() if workdir else Path(tempfile.mkdtemp(prefix="avfrepo-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        progress(f"demo folder: {base}")
        avf = make_demo_upstream(base / "upstream" / "Virtualization")
        progress(f"1. demo AVF upstream with {len(avf.repo.tags)} tags at {avf.url}")
        # the packages this host can build (arch=any); the aarch64 ones need the chroot backend
        cfg = config_mod.load(write_config(base / "avfrepo.toml", avf.url, base / "gnupg",
                                           enable=("avf-config", "avf-keyring", "avf-base")))
        key, _ = init_key(cfg.signing, "avfrepo demo <demo@example.invalid>")
        progress(f"2. signing key {key.fingerprint}")
        rep = sync(cfg)
        for p in rep.packages:
            progress(f"3. sync: {p.name} {p.action} {p.new or p.old or ''} ({'; '.join(p.reasons + p.problems)})")
        if rep.refused:
            return 1
        brep = build(cfg, progress=lambda s: progress("4. build: " + s))
        if brep.failed:
            return 1
        vrep = verify(cfg)
        progress(f"5. verify: {'OK' if vrep.ok else 'FAILED'}, {len(vrep.checks)} checks")
        if not vrep.ok:
            for c in vrep.bad():
                progress(f"   BAD {c.path}: {c.message}")
            return 1
        client = PacmanRoot(base / "client", {cfg.repo.name: cfg.repo.path.as_uri() + "/$arch"}, cfg.repo.arch)
        client.trust(cfg.repo.published / f"{cfg.repo.name}.asc", key.fingerprint)
        client.install("avf-base", "avf-config", "avf-keyring")
        units = sorted(p.name for p in (client.root / "usr/lib/systemd/system").glob("*"))
        progress(f"6. pacman (SigLevel = Required) installed avf-base, avf-config and avf-keyring into {client.root}:")
        progress("   units: " + ", ".join(units))
        again = sync(cfg)
        progress("7. second sync: " + ("nothing to do" if not again.changed else "changed?!"))
        return 0 if not again.changed else 1
    finally:
        if not keep and not workdir:
            shutil.rmtree(base, ignore_errors=True)
        elif keep:
            progress(f"kept {base}")
