"""images.tar.gz read as the Android Terminal app reads it (facts §2).

- a gzip'd tar of plain regular files (the app has no sparse-file support: a GNU sparse member
  is refused), at the top level: `build_id`, `vm_config.json`, and the partition files
  vm_config.json names (`$PAYLOAD_DIR/<member>`);
- the last whitespace-separated token of `build_id` is a 4-digit year >= 2025;
- vm_config.json is a JSON object with `"name": "debian"` and `disks[].partitions[]` each
  with a label, a path, a GUID and `writable`.
Every refusal is one line naming the member and the rule, and leaves nothing extracted; only the
named members are extracted, without links. The gzip stream is read once when build_id and
vm_config.json come ahead of the partition files (as the image step writes them): 1 GB of
partitions decompressed once, not a scan then a second decompression to extract.
"""

from __future__ import annotations

import re
import tarfile
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..formats import jsondoc
from .errors import BootError, ImageRefused

REQUIRED = ("build_id", "vm_config.json")
PAYLOAD = "$PAYLOAD_DIR/"
_YEAR = re.compile(r"^\d{4}$")
_MEMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TEXT_MAX = 1 << 20            # build_id, vm_config.json


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
        data = jsondoc.parse(text)
    except ValueError as exc:
        raise ImageRefused(f"vm_config.json is {exc}") from None
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
    """Check archive's members and rules, then extract the needed members into folder.

    One pass over the gzip stream in the usual case (build_id and vm_config.json ahead of the
    partition files, as `avfrepo image` and the app's own images order them): once vm_config.json
    has named the partitions, each of them is written out as the stream reaches it. A member the
    pass could not place (a partition ahead of vm_config.json) is read in a second pass. Each
    check runs on the whole member list, as before; a refusal leaves nothing in folder."""
    if not archive.is_file():
        raise ImageRefused(f"{archive}: no such file")
    try:
        tf = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ImageRefused(f"{archive.name} is not a gzip'd tar archive ({exc})") from None
    made = not folder.exists()
    written: dict[str, tarfile.TarInfo] = {}    # partition file in folder -> the member it holds
    texts_written = False
    try:
        with tf:
            members, texts = _scan(tf, archive, folder, written)
            missing = [m for m in REQUIRED if m not in members]
            if missing:
                raise ImageRefused(f"{archive.name} has no {', '.join(missing)} (the Terminal app needs "
                                   f"{', '.join(REQUIRED)} and the partition files)")
            for name in REQUIRED:
                _plain(members[name])
            build_id = check_build_id(_decode(members["build_id"], texts["build_id"]))
            cfg = parse_vm_config(_decode(members["vm_config.json"], texts["vm_config.json"]))
            for p in cfg.partitions:
                m = members.get(p.member)
                if m is None:
                    raise ImageRefused(f"vm_config.json names $PAYLOAD_DIR/{p.member} (partition {p.label}), "
                                       f"which {archive.name} does not have")
                _plain(m)
            folder.mkdir(parents=True, exist_ok=True)
            texts_written = True
            for name in REQUIRED:
                (folder / name).write_bytes(texts[name])
            needed = {p.member for p in cfg.partitions}
            for name in needed:
                if written.get(name) is not members[name]:      # not placed by the first pass
                    _extract(tf, members[name], folder / name)
            for name in set(written) - needed:
                (folder / name).unlink()
    except BaseException:
        for name in [*written, *(REQUIRED if texts_written else ())]:
            (folder / name).unlink(missing_ok=True)
        if made and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise
    return Image(build_id, cfg, folder)


def _scan(tf: tarfile.TarFile, archive: Path, folder: Path,
          written: dict[str, tarfile.TarInfo]) -> tuple[dict[str, tarfile.TarInfo], dict[str, bytes]]:
    """Walk the member list once (the last member of a name counts, as for the app's extraction):
    the texts of build_id and vm_config.json, and, once vm_config.json names them, the partition
    files written to folder as the stream passes them (recorded in written)."""
    members: dict[str, tarfile.TarInfo] = {}
    texts: dict[str, bytes] = {}
    named: set[str] | None = None            # the partition members, once vm_config.json is read
    try:
        for m in tf:
            name = m.name.removeprefix("./")
            members[name] = m
            if name in REQUIRED:
                texts.pop(name, None)
                named = None                 # a (second) build_id or vm_config.json: read the names again
                if m.isreg() and not m.issparse() and m.size <= _TEXT_MAX:
                    f = tf.extractfile(m)
                    assert f is not None
                    texts[name] = f.read()
                if named is None and all(n in texts for n in REQUIRED):
                    named = _named(texts["vm_config.json"])
            elif named is not None and name in named:
                if written.pop(name, None) is not None:
                    (folder / name).unlink()         # an earlier member of that name: this one counts
                if m.isreg() and not m.issparse():
                    folder.mkdir(parents=True, exist_ok=True)
                    written[name] = m                # before it is written: a damaged stream can stop it midway
                    _extract(tf, m, folder / name)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ImageRefused(f"{archive.name}: the archive is damaged ({exc})") from None
    return members, texts


def _named(vm_config: bytes) -> set[str] | None:
    """The partition members vm_config.json names, or None when it does not parse (the checks
    after the scan say why)."""
    try:
        return {p.member for p in parse_vm_config(vm_config.decode()).partitions}
    except (ImageRefused, UnicodeDecodeError):
        return None


def _extract(tf: tarfile.TarFile, m: tarfile.TarInfo, dest: Path) -> None:
    """m's data into dest; a failure to write is this machine's (BootError), not the archive's."""
    src = tf.extractfile(m)
    assert src is not None
    try:
        out = open(dest, "wb")
    except OSError as exc:
        raise BootError(f"cannot write {dest}: {exc.strerror}") from None
    with out:
        while chunk := src.read(1 << 20):
            try:
                out.write(chunk)
            except OSError as exc:
                raise BootError(f"cannot write {dest}: {exc.strerror} (the partitions need "
                                f"{m.size // (1 << 20)} MiB for {m.name})") from None


def _plain(m: tarfile.TarInfo) -> None:
    if m.issparse():
        raise ImageRefused(f"member {m.name} is a sparse file (the Terminal app reads the archive without "
                           "sparse support: make the tar without --sparse)")
    if not m.isreg():
        raise ImageRefused(f"member {m.name} is not a regular file")


def _decode(m: tarfile.TarInfo, data: bytes | None) -> str:
    if m.size > _TEXT_MAX or data is None:
        raise ImageRefused(f"member {m.name} is {m.size} bytes: too large for a text file")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ImageRefused(f"member {m.name} is not UTF-8 text") from None
