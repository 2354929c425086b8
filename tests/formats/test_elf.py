"""ELF headers: hand-made ELF32/ELF64 headers, a real object from the host's compiler, and the
arch rule over a package's members (a package built by the real makepkg)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import textwrap
from pathlib import Path

import pytest

from avfrepo import config
from avfrepo.build.backends import MakepkgBackend
from avfrepo.demo import write_config
from avfrepo.errors import ToolError
from avfrepo.formats import elf, pkginfo

from ..conftest import require_build_user, require_tools


def header(machine: int, *, bits: int = 64, little: bool = True, e_type: int = 2) -> bytes:
    """A whole ELF header, written field by field (ELF64: 64 bytes, ELF32: 52)."""
    order = "<" if little else ">"
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if little else 2, 1, 0]) + bytes(8)
    if bits == 64:
        rest = struct.pack(order + "HHIQQQIHHHHHH", e_type, machine, 1, 0x400000, 64, 0, 0, 64, 56, 0, 64, 0, 0)
    else:
        rest = struct.pack(order + "HHIIIIIHHHHHH", e_type, machine, 1, 0x8000, 52, 0, 0, 52, 32, 0, 40, 0, 0)
    return ident + rest


def test_handmade_elf64_headers_name_their_machine():
    assert len(header(elf.EM_AARCH64)) == 64
    assert elf.read_header(header(elf.EM_AARCH64)) == elf.ElfHeader(64, True, 183)
    assert elf.read_header(header(elf.EM_X86_64)).machine_name == "x86-64"
    assert elf.read_header(header(elf.EM_AARCH64)).machine_name == "AArch64"
    assert elf.read_header(header(999)).machine_name == "machine 999"


def test_elf32_and_big_endian_headers_are_read_in_their_byte_order():
    assert len(header(elf.EM_ARM, bits=32)) == 52
    assert elf.read_header(header(elf.EM_ARM, bits=32)) == elf.ElfHeader(32, True, 40)
    # big endian: 0x00b7 would read as 0xb700 the wrong way round
    assert elf.read_header(header(elf.EM_AARCH64, little=False)) == elf.ElfHeader(64, False, 183)


def test_the_first_twenty_bytes_are_enough():
    assert elf.read_header(header(elf.EM_X86_64)[:elf.HEAD_BYTES]).machine == elf.EM_X86_64


@pytest.mark.parametrize("head", [b"", b"#!/bin/sh\n", b"\x7fEL", b"MZ\x90\x00" + bytes(60), b"\x28\xb5\x2f\xfd" + bytes(30)])
def test_other_files_are_not_elf(head):
    assert elf.read_header(head) is None


@pytest.mark.parametrize("head, why", [
    (b"\x7fELF\x02\x01\x01", "cut short"),
    (b"\x7fELF\x03\x01" + bytes(14), "invalid class 3"),
    (b"\x7fELF\x02\x07" + bytes(14), "invalid data encoding 7"),
])
def test_malformed_elf_headers_are_value_errors(head, why):
    with pytest.raises(ValueError, match=why):
        elf.read_header(head)


def test_a_real_object_of_the_host_compiler_is_x86_64(tmp_path):
    require_tools("cc")
    src = tmp_path / "t.c"
    src.write_text("int answer(void) { return 42; }\n")
    subprocess.run(["cc", "-c", "-o", str(tmp_path / "t.o"), str(src)], check=True)
    hdr = elf.read_header((tmp_path / "t.o").read_bytes()[:64])
    assert hdr is not None and hdr.bits == 64 and hdr.little_endian
    assert hdr.machine == elf.EM_X86_64 and hdr.machine_name == "x86-64"
    assert elf.read_header(Path("/usr/bin/true").read_bytes()[:64]).machine == elf.EM_X86_64


def test_a_real_aarch64_object_when_a_cross_compiler_is_installed(tmp_path):
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("needs aarch64-linux-gnu-gcc (Debian: gcc-aarch64-linux-gnu); the hand-made headers cover it")
    src = tmp_path / "t.c"
    src.write_text("int answer(void) { return 42; }\n")
    subprocess.run(["aarch64-linux-gnu-gcc", "-c", "-o", str(tmp_path / "t.o"), str(src)], check=True)
    assert elf.read_header((tmp_path / "t.o").read_bytes()[:64]).machine == elf.EM_AARCH64


# the rule

def test_an_aarch64_package_may_hold_aarch64_code_scripts_and_data():
    members = [("usr/bin/ttyd", header(elf.EM_AARCH64)), ("usr/bin/helper", b"#!/bin/sh\n"),
               ("usr/share/doc/x", b"text"), ("usr/lib/libx.so.1", header(elf.EM_AARCH64, e_type=3))]
    assert elf.problems("aarch64", members) == []


def test_x86_64_code_in_an_aarch64_package_is_named_with_both_machines():
    members = [("usr/bin/ttyd", header(elf.EM_X86_64)), ("usr/bin/ok", header(elf.EM_AARCH64)),
               ("usr/lib/old.so", header(elf.EM_ARM, bits=32))]
    assert elf.problems("aarch64", members) == [
        "usr/bin/ttyd: an ELF object for x86-64, not AArch64 (the package says arch=aarch64)",
        "usr/lib/old.so: an ELF object for ARM (32-bit), not AArch64 (the package says arch=aarch64)",
    ]


def test_an_x86_64_package_is_judged_by_its_own_machine():
    assert elf.problems("x86_64", [("usr/bin/a", header(elf.EM_X86_64))]) == []
    assert elf.problems("x86_64", [("usr/bin/a", header(elf.EM_AARCH64))]) == [
        "usr/bin/a: an ELF object for AArch64, not x86-64 (the package says arch=x86_64)"]


def test_an_any_package_holds_no_elf_object_at_all():
    members = [("usr/share/a", b"data"), ("usr/bin/a", header(elf.EM_AARCH64)), ("usr/lib/b.o", header(elf.EM_X86_64, e_type=1))]
    assert elf.problems("any", members) == [
        "usr/bin/a: an ELF object for AArch64 in an arch=any package (an `any` package holds no machine code)",
        "usr/lib/b.o: an ELF object for x86-64 in an arch=any package (an `any` package holds no machine code)",
    ]


def test_ebpf_objects_and_device_firmware_are_not_cpu_code():
    assert elf.problems("aarch64", [("usr/share/bcc/x.bpf.o", header(elf.EM_BPF, e_type=1)),
                                    ("usr/lib/firmware/dsp.elf", header(94, bits=32))]) == []
    assert elf.problems("any", [("usr/lib/firmware/dsp.elf", header(94, bits=32))]) == []


def test_a_malformed_elf_member_is_a_problem():
    assert elf.problems("aarch64", [("usr/bin/cut", b"\x7fELF\x02")]) == ["usr/bin/cut: ELF header cut short (5 bytes)"]


def test_an_unknown_arch_cannot_be_judged():
    with pytest.raises(ValueError, match="arch 'sparc64'"):
        elf.problems("sparc64", [])


# over a real package

@pytest.fixture(scope="module")
def mislabelled(tmp_path_factory, signing_home) -> dict[str, Path]:
    """Packages built by the real makepkg: the host's /usr/bin/true labelled aarch64, the same
    in an `any` package, and an aarch64 package of a script only."""
    require_tools("makepkg", "bsdtar")
    require_build_user()
    base = tmp_path_factory.mktemp("elf")
    cfg = config.load(write_config(base / "avfrepo.toml", "file:///nonexistent", signing_home))
    out = {}
    for name, arch, body in (
            ("t-true", "aarch64", 'install -Dm755 /usr/bin/true "$pkgdir/usr/bin/t-true"'),
            ("t-any-true", "any", 'install -Dm755 /usr/bin/true "$pkgdir/usr/lib/t/true"'),
            ("t-script", "aarch64", 'install -d "$pkgdir/usr/bin"; printf "#!/bin/sh\\n" > "$pkgdir/usr/bin/t-script"')):
        src = base / name
        src.mkdir()
        (src / "PKGBUILD").write_text(textwrap.dedent(f"""\
            pkgname={name}
            pkgver=1.0
            pkgrel=1
            pkgdesc="elf test package"
            arch=({arch})
            license=(MIT)
            options=(!strip !debug)
            package() {{ {body}; }}
            """))
        out[name], = MakepkgBackend(cfg).build(src, [], base / f"{name}.log", base / "out")
    return out


def test_member_heads_reads_the_files_of_a_real_package_not_its_metadata(mislabelled):
    heads = dict(pkginfo.member_heads(mislabelled["t-true"]))
    assert set(heads) == {"usr/bin/t-true"}
    assert heads["usr/bin/t-true"] == Path("/usr/bin/true").read_bytes()[:elf.HEAD_BYTES]


def test_member_heads_of_a_file_that_is_not_a_package_is_a_tool_error(tmp_path):
    require_tools("bsdtar")
    fake = tmp_path / "fake-1-1-any.pkg.tar.zst"
    fake.write_bytes(b"not a package")
    with pytest.raises(ToolError, match="bsdtar") as info:
        pkginfo.member_heads(fake)
    assert "fake-1-1-any.pkg.tar.zst" in str(info.value)


def test_arch_problems_of_real_packages(mislabelled):
    assert pkginfo.arch_problems(mislabelled["t-true"], "aarch64") == [
        "usr/bin/t-true: an ELF object for x86-64, not AArch64 (the package says arch=aarch64)"]
    assert pkginfo.arch_problems(mislabelled["t-any-true"], "any") == [
        "usr/lib/t/true: an ELF object for x86-64 in an arch=any package (an `any` package holds no machine code)"]
    assert pkginfo.arch_problems(mislabelled["t-script"], "aarch64") == []
