#!/usr/bin/env python3
"""The image step: images.tar.gz size against the installed root compressed alone, and wall time.

Builds stand-in repositories ([core] and [avf], noarch test packages by the real makepkg,
signed, published; `standin-data` adds BULK MiB of mixed random/text files so the root has
some weight), a pacman keyring trusting the test key, then runs the real image step
(pacman --root, mkfs.ext4 -d, resize2fs, mkfs.vfat + mtools, tar + pigz/gzip) and, for the
reference, installs the same packages into a second root the same way and compresses that
tree alone (tar | the same compressor). Prints both sizes, their ratio (goal <= 1.1x) and
the image step's wall time. Needs root (pacman) and the build user (makepkg).

    .venv/bin/python bench/bench_image.py [--bulk 32] [--headroom 512] [--efi 256] [--repeat 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avfrepo.config import SigningConfig  # noqa: E402
from avfrepo.image import archive, build_image, rootfs  # noqa: E402
from avfrepo.pacman_client import PacmanRoot  # noqa: E402
from avfrepo.run import run  # noqa: E402
from avfrepo.signing import export_public, init_key, signing_key  # noqa: E402
from tests.image.standins import image_config, make_repos  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bulk", type=int, default=32, help="MiB of standin-data in the root (default 32)")
    ap.add_argument("--headroom", type=int, default=512, help="[image] headroom_mib (default 512, the default)")
    ap.add_argument("--efi", type=int, default=256, help="[image] efi_size_mib (default 256, the default)")
    ap.add_argument("--repeat", type=int, default=1, help="image builds to time (median)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="avfrepo-bench-image-"))
    base.chmod(0o755)
    try:
        home = base / "gnupg"
        home.mkdir(mode=0o700)
        init_key(SigningConfig(None, home), "bench <bench@example.invalid>")
        t = time.monotonic()
        core, avf = make_repos(base / "repos", home, bulk_mib=args.bulk)
        print(f"stand-in repositories built in {time.monotonic() - t:.1f} s (bulk {args.bulk} MiB)", file=sys.stderr)
        sc = SigningConfig(None, home)
        key = signing_key(sc)
        asc = base / "avf.asc"
        asc.write_bytes(export_public(sc, key.fingerprint, armor=True))
        trust = PacmanRoot(base / "trust", {"avf": "file:///nowhere"})
        trust.trust(asc, key.fingerprint)
        cfg = image_config(base / "img" / "avfrepo.toml", home, core, avf, trust.gpgdir,
                           headroom_mib=args.headroom, efi_size_mib=args.efi)

        times, result = [], None
        for _ in range(args.repeat):
            t = time.monotonic()
            result = build_image(cfg)
            times.append(time.monotonic() - t)

        # the reference: the same packages installed the same way, the tree compressed alone
        ref = base / "ref"
        (ref / "root").mkdir(parents=True)
        pm = rootfs.Pacman(cfg, cfg.image, ref / "root", ref)
        pm.install(cfg.image.packages)
        rootfs.finish(ref / "root", pm, lambda s: None)
        tree_bytes = rootfs.tree_bytes(ref / "root")[0]
        comp = archive.compressor()
        ref_tar = ref / "root.tar.gz"
        run(["tar", "--create", "--format=gnu", f"--use-compress-program={comp}", "--file", str(ref_tar),
             "-C", str(ref / "root"), "."])
        ref_bytes = ref_tar.stat().st_size
        ratio = result.archive_bytes / ref_bytes
        rp = result.partitions["root_part"]
        print(f"installed root: {tree_bytes / 2**20:.1f} MiB in blocks; root_part {rp['bytes'] / 2**20:.1f} MiB "
              f"(headroom {args.headroom} MiB), efi_part {args.efi} MiB")
        print(f"images.tar.gz: {result.archive_bytes:,} bytes; the root alone ({comp}): {ref_bytes:,} bytes; "
              f"ratio {ratio:.3f}x (goal <= 1.1x) {'OK' if ratio <= 1.1 else 'OVER'}")
        print(f"image step wall time: median {statistics.median(times):.2f} s over {len(times)} run(s) "
              f"({', '.join(f'{x:.2f}' for x in times)})")
        print("  phases of the last run: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.phases.items()))
        return 0 if ratio <= 1.1 else 1
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
