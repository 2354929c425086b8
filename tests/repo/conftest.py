"""Signed packages built once per session with the real makepkg, and a repo config per test."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from avfrepo import config as config_mod
from avfrepo.build.backends import MakepkgBackend
from avfrepo.demo import write_config
from avfrepo.pacman_client import PacmanRoot
from avfrepo.signing import detach_sign, signing_key

from ..conftest import require_build_user, require_tools, shared


def _pkgbuild(name: str, rel: int, note: str) -> str:
    return textwrap.dedent(f"""\
        pkgname={name}
        pkgver=1.0
        pkgrel={rel}
        pkgdesc="repository test package"
        arch=(any)
        license=(MIT)
        options=(!strip)
        package() {{ install -d "$pkgdir/usr/share/{name}"; echo "{note} {rel}" > "$pkgdir/usr/share/{name}/v"; }}
        """)


@pytest.fixture(scope="session")
def built(tmp_path_factory, signing_home) -> dict[str, Path]:
    """'t-a-1'..'t-a-4', 't-b-1', and 't-a-1-other' (same version, other bytes); all signed."""
    require_tools("makepkg", "repo-add", "bsdtar", "gpg")
    require_build_user()

    def make(base: Path) -> dict[str, str]:
        cfg = config_mod.load(write_config(base / "avfrepo.toml", "file:///nowhere", signing_home))
        key = signing_key(cfg.signing)
        out: dict[str, str] = {}
        wanted = [("t-a", r, "a") for r in (1, 2, 3, 4)] + [("t-b", 1, "b"), ("t-a", 1, "other")]
        for name, rel, note in wanted:
            label = f"{name}-{rel}" + ("-other" if note == "other" else "")
            src = base / "src" / label
            src.mkdir(parents=True)
            (src / "PKGBUILD").write_text(_pkgbuild(name, rel, note))
            pkg, = MakepkgBackend(cfg).build(src, [], base / "logs" / label, base / "out" / label)
            detach_sign(cfg.signing, key, pkg)
            out[label] = str(pkg)
        return out
    return {label: Path(p) for label, p in shared(tmp_path_factory, "built", make).items()}


def fresh(built: dict[str, Path], tmp_path: Path, *labels: str) -> list[Path]:
    """Copies (package + .sig) of built packages, so a test may damage them."""
    dest = tmp_path / "incoming"
    dest.mkdir(exist_ok=True)
    res = []
    for label in labels:
        src = built[label]
        d = dest / label
        d.mkdir(exist_ok=True)
        shutil.copy(src, d / src.name)
        shutil.copy(str(src) + ".sig", d / (src.name + ".sig"))
        res.append(d / src.name)
    return res


@pytest.fixture
def rcfg(tmp_path, signing_home) -> config_mod.Config:
    require_build_user()
    return config_mod.load(write_config(tmp_path / "avfrepo.toml", "file:///nowhere", signing_home))


@pytest.fixture(scope="session")
def trusted_gpgdir(tmp_path_factory, signing_home) -> Path:
    """A pacman keyring that trusts the test repository key (pacman-key --init is slow: once)."""
    require_tools("pacman", "pacman-key")
    from avfrepo.config import SigningConfig
    from avfrepo.signing import export_public

    def make(base: Path) -> str:
        sc = SigningConfig(None, signing_home)
        key = signing_key(sc)
        asc = base / "avf.asc"
        asc.write_bytes(export_public(sc, key.fingerprint, armor=True))
        c = PacmanRoot(base / "c", {"avf": "file:///nowhere"})
        c.trust(asc, key.fingerprint)
        return str(c.gpgdir)
    return Path(shared(tmp_path_factory, "pacman-trust", make))


def pacman_client(cfg, tmp_path: Path, trusted_gpgdir: Path, name: str = "client") -> PacmanRoot:
    gpg = tmp_path / f"{name}-gnupg"
    shutil.copytree(trusted_gpgdir, gpg, symlinks=True, ignore=shutil.ignore_patterns("S.*"))
    return PacmanRoot(tmp_path / name, {cfg.repo.name: cfg.repo.path.as_uri() + "/$arch"}, cfg.repo.arch, gpgdir=gpg)
