"""The repository key with the real gpg/gpgv: create, find, export, sign, verify."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from avfrepo.config import SigningConfig
from avfrepo.errors import ConfigError, SigningError
from avfrepo.signing import (
    detach_sign, export_public, import_public, init_key, keyring_key, secret_keys, signing_key, verification_key,
    verify_detached,
)

from .conftest import require_tools

UID = "avfrepo test <test@example.invalid>"


@pytest.fixture(autouse=True)
def _tools():
    require_tools("gpg", "gpgv")


def gen_key(home: Path, uid: str, *extra: str, expire: str = "never") -> None:
    """A second way to make keys (plain gpg), so tests do not rely on init_key alone."""
    home.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", "--passphrase", "", *extra,
                    "--quick-gen-key", uid, "ed25519", "sign", expire], check=True, capture_output=True)


@pytest.fixture
def repo_key(signing_home):
    cfg = SigningConfig(None, signing_home)
    return cfg, signing_key(cfg)


@pytest.fixture(scope="module")
def other_home(tmp_path_factory) -> Path:
    """A second GnuPG home with a different key (a stranger's)."""
    home = tmp_path_factory.mktemp("other-gnupg")
    init_key(SigningConfig(None, home), "stranger <stranger@example.invalid>")
    return home


@pytest.fixture
def payload(tmp_path) -> Path:
    f = tmp_path / "avf.db.tar.gz"
    f.write_bytes(os.urandom(4096))
    return f


# --- keys ------------------------------------------------------------------------------

def test_init_key_expires_in_two_years_unless_told_otherwise(tmp_path):
    """A repository key without expiry outlives a lost backup; the default is gpg's 2y, and
    `--expire` passes any gpg period through after a check."""
    key, _ = init_key(SigningConfig(None, tmp_path / "default"), UID)
    days = (key.expires - key.created).days
    assert 729 <= days <= 731
    key, _ = init_key(SigningConfig(None, tmp_path / "short"), UID, "30d")
    assert (key.expires - key.created).days == 30


@pytest.mark.parametrize("expire", ["2 years", "-1y", "0", "2y; rm -rf /", "--yes", "", "1x"])
def test_init_key_refuses_a_bad_expiry_before_gpg_runs(tmp_path, expire):
    home = tmp_path / "gnupg"
    with pytest.raises(ConfigError) as info:
        init_key(SigningConfig(None, home), UID, expire)
    assert "never" in str(info.value) and "2y" in str(info.value)
    assert not home.exists()


def test_init_key_refuses_a_user_id_of_several_lines(tmp_path):
    home = tmp_path / "gnupg"
    with pytest.raises(ConfigError, match="one line"):
        init_key(SigningConfig(None, home), "a <a@example.invalid>\nb", "never")
    assert not home.exists()


def test_init_key_creates_an_ed25519_key_in_an_empty_home(tmp_path):
    home = tmp_path / "new" / "gnupg"
    key, created = init_key(SigningConfig(None, home), UID, "never")
    assert created is True
    assert re.fullmatch(r"[0-9A-F]{40}", key.fingerprint)
    assert key.uid == UID
    assert key.expires is None
    assert re.fullmatch(r"\d{8}", key.created_date)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert [k.fingerprint for k in secret_keys(home)] == [key.fingerprint]
    listing = subprocess.run(["gpg", "--homedir", str(home), "--with-colons", "--list-secret-keys"],
                             capture_output=True, text=True, check=True).stdout
    [sec] = [line.split(":") for line in listing.splitlines() if line.startswith("sec:")]
    assert sec[3] == "22" and sec[16] == "ed25519"           # algorithm 22 = EdDSA, curve ed25519
    assert "s" in sec[11] and "e" not in sec[11]               # a signing-only key


def test_init_key_is_idempotent(tmp_path):
    cfg = SigningConfig(None, tmp_path / "gnupg")
    first, created1 = init_key(cfg, UID)
    second, created2 = init_key(cfg, "someone else <x@example.invalid>")
    assert (created1, created2) == (True, False)
    assert second.fingerprint == first.fingerprint
    assert len(secret_keys(cfg.gnupg_home)) == 1


def test_init_key_refuses_a_home_with_two_keys_and_creates_nothing(tmp_path):
    home = tmp_path / "gnupg"
    gen_key(home, "one <1@example.invalid>")
    gen_key(home, "two <2@example.invalid>")
    with pytest.raises(SigningError, match="2 secret keys"):
        init_key(SigningConfig(None, home), UID)
    assert len(secret_keys(home)) == 2


def test_init_key_with_an_absent_configured_key_fails_without_creating_one(tmp_path):
    home = tmp_path / "gnupg"
    with pytest.raises(SigningError, match="has no secret key"):
        init_key(SigningConfig("A" * 40, home), UID)
    assert secret_keys(home) == []


def test_secret_keys_of_a_missing_home_is_empty(tmp_path):
    assert secret_keys(tmp_path / "nope") == []
    assert not (tmp_path / "nope").exists()


def test_signing_key_finds_the_only_key(signing_home):
    key = signing_key(SigningConfig(None, signing_home))
    assert key.uid == "avfrepo test <test@example.invalid>"
    assert signing_key(SigningConfig(key.fingerprint, signing_home)) == key


def test_signing_key_in_empty_home_says_to_run_key_init(tmp_path):
    home = tmp_path / "gnupg"
    with pytest.raises(SigningError) as info:
        signing_key(SigningConfig(None, home))
    msg = str(info.value)
    assert f"no signing key in {home}" in msg
    assert "avfrepo key init" in msg and "[signing]" in msg


def test_signing_key_with_two_keys_asks_for_signing_key_and_lists_both(tmp_path):
    home = tmp_path / "gnupg"
    gen_key(home, "one <1@example.invalid>")
    gen_key(home, "two <2@example.invalid>")
    fprs = [k.fingerprint for k in secret_keys(home)]
    with pytest.raises(SigningError) as info:
        signing_key(SigningConfig(None, home))
    msg = str(info.value)
    assert "set [signing] key" in msg
    assert all(f in msg for f in fprs)
    chosen = signing_key(SigningConfig(fprs[1], home))              # and setting it resolves it
    assert chosen.fingerprint == fprs[1] and chosen.uid == "two <2@example.invalid>"


def test_signing_key_with_absent_configured_fingerprint_says_to_import_it(signing_home):
    absent = "B" * 40
    with pytest.raises(SigningError) as info:
        signing_key(SigningConfig(absent, signing_home))
    msg = str(info.value)
    assert absent in msg and str(signing_home) in msg
    assert "import it" in msg


def test_expired_key_is_refused_with_its_expiry_date(tmp_path):
    home = tmp_path / "gnupg"
    gen_key(home, "old <old@example.invalid>", "--faked-system-time", "20200101T000000", expire="1d")
    with pytest.raises(SigningError, match=r"expired on 2020-01-02"):
        signing_key(SigningConfig(None, home))


def test_verification_key_needs_only_the_public_key(tmp_path, repo_key):
    cfg, key = repo_key
    pub_home = tmp_path / "public-only"
    pub_home.mkdir(mode=0o700)
    subprocess.run(["gpg", "--homedir", str(pub_home), "--batch", "--import"],
                   input=export_public(cfg, key.fingerprint, armor=False), check=True, capture_output=True)
    assert verification_key(SigningConfig(key.fingerprint, pub_home)) == key.fingerprint
    with pytest.raises(SigningError, match="import its public key"):
        verification_key(SigningConfig("C" * 40, pub_home))
    with pytest.raises(SigningError, match="no signing key"):
        verification_key(SigningConfig(None, pub_home))          # no fingerprint and no secret key


def test_keyring_key_needs_only_the_public_key_and_import_public_refuses_a_secret(tmp_path, repo_key):
    cfg, key = repo_key
    pub = SigningConfig(None, tmp_path / "public-only")
    with pytest.raises(SigningError, match="key import --public"):
        keyring_key(pub)
    armored = export_public(cfg, key.fingerprint, armor=True)
    assert [k.fingerprint for k in import_public(pub, armored)] == [key.fingerprint]
    assert keyring_key(pub).fingerprint == key.fingerprint == keyring_key(cfg).fingerprint   # validity differs by home
    assert secret_keys(pub.gnupg_home) == []
    with pytest.raises(SigningError, match="no signing key"):
        signing_key(pub)
    with pytest.raises(SigningError, match="key import --public"):
        keyring_key(SigningConfig("C" * 40, pub.gnupg_home))
    secret = subprocess.run(["gpg", "--homedir", str(cfg.gnupg_home), "--batch", "--armor", "--export-secret-keys",
                             key.fingerprint], check=True, capture_output=True).stdout
    with pytest.raises(SigningError, match="not an armored OpenPGP public key"):
        import_public(SigningConfig(None, tmp_path / "other"), secret)
    assert not (tmp_path / "other").exists()


# --- export ----------------------------------------------------------------------------

def test_export_public_armored(repo_key):
    cfg, key = repo_key
    data = export_public(cfg, key.fingerprint, armor=True)
    assert data.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert data.rstrip().endswith(b"-----END PGP PUBLIC KEY BLOCK-----")
    assert b"PRIVATE" not in data


def test_export_public_binary_is_a_key_gpg_reads_back(repo_key):
    cfg, key = repo_key
    data = export_public(cfg, key.fingerprint, armor=False)
    assert not data.startswith(b"-----")
    shown = subprocess.run(["gpg", "--batch", "--with-colons", "--show-keys"], input=data,
                           capture_output=True, check=True).stdout.decode()
    assert f"fpr:::::::::{key.fingerprint}:" in shown
    assert "sec:" not in shown


def test_export_of_an_unknown_key_is_a_signing_error(repo_key):
    cfg, _ = repo_key
    with pytest.raises(SigningError, match="exported nothing"):
        export_public(cfg, "D" * 40, armor=True)


# --- sign and verify -------------------------------------------------------------------

def test_detach_sign_then_verify_is_good(repo_key, payload):
    cfg, key = repo_key
    sig = detach_sign(cfg, key, payload)
    assert sig == payload.with_name(payload.name + ".sig")
    assert not sig.read_bytes().startswith(b"-----")                  # binary, as pacman wants
    assert sorted(p.name for p in payload.parent.iterdir()) == [payload.name, sig.name]
    check = verify_detached(export_public(cfg, key.fingerprint, armor=False), sig, payload, key.fingerprint)
    assert check.ok is True
    assert check.signer == key.fingerprint
    assert check.reason == "good signature"


def test_verify_accepts_a_lowercase_fingerprint(repo_key, payload):
    cfg, key = repo_key
    sig = detach_sign(cfg, key, payload)
    check = verify_detached(export_public(cfg, key.fingerprint, armor=False), sig, payload, key.fingerprint.lower())
    assert check.ok and check.signer == key.fingerprint


def test_signing_again_replaces_the_signature(repo_key, payload):
    cfg, key = repo_key
    sig = detach_sign(cfg, key, payload)
    payload.write_bytes(b"new content")
    assert detach_sign(cfg, key, payload) == sig
    assert verify_detached(export_public(cfg, key.fingerprint, armor=False), sig, payload, key.fingerprint).ok


def test_flipped_byte_in_the_file_fails_verification(repo_key, payload):
    cfg, key = repo_key
    sig = detach_sign(cfg, key, payload)
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0x01
    payload.write_bytes(bytes(data))
    check = verify_detached(export_public(cfg, key.fingerprint, armor=False), sig, payload, key.fingerprint)
    assert check.ok is False
    assert check.signer is None
    assert check.reason.startswith("bad signature")


def test_garbage_signature_file_fails_verification(repo_key, payload):
    cfg, key = repo_key
    sig = payload.with_name(payload.name + ".sig")
    sig.write_bytes(b"not a signature")
    check = verify_detached(export_public(cfg, key.fingerprint, armor=False), sig, payload, key.fingerprint)
    assert not check.ok and check.signer is None


def test_missing_signature_fails_verification(repo_key, payload):
    cfg, key = repo_key
    check = verify_detached(export_public(cfg, key.fingerprint, armor=False),
                            payload.with_name(payload.name + ".sig"), payload, key.fingerprint)
    assert check.ok is False
    assert check.signer is None
    assert check.reason == "signature file missing"


def stranger_signs(other_home: Path, payload: Path) -> tuple[str, Path]:
    cfg = SigningConfig(None, other_home)
    key = signing_key(cfg)
    return key.fingerprint, detach_sign(cfg, key, payload)


def test_signature_by_another_known_key_is_refused_naming_the_signer(repo_key, other_home, payload):
    cfg, key = repo_key
    stranger, sig = stranger_signs(other_home, payload)
    both = export_public(cfg, key.fingerprint, armor=False) + export_public(
        SigningConfig(None, other_home), stranger, armor=False)
    check = verify_detached(both, sig, payload, key.fingerprint)
    assert check.ok is False
    assert check.signer == stranger
    assert stranger in check.reason and "not the repository key" in check.reason


def test_signature_by_an_unknown_key_is_refused_naming_the_signer(repo_key, other_home, payload):
    cfg, key = repo_key
    stranger, sig = stranger_signs(other_home, payload)
    assert stranger != key.fingerprint
    check = verify_detached(export_public(cfg, key.fingerprint, armor=False), sig, payload, key.fingerprint)
    assert check.ok is False
    assert check.signer and stranger.endswith(check.signer)    # the issuer's long key id (or fingerprint)
    assert check.signer in check.reason and "not the repository key" in check.reason


def test_verify_against_a_keyring_without_the_key_fails(repo_key, other_home, payload):
    cfg, key = repo_key
    sig = detach_sign(cfg, key, payload)
    stranger_cfg = SigningConfig(None, other_home)
    stranger_pub = export_public(stranger_cfg, signing_key(stranger_cfg).fingerprint, armor=False)
    check = verify_detached(stranger_pub, sig, payload, key.fingerprint)
    assert not check.ok


# --- signing subkeys -------------------------------------------------------------------

def test_a_signing_subkey_added_later_signs_and_verifies_as_the_repository_key(tmp_path, payload):
    """`gpg --quick-add-key FPR ed25519 sign`: gpg then signs with the subkey (VALIDSIG names the
    subkey first, the primary last). The key exported for checking must carry the subkey even
    when an export of the key without it was cached before."""
    from avfrepo.signing import public_key_files
    home = tmp_path / "gnupg"
    gen_key(home, UID)
    cfg = SigningConfig(None, home)
    key = signing_key(cfg)
    cache = tmp_path / "cache"
    before, _ = public_key_files(cfg, key.fingerprint, cache)      # cached without the subkey
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-add-key",
                    key.fingerprint, "ed25519", "sign"], check=True, capture_output=True)
    sig = detach_sign(cfg, key, payload)
    public, armored = public_key_files(cfg, key.fingerprint, cache)
    assert public != before
    ring = tmp_path / "ring.gpg"
    ring.write_bytes(public)
    status = subprocess.run(["gpgv", "--status-fd", "1", "--keyring", str(ring), str(sig), str(payload)],
                            capture_output=True, text=True).stdout
    [valid] = [line.split() for line in status.splitlines() if line.startswith("[GNUPG:] VALIDSIG ")]
    assert valid[2] != key.fingerprint and valid[-1] == key.fingerprint     # made by the subkey
    check = verify_detached(public, sig, payload, key.fingerprint)
    assert check.ok and check.signer == key.fingerprint, check.reason
    assert signing_key(cfg).fingerprint == key.fingerprint                  # still one repository key
    shown = subprocess.run(["gpg", "--with-colons", "--show-keys", str(armored)], capture_output=True, text=True,
                           check=True).stdout
    assert valid[2] in shown                                                # users' keyrings get the subkey


def test_a_signature_by_another_keys_subkey_is_refused(tmp_path, repo_key, payload):
    cfg, key = repo_key
    home = tmp_path / "stranger"
    gen_key(home, "stranger <s@example.invalid>")
    scfg = SigningConfig(None, home)
    skey = signing_key(scfg)
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-add-key",
                    skey.fingerprint, "ed25519", "sign"], check=True, capture_output=True)
    sig = detach_sign(scfg, skey, payload)
    both = export_public(cfg, key.fingerprint, armor=False) + export_public(scfg, skey.fingerprint, armor=False)
    check = verify_detached(both, sig, payload, key.fingerprint)
    assert not check.ok and check.signer == skey.fingerprint and "not the repository key" in check.reason
