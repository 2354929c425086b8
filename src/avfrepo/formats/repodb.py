"""pacman repository databases (`<repo>.db.tar.gz` / `.files.tar.gz`, also a remote `core.db`).

A gzip (or other libarchive-readable, here: tarfile-readable) tar of `<name>-<ver>/desc`
entries in pacman's `%KEY%` / values / blank-line format.
"""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DbEntry:
    name: str
    version: str
    filename: str
    arch: str
    csize: int | None
    sha256: str | None
    pgpsig: str | None
    fields: dict[str, list[str]] = field(default_factory=dict, compare=False)

    @property
    def depends(self) -> list[str]:
        return self.fields.get("DEPENDS", [])


def parse_desc(text: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("%") and line.endswith("%") and len(line) > 2:
            key = line[1:-1]
            fields[key] = []
        elif line == "":
            key = None
        elif key is not None:
            fields[key].append(line)
    return fields


def _entry(fields: dict[str, list[str]]) -> DbEntry:
    def one(k: str) -> str | None:
        v = fields.get(k)
        return v[0] if v else None
    name, version, filename = one("NAME"), one("VERSION"), one("FILENAME")
    if not (name and version and filename):
        raise ValueError("db entry without NAME, VERSION or FILENAME")
    csize = one("CSIZE")
    return DbEntry(name, version, filename, one("ARCH") or "", int(csize) if csize else None,
                   one("SHA256SUM"), one("PGPSIG"), fields)


MAX_TAR_BYTES = 256 * 1024 * 1024   # decompressed; ALARM's core.db is a few MB
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def decompress(raw: bytes, limit: int | None = None) -> bytes:
    """The tar inside a gzip, bzip2 or xz db (or raw as it is, for a plain tar), never more than
    `limit` bytes of it: a small db that unpacks to gigabytes (a bomb) is a ValueError."""
    limit = MAX_TAR_BYTES if limit is None else limit
    if raw[:2] == b"\x1f\x8b":
        d, kind = zlib.decompressobj(wbits=31), "gzip"
    elif raw[:3] == b"BZh":
        d, kind = bz2.BZ2Decompressor(), "bzip2"
    elif raw[:6] == b"\xfd7zXZ\x00":
        d, kind = lzma.LZMADecompressor(), "xz"
    elif raw[:4] == ZSTD_MAGIC:
        raise ValueError("zstd-compressed (decompress it first)")
    else:
        if len(raw) > limit:
            raise ValueError(f"larger than {limit} bytes")
        return raw
    out = bytearray()
    data = raw
    try:
        while True:
            chunk = d.decompress(data, limit + 1 - len(out))
            out += chunk
            if len(out) > limit:
                raise ValueError(f"{kind} data unpacks to more than {limit} bytes (a decompression bomb?)")
            if d.eof:
                return bytes(out)
            if kind == "gzip":
                data = d.unconsumed_tail
                if not data and not chunk:
                    raise ValueError(f"truncated {kind} data")
            else:
                data = b""
                if d.needs_input and not chunk:
                    raise ValueError(f"truncated {kind} data")
    except (zlib.error, OSError, lzma.LZMAError, EOFError) as exc:
        raise ValueError(f"corrupt {kind} data: {exc}") from None


def read_db(data: bytes | Path) -> dict[str, DbEntry]:
    """name -> entry. Accepts the db bytes or a path; raises ValueError on a bad archive."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    entries: dict[str, DbEntry] = {}
    try:
        raw = decompress(raw)
    except ValueError as exc:
        raise ValueError(f"not a readable repository database: {exc}") from None
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith("/desc"):
                    continue
                fh = tar.extractfile(member)
                assert fh is not None
                entry = _entry(parse_desc(fh.read().decode("utf-8", "replace")))
                entries[entry.name] = entry
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"not a readable repository database: {exc}") from None
    return entries


def read_files_db(path: Path) -> dict[str, list[str]]:
    """name-version -> file list, from a `.files` database."""
    out: dict[str, list[str]] = {}
    try:
        raw = decompress(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"not a readable files database: {exc}") from None
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith("/files"):
                    fh = tar.extractfile(member)
                    assert fh is not None
                    out[member.name.rsplit("/", 1)[0]] = parse_desc(fh.read().decode("utf-8", "replace")).get("FILES", [])
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"not a readable files database: {exc}") from None
    return out
