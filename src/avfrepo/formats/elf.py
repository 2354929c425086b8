"""ELF headers: which machine a file's code is for, and whether a package may hold it.

Only the start of the ELF header is read (e_ident, e_type, e_machine: the first 20 bytes,
the same place in ELF32 and ELF64); e_machine is read in the byte order e_ident names.

The rule (what a pacman package of arch A IS): every ELF object a package holds is for A's
machine (`aarch64` -> EM_AARCH64, `x86_64` -> EM_X86_64), eBPF objects (loaded by the
kernel, whatever the CPU) aside; an `any` package holds no ELF object at all, as namcap's
`anyelf` rule says. Files under usr/lib/firmware/ run on devices, not on the CPU: they are
not judged. Members that are themselves compressed (a `.ko.zst` kernel module) are not
opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

MAGIC = b"\x7fELF"
HEAD_BYTES = 20                 # e_ident[16] + e_type[2] + e_machine[2]

EM_386 = 3
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
EM_BPF = 247

MACHINE_NAMES = {
    2: "SPARC", EM_386: "Intel 80386", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "S/390",
    EM_ARM: "ARM (32-bit)", EM_X86_64: "x86-64", EM_AARCH64: "AArch64", EM_RISCV: "RISC-V",
    EM_BPF: "eBPF", 258: "LoongArch",
}

# pacman arch -> the e_machine of its code
ARCH_MACHINES = {"aarch64": EM_AARCH64, "x86_64": EM_X86_64, "i686": EM_386, "armv7h": EM_ARM,
                 "riscv64": EM_RISCV, "loong64": 258}

NEUTRAL = frozenset({EM_BPF})               # machines allowed in any non-`any` package
NOT_JUDGED = ("usr/lib/firmware/",)         # device firmware, not code for the CPU


def machine_name(machine: int) -> str:
    return MACHINE_NAMES.get(machine, f"machine {machine}")


@dataclass(frozen=True)
class ElfHeader:
    bits: int               # 32 or 64 (EI_CLASS)
    little_endian: bool     # EI_DATA
    machine: int            # e_machine

    @property
    def machine_name(self) -> str:
        return machine_name(self.machine)


def read_header(head: bytes) -> ElfHeader | None:
    """The header at the start of `head` (a file's first bytes), None when it is no ELF file.
    ValueError for a file that starts like ELF but whose header is cut short or malformed."""
    if not head.startswith(MAGIC):
        return None
    if len(head) < HEAD_BYTES:
        raise ValueError(f"ELF header cut short ({len(head)} bytes)")
    bits = {1: 32, 2: 64}.get(head[4])
    if bits is None:
        raise ValueError(f"ELF header with invalid class {head[4]}")
    order = {1: "little", 2: "big"}.get(head[5])
    if order is None:
        raise ValueError(f"ELF header with invalid data encoding {head[5]}")
    return ElfHeader(bits, order == "little", int.from_bytes(head[18:20], order))


def expected_machine(arch: str) -> int | None:
    """The e_machine a package of `arch` holds code for; None for `any`. ValueError when the
    arch is unknown here (nothing to compare with)."""
    if arch == "any":
        return None
    try:
        return ARCH_MACHINES[arch]
    except KeyError:
        raise ValueError(f"arch {arch!r}: no ELF machine known for it") from None


def problems(arch: str, members: Iterable[tuple[str, bytes]]) -> list[str]:
    """What in `members` ((path in the package, its first HEAD_BYTES bytes)) a package of
    `arch` may not hold, one message per member naming it and its machine."""
    want = expected_machine(arch)
    out = []
    for name, head in members:
        if name.startswith(NOT_JUDGED):
            continue
        try:
            hdr = read_header(head)
        except ValueError as exc:
            out.append(f"{name}: {exc}")
            continue
        if hdr is None:
            continue
        if want is None:
            out.append(f"{name}: an ELF object for {hdr.machine_name} in an arch=any package "
                       "(an `any` package holds no machine code)")
        elif hdr.machine != want and hdr.machine not in NEUTRAL:
            out.append(f"{name}: an ELF object for {hdr.machine_name}, not {machine_name(want)} "
                       f"(the package says arch={arch})")
    return out
