"""Signing apart from building: `avfrepo image --unsigned` where only the public key is (the
job that boots the image), `avfrepo image --sign ARCHIVE` where the secret key is (the signing
job), checked with the real gpg; a manifest naming another key or an archive that is not the
one the manifest records is refused with nothing written."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from avfrepo import config as config_mod
from avfrepo.cli import main
from avfrepo.config import SigningConfig
from avfrepo.demo import write_config
from avfrepo.image import manifest_path, signature, signature_paths
from avfrepo.signing import export_public, import_public, secret_keys, signing_key

from .standins import image_config

pytestmark = pytest.mark.slow


def public_only_home(dest: Path, signing_home: Path) -> Path:
    """A GnuPG home holding the repository key's public part alone (as CI's image job has it)."""
    fpr = signing_key(SigningConfig(None, signing_home)).fingerprint
    import_public(SigningConfig(None, dest), export_public(SigningConfig(None, signing_home), fpr, armor=True))
    assert not secret_keys(dest)
    return dest


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory, signing_home, standin_repos, trusted_gpgdir):
    """`avfrepo image --unsigned --json` with a public-only GnuPG home, over an output folder
    that still holds the signatures of an earlier archive: (config, exit code, JSON, fingerprint)."""
    base = tmp_path_factory.mktemp("unsigned")
    gpg = base / "pacman-gnupg"
    shutil.copytree(trusted_gpgdir, gpg, symlinks=True, ignore=shutil.ignore_patterns("S.*"))
    cfg = image_config(base / "avfrepo.toml", public_only_home(base / "public-gnupg", signing_home),
                       *standin_repos, gpg)
    out = cfg.image.output
    out.parent.mkdir(parents=True)
    for stale in signature_paths(out):
        stale.write_bytes(b"a signature of an earlier archive")
    code, text = cli("--config", str(cfg.file), "image", "--unsigned", "--json")
    return cfg, code, json.loads(text), signing_key(SigningConfig(None, signing_home)).fingerprint


def copy_image(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest / src.name)
    shutil.copy2(manifest_path(src), dest / manifest_path(src).name)
    return dest / src.name


@pytest.fixture
def signer(tmp_path, signing_home):
    """A config whose GnuPG home holds the secret repository key (the signing job)."""
    (tmp_path / "signer").mkdir()
    return config_mod.load(write_config(tmp_path / "signer" / "avfrepo.toml", "file:///nowhere", signing_home))


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_unsigned_writes_no_signature_and_names_the_key_from_its_public_part(unsigned):
    cfg, code, data, fpr = unsigned
    out = cfg.image.output
    assert code == 0
    assert data["signed"] is False and data["signatures"] == [] and data["signing_key"] == fpr
    assert data["sign_command"] == f"avfrepo image --sign {out}"
    # no .sig, and the earlier archive's signatures are gone: they would not match this archive
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, manifest_path(out).name])
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["signing_key"] == fpr and manifest["archive"] == out.name
    with tarfile.open(out) as tar:
        readme = tar.extractfile("README").read().decode()
    assert f"signed by: {fpr}" in readme


def test_unsigned_dry_run_needs_only_the_public_key_and_says_how_to_sign(unsigned):
    cfg, *_, fpr = unsigned
    code, text = cli("--config", str(cfg.file), "image", "--unsigned", "--dry-run")
    assert code == 0, text
    assert f"would not sign (--unsigned), would name the key {fpr}; then: avfrepo image --sign " in text
    code, text = cli("--config", str(cfg.file), "image", "--dry-run")      # signing needs the secret
    assert code == 1 and "before building: cannot sign the image: no signing key" in text


def test_sign_signs_both_files_and_gpg_verifies_them(unsigned, signer, tmp_path):
    cfg, _, data, fpr = unsigned
    archive = copy_image(cfg.image.output, tmp_path / "artifact")
    code, text = cli("--config", str(signer.file), "image", "--sign", str(archive), "--json")
    assert code == 0, text
    result = json.loads(text)
    assert result["signatures"] == [str(p) for p in signature_paths(archive)]
    assert result["signing_key"] == fpr and result["sha256"] == data["archive_sha256"]
    assert sorted(p.name for p in archive.parent.iterdir()) == sorted(
        [archive.name, manifest_path(archive).name] + [p.name for p in signature_paths(archive)])
    home = tmp_path / "user-gnupg"                # what docs/image.md has the user run
    home.mkdir(mode=0o700)
    (home / "avf.asc").write_bytes(export_public(signer.signing, fpr, armor=True))
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import", str(home / "avf.asc")],
                   check=True, capture_output=True)
    for f in (archive, manifest_path(archive)):
        res = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--status-fd", "1", "--verify",
                              f"{f}.sig", str(f)], capture_output=True, text=True)
        assert res.returncode == 0 and f"VALIDSIG {fpr}" in res.stdout, res.stderr
        assert signature.verify(export_public(signer.signing, fpr, armor=False), fpr, f).ok


def test_sign_refuses_a_manifest_naming_another_key_and_writes_nothing(unsigned, signer, tmp_path, capsys):
    cfg, *_, fpr = unsigned
    archive = copy_image(cfg.image.output, tmp_path / "artifact")
    man = manifest_path(archive)
    other = "0123456789ABCDEF0123456789ABCDEF01234567"
    man.write_text(man.read_text().replace(fpr, other))
    before = listing(archive.parent)
    assert main(["--config", str(signer.file), "image", "--sign", str(archive)]) == 1
    err = capsys.readouterr().err
    assert f"names the key {other}, not {fpr}" in err and "nothing signed" in err
    assert listing(archive.parent) == before


def test_sign_refuses_an_archive_whose_sha256_differs_and_writes_nothing(unsigned, signer, tmp_path, capsys):
    cfg, _, data, _ = unsigned
    archive = copy_image(cfg.image.output, tmp_path / "artifact")
    flipped = bytearray(archive.read_bytes())
    flipped[len(flipped) // 2] ^= 0x01
    archive.write_bytes(bytes(flipped))
    before = listing(archive.parent)
    assert main(["--config", str(signer.file), "image", "--sign", str(archive)]) == 1
    err = capsys.readouterr().err
    assert f"is not the {data['archive_sha256']} its manifest records" in err and "nothing signed" in err
    assert listing(archive.parent) == before


def test_sign_without_the_secret_key_or_archive_is_exit_2_and_writes_nothing(unsigned, tmp_path, capsys):
    cfg, *_ = unsigned                             # its GnuPG home holds the public key alone
    archive = copy_image(cfg.image.output, tmp_path / "artifact")
    before = listing(archive.parent)
    assert main(["--config", str(cfg.file), "image", "--sign", str(archive)]) == 2
    assert "cannot sign the image: no signing key" in capsys.readouterr().err
    assert main(["--config", str(cfg.file), "image", "--sign", str(tmp_path / "none.tar.gz")]) == 2
    assert "none.tar.gz: no such file" in capsys.readouterr().err
    assert main(["--config", str(cfg.file), "image", "--sign", str(archive), "--unsigned"]) == 2
    assert listing(archive.parent) == before




def test_unsigned_without_even_the_public_key_is_exit_2_naming_the_fix(standin_repos, trusted_gpgdir, tmp_path,
                                                                       capsys):
    cfg = image_config(tmp_path / "avfrepo.toml", tmp_path / "empty-gnupg", *standin_repos, trusted_gpgdir)
    assert main(["--config", str(cfg.file), "image", "--unsigned"]) == 2
    err = capsys.readouterr().err
    assert "cannot name the image's signing key: no signing key in" in err and "key import --public" in err
    assert not cfg.image.output.parent.exists()
