#!/usr/bin/env python3
"""Download what a workflow trusts from Arch Linux ARM, over HTTPS only, and accept it only
with a good signature by ALARM's build key, pinned here by fingerprint.

    verify_download.py verify FILE --sig SIG --key KEYS.asc [--fingerprint FPR]
    verify_download.py alarm-root --out ArchLinuxARM-aarch64-latest.tar.gz
    verify_download.py alarm-keyring --extract-to /      (archlinuxarm-keyring's key files)

Standard library and gpg only: it runs on a bare runner before anything else is installed.
Exit status: 0 verified; 1 refused (bad, missing or foreign signature, not HTTPS, download
failed); nothing is left at --out / extracted unless it verified.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

# "Arch Linux ARM Build System", ALARM's package signing key: every package in ALARM's
# repositories and the root tarballs on os.archlinuxarm.org are signed by it. Fingerprint as
# listed under "Package Signing Keys" on https://archlinuxarm.org/about/package-signing
# (looked up 2026; the same page lists the master keys that certify it).
ALARM_BUILD_KEY = "68B3537F39A313B3E574D06777193F152BDBE6A6"

ALARM_ROOT = "https://os.archlinuxarm.org/os/ArchLinuxARM-aarch64-latest.tar.gz"
# mirror.archlinuxarm.org redirects to a country mirror whose certificate does not name it, so
# HTTPS goes to one mirror by name; the signature, not the mirror, is what is trusted
ALARM_MIRROR = os.environ.get("ALARM_MIRROR", "https://fl.us.mirror.archlinuxarm.org")
# the public key, looked up by its full fingerprint; whatever a keyserver returns, only a
# signature whose primary key IS the pinned fingerprint is accepted
KEYSERVER = "https://keyserver.ubuntu.com/pks/lookup?op=get&options=mr&search=0x{fpr}"
MAX_SIZE = 2 << 30


class Refused(Exception):
    pass


def fetch(url: str, dest: Path, *, max_size: int = MAX_SIZE) -> Path:
    """url -> dest, HTTPS all the way (a redirect to plain HTTP is refused)."""
    if not url.startswith("https://"):
        raise Refused(f"{url}: not HTTPS: refusing to download what the build trusts over plain HTTP")
    try:
        with urllib.request.urlopen(url, timeout=120) as resp:
            if not resp.geturl().startswith("https://"):
                raise Refused(f"{url}: redirected to {resp.geturl()}, not HTTPS")
            with open(dest, "wb") as out:
                size = 0
                while chunk := resp.read(1 << 20):
                    size += len(chunk)
                    if size > max_size:
                        raise Refused(f"{url}: larger than {max_size} bytes")
                    out.write(chunk)
    except OSError as exc:
        raise Refused(f"{url}: download failed: {exc}") from None
    return dest


def verify(file: Path, sig: Path, keys: Path, fingerprint: str = ALARM_BUILD_KEY) -> str:
    """Check `sig` over `file` with the keys in `keys`; accept only a good signature whose
    primary key is `fingerprint` (by it or one of its subkeys). Returns gpg's VALIDSIG line."""
    fingerprint = fingerprint.upper()
    if not re.fullmatch(r"[0-9A-F]{40}", fingerprint):
        raise Refused(f"pinned fingerprint {fingerprint!r} is not a 40-hex-digit OpenPGP v4 fingerprint")
    for path, what in ((file, "file"), (sig, "signature"), (keys, "key file")):
        if not path.is_file():
            raise Refused(f"{path}: no such {what} (an unsigned download is refused)")
    home = tempfile.mkdtemp(prefix="verify-gnupg-")
    try:
        gpg = ["gpg", "--batch", "--no-tty", "--homedir", home]
        imp = subprocess.run([*gpg, "--import", str(keys)], capture_output=True, text=True, timeout=120)
        if imp.returncode not in (0, 2):      # 2: some keys skipped, the others imported
            raise Refused(f"{keys}: gpg --import failed: {imp.stderr.strip()}")
        res = subprocess.run([*gpg, "--status-fd", "1", "--verify", str(sig), str(file)],
                             capture_output=True, text=True, timeout=600)
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    status = [line.split()[1:] for line in res.stdout.splitlines() if line.startswith("[GNUPG:] ")]
    bad = [s[0] for s in status if s[0] in ("BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY")]
    valid = [s for s in status if s[0] == "VALIDSIG"]
    if res.returncode != 0 or bad or not valid:
        why = ", ".join(bad) or (res.stderr.strip().splitlines() or ["no valid signature"])[-1]
        raise Refused(f"{file.name}: signature {sig.name} does not verify ({why})")
    signers = {s[-1].upper() for s in valid}
    if signers != {fingerprint}:
        raise Refused(f"{file.name}: signed by {', '.join(sorted(signers))}, not by the pinned key {fingerprint}")
    return " ".join(valid[0])


def alarm_key(workdir: Path, fingerprint: str = ALARM_BUILD_KEY) -> Path:
    return fetch(KEYSERVER.format(fpr=fingerprint), workdir / "alarm-build-key.asc", max_size=1 << 20)


def cmd_alarm_root(args) -> None:
    out = Path(args.out)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.is_dir() else None) as tmp:
        work = Path(tmp)
        tarball = fetch(args.url, work / "root.tar.gz")
        sig = fetch(args.url + ".sig", work / "root.tar.gz.sig", max_size=1 << 16)
        print(verify(tarball, sig, alarm_key(work)))
        os.replace(tarball, out)
    print(f"{out}: verified: signed by Arch Linux ARM's build key {ALARM_BUILD_KEY}")


def cmd_alarm_keyring(args) -> None:
    """Newest archlinuxarm-keyring of core, verified, then only its key files extracted."""
    repo = f"{ALARM_MIRROR}/aarch64/core"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        listing = fetch(repo + "/", work / "index.html", max_size=16 << 20).read_text(errors="replace")
        names = sorted(set(re.findall(r"archlinuxarm-keyring-[0-9][A-Za-z0-9._+-]*-any\.pkg\.tar\.xz(?=\")", listing)),
                       key=lambda n: [int(x) for x in re.findall(r"\d+", n)])
        if not names:
            raise Refused(f"{repo}/: no archlinuxarm-keyring package listed")
        pkg = fetch(f"{repo}/{names[-1]}", work / names[-1], max_size=64 << 20)
        sig = fetch(f"{repo}/{names[-1]}.sig", work / (names[-1] + ".sig"), max_size=1 << 16)
        print(verify(pkg, sig, alarm_key(work)))
        extract_keyrings(pkg, Path(args.extract_to))
    print(f"{names[-1]}: verified; key files extracted under {args.extract_to}usr/share/pacman/keyrings")


def extract_keyrings(pkg: Path, root: Path) -> list[Path]:
    """Only regular files directly under usr/share/pacman/keyrings/ (nothing else of the package)."""
    done = []
    with tarfile.open(fileobj=io.BytesIO(pkg.read_bytes()), mode="r:*") as tar:
        for m in tar.getmembers():
            if m.isfile() and re.fullmatch(r"usr/share/pacman/keyrings/[A-Za-z0-9._-]+", m.name):
                dest = root / m.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(m).read())
                done.append(dest)
    if not done:
        raise Refused(f"{pkg.name}: no key files under usr/share/pacman/keyrings/")
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="verify_download.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check a downloaded file's detached signature against a pinned key")
    v.add_argument("file", type=Path)
    v.add_argument("--sig", type=Path, required=True)
    v.add_argument("--key", type=Path, required=True, help="armored or binary public key(s)")
    v.add_argument("--fingerprint", default=ALARM_BUILD_KEY, help="the only primary key accepted")
    r = sub.add_parser("alarm-root", help="download and verify the ALARM aarch64 root tarball")
    r.add_argument("--url", default=ALARM_ROOT)
    r.add_argument("--out", default="alarm.tar.gz")
    k = sub.add_parser("alarm-keyring", help="download and verify archlinuxarm-keyring, extract its key files")
    k.add_argument("--extract-to", default="/")
    args = p.parse_args(argv)
    try:
        if args.command == "verify":
            print(verify(args.file, args.sig, args.key, args.fingerprint))
            print(f"{args.file}: verified: signed by {args.fingerprint.upper()}")
        elif args.command == "alarm-root":
            cmd_alarm_root(args)
        else:
            cmd_alarm_keyring(args)
    except Refused as exc:
        print(f"verify_download.py: REFUSED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
