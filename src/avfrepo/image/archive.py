"""images.tar.gz: a gzip'd tar the Terminal app reads (gzip, no sparse entries).

GNU tar writes a file with holes as an ordinary member unless asked for --sparse, which is
never passed: every member is a plain regular file (the partition images compress their
zeros instead). pigz compresses in parallel when it is installed, gzip otherwise; both write
the gzip format.
"""

from __future__ import annotations

from pathlib import Path

from ..fsutil import sha256_file
from ..run import run, which

MEMBERS = ("build_id", "vm_config.json", "README", "efi_part", "root_part")


def compressor() -> str:
    return "pigz" if which("pigz") else "gzip"


def describe(folder: Path) -> dict[str, dict[str, object]]:
    return {m: {"bytes": (folder / m).stat().st_size, "sha256": sha256_file(folder / m)} for m in MEMBERS}


def write(folder: Path, out: Path) -> str:
    """Tar MEMBERS of folder into out (gzip); returns the compressor used."""
    comp = compressor()
    run(["tar", "--create", "--format=gnu", "--owner=0", "--group=0", "--numeric-owner",
         f"--use-compress-program={comp}", "--file", str(out), "-C", str(folder), *MEMBERS], timeout=3600)
    return comp
