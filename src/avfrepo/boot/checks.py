"""The checks of a boot: static ones on the assembled disk, milestones read from the consoles,
and in-guest ones through ttyd's shell; each with the time it took."""

from __future__ import annotations

import hashlib
import re
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import ToolError
from ..run import run
from . import android, gpt, qemu, ttyd
from .errors import BootError

if TYPE_CHECKING:
    from . import BootReport, Check
    from .archive import Image

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Z0-9]|\r")

# (name, where, regex) in the order a boot reaches them
MILESTONES = (
    ("firmware", "fw", re.compile(r"UEFI firmware|BdsDxe|Tianocore|EDK II", re.I)),
    ("systemd-boot", "fw", re.compile(r"BdsDxe: starting Boot\w+")),
    ("kernel", "any", re.compile(r"EFI stub: Booting Linux Kernel|Booting Linux on physical CPU|Linux version \d")),
    ("multi-user.target", "con", re.compile(r"Reached target (?:multi-user\.target|Multi-User System)")),
)
# what ends a boot early, with the reason a user would read
FATAL = (
    ("fw", re.compile(r'BdsDxe: failed to load Boot\w+ "UEFI Misc Device"[^\n]*|UEFI Interactive Shell'),
     "the firmware found no boot loader on the disk ({line})"),
    ("fw", re.compile(r"(?:^|\n)[^\n]*(?:Error|Failed)[^\n]*(?:load|open|boot|start)[^\n]*", re.I),
     "systemd-boot: {line}"),
    ("fw", re.compile(r"Reboot Into Firmware Interface"),
     "systemd-boot: no bootable entry (its menu offers only '{line}'): the default entry's kernel is missing"),
    ("con", re.compile(r"ALERT![^\n]*"), "initramfs: {line}"),
    ("con", re.compile(r"Gave up waiting for[^\n]*"), "initramfs: {line}"),
    ("con", re.compile(r"Kernel panic[^\n]*"), "{line}"),
    ("con", re.compile(r"No init found[^\n]*|Target filesystem doesn't have[^\n]*"), "initramfs: {line}"),
    ("con", re.compile(r"You are in emergency mode[^\n]*|Cannot open access to console[^\n]*"),
     "systemd went into emergency mode: {line}"),
)
# the initramfs (initramfs-tools) waiting for root=, the kernel's command line, its scan of the disk
WAITING_ROOT = re.compile(r"Begin: Waiting for root file ?system")
ROOT_PARTUUID = re.compile(r"Kernel command line:[^\n]*\broot=PARTUUID=([0-9A-Fa-f-]+)")
VDA_PARTS = re.compile(r"\bvda: ((?:vda\d+ ?)+)")
FAILED_UNIT = re.compile(r"\[FAILED\] Failed to (?:start|mount|activate|listen on) (.+?)\.?$", re.M)
AVF_PRESET = "/usr/lib/systemd/system-preset/80-avf.preset"
AVF_PRESET_DIR = "/usr/lib/systemd/system-preset"


def region_digest(disk: Path, p: gpt.Placed) -> str:
    h = hashlib.sha256()
    with open(disk, "rb") as f:
        f.seek(p.offset)
        left = p.size
        while left:
            chunk = f.read(min(8 << 20, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def _mtools(args: list[str]) -> str:
    return run(args, env={"MTOOLS_SKIP_CHECK": "1"}, check=True).stdout


def esp_file(disk: Path, p: gpt.Placed, path: str) -> str | None:
    try:
        return _mtools(["mtype", "-i", f"{disk}@@{p.offset}", f"::{path}"])
    except ToolError:
        return None


def esp_has(disk: Path, p: gpt.Placed, path: str) -> bool:
    try:
        _mtools(["mdir", "-b", "-i", f"{disk}@@{p.offset}", f"::{path}"])
        return True
    except ToolError:
        return False


def static(disk: Path, placed: list[gpt.Placed]) -> list["Check"]:
    """What can be read off the disk before booting: the ESP's boot entry, its kernel, its root=."""
    from . import Check
    t = time.monotonic()
    esp = next((p for p in placed if esp_has(disk, p, "/EFI/BOOT/BOOTAA64.EFI")), None)
    if esp is None:
        return [Check("esp", False, "no partition has /EFI/BOOT/BOOTAA64.EFI (the firmware's default boot loader)",
                      seconds=round(time.monotonic() - t, 2))]
    conf = esp_file(disk, esp, "/loader/loader.conf") or ""
    m = re.search(r"^default\s+(\S+)", conf, re.M)
    entries = [m.group(1)] if m else []
    out = []
    for name in entries:
        entry = esp_file(disk, esp, f"/loader/entries/{name}")
        if entry is None:
            out.append(Check("esp", False, f"loader.conf's default entry {name} is not on the ESP"))
            continue
        kv = dict(re.findall(r"^(\w+)\s+(.*?)\s*$", entry, re.M))
        missing = [kv[k] for k in ("linux", "initrd") if k in kv and not esp_has(disk, esp, kv[k])]
        if missing:
            out.append(Check("esp", False, f"no kernel on the ESP: entry {name} boots {', '.join(missing)}, "
                             f"which {esp.label} does not have"))
        else:
            out.append(Check("esp", True, f"{esp.label}: systemd-boot, entry {name}: {kv.get('linux')}"
                             + (f" + {kv['initrd']}" if 'initrd' in kv else "")))
        r = re.search(r"root=PARTUUID=(\S+)", kv.get("options", ""))
        if r:
            guid = r.group(1).lower()
            hit = next((p for p in placed if p.guid == guid), None)
            if hit:
                out.append(Check("root partition", True, f"root=PARTUUID={guid} is vda{hit.number} ({hit.label})"))
            else:
                out.append(Check("root partition", False,
                                 f"the boot entry asks for root=PARTUUID={guid}, but no partition has that GUID "
                                 "(vm_config.json gives " + ", ".join(f"{p.label}={p.guid}" for p in placed)
                                 + "): the GUIDs in vm_config.json must be the partitions' real ones"))
    if out:
        out[-1].seconds = round(time.monotonic() - t, 2)
    return out


def _read(path: Path) -> str:
    try:
        return ANSI.sub("", path.read_bytes().decode(errors="replace"))
    except FileNotFoundError:
        return ""


class _Reconnecting:
    """The guest shell; a command whose terminal ttyd closed is run again once in a new one, so
    the later checks still run; each reconnect is counted and the report fails on it ("ttyd
    terminal stays open"): on the phone the user's terminal would have closed."""

    def __init__(self, sh: ttyd.Shell, reopen: Callable[[], ttyd.Shell]):
        self.sh, self.reopen, self.reconnects, self.pings, self.why = sh, reopen, 0, 0, ""

    def run(self, command: str, timeout: float = 60) -> tuple[int, str]:
        try:
            return self.sh.run(command, timeout=timeout)
        except ConnectionError as exc:
            self.why = self.why or f"{exc} while running {command.split()[0]!r}"
            self.close()
            self.reconnects += 1
            self.sh = self.reopen()
            return self.sh.run(command, timeout=timeout)

    def close(self) -> None:
        self.pings += self.sh.pings
        self.sh.close()


class Session:
    def __init__(self, work: Path, img: "Image", placed: list[gpt.Placed], report: "BootReport",
                 progress: Callable[[str], None], *, console: bool, avf_tree: Path | None):
        self.work, self.img, self.placed, self.report = work, img, placed, report
        self.progress, self.console, self.avf_tree = progress, console, avf_tree
        self.service = None
        self.shares: list[android.Share] = []
        self.proc = None

    def add(self, name: str, ok: bool | None, detail: str = "", at: float | None = None,
            seconds: float | None = None) -> "Check":
        from . import Check
        c = Check(name, ok, detail, None if at is None else round(at, 1),
                  None if seconds is None else round(seconds, 2))
        self.report.checks.append(c)
        self.progress(f"boot: {c.status} {name} {detail}".rstrip())
        return c

    def run(self, timeout: float) -> None:
        try:
            self._run(timeout)
        finally:
            if self.proc is not None:
                qemu.kill(self.proc)
            for s in self.shares:
                s.stop()
            if self.service is not None:
                self.report.agents = self.service.connected()
                self.service.stop()
            tail = (_read(self.work / "firmware.log") + "\n" + _read(self.work / "console.log")).strip().splitlines()
            lines: list[str] = []
            for ln in tail:                      # without blank lines and repeats of the line before
                if ln.strip() and (not lines or lines[-1] != ln):
                    lines.append(ln)
            self.report.console_tail = lines[-25:]

    def _run(self, timeout: float) -> None:
        w, cfg = self.work, self.img.vm_config
        t = time.monotonic()
        certs = android.make_certs(w / "android-certs")
        port = None
        if self.avf_tree is not None:
            from .debian_service import DebianServiceStandIn
            self.service = DebianServiceStandIn(self.avf_tree)
            port = self.service.port
        android.prepare_internal(w / "internal", certs, port)
        (w / "shared").mkdir(exist_ok=True)
        self.shares = [android.Share(android.INTERNAL_TAG, w / "internal", w / "internal.sock", w / "virtiofsd-internal.log"),
                       android.Share(android.SHARED_TAG, w / "shared", w / "shared.sock", w / "virtiofsd-shared.log")]
        self.add("android side", True,
                 f"virtiofs internal + android; ca.crt; " + (f"DebianService stand-in on port {port} "
                 f"({len(self.service.methods)} methods from {self.service.proto.name})" if self.service else
                 "no DebianService (no AVF checkout given)"), seconds=time.monotonic() - t)
        cpus = qemu.host_cpus() if cfg.cpus == "match_host" else 1
        mem = min(cfg.memory_mib, max(512, qemu.host_mem_mib() // 2))
        self.host_port = qemu.free_port()
        m = qemu.Machine(w / "disk.img", mem, cpus, cfg.balloon, self.host_port,
                         [(s.tag, s.socket) for s in self.shares], w / "firmware.log", w / "console.log",
                         w / "qmp.sock", interactive=self.console)
        self.report.accel, self.report.cpus, self.report.memory_mib = m.accel, cpus, mem
        (w / "qemu.argv").write_text(" ".join(shlex.quote(a) for a in m.argv()) + "\n")
        self.progress(f"boot: qemu-system-aarch64 ({m.accel}, {cpus} CPU, {mem} MiB)")
        self.t0 = time.monotonic()
        self.proc = m.start(w / "qemu.log")
        self.qmp = m.qmp
        if self.console:
            self.proc.wait()
            self.add("console", None, "the console was handed to the user; no checks")
            return
        if not self._milestones(timeout):
            return
        self._guest_checks()
        self._poweroff()

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _milestones(self, timeout: float) -> bool:
        """Follow the consoles until multi-user.target; False (with the failure recorded) otherwise."""
        reached: dict[str, float] = {}
        deadline = self.t0 + timeout
        self._next_probe = 0.0
        while True:
            fw, con = _read(self.work / "firmware.log"), _read(self.work / "console.log")
            texts = {"fw": fw, "con": con, "any": fw + "\n" + con}
            last = 0.0
            for name, where, rx in MILESTONES:
                if name not in reached and rx.search(texts[where]):
                    reached[name] = self._now()
                    self.add(name, True, f"+{reached[name] - last:.1f}s", at=reached[name])
                last = reached.get(name, last)
            if "multi-user.target" not in reached and "kernel" in reached and time.monotonic() >= self._next_probe:
                self._next_probe = time.monotonic() + 5
                guest = self._probe_multi_user()
                if guest is not None:
                    reached["multi-user.target"] = self._now()
                    self.add("multi-user.target", True, f"+{reached['multi-user.target'] - last:.1f}s (systemd: "
                             f"active {guest:.1f} s after the kernel started; seen through ttyd)",
                             at=reached["multi-user.target"])
            if "multi-user.target" in reached:
                self._failed_units_on_console(con)
                return True
            # what systemd-boot printed: after the firmware started it, before the kernel's EFI stub
            after_loader = fw.split("BdsDxe: starting", 1)[1].split("EFI stub:", 1)[0] \
                if "BdsDxe: starting" in fw else ""
            for where, rx, reason in FATAL:
                hay = after_loader if reason.startswith("systemd-boot") else texts[where]
                mt = rx.search(hay)
                if mt:
                    self._missing(reached, reason.format(line=mt.group(0).strip()))
                    return False
            absent = self._root_absent(texts["any"]) if "kernel" in reached else None
            if absent:
                self._missing(reached, absent)
                return False
            if self.proc.poll() is not None:
                self._missing(reached, f"qemu exited ({self.proc.returncode}) before multi-user.target"
                              + self._qemu_err())
                return False
            if time.monotonic() > deadline:
                self._missing(reached, f"not reached within --timeout {timeout:.0f} s")
                return False
            time.sleep(0.5)

    def _root_absent(self, text: str) -> str | None:
        """The initramfs waits for a root=PARTUUID= that no partition of the VM's only disk has:
        certain once it says it waits (udev has settled) and the kernel has listed vda's
        partitions, as nothing can add a disk; it would give up after its rootdelay (30 s or
        more) and drop to a shell, so the boot ends here instead of waiting for that."""
        if not WAITING_ROOT.search(text):
            return None
        cmd, parts = ROOT_PARTUUID.search(text), VDA_PARTS.search(text)
        if not cmd or not parts:
            return None
        guid = cmd.group(1).lower()
        if any(p.guid == guid for p in self.placed):
            return None
        return (f"initramfs: waiting for root=PARTUUID={guid}, which none of vda's partitions ({parts.group(1)}) "
                "has; it gives up after its rootdelay and drops to a shell")

    def _certs(self) -> android.Certs:
        d = self.work / "android-certs"
        return android.Certs(d / "ca.crt", d / "client.crt", d / "client.key", d / "foreign.crt", d / "foreign.key")

    def _shell(self, attempts: int = 6) -> ttyd.Shell:
        """A terminal, opening another when one stays silent (ttyd.Shell's `ready`): at most
        `attempts` of them (6: about two minutes with the waits)."""
        c = self._certs()
        for i in range(attempts):
            try:
                return ttyd.Shell(self.host_port, c.client_cert, c.client_key)
            except (OSError, ConnectionError, TimeoutError):
                if i == attempts - 1:
                    raise
                time.sleep(3)
        raise AssertionError("unreachable")

    def _probe_multi_user(self) -> float | None:
        """Seconds after the kernel's start at which systemd entered multi-user.target, asked in the
        guest through ttyd (systemd stops writing its status to ttyS0 once a getty owns it); None
        while it is not active or ttyd does not answer yet."""
        c = self._certs()
        try:
            ttyd.https_get(self.host_port, c.client_cert, c.client_key, timeout=5)
            sh = self._shell(attempts=1)
        except (OSError, ConnectionError, TimeoutError):
            return None
        try:
            rc, out = sh.run("systemctl is-active multi-user.target && "
                             "systemctl show -p ActiveEnterTimestampMonotonic --value multi-user.target", timeout=30)
        except (OSError, ConnectionError, TimeoutError):
            sh.close()
            return None
        sh.close()                    # not kept for the guest checks: idle for 10 s, ttyd would hang it up
        lines = out.split()
        if rc != 0 or len(lines) < 2 or not lines[-1].isdigit():
            return None
        return int(lines[-1]) / 1e6

    def _qemu_err(self) -> str:
        text = _read(self.work / "qemu.log").strip().splitlines()
        return f": {text[-1]}" if text else ""

    def _missing(self, reached: dict[str, float], reason: str) -> None:
        first = True
        for name, _, _ in MILESTONES:
            if name not in reached:
                self.add(name, False if first else None, reason if first else "not reached", at=self._now() if first else None)
                first = False
        self._failed_units_on_console(_read(self.work / "console.log"))

    def _failed_units_on_console(self, con: str) -> None:
        self.console_failed = sorted(set(FAILED_UNIT.findall(con)))

    # -- in the guest, through ttyd ------------------------------------------------------------
    def _guest_checks(self) -> None:
        w = self.work
        certs = android.Certs(w / "android-certs/ca.crt", w / "android-certs/client.crt",
                              w / "android-certs/client.key", w / "android-certs/foreign.crt",
                              w / "android-certs/foreign.key")
        t = time.monotonic()
        deadline, status, err = t + 90, None, ""
        while time.monotonic() < deadline:
            try:
                status, body = ttyd.https_get(self.host_port, certs.client_cert, certs.client_key)
                break
            except (OSError, ConnectionError) as exc:
                err = f"{type(exc).__name__}: {exc}"
                time.sleep(2)
        if status != 200:
            self.add("ttyd TLS + client cert", False, f"no HTTPS answer on the forwarded 7681 ({status or err})",
                     at=self._now(), seconds=time.monotonic() - t)
            self._console_only_units()
            self._not_run("ttyd does not answer")
            return
        self.add("ttyd TLS + client cert", True, f"HTTP 200, {len(body)} bytes", at=self._now(),
                 seconds=time.monotonic() - t)
        for label, cert, key in (("no certificate", None, None),
                                 ("another CA's cert", certs.foreign_cert, certs.foreign_key)):
            t = time.monotonic()
            refused, how = ttyd.refused(self.host_port, cert, key)
            self.add(f"ttyd refuses {label}", refused, how, seconds=time.monotonic() - t)
        t = time.monotonic()
        try:
            session = _Reconnecting(self._shell(attempts=5), self._shell)
            rc, who = session.run("id -un")
        except (OSError, ConnectionError, TimeoutError) as exc:
            self.add("ttyd terminal", False, f"WebSocket shell: {exc}", seconds=time.monotonic() - t)
            self._console_only_units()
            self._not_run(f"no guest shell ({exc})")
            return
        self.add("ttyd terminal", rc == 0 and who.strip() == "droid", f"WebSocket shell as {who.strip()!r}",
                 seconds=time.monotonic() - t)
        try:
            self._in_guest(session)
        except (OSError, ConnectionError, TimeoutError) as exc:
            self.add("guest shell", False, f"{exc} (after {session.reconnects} reconnect(s))")
            if not any(c.name == "failed units" for c in self.report.checks):
                self._console_only_units()
            self._not_run(f"the guest shell failed ({exc})")
        finally:
            session.close()
            self.add("ttyd terminal stays open", session.reconnects == 0,
                     f"one session for every check ({session.pings} ttyd PING(s) answered)" if not session.reconnects
                     else f"ttyd closed the terminal {session.reconnects} time(s), first: {session.why}")

    def _guest_check_names(self) -> list[str]:
        """The in-guest checks _in_guest records, in its order."""
        return ["failed units", "mount /mnt/internal", "mount /mnt/shared", "internal share content",
                *(f"{p.label} stays read-only" for p in self.placed if not p.writable), "[avf] units"]

    def _not_run(self, reason: str) -> None:
        """Record each in-guest check not reached as not run, so a failing one hides none."""
        have = {c.name for c in self.report.checks}
        for name in self._guest_check_names():
            if name not in have:
                self.add(name, None, f"not run: {reason}")

    def _console_only_units(self) -> None:
        bad = getattr(self, "console_failed", [])
        self.add("failed units", not bad, ("console: " + "; ".join(bad)) if bad else
                 "none on the console (no guest shell to ask systemd)")

    def _in_guest(self, sh: "_Reconnecting") -> None:
        t = time.monotonic()
        _, state = sh.run("timeout 60 systemctl is-system-running --wait", timeout=90)
        _, failed = sh.run("systemctl --failed --plain --no-legend --no-pager | awk '{print $1}'")
        units = [u for u in failed.split() if u]
        self.add("failed units", not units, (f"system {state.strip()}; failed: " + ", ".join(units)) if units
                 else f"none (system {state.strip()})", seconds=time.monotonic() - t)
        t = time.monotonic()
        _, mounts = sh.run("findmnt -rn -o TARGET,SOURCE,FSTYPE,OPTIONS")
        table = {}
        for ln in mounts.splitlines():
            parts = ln.split()
            if len(parts) >= 4:
                table[parts[0]] = parts[1:4]
        for target, tag in (("/mnt/internal", android.INTERNAL_TAG), ("/mnt/shared", android.SHARED_TAG)):
            got = table.get(target)
            ok = bool(got) and got[1] == "virtiofs" and got[0] == tag
            self.add(f"mount {target}", ok, f"{got[0]} ({got[1]}, {got[2].split(',')[0]})" if got else "not mounted",
                     seconds=time.monotonic() - t)
        if table.get("/mnt/internal"):
            rc, port = sh.run("cat /mnt/internal/debian_service_port 2>&1; test -r /mnt/internal/ca.crt")
            self.add("internal share content", rc == 0, f"debian_service_port={port.strip()!r}, ca.crt readable"
                     if rc == 0 else f"ca.crt or the port file unreadable: {port.strip()[:100]}")
        for p in self.placed:
            if p.writable:
                continue
            _, dev = sh.run(f"readlink -f /dev/disk/by-partuuid/{p.guid}")
            _, opts = sh.run(f"findmnt -rn -o TARGET,OPTIONS --source {shlex.quote(dev.strip())} || true")
            rw = [ln.split()[0] for ln in opts.splitlines() if len(ln.split()) > 1 and "rw" in ln.split()[1].split(",")]
            self.add(f"{p.label} stays read-only", not rw,
                     f"{p.label} ({dev.strip()}) is \"writable\": false in vm_config.json but mounted rw at "
                     f"{', '.join(rw)}: writes (kernel upgrades, bootctl) fail on the phone" if rw
                     else f"{dev.strip()} not mounted read-write")
        t = time.monotonic()
        # avf-config's preset and each agent package's own (units live with their binaries)
        _, preset = sh.run(f"cat {AVF_PRESET} {AVF_PRESET_DIR}/80-*.preset 2>/dev/null | sort -u")
        enabled = re.findall(r"^enable\s+(\S+)", preset, re.M)
        if not enabled:
            self.add("[avf] units", False, f"{AVF_PRESET} is missing or enables nothing (is avf-config installed?)")
        else:
            _, shown = sh.run("systemctl show --no-pager -p Id,LoadState,ActiveState,SubState,ConditionResult "
                              + " ".join(shlex.quote(u) for u in enabled))
            bad, skipped = [], []
            for block in shown.strip().split("\n\n"):
                kv = dict(ln.split("=", 1) for ln in block.splitlines() if "=" in ln)
                if not kv:
                    continue
                if kv.get("ActiveState") == "active":
                    continue
                # never started (ConditionResult=no): an unmet condition, or wanted by a device that
                # is absent, like the backup disk's mount without /dev/vdb
                if kv.get("ConditionResult") == "no":
                    skipped.append(kv.get("Id", "?"))
                else:
                    bad.append(f"{kv.get('Id', '?')} {kv.get('LoadState')}/{kv.get('ActiveState')}/{kv.get('SubState')}")
            self.add("[avf] units", not bad, (f"not active: {'; '.join(bad)}" if bad else f"{len(enabled)} active")
                     + (f" (skipped: {', '.join(skipped)})" if skipped else ""),
                     seconds=time.monotonic() - t)
        _, agents = sh.run("grep -l debian_service_port /usr/lib/systemd/system/*.service 2>/dev/null "
                           "| xargs -rn1 basename")
        self.expected_agents = agents.split()

    def _agents(self) -> None:
        expected = getattr(self, "expected_agents", [])
        if self.service is None:
            self.add("DebianService agents", None, "no DebianService stand-in (give the AVF checkout: --avf-tree)")
            return
        got = self.service.connected()
        seen = ", ".join(f"{m} x{len(v)}" for m, v in got.items()) or "none"
        if not expected:
            self.add("DebianService agents", None, f"the image has no agent unit; connections: {seen}")
        else:
            self.add("DebianService agents", bool(got), f"units {', '.join(expected)}; connections: {seen}")

    def _poweroff(self) -> None:
        deadline = time.monotonic() + 20
        while self.service is not None and getattr(self, "expected_agents", []) and time.monotonic() < deadline \
                and not self.service.connected():
            time.sleep(1)
        self._agents()
        t = time.monotonic()
        how = ""
        if self.service is not None and self.service.request_shutdown():
            how = "asked the shutdown agent through DebianService"
        else:
            try:
                qemu.qmp(self.qmp, "system_powerdown")
                how = "ACPI power button (QMP system_powerdown)"
            except OSError as exc:
                self.add("poweroff", False, f"QMP: {exc}")
                return
        rc = qemu.wait_exit(self.proc, 120)
        con = _read(self.work / "console.log")
        if rc is None:
            self.add("poweroff", False, f"{how}: the VM was still running after 120 s", at=self._now(),
                     seconds=time.monotonic() - t)
        else:
            clean = "reboot: Power down" in con
            self.add("poweroff", clean and rc == 0, f"{how}: " + ("powered off cleanly" if clean else
                     f"qemu exited {rc} without the kernel's 'Power down'"), at=self._now(),
                     seconds=time.monotonic() - t)
