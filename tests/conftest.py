"""Shared fixtures: real tools, private homes, local upstreams only (no network)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

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


def shared(tmp_path_factory, name: str, make: Callable[[Path], object]) -> object:
    """make(folder) run once per test run, not once per xdist worker: the first worker to get
    here makes `name` under the run's common temp folder (under a lock), the others wait and
    reuse it. make's result must be JSON (paths as strings); what it makes is read-only to tests.
    A make that skips or fails leaves nothing, so every worker skips or fails the same way."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent          # pytest-N/, above each worker's popen-gwN/
    folder, done = base / f"shared-{name}", base / f"shared-{name}.json"
    with open(base / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            result = make(folder)
            done.write_text(json.dumps(result))
        return json.loads(done.read_text())


def copy_workdir(template: Path, dest: Path) -> None:
    """Copy a shared template's working folders (pkgbuilds/, repo/, logs/, cache/, ...) into a
    test's config folder; the test writes its own avfrepo.toml (relative paths then point at
    the copies). `cp -a`, not copytree: it keeps the hard links between pool/ and the snapshots
    (publish reads link counts), the relative <arch> symlink and the build user's ownership."""
    for entry in sorted(template.iterdir()):
        if entry.name != "avfrepo.toml":
            subprocess.run(["cp", "-a", str(entry), str(dest)], check=True)


def pytest_collection_modifyitems(items) -> None:
    """Slow tests first; under `--dist loadgroup`, keep the tests that use one module-scoped fixture (an image, a
    served repository) on one worker, so that it is made once, not once per worker."""
    # the long tests (marked slow) first, so that no worker starts one when the others are done;
    # those marked after_slow (they wait on a shared fixture another slow test makes) after the
    # other slow ones, so that the other worker does not start the run waiting on that lock
    def rank(item) -> int:
        if item.get_closest_marker("after_slow") is not None:
            return 1
        return 0 if item.get_closest_marker("slow") is not None else 2
    items.sort(key=rank)
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        if any(defs and defs[-1].scope == "module" for defs in info.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


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


@pytest.fixture(scope="session", autouse=True)
def printsrcinfo_once_per_input(tmp_path_factory):
    """`makepkg --printsrcinfo` prints the same .SRCINFO for the same files under the same
    makepkg.conf (tests/test_makepkg.py checks it), and the suite asks it ~170 times for ~100
    distinct inputs (the same demo packages synced by many tests), at ~0.9 s of makepkg's lint
    each. So for the run, each distinct input (the package's files, the retargeted
    makepkg.conf, which makepkg, the build user) is given to the REAL makepkg once, by whichever
    worker gets there first (shared(): the others wait for it), and its output is kept under the
    run's temp folder for the others. Only a success is kept: a failing PKGBUILD, a PATH without
    makepkg, any other argument list run makepkg every time."""
    import hashlib

    from avfrepo import makepkg as mk
    from avfrepo.run import Result

    real = mk.makepkg

    def key(cfg, pkgdir: Path, env) -> str | None:
        tool = shutil.which("makepkg")
        if tool is None or env:
            return None
        h = hashlib.sha256()
        for part in (tool, str(os.stat(tool).st_mtime_ns), mk.makepkg_conf(cfg), cfg.build.user):
            h.update(part.encode() + b"\0")
        for f in sorted(p for p in pkgdir.rglob("*") if p.is_file() or p.is_symlink()):
            h.update(str(f.relative_to(pkgdir)).encode() + b"\0")
            h.update((os.readlink(f).encode() if f.is_symlink() else f.read_bytes()) + b"\0")
        return h.hexdigest()

    def makepkg(cfg, pkgdir, args, *, env=None, **kw):
        k = key(cfg, Path(pkgdir), env) if list(args) == ["--printsrcinfo"] else None
        if k is None:
            return real(cfg, pkgdir, args, env=env, **kw)
        # shared(): made once per run under a lock; a make that raises keeps nothing
        stdout = shared(tmp_path_factory, f"srcinfo-{k}",
                        lambda _: real(cfg, pkgdir, args, env=env, **kw).stdout)
        return Result(["makepkg", "--printsrcinfo"], 0, stdout, "")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mk, "makepkg", makepkg)
        yield real


def require_build_user() -> None:
    if os.geteuid() == 0:
        if subprocess.run(["id", "-u", BUILD_USER], capture_output=True).returncode != 0:
            pytest.skip(f"running as root needs the unprivileged build user {BUILD_USER} (scripts/setup-debian.sh)")


@pytest.fixture(scope="session")
def signing_home(tmp_path_factory) -> Path:
    """A GnuPG home with one ed25519 signing key, made once per session (0.05 s with gpg)."""
    require_tools("gpg")
    from avfrepo.config import SigningConfig

    def make(home: Path) -> str:
        init_key(SigningConfig(None, home), "avfrepo test <test@example.invalid>")
        return str(home)
    return Path(shared(tmp_path_factory, "gnupg", make))


@pytest.fixture(scope="session")
def demo_upstream_template(tmp_path_factory) -> Path:
    """The demo AVF upstream, built once; tests copy it (cheap) instead of rebuilding."""
    require_tools("git")

    def make(base: Path) -> str:
        make_demo_upstream(base / "Virtualization")
        return str(base / "Virtualization")
    return Path(shared(tmp_path_factory, "avf-template", make))


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


def pytest_sessionfinish(session) -> None:
    """gpg starts a gpg-agent (and dirmngr) for every GnuPG home the tests use, and they outlive
    the run: stop those of this run's homes once every test is done (in the controller only:
    under xdist it ends after all workers, so no test still uses one)."""
    if os.environ.get("PYTEST_XDIST_WORKER") or shutil.which("gpgconf") is None:
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    try:
        base = factory.getbasetemp() if factory is not None else None
    except OSError:
        return
    if base is None or not base.is_dir():
        return
    for folder, _dirs, files in os.walk(base):
        if "S.gpg-agent" in files or "S.dirmngr" in files:
            subprocess.run(["gpgconf", "--homedir", folder, "--kill", "all"], capture_output=True, timeout=30)
