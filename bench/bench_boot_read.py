#!/usr/bin/env python3
"""`avfrepo boot`'s archive step: one pass over images.tar.gz against a scan-then-extract read.

Writes an images.tar.gz shaped like the image step's (build_id, vm_config.json, README, then
efi_part and root_part; --mib MiB of zero and hex-of-random blocks, so gzip has real work),
then reads it, alternating, with
  a. avfrepo.boot.archive.read: the members vm_config.json names are written out as the gzip
     stream reaches them (one decompression);
  b. the plain tarfile way: getmembers() (a scan to the end of the stream), then extractfile()
     of each partition, which seeks back and decompresses again;
and prints the CPU seconds of each (median of --repeat) and their ratio. Goal <= 0.8: both write
the same partitions (on a VM much of the cost), so the second decompression is what one pass can
save; a read that decompressed twice again would be ~1.0. (The suite's stock boot image, 1 GB of
real partitions at gzip -6: 8.5-9.7 -> 4.4-5.0 CPU s, ~0.5; this bench: 0.59-0.74 here.)

    .venv/bin/python bench/bench_boot_read.py [--mib 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from avfrepo.boot import archive  # noqa: E402

EFI_GUID = "6f4a1b2c-0d3e-4f50-8a6b-7c8d9e0f1a2b"
ROOT_GUID = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def partition(path: Path, mib: int) -> None:
    """mib MiB shaped like a filesystem image: a quarter zeros (free blocks), the rest data gzip has
    to decode literal by literal (hex of random bytes: ~2x compressible, as binaries and text are)."""
    with open(path, "wb") as f:
        for i in range(mib):
            f.write(bytes(1 << 20) if i % 4 == 0 else os.urandom(1 << 19).hex().encode())


def make(folder: Path, mib: int) -> Path:
    cfg = {"name": "debian", "disks": [{"partitions": [
        {"label": "EFI", "path": "$PAYLOAD_DIR/efi_part", "writable": True, "guid": EFI_GUID},
        {"label": "ROOT", "path": "$PAYLOAD_DIR/root_part", "writable": True, "guid": ROOT_GUID}]}]}
    (folder / "build_id").write_text("avfrepo bench 2026\n")
    (folder / "vm_config.json").write_text(json.dumps(cfg))
    (folder / "README").write_text("bench\n")
    partition(folder / "efi_part", max(1, mib // 4))
    partition(folder / "root_part", mib - max(1, mib // 4))
    out = folder / "images.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=1, format=tarfile.GNU_FORMAT) as tf:
        for name in ("build_id", "vm_config.json", "README", "efi_part", "root_part"):
            tf.add(folder / name, arcname=name)
    return out


def scan_then_extract(path: Path, dest: Path) -> None:
    dest.mkdir()
    with tarfile.open(path, "r:gz") as tf:
        members = {m.name: m for m in tf.getmembers()}
        for name in ("build_id", "vm_config.json", "efi_part", "root_part"):
            src = tf.extractfile(members[name])
            with open(dest / name, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=512, help="MiB of partition data (default 512)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each way (default 3)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="avfrepo-bench-read-"))
    try:
        img = make(work, args.mib)
        print(f"images.tar.gz: {img.stat().st_size / (1 << 20):.0f} MiB for {args.mib} MiB of partitions")
        times: dict[str, list[float]] = {"one pass (archive.read)": [], "scan, then extract": []}
        for _ in range(args.repeat):
            for label, fn in (("one pass (archive.read)", lambda d: archive.read(img, d)),
                              ("scan, then extract", lambda d: scan_then_extract(img, d))):
                dest = work / "out"
                c = cpu()
                fn(dest)
                times[label].append(cpu() - c)
                shutil.rmtree(dest)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in med.items():
            print(f"  {k:<26} {v:6.2f} CPU s (median of {args.repeat})")
        ratio = med["one pass (archive.read)"] / med["scan, then extract"]
        print(f"  ratio one pass / scan-then-extract: {ratio:.2f} (goal <= 0.8)")
        return 0 if ratio <= 0.8 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
