#!/usr/bin/env python3
"""A sync with nothing new while linux-avf stays refused, against one where it renders.

linux-avf is refused on every real 6.1 >= 6.1.188 (AVF's balloon patch no longer fits), and
until sync kept refusals by input digest each no-op sync re-extracted the kernel tarball to
find that out again. This bench runs `avfrepo sync` as the maintainer does (a fresh process,
everything current) on two configurations side by side, alternating, and prints the medians
and their ratio (goal: refused <= 1.5x rendered, and <= 2 s on the real upstreams):

- synthetic (default): the demo AVF upstream, an ALARM-shaped PKGBUILDs repository and a
  synthetic linux-6.1.x tarball on 127.0.0.1: "refused" serves a kernel the patch does not
  fit, "renders" one it fits;
- --real AVF_GIT ALARM_GIT KERNEL_TARBALL: the public mirrors of AVF (android-16.0.0_r2 put
  on its real commit, facts file section 7) and of ALARM's PKGBUILDs, and a real 6.1 tree
  (Debian's linux-source-6.1 repacked as linux-6.1.N.tar.gz) on 127.0.0.1, where linux-avf is
  refused for real; the comparison is then the same sync without linux-avf.

    .venv/bin/python bench/bench_sync_refused.py [--repeat 5]
    .venv/bin/python bench/bench_sync_refused.py --real AVF_GIT ALARM_GIT linux-6.1.192.tar.gz

Runs against whichever avfrepo `python -m avfrepo` imports: with PYTHONPATH=<old checkout>/src
the same bench measures an older avfrepo (the "before" of a change).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # the tests' fixtures

from avfrepo.config import SigningConfig  # noqa: E402
from avfrepo.demo import make_demo_upstream, write_config  # noqa: E402
from avfrepo.signing import init_key  # noqa: E402

KERNEL_PATH = "pub/linux/kernel/v6.x"


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve(folder: Path) -> tuple[ThreadingHTTPServer, int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def kernel_feed(folder: Path, port: int, tarball: Path) -> str:
    """kernel.org's shape: releases.json naming the tarball, both under `folder`."""
    version = re.fullmatch(r"linux-(\d+\.\d+\.\d+)\.tar\.(?:gz|xz)", tarball.name).group(1)
    (folder / KERNEL_PATH).mkdir(parents=True, exist_ok=True)
    dest = folder / KERNEL_PATH / tarball.name
    if not dest.exists():
        try:
            os.link(tarball, dest)          # a real tarball is 150-250 MB: no copy when it can be linked
        except OSError:
            shutil.copyfile(tarball, dest)
    (folder / "releases.json").write_text(json.dumps({"releases": [
        {"moniker": "longterm", "version": version, "iseol": False,
         "source": f"http://127.0.0.1:{port}/{KERNEL_PATH}/{tarball.name}"}]}))
    return f"http://127.0.0.1:{port}/releases.json"


def config(work: Path, avf_url: str, alarm_url: str, feed: str | None, gnupg: Path) -> Path:
    work.mkdir(parents=True)
    extra = textwrap.dedent(f"""
        [upstreams.alarm-pkgbuilds]
        url = "{alarm_url}"
        """)
    enable = ("avf-config",)
    if feed:
        enable += ("linux-avf",)
        extra += f'\n[upstreams.kernel]\nkind = "kernel-org"\nseries = "6.1"\nurl = "{feed}"\nretries = 0\n'
    return write_config(work / "avfrepo.toml", avf_url, gnupg, extra=extra, enable=enable)


def sync_argv(conf: Path) -> list[str]:
    return [sys.executable, "-m", "avfrepo", "--config", str(conf), "sync", "--json"]


def settle(conf: Path, want_refused: bool) -> dict:
    """Sync until nothing is written (the first writes, the next records); the last report."""
    for _ in range(3):
        out = subprocess.run(sync_argv(conf), capture_output=True, text=True)
        report = json.loads(out.stdout)
        if not report["written"]:
            break
    linux = [p for p in report["packages"] if p["name"] == "linux-avf"]
    refused = bool(linux) and linux[0]["action"] == "refused"
    if linux and refused != want_refused:
        raise SystemExit(f"linux-avf should{'' if want_refused else ' not'} be refused here: {linux[0]}")
    return report


def seconds(argv: list[str]) -> float:
    t = time.monotonic()
    subprocess.run(argv, capture_output=True, check=False)
    return time.monotonic() - t


def synthetic(base: Path) -> tuple[Path, Path, str]:
    from tests.packages.alarm_fixture import make_alarm
    from tests.packages.test_linux_avf import make_tarball
    avf = make_demo_upstream(base / "Virtualization")
    alarm = make_alarm(base / "PKGBUILDs")
    fits = base / "kernel-fits"
    make_tarball(fits, "6.1.158")
    breaks = base / "kernel-breaks"
    make_tarball(breaks, "6.1.159", {"arch/arm64/Kconfig": "config ARM64\n\tdef_bool y\n"})
    return fits / "linux-6.1.158.tar.xz", breaks / "linux-6.1.159.tar.xz", avf.url + "|" + alarm.url


def real(base: Path, avf_git: Path, alarm_git: Path) -> str:
    """Shared clones of the mirrors (no object copied), android-16.0.0_r2 on its real commit."""
    avf, alarm = base / "Virtualization.git", base / "PKGBUILDs.git"
    for src, dest in ((avf_git, avf), (alarm_git, alarm)):
        subprocess.run(["git", "clone", "-q", "--bare", "--shared", str(src), str(dest)], check=True)
    subprocess.run(["git", "--git-dir", str(avf), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
                    "tag", "-a", "-m", "Android 16.0.0 release 2", "android-16.0.0_r2", "175a51b30"], check=True)
    for repo in (avf, alarm):       # sync fetches blobless: the local clones must serve filters
        subprocess.run(["git", "--git-dir", str(repo), "config", "uploadpack.allowFilter", "true"], check=True)
    return avf.as_uri() + "|" + alarm.as_uri()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--real", nargs=3, metavar=("AVF_GIT", "ALARM_GIT", "KERNEL_TARBALL"), type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-refused-") as tmp:
        base = Path(tmp)
        gnupg = base / "gnupg"
        init_key(SigningConfig(None, gnupg), "bench <bench@example.invalid>")
        if args.real:
            urls = real(base, *args.real[:2])
            tarballs = {"refused": args.real[2]}
        else:
            fits, breaks, urls = synthetic(base / "up")
            tarballs = {"renders": fits, "refused": breaks}
        avf_url, alarm_url = urls.split("|")
        confs: dict[str, Path] = {}
        servers = []
        for label, tarball in tarballs.items():
            folder = base / f"kernel.org-{label}"
            folder.mkdir()
            srv, port = serve(folder)
            servers.append(srv)
            confs[label] = config(base / label, avf_url, alarm_url, kernel_feed(folder, port, tarball), gnupg)
        if args.real:      # no real 6.1 tree the patch fits: compare with the sync without linux-avf
            confs["without linux-avf"] = config(base / "plain", avf_url, alarm_url, None, gnupg)
        reports = {label: settle(conf, label == "refused") for label, conf in confs.items()}
        why = next(p for p in reports["refused"]["packages"] if p["name"] == "linux-avf")["problems"][0]
        print(f"linux-avf refused: {why[:160]}...")
        times: dict[str, list[float]] = {label: [] for label in confs}
        for _ in range(args.repeat):
            for label, conf in confs.items():
                times[label].append(seconds(sync_argv(conf)))
        for srv in servers:
            srv.shutdown()
    med = {label: statistics.median(ts) for label, ts in times.items()}
    other = next(label for label in med if label != "refused")
    for label, m in med.items():
        print(f"no-op sync, {label:<18} median {m:6.2f} s  (min {min(times[label]):.2f}, max {max(times[label]):.2f})")
    print(f"ratio refused / {other}: {med['refused'] / med[other]:.2f}x (goal <= 1.5x; refused <= 2 s: "
          f"{'yes' if med['refused'] <= 2 else 'NO'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
