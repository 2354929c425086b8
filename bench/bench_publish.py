#!/usr/bin/env python3
"""Publish one package into repositories of N packages: avfrepo's transaction vs raw repo-add.

Both sides add a signed package to the same database, in one run, alternating, and the
script prints the median wall times and their ratio (goal: <= 1.2x). One package is built
by the real makepkg; the hundreds more the large repository needs are made from it by
renaming it in its .PKGINFO and repacking it with bsdtar + zstd (makepkg takes about 1.5 s
a package here, too slow for 500): real pacman packages that repo-add reads like any
other. All are signed with a throwaway key in a temporary folder.

    .venv/bin/python bench/bench_publish.py [--sizes 10 500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from avfrepo import config as config_mod
from avfrepo.build.backends import MakepkgBackend
from avfrepo.demo import write_config
from avfrepo.repo.publish import publish, repo_add_flags
from avfrepo.run import run
from avfrepo.signing import detach_sign, init_key


PKGBUILD = ("pkgname=bench-0000\npkgver=1.0\npkgrel=1\narch=(any)\nlicense=(MIT)\noptions=(!strip)\n"
            'package() { install -d "$pkgdir/usr/share/bench"; echo bench > "$pkgdir/usr/share/bench/f"; }\n')


def clone_package(template: Path, name: str, dest: Path) -> Path:
    """template (bench-0000) repacked as `name`: .PKGINFO's pkgname/pkgbase changed."""
    work = dest / f".{name}"
    work.mkdir(parents=True)
    run(["bsdtar", "-xf", str(template), "-C", str(work)])
    info = (work / ".PKGINFO").read_text().replace("bench-0000", name)
    (work / ".PKGINFO").write_text(info)
    out = dest / template.name.replace("bench-0000", name)
    members = sorted(p.name for p in work.iterdir())
    run(["bsdtar", "--zstd", "-cf", str(out), "-C", str(work), *members])
    shutil.rmtree(work)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 500])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="avfrepo-bench-"))
    try:
        cfg0 = config_mod.load(write_config(base / "avfrepo.toml", "file:///nowhere", base / "gnupg"))
        key, _ = init_key(cfg0.signing, "bench <bench@example.invalid>")
        total = max(args.sizes) + args.repeat * 2
        src = base / "src"
        src.mkdir()
        (src / "PKGBUILD").write_text(PKGBUILD)
        t = time.monotonic()
        template, = MakepkgBackend(cfg0).build(src, [], base / "build.log", base / "pkgs")
        pkgs = [template] + [clone_package(template, f"bench-{i:04d}", base / "pkgs") for i in range(1, total)]
        for p in pkgs:
            detach_sign(cfg0.signing, key, p)
        print(f"made and signed {len(pkgs)} packages in {time.monotonic() - t:.1f} s", flush=True)
        env = {"GNUPGHOME": str(cfg0.signing.gnupg_home)}
        print(f"{'repo size':>9}  {'avfrepo publish':>16}  {'raw repo-add':>13}  {'ratio':>6}")
        for n in args.sizes:
            cfg = config_mod.parse({"repo": {"path": f"repo-{n}"}, "signing": {"gnupg_home": str(base / "gnupg")},
                                    "build": {"backend": "makepkg"}}, None, base)
            t = time.monotonic()
            publish(cfg, key, pkgs[:n])
            print(f"  (set-up: published {n} packages in {time.monotonic() - t:.1f} s)", flush=True)
            extra = pkgs[n:n + 2 * args.repeat]
            ours, raw = [], []
            for i in range(args.repeat):
                one_ours, one_raw = extra[2 * i], extra[2 * i + 1]
                # raw: repo-add on a copy of the same current db, adding the same kind of package
                rawdir = base / f"raw-{n}-{i}"
                shutil.copytree(cfg.repo.published, rawdir, symlinks=False,
                                ignore=shutil.ignore_patterns("*.pkg.tar.zst", "*.pkg.tar.zst.sig"))
                shutil.copy(one_raw, rawdir)
                shutil.copy(str(one_raw) + ".sig", rawdir)
                t = time.monotonic()
                run(["repo-add", "-q", "--nocolor", *repo_add_flags(), "-s", "-v", "-k", key.fingerprint,
                     str(rawdir / f"{cfg.repo.name}.db.tar.gz"), str(rawdir / one_raw.name)], env=env)
                raw.append(time.monotonic() - t)
                t = time.monotonic()
                publish(cfg, key, [one_ours])
                ours.append(time.monotonic() - t)
            mo, mr = statistics.median(ours), statistics.median(raw)
            print(f"{n:>9}  {mo:>14.3f} s  {mr:>11.3f} s  {mo / mr:>5.2f}x", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
