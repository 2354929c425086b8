"""`avfrepo boot`: start an images.tar.gz the way the Android Terminal app does, report what a
user would see.

1. read the archive as the app does, refuse what it would refuse (archive.py);
2. assemble the GPT disk like AVF's VM manager (gpt.py);
3. play the Android side: virtiofs shares, CA and client certificate, the DebianService port
   file and a stand-in of the DebianService gRPC server (android.py, debian_service.py);
4. qemu-system-aarch64 with UEFI (qemu.py), the consoles captured;
5. the checks (checks.py), each with its time; then a clean poweroff.
The report holds every check; `ok` is True only when all held.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from . import android, archive, checks, gpt, qemu
from .errors import BootError, ImageRefused

__all__ = ["BootError", "ImageRefused", "BootReport", "Check", "boot"]


@dataclass
class Check:
    name: str
    ok: bool | None                 # None: not applicable / skipped (with the reason in detail)
    detail: str = ""
    at: float | None = None         # seconds since qemu started (milestones)
    seconds: float | None = None    # how long the check itself took

    @property
    def status(self) -> str:
        return {True: "ok", False: "FAIL", None: "skip"}[self.ok]


@dataclass
class BootReport:
    archive: str
    build_id: str = ""
    accel: str = ""
    cpus: int = 0
    memory_mib: int = 0
    checks: list[Check] = field(default_factory=list)
    agents: dict[str, list[str]] = field(default_factory=dict)
    console_tail: list[str] = field(default_factory=list)
    keep: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok is not False for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["ok"] = self.ok
        d["failed"] = [c.name for c in self.failed]
        for c, j in zip(self.checks, d["checks"]):
            j["status"] = c.status
        return d

    def text(self) -> str:
        head = "OK: every check held" if self.ok else \
            f"FAILED: {', '.join(c.name for c in self.failed)}"
        lines = [f"avfrepo boot {Path(self.archive).name}: {head}",
                 f"  build_id {self.build_id}; {self.accel}, {self.cpus} CPU(s), {self.memory_mib} MiB"]
        for c in self.checks:
            at = f"{c.at:7.1f}s" if c.at is not None else " " * 8
            took = f"({c.seconds:.1f}s)" if c.seconds is not None else ""
            lines.append(f"  {c.status:<4} {at} {c.name:<22} {took:<8} {c.detail}".rstrip())
        if not self.ok and self.console_tail:
            lines.append("  console (last lines):")
            lines += [f"    {ln}" for ln in self.console_tail]
        if self.keep:
            lines.append(f"  kept: {self.keep}")
        return "\n".join(lines)


def boot(image: Path, *, timeout: float = 900, keep: Path | None = None, console: bool = False,
         avf_tree: Path | None = None, progress: Callable[[str], None] = lambda s: None) -> BootReport:
    """Boot images.tar.gz; raises ImageRefused / BootError before the VM starts, else a report."""
    start = time.monotonic()
    report = BootReport(archive=str(image))
    for tool in ("openssl",):
        if not shutil.which(tool):
            raise BootError(f"missing tool: {tool}")
    qemu.qemu_binary()
    qemu.firmware()
    android.virtiofsd()
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        if any(keep.iterdir()):
            raise BootError(f"--keep {keep}: the folder is not empty")
        work = keep
    else:
        work = Path(tempfile.mkdtemp(prefix="avfrepo-boot-"))
    try:
        t = time.monotonic()
        img = archive.read(image, work / "payload")
        report.build_id = img.build_id
        cfg = img.vm_config
        report.checks.append(Check("archive", True, f"{len(cfg.partitions)} partitions: " + ", ".join(
            f"{p.label} ({'rw' if p.writable else 'ro'})" for p in cfg.partitions), seconds=_since(t)))
        t = time.monotonic()
        parts = [gpt.Part(p.label, p.guid, img.member(p.member), p.writable) for p in cfg.partitions]
        placed = gpt.assemble(parts, work / "disk.img")
        for p in parts:
            p.image.unlink()            # the disk holds them now
        readonly = {p.label: checks.region_digest(work / "disk.img", p) for p in placed if not p.writable}
        report.checks.append(Check("disk", True, "GPT, generic Linux type on every partition: " + ", ".join(
            f"vda{p.number}={p.label}" for p in placed), seconds=_since(t)))
        report.checks += checks.static(work / "disk.img", placed)
        session = checks.Session(work, img, placed, report, progress, console=console, avf_tree=avf_tree)
        session.run(timeout)
        for label, digest in readonly.items():
            p = next(x for x in placed if x.label == label)
            changed = checks.region_digest(work / "disk.img", p) != digest
            report.checks.append(Check(f"read-only {label}", not changed,
                                       "the guest wrote to it (vm_config.json says \"writable\": false; the "
                                       "phone refuses those writes)" if changed else "unchanged by the guest"))
    finally:
        report.seconds = _since(start)
        if keep:
            report.keep = str(keep)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _since(t: float) -> float:
    return round(time.monotonic() - t, 2)


def exit_code(report: BootReport) -> int:
    return 0 if report.ok else 1


os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
