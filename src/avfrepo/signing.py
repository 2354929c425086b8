"""The repository's OpenPGP key: find it, create it, export it, sign and verify with it.

All gpg calls use the configured GnuPG home (never the caller's default keyring), in batch
mode, so they work unattended (CI imports its secret into a temporary home).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import SigningConfig
from .errors import ConfigError, SigningError, ToolError
from .run import run


@dataclass(frozen=True)
class Key:
    fingerprint: str
    uid: str
    created: dt.datetime
    expires: dt.datetime | None
    validity: str = ""       # gpg's field 2: r revoked, e expired, d disabled, i invalid
    caps: str = ""           # gpg's field 12: upper case = usable by the key as a whole

    @property
    def created_date(self) -> str:
        return self.created.strftime("%Y%m%d")


def _gpg(home: Path, *args: str, **kw):
    return run(["gpg", "--homedir", str(home), "--batch", "--no-tty", "--yes", *args], **kw)


def _prepare_home(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)


def secret_keys(home: Path) -> list[Key]:
    return _list(home, secret=True)


def public_keys(home: Path) -> list[Key]:
    return _list(home, secret=False)


def _list(home: Path, *, secret: bool) -> list[Key]:
    if not home.is_dir():
        return []
    what = "secret keys" if secret else "keys"
    res = _gpg(home, "--with-colons", "--fixed-list-mode", "--list-secret-keys" if secret else "--list-keys",
               check=False)
    out = res.stdout
    if res.returncode != 0 and not out.strip():
        why = (res.stderr.strip().splitlines() or ["no output"])[-1]
        hint = "" if os.access(home, os.W_OK) else " (the GnuPG home is not writable: gpg needs its lock files and agent socket there)"
        raise SigningError(f"gpg cannot list the {what} in {home}: {why}{hint}")
    keys: list[Key] = []
    cur: dict[str, str] = {}
    for line in out.splitlines():
        f = line.split(":")
        if f[0] == ("sec" if secret else "pub"):
            if cur.get("fpr"):
                keys.append(_key(cur))
            cur = {"validity": f[1], "created": f[5], "expires": f[6], "caps": f[11] if len(f) > 11 else ""}
        elif f[0] == "fpr" and cur and "fpr" not in cur:
            cur["fpr"] = f[9]
        elif f[0] == "uid" and cur and "uid" not in cur:
            cur["uid"] = f[9]
    if cur.get("fpr"):
        keys.append(_key(cur))
    return keys


def _key(d: dict[str, str]) -> Key:
    def ts(v: str) -> dt.datetime | None:
        return dt.datetime.fromtimestamp(int(v), dt.timezone.utc) if v else None
    return Key(d["fpr"].upper(), d.get("uid", ""), ts(d["created"]) or dt.datetime.now(dt.timezone.utc),
               ts(d["expires"]), d.get("validity", ""), d.get("caps", ""))


def signing_key(cfg: SigningConfig) -> Key:
    """The key to sign with, or a SigningError that says how to get one."""
    keys = secret_keys(cfg.gnupg_home)
    if cfg.key:
        keys = [k for k in keys if k.fingerprint == cfg.key]
        if not keys:
            raise SigningError(f"signing key {cfg.key} has no secret key in {cfg.gnupg_home} "
                               f"(import it, or run `avfrepo key init` with [signing] key unset)")
    elif not keys:
        raise SigningError(f"no signing key in {cfg.gnupg_home}: run `avfrepo key init` "
                           f"(or set [signing] gnupg_home / key in the config)")
    elif len(keys) > 1:
        raise SigningError(f"{len(keys)} secret keys in {cfg.gnupg_home}: set [signing] key to the fingerprint "
                           f"to use ({', '.join(k.fingerprint for k in keys)})")
    key = keys[0]
    if key.validity == "r":
        raise SigningError(f"signing key {key.fingerprint} in {cfg.gnupg_home} is revoked")
    if key.validity == "e" or (key.expires and key.expires <= dt.datetime.now(dt.timezone.utc)):
        raise SigningError(f"signing key {key.fingerprint} expired"
                           + (f" on {key.expires:%Y-%m-%d}" if key.expires else ""))
    if key.validity in ("d", "i", "n"):
        raise SigningError(f"signing key {key.fingerprint} in {cfg.gnupg_home} is unusable (gpg validity {key.validity!r})")
    if key.caps and "S" not in key.caps:
        raise SigningError(f"signing key {key.fingerprint} has no usable signing (sub)key (capabilities {key.caps!r})")
    return key


def probe_signing(cfg: SigningConfig, key: Key, public: bytes | None = None) -> None:
    """Sign a scratch file the way repo-add signs a db: a revoked, expired or otherwise
    unusable key (or an agent that cannot sign) is a SigningError before a publish changes
    anything. (The signature itself is checked, with everything else, by the snapshot check.)"""
    with tempfile.TemporaryDirectory(prefix="avfrepo-probe-") as tmp:
        blob = Path(tmp) / "probe"
        blob.write_bytes(b"avfrepo signing probe\n")
        sig = Path(str(blob) + ".sig")
        res = _gpg(cfg.gnupg_home, "--local-user", key.fingerprint, "--detach-sign", "--no-armor",
                   "--output", str(sig), str(blob), check=False)
        made = sig.is_file() and sig.stat().st_size > 0
    if res.returncode != 0 or not made:
        why = (res.stderr.strip().splitlines() or ["no signature made"])[-1]
        raise SigningError(f"signing key {key.fingerprint} cannot sign: {why}")


def keyring_key(cfg: SigningConfig) -> Key:
    """The repository key as far as its public part goes (what avf-keyring ships): the
    signing key when the home holds it, else the public key [signing] key names, or the only
    public key in the home (CI: the sync job holds only the public key)."""
    try:
        return signing_key(cfg)
    except SigningError:
        if secret_keys(cfg.gnupg_home):
            raise
    keys = public_keys(cfg.gnupg_home)
    if cfg.key:
        keys = [k for k in keys if k.fingerprint == cfg.key.upper()]
    if len(keys) != 1:
        raise SigningError(f"no signing key in {cfg.gnupg_home}: run `avfrepo key init`, or import the "
                           f"repository's public key (`avfrepo key import --public`)"
                           + (f"; {len(keys)} public keys there: set [signing] key" if len(keys) > 1 else ""))
    return keys[0]


DEFAULT_EXPIRE = "2y"
_EXPIRE = re.compile(r"never|[1-9][0-9]{0,3}[dwmy]?")


def check_expire(expire: str) -> str:
    """gpg's expiry for a new key: `never`, or a count of days with an optional unit
    (`2y`, `18m`, `52w`, `730d`, `730`). Anything else is refused before gpg runs."""
    if not _EXPIRE.fullmatch(expire):
        raise ConfigError(f"key expiry {expire!r}: expected `never` or a number with a unit d, w, m or y "
                          f"(e.g. {DEFAULT_EXPIRE})")
    return expire


def init_key(cfg: SigningConfig, uid: str, expire: str = DEFAULT_EXPIRE) -> tuple[Key, bool]:
    """Create an ed25519 signing key, expiring after EXPIRE (gpg notation, default two years:
    `gpg --quick-set-expire` extends it, and the next publish exports the new state), unless
    one is usable already. Returns (key, created)."""
    check_expire(expire)
    if not uid.strip() or any(ord(c) < 32 or ord(c) == 127 for c in uid):
        raise ConfigError(f"key user id {uid!r}: must be one line of printable text, e.g. 'Name <mail@host>'")
    try:
        return signing_key(cfg), False
    except SigningError:
        # a configured fingerprint cannot be created, and a home with keys is not ours to add to
        if cfg.key or secret_keys(cfg.gnupg_home):
            raise
    _prepare_home(cfg.gnupg_home)
    _gpg(cfg.gnupg_home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", expire)
    return signing_key(cfg), True


def export_public(cfg: SigningConfig, fingerprint: str, *, armor: bool) -> bytes:
    """The public key, binary (for keyrings) or ASCII-armored (published beside the db)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "key"
        _gpg(cfg.gnupg_home, *(["--armor"] if armor else []), "--output", str(out), "--export", fingerprint)
        data = out.read_bytes() if out.exists() else b""
    if not data:
        raise SigningError(f"gpg exported nothing for {fingerprint} from {cfg.gnupg_home}")
    return data


def public_key_files(cfg: SigningConfig, fingerprint: str, cache: Path) -> tuple[bytes, Path]:
    """The public key, binary (for checking signatures, keyrings) and armored (published as
    <repo>.asc), exported into the local cache (never a served directory) instead of by two gpg
    runs every sync and publish. The cache is keyed by the key's state as gpg lists it (its
    subkeys, their validity and expiry): a signing subkey added later, an extended expiry or a
    revocation is exported again, so signatures by a new subkey verify and users' keyrings
    get it. Returns (binary, armored)."""
    from .fsutil import atomic_write
    keys = cache / "keys"
    state = _key_state(cfg.gnupg_home, fingerprint)
    binary, armored = keys / f"{fingerprint}-{state}.gpg", keys / f"{fingerprint}-{state}.asc"
    if not (binary.exists() and armored.exists()):
        stale = sorted(keys.glob(f"{fingerprint}*")) if keys.is_dir() else []
        atomic_write(binary, export_public(cfg, fingerprint, armor=False))
        atomic_write(armored, export_public(cfg, fingerprint, armor=True))
        for old in stale:
            if old not in (binary, armored):
                old.unlink(missing_ok=True)
    return binary.read_bytes(), armored


def _key_state(home: Path, fingerprint: str) -> str:
    """A short digest of what `gpg --list-keys` says of the key: its primary and every subkey
    (fingerprint, validity, creation, expiry, capabilities)."""
    import hashlib
    res = _gpg(home, "--with-colons", "--fixed-list-mode", "--list-keys", fingerprint, check=False)
    if res.returncode != 0:
        raise SigningError(f"the repository key {fingerprint} is not in {home}: import its public key")
    rows = [":".join(f[i] if i < len(f) else "" for i in (0, 1, 4, 5, 6, 9, 11)) for f in
            (line.split(":") for line in res.stdout.splitlines()) if f[0] in ("pub", "sub", "fpr", "uid")]
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def detach_sign(cfg: SigningConfig, key: Key, file: Path) -> Path:
    """Write FILE.sig (binary detached signature, as pacman expects)."""
    sig = file.with_name(file.name + ".sig")
    tmp = sig.with_name("." + sig.name + ".tmp")
    try:
        _gpg(cfg.gnupg_home, "--local-user", key.fingerprint, "--detach-sign", "--no-armor",
             "--output", str(tmp), str(file))
        os.replace(tmp, sig)
    finally:
        tmp.unlink(missing_ok=True)
    return sig


@dataclass(frozen=True)
class SigCheck:
    ok: bool
    signer: str | None
    reason: str


def verify_detached(public_key: bytes, sig: Path, file: Path, fingerprint: str) -> SigCheck:
    """Check sig over file with gpgv against a keyring holding only public_key.

    Good means: the signature verifies and the signing (primary) key is `fingerprint`.
    """
    if not sig.exists():
        return SigCheck(False, None, "signature file missing")
    with tempfile.TemporaryDirectory() as tmp:
        ring = Path(tmp) / "ring.gpg"
        ring.write_bytes(public_key)
        try:
            res = run(["gpgv", "--status-fd", "1", "--keyring", str(ring), str(sig), str(file)], check=False)
        except ToolError as exc:
            return SigCheck(False, None, str(exc))
    valid = [l.split() for l in res.stdout.splitlines() if l.startswith("[GNUPG:] VALIDSIG ")]
    if res.returncode != 0 or not valid:
        status = {l.split()[1]: l.split()[2:] for l in res.stdout.splitlines()
                  if l.startswith("[GNUPG:] ") and len(l.split()) > 2}
        if "BADSIG" in status:
            return SigCheck(False, None, "bad signature: the file or the signature was altered")
        if "NO_PUBKEY" in status:
            signer = status["NO_PUBKEY"][0].upper()
            return SigCheck(False, signer, f"signed by key {signer}, not the repository key")
        return SigCheck(False, None, "not a valid signature by the repository key")
    primary = valid[0][-1].upper()
    if primary != fingerprint.upper():
        return SigCheck(False, primary, f"signed by {primary}, not the repository key")
    return SigCheck(True, primary, "good signature")


def key_fingerprints(data: bytes) -> list[str]:
    """Primary-key fingerprints of the OpenPGP keys in data (armored or binary), read with
    `gpg --show-keys` in a scratch home; [] when data holds no key."""
    with tempfile.TemporaryDirectory(prefix="avfrepo-keys-") as tmp:
        f = Path(tmp) / "keys"
        f.write_bytes(data)
        home = Path(tmp) / "home"
        _prepare_home(home)
        res = _gpg(home, "--with-colons", "--show-keys", str(f), check=False)
    out, want = [], False
    for line in res.stdout.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            want = True
        elif fields[0] == "fpr" and want:
            out.append(fields[9].upper())
            want = False
    return out


def verification_key(cfg: SigningConfig) -> str:
    """Fingerprint of the key the repository must be signed with (public part suffices)."""
    if cfg.key:
        res = _gpg(cfg.gnupg_home, "--with-colons", "--list-keys", cfg.key, check=False) if cfg.gnupg_home.is_dir() else None
        if res is None or res.returncode != 0:
            raise SigningError(f"the repository key {cfg.key} is not in {cfg.gnupg_home}: import its public key")
        return cfg.key
    return signing_key(cfg).fingerprint


def import_public(cfg: SigningConfig, armored: bytes) -> list[Key]:
    """Import the repository's armored public key (never a secret one) into the configured
    GnuPG home; return the public keys the home then holds."""
    if b"PRIVATE KEY BLOCK" in armored or b"PUBLIC KEY BLOCK" not in armored:
        raise SigningError("not an armored OpenPGP public key (export it with gpg --armor --export)")
    _prepare_home(cfg.gnupg_home)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "key.asc"
        src.write_bytes(armored)
        _gpg(cfg.gnupg_home, "--import", str(src))
    return public_keys(cfg.gnupg_home)


def import_secret(cfg: SigningConfig, armored: bytes) -> list[Key]:
    """Import a secret key (e.g. from a CI secret) into the configured GnuPG home; return the
    secret keys the home then holds. Nothing is imported from data that is not a key."""
    if b"PRIVATE KEY BLOCK" not in armored:
        raise SigningError("not an armored OpenPGP secret key (export it with gpg --armor --export-secret-keys)")
    _prepare_home(cfg.gnupg_home)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "key.asc"
        src.write_bytes(armored)
        _gpg(cfg.gnupg_home, "--import", str(src))
    return secret_keys(cfg.gnupg_home)
