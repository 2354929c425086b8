"""scripts/ci/verify_download.py: a download the workflows trust is accepted only with a good
signature by the pinned key (real gpg, throwaway keys, local files; no network)."""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from ..conftest import require_tools

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/ci/verify_download.py"
spec = importlib.util.spec_from_file_location("verify_download", SCRIPT)
vd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vd)


def make_key(home: Path, name: str) -> tuple[str, Path]:
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch"]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", f"{name} <{name}@example.invalid>", "ed25519",
                    "sign", "never"], check=True, capture_output=True)
    fpr = next(l.split(":")[9] for l in subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True,
               capture_output=True, text=True).stdout.splitlines() if l.startswith("fpr:"))
    pub = home / "pub.asc"
    pub.write_text(subprocess.run([*gpg, "--armor", "--export", fpr], check=True, capture_output=True,
                                  text=True).stdout)
    return fpr, pub


def sign(home: Path, file: Path) -> Path:
    sig = file.with_name(file.name + ".sig")
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--detach-sign", "-o", str(sig), str(file)],
                   check=True, capture_output=True)
    return sig


@pytest.fixture
def signed(tmp_path):
    """A throwaway "build key" signs a local root tarball, as ALARM's does the real one."""
    require_tools("gpg")
    fpr, pub = make_key(tmp_path / "builder", "builder")
    tarball = tmp_path / "ArchLinuxARM-aarch64-latest.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"root:x:0:0::/root:/bin/bash\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tarball.write_bytes(buf.getvalue())
    return {"fpr": fpr, "pub": pub, "file": tarball, "sig": sign(tmp_path / "builder", tarball), "tmp": tmp_path}


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_a_root_signed_by_the_pinned_key_verifies(signed):
    res = cli("verify", signed["file"], "--sig", signed["sig"], "--key", signed["pub"], "--fingerprint", signed["fpr"])
    assert res.returncode == 0, res.stderr
    assert f"verified: signed by {signed['fpr']}" in res.stdout


def test_a_tampered_root_is_refused(signed):
    data = bytearray(signed["file"].read_bytes())
    data[len(data) // 2] ^= 0x01
    signed["file"].write_bytes(bytes(data))
    res = cli("verify", signed["file"], "--sig", signed["sig"], "--key", signed["pub"], "--fingerprint", signed["fpr"])
    assert res.returncode == 1 and "REFUSED" in res.stderr and "BADSIG" in res.stderr, res.stderr


def test_a_good_signature_by_another_key_is_refused(signed):
    other_home = signed["tmp"] / "other"
    fpr, pub = make_key(other_home, "mallory")
    sign(other_home, signed["file"])         # replaces the .sig: a valid signature, by the wrong key
    both = signed["tmp"] / "both.asc"
    both.write_text(signed["pub"].read_text() + pub.read_text())   # a keyserver that serves any key
    res = cli("verify", signed["file"], "--sig", signed["sig"], "--key", both, "--fingerprint", signed["fpr"])
    assert res.returncode == 1 and f"signed by {fpr}, not by the pinned key {signed['fpr']}" in res.stderr


def test_an_unsigned_download_is_refused(signed):
    signed["sig"].unlink()
    res = cli("verify", signed["file"], "--sig", signed["sig"], "--key", signed["pub"], "--fingerprint", signed["fpr"])
    assert res.returncode == 1 and "no such signature (an unsigned download is refused)" in res.stderr


def test_plain_http_is_refused_before_any_request(tmp_path):
    with pytest.raises(vd.Refused, match="not HTTPS"):
        vd.fetch("http://os.archlinuxarm.org/os/ArchLinuxARM-aarch64-latest.tar.gz", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_the_pinned_key_is_alarms_build_key_and_every_url_is_https():
    # https://archlinuxarm.org/about/package-signing, "Package Signing Keys": Arch Linux ARM Build System
    assert vd.ALARM_BUILD_KEY == "68B3537F39A313B3E574D06777193F152BDBE6A6"
    assert all(u.startswith("https://") for u in (vd.ALARM_ROOT, vd.ALARM_MIRROR, vd.KEYSERVER))


def test_keyring_extraction_takes_only_the_key_files(tmp_path):
    pkg = tmp_path / "archlinuxarm-keyring-20240419-1-any.pkg.tar.xz"
    with tarfile.open(pkg, "w:xz") as tar:
        for name, data in (("usr/share/pacman/keyrings/archlinuxarm.gpg", b"KEYS"),
                           ("usr/share/pacman/keyrings/archlinuxarm-trusted", b"FPR:4:\n"),
                           (".INSTALL", b"post_install() { :; }\n"), ("etc/evil", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    done = vd.extract_keyrings(pkg, tmp_path / "root")
    assert sorted(p.name for p in done) == ["archlinuxarm-trusted", "archlinuxarm.gpg"]
    assert not (tmp_path / "root/etc").exists() and not (tmp_path / "root/.INSTALL").exists()


def test_the_workflows_download_alarm_only_through_the_verifier():
    wf = ROOT / ".github/workflows"
    text = {p.name: p.read_text() for p in wf.glob("*.yml")}
    assert not any(re.search(r"http://", t) for t in text.values()), [n for n, t in text.items() if "http://" in t]
    steps = "\n".join(s.get("run", "") for s in yaml.safe_load(text["build-one.yml"])["jobs"]["build"]["steps"])
    assert "scripts/ci/verify_download.py alarm-root" in steps
    assert steps.index("verify_download.py alarm-root") < steps.index("docker import")
    image = "\n".join(s.get("run", "") for s in yaml.safe_load(text["image.yml"])["jobs"]["image"]["steps"])
    assert "scripts/ci/verify_download.py alarm-keyring" in image and "curl" not in image.split("alarm-keyring")[0]
