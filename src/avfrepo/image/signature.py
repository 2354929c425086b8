"""Detached signatures of the image and its manifest, by the repository key.

`images.tar.gz.sig` and `images.tar.gz.manifest.json.sig` are binary detached OpenPGP
signatures (as pacman's package .sig files), made with signing.detach_sign and checked right
after with signing.verify_detached against the key's exported public part alone: a signature
that does not verify (wrong key, agent trouble, a file changed under it) stops the build
before anything is renamed into place. A user checks them with `gpg --verify` against the
`avf.asc` published beside the repository database (docs/image.md).

`avfrepo image --unsigned` needs only the key's public part (key(secret=False)), to name it;
`avfrepo image --sign` (image.sign_image) signs later with the secret one.
"""

from __future__ import annotations

from pathlib import Path

from .. import signing
from ..config import Config
from ..errors import SigningError, ToolError
from .errors import ImageError, ImageKeyMissing


def key(cfg: Config, *, secret: bool = True) -> signing.Key:
    """The repository key the image is signed with, or an ImageKeyMissing saying how to get one.
    secret=False (`avfrepo image --unsigned`): the public part suffices, as for avf-keyring: the
    build only names the key (manifest, README); `avfrepo image --sign` signs where the secret is."""
    try:
        return signing.signing_key(cfg.signing) if secret else signing.keyring_key(cfg.signing)
    except SigningError as exc:
        what = "cannot sign the image" if secret else "cannot name the image's signing key"
        raise ImageKeyMissing(f"{what}: {exc}") from None
    except ToolError as exc:
        raise ImageError(f"cannot read the repository key: {exc}") from None


def key_problem(cfg: Config, *, secret: bool = True) -> str | None:
    try:
        key(cfg, secret=secret)
    except ImageError as exc:
        return str(exc)
    return None


def sig_path(file: Path) -> Path:
    return file.with_name(file.name + ".sig")


def sign_and_verify(cfg: Config, k: signing.Key, files: list[Path]) -> list[Path]:
    """FILE.sig beside each file, each verified against the public key alone; returns the .sig paths."""
    public = signing.export_public(cfg.signing, k.fingerprint, armor=False)
    sigs = []
    for f in files:
        sig = signing.detach_sign(cfg.signing, k, f)
        check = verify(public, k.fingerprint, f)
        if not check.ok:
            raise ImageError(f"the signature just made over {f.name} does not verify: {check.reason}")
        sigs.append(sig)
    return sigs


def verify(public_key: bytes, fingerprint: str, file: Path) -> signing.SigCheck:
    """FILE.sig over FILE by the key `fingerprint` (its public part in public_key)."""
    return signing.verify_detached(public_key, sig_path(file), file, fingerprint)
