"""qemu-system-aarch64 as the VM the Terminal app starts (crosvm on the phone).

`-M virt` with UEFI firmware (Debian's qemu-efi-aarch64), KVM when this is an aarch64 host
with /dev/kvm, otherwise software emulation (TCG). The devices a Terminal VM has:
- the assembled GPT disk on virtio-blk;
- virtio-net on a user-mode network (DHCP, the host at 10.0.2.2), with a host port forwarded
  to the guest's 7681 (ttyd);
- virtio-balloon when vm_config.json has auto_memory_balloon;
- virtio-rng, which crosvm gives every guest unless told --no-rng (AVF does not): without it
  the kernel's CRNG waited ~60 s under TCG for jitter entropy, and what reads getrandom()
  early (openssl making ttyd's certificate, python) waited with it;
- vhost-user-fs (virtiofs) for each share, which needs the RAM as a shared memfd;
- the consoles: the firmware and systemd-boot write to the board's PL011 UART; crosvm gives
  the guest a 16550 UART that Linux names ttyS0 (the image's `console=ttyS0`): here a PCI
  16550 (`pci-serial`), logged to a file, or handed to the user with --console.
- a QMP socket to press the power button (ACPI), as a host does to stop a VM.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..run import which
from .errors import BootError

FIRMWARE = ("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", "/usr/share/AAVMF/AAVMF_CODE.fd")
GUEST_TTYD_PORT = 7681
# The CPU under TCG: every feature this qemu emulates (a phone's ARMv9 core has pointer
# authentication, LSE atomics, SVE2; cortex-a72 is ARMv8.0), with pointer authentication by
# qemu's cheap implementation-defined algorithm instead of emulated QARMA. Measured on the boot
# tests' good image, two boots of each alternating on an idle 2-core x86_64 host (qemu 7.2):
# cortex-a72 109 core-s and 84 s to poweroff, this 85 core-s and 67 s; the boot tests' four
# boots (two at a time) side by side: 328 -> 316 core-s.
TCG_CPU = "max,pauth-impdef=on"


def firmware() -> Path:
    for f in FIRMWARE:
        if os.path.isfile(f):
            return Path(f)
    raise BootError("no aarch64 UEFI firmware (Debian: apt-get install qemu-efi-aarch64)")


def qemu_binary() -> str:
    q = which("qemu-system-aarch64")
    if not q:
        raise BootError("no qemu-system-aarch64 (Debian: apt-get install qemu-system-arm)")
    return q


def kvm_usable() -> bool:
    return platform.machine() in ("aarch64", "arm64") and os.access("/dev/kvm", os.R_OK | os.W_OK)


def host_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def host_mem_mib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 2048


@dataclass
class Machine:
    disk: Path
    memory_mib: int
    cpus: int
    balloon: bool
    host_port: int
    shares: list[tuple[str, Path]]            # (tag, vhost-user socket)
    firmware_log: Path
    console_log: Path
    qmp: Path
    interactive: bool = False
    accel: str = field(default_factory=lambda: "kvm" if kvm_usable() else "tcg")

    def argv(self) -> list[str]:
        a = [qemu_binary(), "-M", "virt", "-accel", self.accel,
             "-cpu", "host" if self.accel == "kvm" else TCG_CPU,
             "-smp", str(self.cpus), "-m", f"{self.memory_mib}M",
             "-bios", str(firmware()), "-no-reboot", "-nodefaults", "-display", "none",
             "-object", f"memory-backend-memfd,id=mem,size={self.memory_mib}M,share=on",
             "-numa", "node,memdev=mem",
             "-drive", f"if=none,id=disk0,file={self.disk},format=raw,cache=unsafe,discard=unmap",
             "-device", "virtio-blk-pci,drive=disk0",
             "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.host_port}-:{GUEST_TTYD_PORT}",
             "-device", "virtio-net-pci,netdev=net0,romfile=",
             "-chardev", f"file,id=fw,path={self.firmware_log}",
             "-serial", "chardev:fw",
             "-qmp", f"unix:{self.qmp},server=on,wait=off"]
        if self.interactive:
            a += ["-chardev", f"stdio,id=con,signal=off,logfile={self.console_log}"]
        else:
            a += ["-chardev", f"file,id=con,path={self.console_log}"]
        a += ["-device", "pci-serial,chardev=con"]
        a += ["-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0"]
        if self.balloon:
            a += ["-device", "virtio-balloon-pci"]
        for i, (tag, sock) in enumerate(self.shares):
            a += ["-chardev", f"socket,id=fs{i},path={sock}",
                  "-device", f"vhost-user-fs-pci,queue-size=1024,chardev=fs{i},tag={tag}"]
        return a

    def start(self, log: Path) -> subprocess.Popen:
        self.firmware_log.write_bytes(b"")
        self.console_log.write_bytes(b"")
        if self.interactive:
            return subprocess.Popen(self.argv())
        self._log = open(log, "wb")
        return subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qmp(path: Path, command: str, timeout: float = 5) -> dict:
    """One QMP command on the monitor socket; returns the reply."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        f = s.makefile("rwb")
        json.loads(f.readline())                       # greeting
        for cmd in ("qmp_capabilities", command):
            f.write(json.dumps({"execute": cmd}).encode() + b"\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "return" in reply or "error" in reply:
                    break
        return reply


def wait_exit(proc: subprocess.Popen, timeout: float) -> int | None:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        if wait_exit(proc, 5) is None:
            proc.kill()
            proc.wait()
    time.sleep(0)
