#!/usr/bin/env python3
"""Sync against an AVF-shaped upstream served by `git daemon` on 127.0.0.1.

1. No-op sync (everything current, avf-guest-agents included) vs a bare `git ls-remote --tags`
   of the same upstream, side by side, alternating (goal: <= 1.5x).
2. A new AVF tag: the bytes sync's fetch adds to its cache (new git objects) vs the bytes of
   the paths the packages read at that tag (goal: <= 1.5x), and vs a full `git clone`.
3. The command a maintainer runs, `avfrepo sync` with everything current, vs nvchecker
   (PyPI; `pip install -e '.[bench]'`, installed here when missing) checking the same git
   upstreams (its git source runs `git ls-remote`), both as fresh processes, alternating,
   median of --repeat (goal: avfrepo <= 1.0x nvchecker).
The fixture repository is the real-shaped demo upstream (20 guest/ dirs, prebuilt kernels of
> 4 MiB, APK test data: facts file §7) plus many commits of unrelated large files, so that a
full clone costs what it does for the real repository: history sync never needs.

    .venv/bin/python bench/bench_sync.py [--commits 60] [--file-kib 256] [--repeat 5]
    .venv/bin/python bench/bench_sync.py --real AVF_GIT TTYD_GIT LWS_GIT    # the public mirrors
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avfrepo import config as config_mod
from avfrepo.demo import FakeAvf, make_demo_upstream, make_ttyd_upstream, unit_text, write_config
from avfrepo.signing import init_key
from avfrepo.sources.git_tags import latest, ls_remote_tags
from avfrepo.sync import sync


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_nvchecker() -> Path:
    exe = Path(sys.executable).parent / "nvchecker"
    if not exe.exists():
        print("installing nvchecker (the bench extra) into this environment", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "nvchecker>=2.12"], check=True)
    return exe


def median_ms(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(repeat):
        t = time.monotonic()
        subprocess.run(argv, capture_output=True, check=True, env=env)
        times.append(time.monotonic() - t)
    return statistics.median(times) * 1000


LWS_PATTERN = r"^v(4)\.(\d+)\.(\d+)$"
PATTERNS = {"avf": r"^android-(16)\.(\d+)\.(\d+)_r(\d+)$", "ttyd": r"^(\d+)\.(\d+)\.(\d+)$",
            "libwebsockets": LWS_PATTERN}


def fixture_upstreams(served: Path) -> None:
    """ttyd and libwebsockets shaped like the real ones (the AVF fixture is made by main)."""
    make_ttyd_upstream(served / "ttyd")
    lws = FakeAvf(served / "libwebsockets")
    for v in ("4.3.2", "4.3.3", "4.3.5", "5.0.0"):
        lws.commit({"CMakeLists.txt": f"project(libwebsockets VERSION {v})\n"}, f"v{v}")
        lws.tag(f"v{v}")


def real_upstreams(served: Path, avf_git: Path, ttyd_git: Path, lws_git: Path) -> None:
    """The public mirrors, cloned --shared (their objects are not copied), with the Android 16
    release tags the mirror lacks put on real commits (facts file section 7)."""
    for name, src in (("Virtualization", avf_git), ("ttyd", ttyd_git), ("libwebsockets", lws_git)):
        subprocess.run(["git", "clone", "-q", "--bare", "--shared", str(src), str(served / name)], check=True)
    avf = served / "Virtualization"
    for tag, commit in (("android-16.0.0_r1", "0dc26b7d9"), ("android-16.0.0_r2", "175a51b30"),
                        ("android-16.0.0_r3", "175a51b30")):
        subprocess.run(["git", "--git-dir", str(avf), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
                        "tag", "-a", "-m", f"Android {tag}", tag, commit], check=True)
    subprocess.run(["git", "--git-dir", str(avf), "config", "uploadpack.allowFilter", "true"], check=True)


def versus_nvchecker(base: Path, served: Path, port: int, repeat: int) -> None:
    """avfrepo sync (no-op) vs nvchecker on the same git upstreams (AVF, ttyd, libwebsockets):
    `avfrepo sync avf ttyd libwebsockets` asks those three (libwebsockets is configured but no
    package reads it, so a plain sync would not ask it) and renders the packages reading them."""
    nvchecker = ensure_nvchecker()
    url = {n: f"git://127.0.0.1:{port}/{d}" for n, d in
           (("avf", "Virtualization"), ("ttyd", "ttyd"), ("libwebsockets", "libwebsockets"))}
    extra = "".join(f'\n[upstreams.{n}]\nkind = "git-tags"\nurl = "{url[n]}"\ntag_pattern = \'{PATTERNS[n]}\'\n'
                    for n in ("ttyd", "libwebsockets"))
    work = base / "versus"
    work.mkdir()
    conf = write_config(work / "avfrepo.toml", url["avf"], base / "gnupg", extra=extra,
                        enable=("avf-config", "avf-keyring", "ttyd-avf", "avf-base"))
    avfrepo = [str(Path(sys.executable).parent / "avfrepo"), "--config", str(conf), "sync", "avf", "ttyd",
               "libwebsockets"]
    for _ in range(2):      # the first sync writes; the second records the renders that saw fewer packages
        first = subprocess.run(avfrepo, capture_output=True, text=True)
        assert first.returncode == 0, first.stdout + first.stderr
    again = subprocess.run(avfrepo + ["--json"], capture_output=True, text=True, check=True)
    import json
    report = json.loads(again.stdout)
    assert not report["written"], "the last sync was not a no-op"
    queried = sorted(report["upstreams"])
    versions = ", ".join(f"{n} {report['upstreams'][n]['version']}" for n in queried)
    nv = work / "nvchecker.toml"
    nv.write_text(f'[__config__]\noldver = "{work / "old.json"}"\nnewver = "{work / "new.json"}"\n' + "".join(
        f'\n[{n}]\nsource = "git"\ngit = "{url[n]}"\nuse_max_tag = true\n'
        f"include_regex = '{PATTERNS[n][1:-1]}'\n" for n in queried))
    subprocess.run([str(nvchecker), "-c", str(nv)], capture_output=True, check=True)
    found = json.loads((work / "new.json").read_text())
    found = found.get("data", found)
    ours, theirs = [], []
    for _ in range(repeat):                         # alternating, so that load hits both alike
        ours.append(median_ms(avfrepo, 1))
        theirs.append(median_ms([str(nvchecker), "-c", str(nv)], 1))
    mo, mn = statistics.median(ours), statistics.median(theirs)
    print(f"no-op `avfrepo sync` asking {', '.join(queried)} ({versions}; "
          f"{', '.join(p['name'] + ' ' + p['action'] for p in report['packages'])})")
    print(f"nvchecker found: " + ", ".join(f"{n} {v['version'] if isinstance(v, dict) else v}"
                                           for n, v in sorted(found.items())))
    print(f"no-op sync {mo:7.1f} ms   nvchecker on the same {len(queried)}: {mn:7.1f} ms   "
          f"ratio {mo / mn:5.2f}x (median of {repeat}, alternating)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=60, help="unrelated history commits (default 60)")
    ap.add_argument("--file-kib", type=int, default=256, help="size of each unrelated file (default 256 KiB)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--real", nargs=3, type=Path, metavar=("AVF_GIT", "TTYD_GIT", "LWS_GIT"),
                    help="only the nvchecker comparison, on these git directories (the public mirrors of AVF, "
                         "ttyd and libwebsockets), served by git daemon with Android 16 tags on real commits")
    args = ap.parse_args()
    if args.real:
        return real_main(args)
    base = Path(tempfile.mkdtemp(prefix="avfrepo-bench-sync-"))
    stack = contextlib.ExitStack()
    try:
        served = base / "srv"
        avf = make_demo_upstream(served / "Virtualization")
        for i in range(args.commits):     # unrelated components' history, as in the real repository
            avf.commit({f"android/component{i % 7}/blob.bin": os.urandom(args.file_kib * 1024).hex()[: args.file_kib * 1024]},
                       f"unrelated {i}")
        avf.tag("android-16.0.0_r11", message="Android 16.0.0 release 11")
        port = stack.enter_context(git_daemon(served, "Virtualization"))
        url = f"git://127.0.0.1:{port}/Virtualization"
        print(f"upstream: {len(avf.repo.tags)} tags, {dir_bytes(avf.path / '.git') / 1e6:.1f} MB of git objects, "
              f"served by git daemon at {url}")
        os.environ["CARGO_NET_OFFLINE"] = "true"       # the fixture crates need no registry
        cfg = config_mod.load(write_config(base / "avfrepo.toml", url, base / "gnupg",
                                           enable=("avf-config", "avf-keyring", "avf-guest-agents")))
        init_key(cfg.signing, "bench <bench@example.invalid>")
        sync(cfg)

        ours, bare = [], []
        for _ in range(args.repeat):
            t = time.monotonic()
            subprocess.run(["git", "ls-remote", "--tags", url], capture_output=True, check=True)
            bare.append(time.monotonic() - t)
            t = time.monotonic()
            report = sync(cfg)
            ours.append(time.monotonic() - t)
            assert not report.changed, "no-op sync changed something"
        mo, mb = statistics.median(ours), statistics.median(bare)
        print(f"no-op sync      {mo * 1000:8.1f} ms   bare git ls-remote {mb * 1000:8.1f} ms   ratio {mo / mb:5.2f}x")

        # a new tag whose unit changed: what does the fetch cost?
        avf.commit({"guest/shutdown_runner/debian/service": unit_text("shutdown_runner", " --verbose")}, "unit")
        avf.tag("android-16.0.0_r12", message="Android 16.0.0 release 12")
        cache_git = cfg.cache / "git" / "avf" / ".git"
        before = dir_bytes(cache_git / "objects")
        t = time.monotonic()
        report = sync(cfg)
        fetch_s = time.monotonic() - t
        fetched = dir_bytes(cache_git / "objects") - before
        # what the packages read: the blobs of the sparse paths at the tag, sized in the upstream
        rel = latest(cfg.upstream("avf"), ls_remote_tags("avf", url))
        paths = [p.lstrip("/") for p in (cache_git / "info/sparse-checkout").read_text().split()]
        listing = subprocess.run(["git", "-C", str(avf.path), "ls-tree", "-r", "-l", rel.commit, "--", *paths],
                                 capture_output=True, text=True, check=True).stdout.splitlines()
        read = sum(int(line.split()[3]) for line in listing if line.split()[3] != "-")
        print(f"new tag: sync fetched {fetched / 1e3:8.1f} kB; the {len(listing)} files of {len(paths)} paths "
              f"the packages read are {read / 1e3:8.1f} kB   ratio {fetched / read:5.2f}x")
        clone = base / "full-clone"
        t = time.monotonic()
        subprocess.run(["git", "clone", "-q", url, str(clone)], check=True)
        clone_s = time.monotonic() - t
        clone_bytes = dir_bytes(clone / ".git")
        print(f"new tag sync    {fetched / 1e3:8.1f} kB, whole sync (render, .SRCINFO) {fetch_s * 1000:7.1f} ms   "
              f"full clone {clone_bytes / 1e3:9.1f} kB in {clone_s * 1000:7.1f} ms   "
              f"bytes {100 * fetched / clone_bytes:5.2f}%  time {100 * fetch_s / clone_s:5.1f}%")
        print("sync at the new tag: " + ", ".join(f"{p.name} {p.action} {p.new or ''}" for p in report.packages))
        fixture_upstreams(served)
        versus_nvchecker(base, served, port, args.repeat)
    finally:
        stack.close()
        shutil.rmtree(base, ignore_errors=True)
    return 0


@contextlib.contextmanager
def git_daemon(served: Path, probe: str):
    """`git daemon` serving the repositories under `served` on 127.0.0.1; yields its port once
    `probe` (one of them) answers, and stops it afterwards."""
    port = free_port()
    daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", f"--base-path={served}", "--export-all",
                               "--listen=127.0.0.1", f"--port={port}", str(served)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if subprocess.run(["git", "ls-remote", f"git://127.0.0.1:{port}/{probe}"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        yield port
    finally:
        daemon.terminate()
        daemon.wait()


def real_main(args) -> int:
    base = Path(tempfile.mkdtemp(prefix="avfrepo-bench-sync-real-"))
    try:
        served = base / "srv"
        served.mkdir()
        real_upstreams(served, *args.real)
        with git_daemon(served, "ttyd") as port:
            init_key(config_mod.SigningConfig(None, base / "gnupg"), "bench <bench@example.invalid>")
            versus_nvchecker(base, served, port, args.repeat)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
