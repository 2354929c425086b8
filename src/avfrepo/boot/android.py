"""What the Android side of the Terminal app provides to the VM, played on this host.

- two virtiofs shares with the app's tags: `internal` (the guest mounts it at /mnt/internal)
  and `android` (/mnt/shared), each served by qemu's virtiofsd;
- in `internal`: `ca.crt`, a CA generated for this boot (ttyd checks clients against it),
  and `debian_service_port`, the port of the DebianService (the guest reaches the host as
  10.0.2.2 through qemu's user-mode network);
- a client certificate signed by that CA, presented to ttyd as the app does; and a second
  one from another CA, which ttyd must refuse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..run import run, which
from .errors import BootError

INTERNAL_TAG, SHARED_TAG = "internal", "android"
PORT_FILE = "debian_service_port"
VIRTIOFSD_PATHS = ("/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd")


@dataclass(frozen=True)
class Certs:
    ca: Path
    client_cert: Path
    client_key: Path
    foreign_cert: Path          # signed by another CA: must be refused
    foreign_key: Path


def _openssl(*args: str | os.PathLike[str]) -> None:
    run(["openssl", *args], timeout=60)


def make_certs(folder: Path) -> Certs:
    folder.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ext = folder / "client.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    for ca in ("ca", "foreign-ca"):
        _openssl("req", "-x509", *ec, "-days", "2", "-subj", f"/CN=avfrepo boot {ca}",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-keyout", folder / f"{ca}.key", "-out", folder / f"{ca}.crt")
    for client, ca in (("client", "ca"), ("foreign", "foreign-ca")):
        _openssl("req", *ec, "-subj", f"/CN=avfrepo boot {client}", "-keyout", folder / f"{client}.key",
                 "-out", folder / f"{client}.csr")
        _openssl("x509", "-req", "-in", folder / f"{client}.csr", "-CA", folder / f"{ca}.crt",
                 "-CAkey", folder / f"{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", ext,
                 "-out", folder / f"{client}.crt")
    return Certs(folder / "ca.crt", folder / "client.crt", folder / "client.key",
                 folder / "foreign.crt", folder / "foreign.key")


def prepare_internal(internal: Path, certs: Certs, port: int | None) -> None:
    internal.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(certs.ca, internal / "ca.crt")
    os.chmod(internal / "ca.crt", 0o644)
    if port is not None:
        (internal / PORT_FILE).write_text(f"{port}\n")


def virtiofsd() -> str:
    for p in VIRTIOFSD_PATHS:
        if os.access(p, os.X_OK):
            return p
    found = which("virtiofsd")
    if found:
        return found
    raise BootError("no virtiofsd (Debian 12: qemu-system-common has /usr/lib/qemu/virtiofsd; "
                    "scripts/setup-debian.sh installs it)")


class Share:
    """One virtiofsd serving `folder` on a vhost-user socket for the tag."""

    def __init__(self, tag: str, folder: Path, socket: Path, log: Path):
        if os.geteuid() != 0:
            raise BootError("virtiofsd needs root here (its sandbox uses namespaces): run avfrepo boot as root")
        self.tag, self.folder, self.socket = tag, folder, socket
        folder.mkdir(parents=True, exist_ok=True)
        socket.unlink(missing_ok=True)
        self._log = open(log, "wb")
        self.proc = subprocess.Popen([virtiofsd(), f"--socket-path={socket}", "-o", f"source={folder}",
                                      "-o", "cache=none"], stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BootError(f"virtiofsd for the share {tag!r} did not start (see {log})")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
