"""The VM's disk, assembled as AVF's VM manager does from vm_config.json's partition list.

One GPT disk (512-byte sectors) holding the partitions in the listed order, each starting on a
1 MiB boundary, with:
- the unique partition GUID vm_config.json gives (what the guest sees as PARTUUID);
- the partition name = the label (PARTLABEL);
- the generic Linux filesystem data type GUID for EVERY partition, the ESP included: AVF's
  composite disk does not give the ESP its EFI System type (facts §7), which is why systemd's
  ESP checks must be relaxed in the guest;
- no attribute bits. A partition vm_config.json says is not writable is read-only to the guest
  on AVF; qemu cannot refuse writes to a part of one virtio disk, so the boot checksums each
  read-only partition before and after the run and fails when the guest changed it, and checks
  in the guest that it is not mounted read-write.
The partition bytes are copied in (copy_file_range: in-kernel, holes stay cheap).
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
ALIGN = 1 << 20
ENTRIES = 128
ENTRY_SIZE = 128
ENTRY_SECTORS = ENTRIES * ENTRY_SIZE // SECTOR       # 32
LINUX_FS_TYPE = "0fc63daf-8483-4772-8e79-3d69d8477de4"
ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"


@dataclass(frozen=True)
class Part:
    label: str
    guid: str
    image: Path
    writable: bool


@dataclass(frozen=True)
class Placed:
    label: str
    guid: str
    writable: bool
    first_lba: int
    last_lba: int
    number: int                 # 1-based: vda<number> in the guest

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR


def _up(n: int, a: int) -> int:
    return -(-n // a) * a


def layout(parts: list[Part]) -> tuple[list[Placed], int]:
    """(placed partitions, disk size in bytes)."""
    placed, pos = [], ALIGN
    for i, p in enumerate(parts, 1):
        size = _up(p.image.stat().st_size, SECTOR)
        if size == 0:
            raise ValueError(f"partition {p.label}: {p.image.name} is empty")
        placed.append(Placed(p.label, p.guid, p.writable, pos // SECTOR, (pos + size) // SECTOR - 1, i))
        pos = _up(pos + size, ALIGN)
    disk = pos + ALIGN          # room for the backup entries and header
    return placed, disk


def _entry(p: Placed) -> bytes:
    name = p.label.encode("utf-16-le")[:72].ljust(72, b"\0")
    attrs = 0
    return (uuid.UUID(LINUX_FS_TYPE).bytes_le + uuid.UUID(p.guid).bytes_le
            + struct.pack("<QQQ", p.first_lba, p.last_lba, attrs) + name)


def _header(disk_guid: str, current: int, backup: int, first: int, last: int, entries_lba: int,
            entries_crc: int) -> bytes:
    def pack(crc: int) -> bytes:
        return struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x00010000, 92, crc, 0, current, backup,
                           first, last, uuid.UUID(disk_guid).bytes_le, entries_lba, ENTRIES, ENTRY_SIZE,
                           entries_crc)
    return pack(zlib.crc32(pack(0))).ljust(SECTOR, b"\0")


def _protective_mbr(total_sectors: int) -> bytes:
    mbr = bytearray(SECTOR)
    size = min(total_sectors - 1, 0xFFFFFFFF)
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, size)
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def assemble(parts: list[Part], disk: Path, disk_guid: str | None = None) -> list[Placed]:
    """Write the GPT disk at `disk`; returns where each partition is."""
    placed, size = layout(parts)
    total = size // SECTOR
    entries = b"".join(_entry(p) for p in placed).ljust(ENTRIES * ENTRY_SIZE, b"\0")
    crc = zlib.crc32(entries)
    first_usable, last_usable = 2 + ENTRY_SECTORS, total - 2 - ENTRY_SECTORS
    dg = disk_guid or str(uuid.uuid4())
    with open(disk, "wb") as out:
        out.truncate(size)
        out.write(_protective_mbr(total))
        out.write(_header(dg, 1, total - 1, first_usable, last_usable, 2, crc))
        out.write(entries)
        out.seek((total - 1 - ENTRY_SECTORS) * SECTOR)
        out.write(entries)
        out.write(_header(dg, total - 1, 1, first_usable, last_usable, total - 1 - ENTRY_SECTORS, crc))
        for p, spec in zip(placed, parts):
            with open(spec.image, "rb") as src:
                _copy(src.fileno(), out.fileno(), p.offset, spec.image.stat().st_size)
    return placed


def _copy(src: int, dst: int, offset: int, length: int) -> None:
    done = 0
    try:
        while done < length:
            n = os.copy_file_range(src, dst, length - done, 0 + done, offset + done)
            if n == 0:
                break
            done += n
    except OSError:
        pass
    while done < length:                      # fallback (or a filesystem without copy_file_range)
        chunk = os.pread(src, min(8 << 20, length - done), done)
        if not chunk:
            break
        if chunk.count(0) != len(chunk):
            os.pwrite(dst, chunk, offset + done)
        done += len(chunk)


def read_table(disk: Path) -> list[dict[str, object]]:
    """The partition entries of a GPT disk (primary table; header CRCs checked)."""
    with open(disk, "rb") as f:
        f.seek(SECTOR)
        hdr = f.read(92)
        if hdr[:8] != b"EFI PART":
            raise ValueError(f"{disk}: no GPT header")
        fields = struct.unpack("<8sIIIIQQQQ16sQIII", hdr)
        crc = fields[3]
        if zlib.crc32(hdr[:16] + b"\0\0\0\0" + hdr[20:92]) != crc:
            raise ValueError(f"{disk}: GPT header CRC mismatch")
        entries_lba, n, esize, ecrc = fields[10], fields[11], fields[12], fields[13]
        f.seek(entries_lba * SECTOR)
        raw = f.read(n * esize)
    if zlib.crc32(raw) != ecrc:
        raise ValueError(f"{disk}: GPT partition entries CRC mismatch")
    out = []
    for i in range(n):
        e = raw[i * esize:(i + 1) * esize]
        if e[:16] == bytes(16):
            continue
        first, last, attrs = struct.unpack("<QQQ", e[32:56])
        out.append({"number": i + 1, "type": str(uuid.UUID(bytes_le=e[:16])),
                    "guid": str(uuid.UUID(bytes_le=e[16:32])), "first_lba": first, "last_lba": last,
                    "attributes": attrs, "name": e[56:128].decode("utf-16-le").rstrip("\0")})
    return out
