"""Shared fixtures: real tools, private homes, local upstreams only (no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from avfrepo import config as config_mod
from avfrepo.demo import FakeAvf, make_demo_upstream, write_config
from avfrepo.signing import init_key

BUILD_USER = os.environ.get("AVFREPO_BUILD_USER", "avfbuild")

# Arch's devtools: not packaged for Debian, so the only tools a test may skip for there
DEVTOOLS = frozenset({"makechrootpkg", "mkarchroot", "arch-nspawn"})


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        where = ("Arch's devtools: scripts/setup-arch.sh on an Arch Linux host" if set(missing) <= DEVTOOLS
                 else "install with scripts/setup-debian.sh or scripts/setup-arch.sh")
        pytest.skip(f"needs {', '.join(missing)} ({where})")


@pytest.fixture(scope="session", autouse=True)
def hermetic_git():
    """Git as on a fresh machine: no global or system config (no identity, no settings), so a
    test that commits must set the identity it needs, here and on a new CI runner alike.
    (/dev/null: readable by the build user too.)"""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
            mp.delenv(var, raising=False)
        yield


def require_build_user() -> None:
    if os.geteuid() == 0:
        if subprocess.run(["id", "-u", BUILD_USER], capture_output=True).returncode != 0:
            pytest.skip(f"running as root needs the unprivileged build user {BUILD_USER} (scripts/setup-debian.sh)")


@pytest.fixture(scope="session")
def signing_home(tmp_path_factory) -> Path:
    """A GnuPG home with one ed25519 signing key, made once per session (0.05 s with gpg)."""
    require_tools("gpg")
    home = tmp_path_factory.mktemp("gnupg")
    from avfrepo.config import SigningConfig
    init_key(SigningConfig(None, home), "avfrepo test <test@example.invalid>")
    return home


@pytest.fixture(scope="session")
def demo_upstream_template(tmp_path_factory) -> Path:
    """The demo AVF upstream, built once; tests copy it (cheap) instead of rebuilding."""
    require_tools("git")
    path = tmp_path_factory.mktemp("avf-template") / "Virtualization"
    make_demo_upstream(path)
    return path


@pytest.fixture
def avf(tmp_path, demo_upstream_template) -> FakeAvf:
    """A private copy of the demo AVF upstream that the test may change."""
    dest = tmp_path / "upstream" / "Virtualization"
    shutil.copytree(demo_upstream_template, dest, symlinks=True)
    return FakeAvf(dest)


@pytest.fixture
def cfg(tmp_path, avf, signing_home) -> config_mod.Config:
    """A config in tmp_path pointing at the private upstream, the session key, makepkg."""
    require_tools("makepkg", "repo-add", "bsdtar", "gpg")
    require_build_user()
    return config_mod.load(write_config(tmp_path / "avfrepo.toml", avf.url, signing_home))
