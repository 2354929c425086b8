"""The stand-in repositories (built once per session) and one image built from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from avfrepo.image import build_image

from ..conftest import require_build_user, require_tools, shared
from ..repo.conftest import trusted_gpgdir  # noqa: F401  (a pacman keyring trusting the test key)
from .standins import image_config, make_repos

IMAGE_TOOLS = ("makepkg", "repo-add", "bsdtar", "gpg", "pacman", "pacman-key", "mkfs.ext4", "resize2fs", "e2fsck",
               "debugfs", "mkfs.vfat", "fsck.fat", "mmd", "mcopy", "mdir", "mtype", "minfo", "tar", "gzip")


@pytest.fixture(scope="session")
def standin_repos(tmp_path_factory, signing_home) -> tuple[Path, Path]:
    require_tools(*IMAGE_TOOLS)
    require_build_user()
    core, avf = shared(tmp_path_factory, "standin-repos", lambda base: [str(p) for p in make_repos(base, signing_home)])
    return Path(core), Path(avf)


@pytest.fixture
def image_cfg_factory(tmp_path, signing_home, standin_repos, trusted_gpgdir):  # noqa: F811
    """image_cfg_factory(**overrides) -> a config for the stand-in repos in its own folder."""
    def make(name: str = "cfg", **kw):
        gpg = tmp_path / f"{name}-gnupg"
        if not gpg.exists():
            shutil.copytree(trusted_gpgdir, gpg, symlinks=True, ignore=shutil.ignore_patterns("S.*"))
        (tmp_path / name).mkdir(exist_ok=True)
        return image_config(tmp_path / name / "avfrepo.toml", signing_home, *standin_repos, gpg, **kw)
    return make


@pytest.fixture(scope="module")
def built_image(tmp_path_factory, signing_home, standin_repos, trusted_gpgdir):  # noqa: F811
    """One image of avf-base from the stand-in repositories: (config, result, progress lines)."""
    base = tmp_path_factory.mktemp("image")
    gpg = base / "gnupg"
    shutil.copytree(trusted_gpgdir, gpg, symlinks=True, ignore=shutil.ignore_patterns("S.*"))
    cfg = image_config(base / "avfrepo.toml", signing_home, *standin_repos, gpg)
    lines: list[str] = []
    result = build_image(cfg, progress=lines.append)
    return cfg, result, lines
