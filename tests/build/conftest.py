"""Small synthetic packages written for the build tests (real makepkg builds them)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest

from avfrepo import config as config_mod
from avfrepo.build import build
from avfrepo.demo import FakeAvf, write_config
from avfrepo.formats.repodb import read_db
from avfrepo.makepkg import printsrcinfo

from ..conftest import copy_workdir, require_build_user, require_tools, shared

def write_pkg(cfg, name: str, version: str = "1.0", rel: int | str = 1, depends: tuple[str, ...] = (),
              body: str = 'echo "$pkgname" > "$pkgdir/usr/share/$pkgname.txt"', fail: bool = False,
              provides: tuple[str, ...] = (), arch: str = "any") -> None:
    deps = " ".join(f"'{d}'" for d in depends)
    provs = " ".join(f"'{p}'" for p in provides)
    pkgbuild = textwrap.dedent(f"""\
        pkgname={name}
        pkgver={version}
        pkgrel={rel}
        pkgdesc="synthetic test package {name}"
        arch=({arch})
        license=(MIT)
        depends=({deps})
        provides=({provs})
        options=(!strip)

        package() {{
          install -d "$pkgdir/usr/share"
          {"false" if fail else body}
        }}
        """).encode()
    files = {"PKGBUILD": pkgbuild}
    files[".SRCINFO"] = printsrcinfo(cfg, {"PKGBUILD": pkgbuild}).encode()     # once per run: tests/conftest.py
    d = cfg.pkgbuilds / name
    d.mkdir(parents=True, exist_ok=True)
    for rel_path, data in files.items():
        (d / rel_path).write_bytes(data)


def write_chain(cfg) -> None:
    """A chain a <- b <- c, an independent d."""
    write_pkg(cfg, "t-a")
    write_pkg(cfg, "t-b", depends=("t-a>=1.0",))
    write_pkg(cfg, "t-c", depends=("t-b",))
    write_pkg(cfg, "t-d")


@pytest.fixture
def pkgs(cfg):
    write_chain(cfg)
    return cfg


def built_state(tmp_path_factory, upstream: Path, signing_home: Path, name: str,
                setup: Callable[[config_mod.Config], object]) -> Path:
    """A working folder (pkgbuilds/, repo/, logs/, ...) in which setup(cfg) wrote packages and
    built them with the real makepkg and publish, made once per run: tests whose subject is
    what happens after that build copy it (tests/conftest.py copy_workdir) instead of each
    building the same packages again."""
    require_tools("makepkg", "repo-add", "bsdtar", "gpg")
    require_build_user()

    def make(base: Path) -> str:
        setup(config_mod.load(write_config(base / "avfrepo.toml", FakeAvf(upstream).url, signing_home)))
        return str(base)
    return Path(shared(tmp_path_factory, name, make))


@pytest.fixture(scope="session")
def chain_built(tmp_path_factory, demo_upstream_template, signing_home) -> Path:
    return built_state(tmp_path_factory, demo_upstream_template, signing_home, "chain-built",
                       lambda cfg: (write_chain(cfg), build(cfg)))


@pytest.fixture
def built_pkgs(cfg, chain_built):
    """The chain of `pkgs`, built and published: for tests whose subject is what comes after."""
    copy_workdir(chain_built, cfg.file.parent)
    assert {n: e.version for n, e in read_db(cfg.repo.db).items()} == {
        "t-a": "1.0-1", "t-b": "1.0-1", "t-c": "1.0-1", "t-d": "1.0-1"}
    return cfg


@pytest.fixture(scope="session")
def published_a(tmp_path_factory, demo_upstream_template, signing_home) -> Path:
    return built_state(tmp_path_factory, demo_upstream_template, signing_home, "published-t-a",
                       lambda cfg: (write_pkg(cfg, "t-a"), build(cfg)))


@pytest.fixture
def built_a(cfg, published_a):
    """t-a 1.0-1 built and published: for tests whose subject is what comes after."""
    copy_workdir(published_a, cfg.file.parent)
    assert {n: e.version for n, e in read_db(cfg.repo.db).items()} == {"t-a": "1.0-1"}
    return cfg
