"""The image's detached signatures: made and checked with the real gpg, a flipped byte refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from avfrepo import config as config_mod
from avfrepo.demo import write_config
from avfrepo.image import ImageError, signature
from avfrepo.signing import export_public, signing_key


@pytest.fixture
def cfg(tmp_path, signing_home):
    return config_mod.load(write_config(tmp_path / "avfrepo.toml", "file:///nowhere", signing_home))


def gpg_verify(home: Path, key_asc: bytes, sig: Path, data: Path) -> subprocess.CompletedProcess:
    """What docs/image.md tells a user to run: import avf.asc, then gpg --verify."""
    home.mkdir(mode=0o700, exist_ok=True)
    asc = home / "avf.asc"
    asc.write_bytes(key_asc)
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import", str(asc)], check=True, capture_output=True)
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--status-fd", "1", "--verify", str(sig), str(data)],
                          capture_output=True, text=True)


def test_signatures_verify_with_gpg_and_a_flipped_byte_is_refused(cfg, tmp_path):
    archive, manifest = tmp_path / "images.tar.gz", tmp_path / "images.tar.gz.manifest.json"
    archive.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 64)
    manifest.write_text('{"archive": "images.tar.gz"}\n')
    key = signature.key(cfg)
    sigs = signature.sign_and_verify(cfg, key, [archive, manifest])
    assert sigs == [tmp_path / "images.tar.gz.sig", tmp_path / "images.tar.gz.manifest.json.sig"]
    asc = export_public(cfg.signing, key.fingerprint, armor=True)
    for sig, data in zip(sigs, (archive, manifest)):
        res = gpg_verify(tmp_path / "user-gnupg", asc, sig, data)
        assert res.returncode == 0 and f"VALIDSIG {key.fingerprint}" in res.stdout, res.stderr
    public = export_public(cfg.signing, key.fingerprint, armor=False)
    assert signature.verify(public, key.fingerprint, archive).ok
    data = bytearray(archive.read_bytes())
    data[100] ^= 0x01
    archive.write_bytes(bytes(data))
    check = signature.verify(public, key.fingerprint, archive)
    assert not check.ok and "bad signature" in check.reason
    res = gpg_verify(tmp_path / "user-gnupg", asc, sigs[0], archive)
    assert res.returncode != 0 and "BADSIG" in res.stdout


def test_a_signature_by_another_key_is_not_the_repository_key(cfg, tmp_path):
    other = tmp_path / "other-gnupg"
    other.mkdir(mode=0o700)
    subprocess.run(["gpg", "--homedir", str(other), "--batch", "--passphrase", "", "--quick-gen-key",
                    "other <o@example.invalid>", "ed25519", "sign", "never"], check=True, capture_output=True)
    f = tmp_path / "images.tar.gz"
    f.write_bytes(b"image")
    subprocess.run(["gpg", "--homedir", str(other), "--batch", "--detach-sign", "--output", str(f) + ".sig", str(f)],
                   check=True, capture_output=True)
    key = signing_key(cfg.signing)
    check = signature.verify(export_public(cfg.signing, key.fingerprint, armor=False), key.fingerprint, f)
    assert not check.ok and "not the repository key" in check.reason


def test_no_signing_key_is_an_image_error_naming_the_fix(tmp_path, signing_home):
    cfg = config_mod.load(write_config(tmp_path / "avfrepo.toml", "file:///nowhere", tmp_path / "empty-gnupg"))
    with pytest.raises(ImageError, match=r"cannot sign the image: no signing key in .*avfrepo key init"):
        signature.key(cfg)
