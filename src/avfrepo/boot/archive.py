"""images.tar.gz read as the Android Terminal app reads it (facts §2).

- a gzip'd tar of plain regular files (the app has no sparse-file support: a GNU sparse member
  is refused), at the top level: `build_id`, `vm_config.json`, and the partition files
  vm_config.json names (`$PAYLOAD_DIR/<member>`);
- the last whitespace-separated token of `build_id` is a 4-digit year >= 2025;
- vm_config.json is a JSON object with `"name": "debian"` and `disks[].partitions[]` each
  with a label, a path, a GUID and `writable`.
Every refusal is one line naming the member and the rule. Nothing is extracted before the
member list has been checked, and only the named members are extracted, without links.
"""

from __future__ import annotations

import json
import re
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import ImageRefused

REQUIRED = ("build_id", "vm_config.json")
PAYLOAD = "$PAYLOAD_DIR/"
_YEAR = re.compile(r"^\d{4}$")
_MEMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class PartitionSpec:
    label: str
    member: str          # archive member holding the partition image
    guid: str            # unique partition GUID, lower case
    writable: bool


@dataclass(frozen=True)
class VmConfig:
    raw: dict
    partitions: tuple[PartitionSpec, ...]
    memory_mib: int
    cpus: str                  # cpu_topology: "match_host" or "one_cpu"
    balloon: bool
    network: bool
    shared_paths: tuple[str, ...]


@dataclass(frozen=True)
class Image:
    build_id: str
    vm_config: VmConfig
    folder: Path                  # where the members were extracted

    def member(self, name: str) -> Path:
        return self.folder / name


def check_build_id(text: str) -> str:
    tokens = text.split()
    if not tokens:
        raise ImageRefused("build_id is empty (the Terminal app reads a year from its last token)")
    year = tokens[-1]
    if not _YEAR.match(year) or int(year) < 2025:
        raise ImageRefused(f"build_id: the last token {year[:40]!r} is not a 4-digit year >= 2025 "
                           "(the Terminal app refuses the image)")
    return text.strip()


def parse_vm_config(text: str) -> VmConfig:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ImageRefused(f"vm_config.json is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ImageRefused("vm_config.json is not a JSON object")
    if data.get("name") != "debian":
        raise ImageRefused(f"vm_config.json: \"name\" is {data.get('name')!r}, not \"debian\" "
                           "(the Terminal app finds its VM by that name)")
    disks = data.get("disks")
    if not isinstance(disks, list) or not disks:
        raise ImageRefused("vm_config.json has no \"disks\"")
    parts: list[PartitionSpec] = []
    for d, disk in enumerate(disks):
        plist = disk.get("partitions") if isinstance(disk, dict) else None
        if not isinstance(plist, list) or not plist:
            raise ImageRefused(f"vm_config.json: disks[{d}] has no \"partitions\"")
        for i, p in enumerate(plist):
            where = f"vm_config.json: disks[{d}].partitions[{i}]"
            if not isinstance(p, dict):
                raise ImageRefused(f"{where} is not an object")
            label, path, guid, writable = p.get("label"), p.get("path"), p.get("guid"), p.get("writable", False)
            if not isinstance(label, str) or not label or len(label) > 36:
                raise ImageRefused(f"{where}: \"label\" must be a string of 1..36 characters")
            if not isinstance(path, str) or not path.startswith(PAYLOAD) or not _MEMBER.match(path[len(PAYLOAD):]):
                raise ImageRefused(f"{where}: \"path\" {str(path)[:80]!r} is not $PAYLOAD_DIR/<file of the archive>")
            try:
                guid = str(uuid.UUID(str(guid)))
            except ValueError:
                raise ImageRefused(f"{where}: \"guid\" {str(guid)[:60]!r} is not a GUID") from None
            if not isinstance(writable, bool):
                raise ImageRefused(f"{where}: \"writable\" must be true or false")
            parts.append(PartitionSpec(label, path[len(PAYLOAD):], guid, writable))
    guids = [p.guid for p in parts]
    if len(set(guids)) != len(guids):
        raise ImageRefused("vm_config.json: two partitions have the same GUID")
    mem = data.get("memory_mib", 1024)
    if not isinstance(mem, int) or isinstance(mem, bool) or mem < 128:
        raise ImageRefused(f"vm_config.json: \"memory_mib\" {mem!r} is not a number of MiB >= 128")
    shared = tuple(s.get("sharedPath", "") for s in data.get("sharedPath", []) if isinstance(s, dict))
    return VmConfig(data, tuple(parts), mem, str(data.get("cpu_topology", "one_cpu")),
                    data.get("auto_memory_balloon") is True, data.get("network") is True, shared)


def read(archive: Path, folder: Path) -> Image:
    """Check archive's members and rules, then extract the needed members into folder."""
    if not archive.is_file():
        raise ImageRefused(f"{archive}: no such file")
    try:
        tf = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ImageRefused(f"{archive.name} is not a gzip'd tar archive ({exc})") from None
    with tf:
        try:
            members = {m.name.removeprefix("./"): m for m in tf.getmembers()}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ImageRefused(f"{archive.name}: the archive is damaged ({exc})") from None
        missing = [m for m in REQUIRED if m not in members]
        if missing:
            raise ImageRefused(f"{archive.name} has no {', '.join(missing)} (the Terminal app needs "
                               f"{', '.join(REQUIRED)} and the partition files)")
        for name in REQUIRED:
            _plain(members[name])
        build_id = check_build_id(_text(tf, members["build_id"]))
        cfg = parse_vm_config(_text(tf, members["vm_config.json"]))
        for p in cfg.partitions:
            m = members.get(p.member)
            if m is None:
                raise ImageRefused(f"vm_config.json names $PAYLOAD_DIR/{p.member} (partition {p.label}), "
                                   f"which {archive.name} does not have")
            _plain(m)
        folder.mkdir(parents=True, exist_ok=True)
        for name in {*REQUIRED, *(p.member for p in cfg.partitions)}:
            src = tf.extractfile(members[name])
            assert src is not None
            with open(folder / name, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
    return Image(build_id, cfg, folder)


def _plain(m: tarfile.TarInfo) -> None:
    if m.issparse():
        raise ImageRefused(f"member {m.name} is a sparse file (the Terminal app reads the archive without "
                           "sparse support: make the tar without --sparse)")
    if not m.isreg():
        raise ImageRefused(f"member {m.name} is not a regular file")


def _text(tf: tarfile.TarFile, m: tarfile.TarInfo) -> str:
    if m.size > 1 << 20:
        raise ImageRefused(f"member {m.name} is {m.size} bytes: too large for a text file")
    f = tf.extractfile(m)
    assert f is not None
    try:
        return f.read().decode()
    except UnicodeDecodeError:
        raise ImageRefused(f"member {m.name} is not UTF-8 text") from None
