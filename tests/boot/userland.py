"""The arm64 userland the boot tests' stand-in packages carry: REAL Debian arm64 binaries.

Made once per package list and kept in a cache outside the repository
(AVFREPO_TEST_CACHE, default /var/cache/avfrepo-test), so .ci/run pays for it once per machine:
1. `debootstrap --arch=arm64 --variant=minbase` of Debian trixie with systemd, avahi, openssl,
   sudo, zram-generator, Debian's arm64 kernel + initramfs-tools (the initrd is made in the
   chroot), systemd-boot-efi (systemd-bootaa64.efi), and python3-grpcio for the stand-in agents;
   aarch64 binaries run through qemu-user-static (binfmt_misc mounted when needed);
2. ttyd: Debian has no ttyd package, so ttyd 1.7.7 is compiled in that chroot against Debian's
   libwebsockets (OpenSSL + libuv), json-c, libuv, zlib; the build dependencies are removed
   again. The source is the ttyd release git repository, from AVFREPO_TTYD_GIT (a git dir with
   the tag 1.7.7) or the public mirror under /work/.mirror when this machine has one, with the
   patch ttyd-avf carries (avfrepo's login-vhangup.patch: without it the terminal of `login -f
   droid` stays blank in most sessions under TCG, as trixie's login is util-linux's).
   A tree for another ttyd step but the same debootstrap (`.base` holds base_key()) is reused
   for step 2, instead of a new debootstrap.
Needs root, network to Debian's archive and qemu-user-static, so it is an install step, not
a test step: `scripts/setup-debian.sh --tests` runs `python -m tests.boot.userland`, and the
tests only use the cache (they skip, naming that command, when it is missing).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SUITE = "trixie"
MIRROR = os.environ.get("AVFREPO_DEBIAN_MIRROR", "http://deb.debian.org/debian")
INCLUDE = ("systemd", "systemd-sysv", "udev", "dbus", "kmod", "iproute2", "avahi-daemon", "avahi-utils", "openssl",
           "sudo", "systemd-zram-generator", "systemd-resolved", "systemd-boot-efi", "linux-image-arm64",
           "initramfs-tools", "procps", "python3-grpcio", "python3-protobuf", "zstd", "libwebsockets19t64",
           "libwebsockets-evlib-uv", "libjson-c5", "libuv1t64", "zlib1g",
           "libre2-11")     # python3-grpcio needs libre2-11-absl20240722, which only libre2-11 provides
TTYD_TAG = "1.7.7"
TTYD_BUILD_DEPS = ("gcc", "libc6-dev", "libwebsockets-dev", "libjson-c-dev", "libuv1-dev", "libssl-dev",
                   "zlib1g-dev", "patch")
RECIPE = 1          # bump when the steps below change what the tree contains


def cache_root() -> Path:
    return Path(os.environ.get("AVFREPO_TEST_CACHE", "/var/cache/avfrepo-test"))


def ttyd_patch() -> bytes:
    from avfrepo.packages import template_bytes
    from avfrepo.packages.ttyd_avf import OWN_PATCH
    return template_bytes(f"ttyd-avf/{OWN_PATCH}")


def base_key() -> str:
    """What the debootstrap step depends on."""
    return hashlib.sha256("\n".join([SUITE, MIRROR, *INCLUDE]).encode()).hexdigest()[:12]


def key() -> str:
    text = "\n".join([SUITE, MIRROR, *INCLUDE, TTYD_TAG, *TTYD_BUILD_DEPS, str(RECIPE)])
    return hashlib.sha256(text.encode() + ttyd_patch()).hexdigest()[:12]


def _same_base() -> list[Path]:
    """The complete trees made by the same debootstrap (another ttyd step, or this one)."""
    out = []
    for tree in sorted(cache_root().glob("arm64-userland-*")):
        base = tree / ".base"
        if (tree / ".complete").is_file() and base.is_file() and base.read_text().strip() == base_key():
            out.append(tree)
    return out


def ttyd_git() -> Path | None:
    for cand in (os.environ.get("AVFREPO_TTYD_GIT"), "/work/.mirror/tsl0922+ttyd/repo"):
        if cand and Path(cand).exists():
            r = subprocess.run(["git", "--git-dir", cand, "rev-parse", "-q", "--verify", f"refs/tags/{TTYD_TAG}"],
                               capture_output=True)
            if r.returncode == 0:
                return Path(cand)
    return None


def missing_requirements() -> str | None:
    """Why the userland cannot be made here (None: it can, or it is cached)."""
    if (cache_root() / f"arm64-userland-{key()}" / ".complete").is_file():
        return None
    if os.geteuid() != 0:
        return "making the arm64 userland needs root (debootstrap, chroot)"
    for tool in ("debootstrap", "chroot", "git"):
        if shutil.which(tool) is None:
            return f"making the arm64 userland needs {tool} (scripts/setup-debian.sh)"
    if not Path("/usr/libexec/qemu-binfmt/aarch64-binfmt-P").exists() and not shutil.which("qemu-aarch64-static"):
        return "making the arm64 userland needs qemu-user-static (scripts/setup-debian.sh)"
    if ttyd_git() is None:
        return (f"no ttyd {TTYD_TAG} source: set AVFREPO_TTYD_GIT to a clone of the ttyd repository "
                "(Debian has no ttyd package)")
    return None


def ensure_binfmt() -> None:
    mnt = Path("/proc/sys/fs/binfmt_misc")
    if not (mnt / "status").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(mnt)], check=True)
    if not (mnt / "qemu-aarch64").exists() and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=False)
    if not (mnt / "qemu-aarch64").exists():
        raise RuntimeError("qemu-aarch64 is not registered in binfmt_misc (install qemu-user-static)")


def _chroot(tree: Path, script: str, log) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8",
           "HOME": "/root"}
    mounts = []
    try:
        for fs, where in (("proc", "proc"), ("sysfs", "sys")):
            subprocess.run(["mount", "-t", fs, fs, str(tree / where)], check=True)
            mounts.append(tree / where)
        shutil.copyfile("/etc/resolv.conf", tree / "etc/resolv.conf")
        subprocess.run(["chroot", str(tree), "/bin/sh", "-exc", script], check=True, env=env, stdout=log,
                       stderr=subprocess.STDOUT, timeout=3600)
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", str(m)], check=False)


def ensure(progress=print) -> Path:
    """The cached tree (made when missing); raises RuntimeError with the reason when it cannot be."""
    root = cache_root()
    tree = root / f"arm64-userland-{key()}"
    if (tree / ".complete").is_file():
        return tree
    why = missing_requirements()
    if why:
        raise RuntimeError(why)
    ensure_binfmt()
    root.mkdir(parents=True, exist_ok=True)
    work = root / f".arm64-userland-{key()}.tmp"
    log_path = root / f"arm64-userland-{key()}.log"
    t = time.monotonic()
    with open(log_path, "ab") as log:
        old = next(iter(_same_base()), None) if not (work / ".debootstrapped").is_file() else None
        if old is not None:
            shutil.rmtree(work, ignore_errors=True)
            progress(f"userland: reuse the debootstrap of {old.name} (same base {base_key()}), redo the ttyd step")
            subprocess.run(["cp", "-a", str(old), str(work)], check=True)
            (work / ".complete").unlink()
            (work / ".debootstrapped").write_text("")
        if not (work / ".debootstrapped").is_file():
            shutil.rmtree(work, ignore_errors=True)
            progress(f"userland: debootstrap {SUITE} arm64 into {work} (log {log_path})")
            subprocess.run(["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={','.join(INCLUDE)}",
                            SUITE, str(work), MIRROR], check=True, stdout=log, stderr=subprocess.STDOUT, timeout=3600)
            (work / ".debootstrapped").write_text("")
        src = work / "root/ttyd-src"
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        archive = subprocess.run(["git", "--git-dir", str(ttyd_git()), "archive", "--format=tar", TTYD_TAG],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        (work / "root/ttyd.patch").write_bytes(ttyd_patch())
        progress(f"userland: compile ttyd {TTYD_TAG} in the chroot")
        _chroot(work, f"""
            apt-get update
            apt-get install -y --no-install-recommends {' '.join(TTYD_BUILD_DEPS)}
            cd /root/ttyd-src
            patch -Np1 --batch -i /root/ttyd.patch
            gcc -O2 -std=gnu99 -D_GNU_SOURCE -I/usr/include/json-c -DTTYD_VERSION='"{TTYD_TAG}"' -o /usr/bin/ttyd \\
                src/utils.c src/pty.c src/protocol.c src/http.c src/server.c \\
                -lwebsockets -ljson-c -luv -lssl -lcrypto -lz -lutil
            install -Dm644 man/ttyd.1 /usr/share/man/man1/ttyd.1
            apt-get purge -y --autoremove {' '.join(TTYD_BUILD_DEPS)}
            apt-get clean
            rm -rf /root/ttyd-src /root/ttyd.patch /var/lib/apt/lists/*
            ttyd --version
            """, log)
    (work / "etc/resolv.conf").unlink(missing_ok=True)
    (work / ".debootstrapped").unlink()
    (work / ".base").write_text(base_key() + "\n")
    (work / ".complete").write_text(f"made in {time.monotonic() - t:.0f} s\n")
    shutil.rmtree(tree, ignore_errors=True)
    os.replace(work, tree)
    for other in _same_base():                            # trees of an older ttyd step, same debootstrap
        if other != tree:
            shutil.rmtree(other, ignore_errors=True)
    return tree


def cached() -> Path | None:
    """The complete cached tree, or None (the tests never make it: no network in tests)."""
    tree = cache_root() / f"arm64-userland-{key()}"
    return tree if (tree / ".complete").is_file() else None


def main() -> int:
    """`python -m tests.boot.userland`: make the cache (scripts/setup-debian.sh --tests)."""
    try:
        tree = ensure(progress=lambda s: print(s, file=sys.stderr, flush=True))
    except (RuntimeError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"boot-test userland not made: {exc}", file=sys.stderr)
        return 1
    print(tree)
    return 0


if __name__ == "__main__":
    sys.exit(main())
