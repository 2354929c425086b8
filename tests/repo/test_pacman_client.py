"""The repository as users meet it: real pacman with SigLevel = Required.

Each kind of tampering must make pacman refuse and `avfrepo verify` name the file; a
rollback must be what pacman installs.
"""

from __future__ import annotations

import shutil

import pytest

from avfrepo.config import SigningConfig
from avfrepo.errors import ToolError
from avfrepo.repo.manage import list_packages, remove, rollback
from avfrepo.repo.publish import publish
from avfrepo.repo.verify import verify
from avfrepo.run import run
from avfrepo.signing import detach_sign, init_key, signing_key

from .conftest import fresh, pacman_client

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(rcfg, built, tmp_path):
    publish(rcfg, signing_key(rcfg.signing), fresh(built, tmp_path, "t-a-1", "t-b-1"))
    return rcfg


def flip(path, offset=None):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0xFF
    path.write_bytes(bytes(data))


def published(cfg, name):
    return next(cfg.repo.published.glob(f"{name}-1.0-*.pkg.tar.zst"))


def sig(path):
    return path.with_name(path.name + ".sig")


def t_package(cfg, tmp_path, built):
    p = published(cfg, "t-a")
    flip(p)
    return p.name


def t_package_sig(cfg, tmp_path, built):
    s = sig(published(cfg, "t-a"))
    flip(s, -3)
    return s.name


def t_db(cfg, tmp_path, built):
    flip(cfg.repo.db, 40)
    return cfg.repo.db.name


def t_db_sig(cfg, tmp_path, built):
    s = sig(cfg.repo.db)
    flip(s, -3)
    return s.name


def t_foreign_key(cfg, tmp_path, built):
    """An attacker on the server swaps in their own t-a, signed by their key, and re-signs the db."""
    other = SigningConfig(None, tmp_path / "foreign")
    okey, _ = init_key(other, "intruder <i@example.invalid>")
    old = published(cfg, "t-a")
    old.unlink()
    sig(old).unlink()
    evil = cfg.repo.published / built["t-a-1-other"].name
    shutil.copy(built["t-a-1-other"], evil)
    detach_sign(other, okey, evil)
    run(["repo-add", "-q", "-s", "-k", okey.fingerprint, str(cfg.repo.db), str(evil)],
        env={"GNUPGHOME": str(other.gnupg_home)})
    return cfg.repo.db.name + ".sig"


def t_swap(cfg, tmp_path, built):
    a, b = published(cfg, "t-a"), published(cfg, "t-b")
    tmp = a.with_name("swap.tmp")
    shutil.move(a, tmp)
    shutil.move(b, a)
    shutil.move(tmp, b)
    return a.name


@pytest.mark.parametrize("tamper", [t_package, t_db, t_db_sig, t_foreign_key, t_swap],
                         ids=lambda f: f.__name__[2:])
def test_tampering_is_refused_by_pacman_and_named_by_verify(repo, built, tmp_path, trusted_gpgdir, tamper):
    # pacman accepts the intact repository ...
    pacman_client(repo, tmp_path, trusted_gpgdir, "before").install("t-a")
    named = tamper(repo, tmp_path, built)
    c = pacman_client(repo, tmp_path, trusted_gpgdir, "after")
    with pytest.raises(ToolError) as err:
        c.install("t-a")
    assert err.value.returncode == 1
    assert not (c.root / "usr/share/t-a/v").exists()
    report = verify(repo)
    assert not report.ok
    assert named in {c.path for c in report.bad()}


def test_damaged_package_sig_file_is_named_by_verify_while_pacman_6_uses_the_db_signature(
        repo, built, tmp_path, trusted_gpgdir):
    """repo-add 6.0 embeds each package's signature in the db (%PGPSIG%), and pacman checks
    that one, so a damaged .sig file cannot make it accept anything: it still installs the
    genuine package. Clients that read the .sig file (dbs without embedded signatures, as
    pacman 7 makes by default) would refuse it; verify reports it either way."""
    named = t_package_sig(repo, tmp_path, built)
    c = pacman_client(repo, tmp_path, trusted_gpgdir)
    c.install("t-a")
    assert (c.root / "usr/share/t-a/v").read_text() == "a 1\n"
    assert named in {ch.path for ch in verify(repo).bad()}


def test_rollback_is_what_pacman_installs(rcfg, built, tmp_path, trusted_gpgdir):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    c2 = pacman_client(rcfg, tmp_path, trusted_gpgdir, "v2")
    c2.install("t-a")
    assert (c2.root / "usr/share/t-a/v").read_text() == "a 2\n"
    assert rollback(rcfg, "t-a") == "1.0-1"
    c1 = pacman_client(rcfg, tmp_path, trusted_gpgdir, "v1")
    c1.install("t-a")
    assert c1.pacman("-Q", "t-a").stdout.strip() == "t-a 1.0-1"
    assert (c1.root / "usr/share/t-a/v").read_text() == "a 1\n"
    assert verify(rcfg).ok
    rows = {r.name: r for r in list_packages(rcfg)}
    assert rows["t-a"].published == "1.0-1" and rows["t-a"].archived == ["1.0-2"]


def test_rollback_to_an_unknown_version_says_what_is_archived(repo):
    from avfrepo.errors import AvfrepoError
    with pytest.raises(AvfrepoError, match=r"no archived t-a 9.9-1 \(archived: none\)"):
        rollback(repo, "t-a", "9.9-1")


def test_remove_takes_package_and_signature_out_together(repo, tmp_path, trusted_gpgdir):
    filename = published(repo, "t-b").name
    assert remove(repo, "t-b") == "1.0-1"
    assert not (repo.repo.published / filename).exists()
    assert not (repo.repo.published / (filename + ".sig")).exists()
    assert not list((repo.repo.path / "pool").glob("t-b-*"))
    assert verify(repo).ok
    c = pacman_client(repo, tmp_path, trusted_gpgdir)
    with pytest.raises(ToolError, match="target not found: t-b"):
        c.install("t-b")
    c.install("t-a")


def test_remove_takes_the_provenance_record_out_with_the_package(cfg):
    from avfrepo.build import build
    from avfrepo.repo import layout
    from ..build.conftest import write_pkg
    write_pkg(cfg, "t-p")
    build(cfg)
    pool = layout.pool(cfg)
    assert list(pool.glob("t-p-*.provenance.json")) and list(pool.glob("t-p-*.provenance.json.sig"))
    remove(cfg, "t-p")
    assert not list(pool.glob("t-p-*"))


def test_a_key_with_a_signing_subkey_publishes_and_pacman_installs(tmp_path, built):
    """`gpg --quick-add-key FPR ed25519 sign` on the repository key: gpg now signs packages and
    dbs with the subkey. The primary's fingerprint still names the repository: publish, verify
    and a real pacman trusting that fingerprint accept it."""
    import subprocess
    from avfrepo import config as config_mod
    from avfrepo.demo import write_config
    from avfrepo.pacman_client import PacmanRoot
    from avfrepo.formats.repodb import read_db
    from ..conftest import require_build_user
    require_build_user()
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key",
                    "subkey test <s@example.invalid>", "ed25519", "sign", "never"], check=True, capture_output=True)
    cfg = config_mod.load(write_config(tmp_path / "avfrepo.toml", "file:///nowhere", home))
    key = signing_key(cfg.signing)

    def resigned(label):
        (tmp_path / label).mkdir()
        pkg, = fresh(built, tmp_path / label, label)
        detach_sign(cfg.signing, key, pkg)
        return pkg
    publish(cfg, key, [resigned("t-a-1")])            # the key's export is cached without a subkey
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-add-key",
                    key.fingerprint, "ed25519", "sign"], check=True, capture_output=True)
    publish(cfg, key, [resigned("t-a-2")])            # signed by the subkey (package and db)
    assert read_db(cfg.repo.db)["t-a"].version == "1.0-2"
    report = verify(cfg)
    assert report.ok, [(c.path, c.message) for c in report.bad()]
    c = PacmanRoot(tmp_path / "client", {cfg.repo.name: cfg.repo.path.as_uri() + "/$arch"}, cfg.repo.arch)
    c.trust(cfg.repo.published / f"{cfg.repo.name}.asc", key.fingerprint)
    c.install("t-a")
    assert c.pacman("-Q", "t-a").stdout.strip() == "t-a 1.0-2"
