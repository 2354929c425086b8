#!/usr/bin/env python3
"""Benchmarks of `avfrepo build` with real makepkg, gpg and repo-add (no network).

    .venv/bin/python bench/bench_build.py [--work 2e7] [--packages 4]

Prints, side by side in one run:
  1. no-op build on an up-to-date repository: makepkg invocations (goal 0) and wall time,
     next to the full build that made the repository current;
  2. a 6-package chain p1 <- p2 <- ... <- p6 (each depends on the one before):
     a. p3's inputs change (pkgrel 1 -> 2): rebuilt set, goal {p3} (pkgrel is not
        soname-relevant, so nothing that links p3 needs rebuilding);
     b. p3 gets a new upstream version (pkgver 1.0 -> 2.0): rebuilt set, goal {p3, p4}
        (p4 links p3; p5 links only p4, whose ABI did not change);
     c. p3 bumps its soname (provides libp3.so=1 -> 2 at the same pkgver): goal {p3, p4};
  3. `--jobs 2` against `--jobs 1` on independent packages doing real CPU work in
     package() (an awk loop of --work iterations): wall times and their ratio (goal <= 0.65).

Run as root (makepkg then runs as the build user, like the tests) or as a normal user.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from avfrepo import config as config_mod  # noqa: E402
from avfrepo import makepkg as mk  # noqa: E402
from avfrepo.build import build  # noqa: E402
from avfrepo.config import SigningConfig  # noqa: E402
from avfrepo.signing import init_key  # noqa: E402

CALLS = {"makepkg": 0}
_real_makepkg = mk.makepkg


def counting_makepkg(cfg, pkgdir, args, **kw):
    if "--printsrcinfo" not in args:
        CALLS["makepkg"] += 1
    return _real_makepkg(cfg, pkgdir, args, **kw)


mk.makepkg = counting_makepkg          # backends call mk.makepkg: count every package build


def new_config(base: Path, gnupg: Path) -> config_mod.Config:
    base.mkdir(parents=True)
    conf = base / "avfrepo.toml"
    conf.write_text(textwrap.dedent(f"""\
        [paths]
        pkgbuilds = "pkgbuilds"
        cache = "cache"
        logs = "logs"
        [signing]
        gnupg_home = "{gnupg}"
        [build]
        backend = "makepkg"
        user = "{os.environ.get('AVFREPO_BUILD_USER', 'avfbuild')}"
        """))
    return config_mod.load(conf)


def write_pkg(cfg, name: str, *, version: str = "1.0", rel: int = 1, depends=(), provides=(),
              work: str = "") -> None:
    body = f"awk 'BEGIN{{for(i=0;i<{work};i++)s+=i%7; print s}}' > \"$pkgdir/usr/share/$pkgname.work\"" if work else ":"
    pkgbuild = textwrap.dedent(f"""\
        pkgname={name}
        pkgver={version}
        pkgrel={rel}
        pkgdesc="benchmark package {name}"
        arch=(any)
        license=(MIT)
        depends=({" ".join(f"'{d}'" for d in depends)})
        provides=({" ".join(f"'{p}'" for p in provides)})
        options=(!strip)

        package() {{
          install -d "$pkgdir/usr/share"
          echo "$pkgname" > "$pkgdir/usr/share/$pkgname.txt"
          {body}
        }}
        """).encode()
    files = {"PKGBUILD": pkgbuild}
    files[".SRCINFO"] = mk.printsrcinfo(cfg, files).encode()
    d = cfg.pkgbuilds / name
    d.mkdir(parents=True, exist_ok=True)
    for rel_path, data in files.items():
        (d / rel_path).write_bytes(data)


def timed_build(cfg, **kw):
    CALLS["makepkg"] = 0
    t0 = time.monotonic()
    report = build(cfg, **kw)
    return report, time.monotonic() - t0, CALLS["makepkg"]


def chain(cfg) -> None:
    for i in range(1, 7):
        deps = (f"p{i - 1}", f"libp{i - 1}.so") if i > 1 else ()
        write_pkg(cfg, f"p{i}", depends=deps, provides=(f"libp{i}.so=1-64",))


def rebuilt(report) -> list[str]:
    return sorted(r.pkgbase for r in report.results if r.status == "published")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="2e7", help="awk loop iterations per package in benchmark 3 (default 2e7, ~2 s)")
    ap.add_argument("--packages", type=int, default=4, help="independent packages in benchmark 3 (default 4)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="avfrepo-bench-"))
    os.chmod(tmp, 0o755)
    rows: list[tuple[str, str, str, str]] = []
    ok = True
    try:
        gnupg = tmp / "gnupg"
        init_key(SigningConfig(None, gnupg), "avfrepo bench <bench@example.invalid>")

        # 1 + 2: the 6-package chain
        cfg = new_config(tmp / "chain", gnupg)
        chain(cfg)
        report, full_s, full_calls = timed_build(cfg)
        assert rebuilt(report) == [f"p{i}" for i in range(1, 7)], report.to_json()
        report, noop_s, noop_calls = timed_build(cfg)
        rows.append(("1. full build, 6-package chain", f"{full_calls} makepkg", f"{full_s:.2f} s", ""))
        rows.append(("1. no-op build, repo up to date", f"{noop_calls} makepkg", f"{noop_s:.2f} s",
                     f"{noop_s / full_s:.3f}x of full" + ("" if noop_calls == 0 and not report.results else "  MISMATCH")))
        ok &= noop_calls == 0 and not report.results

        cases = [
            ("2a. p3 inputs changed (pkgrel 2)", dict(rel=2), ["p3"]),
            ("2b. p3 new upstream version 2.0", dict(version="2.0"), ["p3", "p4"]),
            ("2c. p3 soname libp3.so 1 -> 2", dict(version="2.0", rel=2, provides=("libp3.so=2-64",)), ["p3", "p4"]),
        ]
        for label, change, expected in cases:
            fields = dict(depends=("p2", "libp2.so"), provides=("libp3.so=1-64",))
            fields.update(change)
            write_pkg(cfg, "p3", **fields)
            report, s, calls = timed_build(cfg)
            got = rebuilt(report)
            match = got == expected
            ok &= match and calls == len(expected)
            reasons = "; ".join(f"{r.pkgbase} {r.version}: {', '.join(r.reasons)}" for r in report.results)
            rows.append((label, f"{calls} makepkg", f"{s:.2f} s",
                         f"rebuilt {' '.join(got)} (expected {' '.join(expected)}) {'OK' if match else 'MISMATCH'}"))
            rows.append(("", "", "", f"   {reasons}"))

        # 3: --jobs 2 vs --jobs 1 on independent packages that do real work
        walls = {}
        for jobs in (1, 2):
            c = new_config(tmp / f"jobs{jobs}", gnupg)
            for i in range(args.packages):
                write_pkg(c, f"w{i}", work=args.work)
            report, s, calls = timed_build(c, jobs=jobs)
            assert not report.failed and calls == args.packages, report.to_json()
            walls[jobs] = s
            rows.append((f"3. {args.packages} independent packages, --jobs {jobs}", f"{calls} makepkg", f"{s:.2f} s", ""))
        ratio = walls[2] / walls[1]
        ok &= ratio <= 0.65
        rows.append(("3. --jobs 2 / --jobs 1", "", "", f"{ratio:.2f}x wall (goal <= 0.65) "
                                                     + ("OK" if ratio <= 0.65 else "ABOVE GOAL")))
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"avfrepo build benchmarks ({os.cpu_count()} CPUs, makepkg backend)")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], width)) + "  " + r[3])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
