"""The qemu command line `avfrepo boot` starts: the TCG CPU model is one this qemu accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from avfrepo.boot import qemu
from avfrepo.boot.errors import BootError

from ..conftest import require_tools


def _argv(tmp_path: Path, accel: str) -> list[str]:
    """Machine.argv of a small VM (needs qemu-system-aarch64 and the UEFI firmware)."""
    require_tools("qemu-system-aarch64")
    m = qemu.Machine(disk=tmp_path / "disk.img", memory_mib=256, cpus=1, balloon=False, host_port=1,
                     shares=[], firmware_log=tmp_path / "fw.log", console_log=tmp_path / "con.log",
                     qmp=tmp_path / "qmp.sock", accel=accel)
    try:
        return m.argv()
    except BootError as exc:
        pytest.skip(f"{exc} (scripts/setup-debian.sh installs it)")


def test_tcg_uses_the_tcg_cpu_and_kvm_the_host_cpu(tmp_path):
    for accel, cpu in (("tcg", qemu.TCG_CPU), ("kvm", "host")):
        argv = _argv(tmp_path, accel)
        assert argv[argv.index("-cpu") + 1] == cpu and argv[argv.index("-accel") + 1] == accel


def _starts(board: list[str], cpu: str) -> subprocess.CompletedProcess:
    """qemu with `board` (binary, -M, -accel of Machine.argv) and this -cpu, paused (-S), told to quit."""
    return subprocess.run([*board, "-cpu", cpu, "-m", "128M", "-nodefaults", "-display", "none", "-S",
                           "-monitor", "stdio"], input="quit\n", capture_output=True, text=True, timeout=60)


def test_this_qemu_accepts_the_tcg_cpu_and_refuses_a_property_it_lacks(tmp_path):
    argv = _argv(tmp_path, "tcg")
    board = argv[:argv.index("-cpu")]                       # the binary, -M virt, -accel tcg as avfrepo starts them
    good = _starts(board, qemu.TCG_CPU)
    assert good.returncode == 0, good.stderr
    bad = _starts(board, qemu.TCG_CPU + ",pauth-nosuch=on")   # the same check fails on an unknown property
    assert bad.returncode != 0 and "pauth-nosuch" in bad.stderr, (bad.returncode, bad.stderr)
