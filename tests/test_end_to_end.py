"""The spine, proved on real tools: fake AVF upstream -> sync -> makepkg build -> gpg-signed
repo-add repository -> real pacman (SigLevel = Required) installs avf-config into a
private root; one flipped byte in a package or in the db makes pacman refuse and
`avfrepo verify` name the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from avfrepo import config as config_mod
from avfrepo.build import build
from avfrepo.demo import FakeAvf, write_config
from avfrepo.errors import ToolError
from avfrepo.pacman_client import PacmanRoot
from avfrepo.repo.verify import verify
from avfrepo.signing import signing_key
from avfrepo.sync import sync

from .conftest import copy_workdir, require_build_user, require_tools, shared

pytestmark = pytest.mark.slow


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def client(cfg, base: Path) -> PacmanRoot:
    c = PacmanRoot(base, {cfg.repo.name: cfg.repo.path.as_uri() + "/$arch"}, cfg.repo.arch)
    c.trust(cfg.repo.published / f"{cfg.repo.name}.asc", signing_key(cfg.signing).fingerprint)
    return c


@pytest.fixture(scope="session")
def synced_and_built(tmp_path_factory, demo_upstream_template, signing_home) -> Path:
    """sync of the demo upstream, then build (real makepkg, repo-add, gpg): once per run."""
    require_tools("makepkg", "repo-add", "bsdtar", "gpg", "pacman", "pacman-key")
    require_build_user()

    def make(base: Path) -> str:
        cfg = config_mod.load(write_config(base / "avfrepo.toml", FakeAvf(demo_upstream_template).url, signing_home))
        report = sync(cfg)
        assert not report.refused, report.to_json()
        result = build(cfg)
        assert [r.status for r in result.results] == ["published", "published"], result.to_json()
        return str(base)
    return Path(shared(tmp_path_factory, "e2e-synced-and-built", make))


@pytest.fixture
def published(tmp_path, synced_and_built):
    """A copy of that synced and built working folder, under the same config text: its paths
    are relative (so they name the copies); the upstream, the key and [repo] server (which
    avf-keyring's PKGBUILD quotes) stay those of the first sync, so a second one sees its inputs."""
    copy_workdir(synced_and_built, tmp_path)
    shutil.copy(synced_and_built / "avfrepo.toml", tmp_path / "avfrepo.toml")
    return config_mod.load(tmp_path / "avfrepo.toml")


def test_pacman_installs_avf_config_units_from_the_signed_repo(published, tmp_path):
    cfg = published
    c = client(cfg, tmp_path / "client")
    c.install("avf-config")
    units = c.root / "usr/lib/systemd/system"
    for unit in ("ttyd.service", "avahi_ttyd.service", "mnt-internal.mount", "mnt-shared.mount", "mnt-backup.mount",
                 "avahi-daemon.service.d/avf.conf"):
        assert (units / unit).is_file(), unit
    # the agents' units come with the agents' packages (aarch64 builds), never with avf-config
    assert not list(units.glob("forwarder_guest*")) and not list(units.glob("shutdown_runner*"))
    sudoers = c.root / "etc/sudoers.d/avf-droid"
    assert sudoers.read_text().strip().endswith("NOPASSWD: ALL") and oct(sudoers.stat().st_mode & 0o777) == "0o440"
    assert "u droid 1000" in (c.root / "usr/lib/sysusers.d/avf.conf").read_text()
    query = c.pacman("-Q", "avf-config").stdout
    assert query.strip() == "avf-config 16.0.0.r10-1"
    assert verify(cfg).ok


def test_flipped_byte_in_package_is_refused_by_pacman_and_named_by_verify(published, tmp_path):
    cfg = published
    pkg = next(cfg.repo.published.glob("avf-config-*.pkg.tar.zst"))
    flip_byte(pkg)
    c = client(cfg, tmp_path / "client")
    with pytest.raises(ToolError) as err:
        c.install("avf-config")
    assert "avf-config" in err.value.output and ("invalid or corrupted package" in err.value.output
                                                 or "signature" in err.value.output)
    assert not (c.root / "usr/lib/systemd/system/ttyd.service").exists()
    report = verify(cfg)
    assert not report.ok
    assert {c.path for c in report.bad()} >= {pkg.name, pkg.name + ".sig"}


def test_flipped_byte_in_db_is_refused_by_pacman_and_named_by_verify(published, tmp_path):
    cfg = published
    db = cfg.repo.db
    flip_byte(db, 20)
    c = client(cfg, tmp_path / "client")
    with pytest.raises(ToolError) as err:
        c.install("avf-config")
    assert "avf" in err.value.output and "signature" in err.value.output.lower()
    report = verify(cfg)
    assert not report.ok
    assert "avf.db.tar.gz.sig" in {c.path for c in report.bad()}


def test_second_sync_and_build_do_nothing(published):
    cfg = published
    again = sync(cfg)
    assert again.changed == [] and not again.written
    assert build(cfg).results == []
