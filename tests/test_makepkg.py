"""avfrepo.makepkg: makepkg run as the build user with the retargeted makepkg.conf."""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from avfrepo import makepkg as mk
from avfrepo.build.backends import MakechrootpkgBackend, MakepkgBackend
from avfrepo.errors import AvfrepoError
from avfrepo.run import run

from .conftest import BUILD_USER, require_build_user, require_tools
from .packages.alarm_fixture import throwaway_key

PKGBUILD = b"""pkgname=t-memo
pkgver=1.0
pkgrel=1
pkgdesc="printsrcinfo memo check"
arch=(any)
license=(MIT)
depends=('glibc>=2.40')
package() { :; }
"""


def test_printsrcinfo_is_a_function_of_the_files_and_the_run_memo_returns_what_makepkg_printed(
        cfg, printsrcinfo_once_per_input, monkeypatch):
    memo = mk.makepkg
    with monkeypatch.context() as m:                                      # the real makepkg, twice
        m.setattr(mk, "makepkg", printsrcinfo_once_per_input)
        first = mk.printsrcinfo(cfg, {"PKGBUILD": PKGBUILD})
        again = mk.printsrcinfo(cfg, {"PKGBUILD": PKGBUILD})
    assert mk.makepkg is memo
    assert first == again and "pkgbase = t-memo" in first and "depends = glibc>=2.40" in first
    assert mk.printsrcinfo(cfg, {"PKGBUILD": PKGBUILD}) == first          # asked the real makepkg
    assert mk.printsrcinfo(cfg, {"PKGBUILD": PKGBUILD}) == first          # kept for the run
    other = PKGBUILD.replace(b"pkgrel=1", b"pkgrel=2")
    assert "pkgrel = 2" in mk.printsrcinfo(cfg, {"PKGBUILD": other})      # another input, another answer


def test_a_failing_pkgbuild_fails_every_time(cfg):
    broken = PKGBUILD.replace(b"pkgver=1.0", b"pkgver=1:bad:")
    for _ in range(2):
        with pytest.raises(AvfrepoError):
            mk.printsrcinfo(cfg, {"PKGBUILD": broken})


# --- signed sources: keys/pgp/<FINGERPRINT>.asc, imported for the build user ----------------------
#
# A throwaway key signs tag v1 of a local git repository; the package's source is that tag with
# `?signed` and the key in validpgpkeys, as ALARM's core/systemd has systemd's tag. The real
# makepkg (6.0.2 here: `git verify-tag --raw` under GNUPGHOME, then the signer's primary
# fingerprint against validpgpkeys) verifies it, through the project's backends.

SIGNED_PKGBUILD = """pkgname=t-signed-tag
pkgver=1
pkgrel=1
pkgdesc="a package whose source is a signed git tag"
arch=(any)
license=(MIT)
options=(!strip)
validpgpkeys=('{fpr}')  # the throwaway release signer
source=("upstream::git+{url}#tag=v1?signed")
sha256sums=('SKIP')

package() {{
  install -Dm644 "$srcdir/upstream/hello" "$pkgdir/usr/share/t-signed-tag/hello"
}}
"""


@dataclasses.dataclass
class SignedUpstream:
    url: str
    fpr: str
    key: bytes           # the signer's armored public key
    other: bytes         # another throwaway key's
    other_fpr: str


@pytest.fixture
def signed_upstream(tmp_path):
    """A git repository (outside the root-only pytest folder, owned by the build user: the build
    user clones it, and git refuses a repository of another owner) with tag v1 signed by a
    throwaway key."""
    require_tools("git", "gpg", "makepkg")
    require_build_user()
    fpr, key = throwaway_key(tmp_path / "signer", "Upstream Release Signer <release@example.invalid>")
    other_fpr, other = throwaway_key(tmp_path / "other", "Someone Else <else@example.invalid>")
    base = Path(tempfile.mkdtemp(prefix="avfrepo-test-signed-"))
    try:
        os.chmod(base, 0o755)
        repo = base / "upstream"
        ident = ["-c", "user.name=Upstream", "-c", "user.email=release@example.invalid"]
        run(["git", "init", "-q", "-b", "main", str(repo)])
        (repo / "hello").write_text("hello from a signed release\n")
        run(["git", "-C", str(repo), "add", "hello"])
        run(["git", "-C", str(repo), *ident, "commit", "-q", "-m", "release 1"])
        run(["git", "-C", str(repo), *ident, "-c", f"user.signingkey={fpr}", "-c", "gpg.program=gpg",
             "tag", "-s", "v1", "-m", "release 1"], env={"GNUPGHOME": str(tmp_path / "signer")})
        assert "PGP SIGNATURE" in run(["git", "-C", str(repo), "cat-file", "tag", "v1"]).stdout
        if os.geteuid() == 0:
            uid = pwd.getpwnam(BUILD_USER)
            for p in [repo, *repo.rglob("*")]:
                os.lchown(p, uid.pw_uid, uid.pw_gid)
        yield SignedUpstream(repo.as_uri(), fpr, key, other, other_fpr)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def signed_package(where: Path, up: SignedUpstream, keys: dict[str, bytes | str] | None = None) -> Path:
    """The package folder; keys: file name under keys/pgp -> content (str: a symbolic link to it)."""
    pkg = where / "t-signed-tag"
    pkg.mkdir(parents=True)
    (pkg / "PKGBUILD").write_text(SIGNED_PKGBUILD.format(fpr=up.fpr, url=up.url))
    for name, data in (keys or {}).items():
        (pkg / "keys/pgp").mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            (pkg / "keys/pgp" / name).symlink_to(data)
        else:
            (pkg / "keys/pgp" / name).write_bytes(data)
    return pkg


def fingerprints_in(home: Path) -> set[str]:
    if not (home / "pubring.kbx").exists() and not (home / "pubring.gpg").exists():
        return set()
    out = run(["gpg", "--homedir", str(home), "--batch", "--no-autostart", "--with-colons", "--list-keys"],
              check=False).stdout
    return {line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")}


def test_a_signed_git_tag_builds_with_the_carried_key_and_fails_without_it(cfg, signed_upstream, tmp_path):
    up = signed_upstream
    backend = MakepkgBackend(cfg)
    good = signed_package(tmp_path / "good", up, {f"{up.fpr}.asc": up.key})
    log = tmp_path / "good.log"
    (pkg,) = backend.build(good, [], log, tmp_path / "out")
    assert pkg.name == "t-signed-tag-1-1-any.pkg.tar.zst"
    assert "upstream git repo ... Passed" in log.read_text()
    files = run(["bsdtar", "-tf", str(pkg)]).stdout.split()
    assert "usr/share/t-signed-tag/hello" in files
    # the key went into the build's own keyring only: not the signing key's home, not the build user's
    assert up.fpr not in fingerprints_in(cfg.signing.gnupg_home)
    assert up.fpr not in fingerprints_in(Path(pwd.getpwnam(BUILD_USER).pw_dir if os.geteuid() == 0
                                              else Path.home()) / ".gnupg")

    bare = signed_package(tmp_path / "bare", up)          # the same package without keys/pgp
    with pytest.raises(AvfrepoError):
        backend.build(bare, [], tmp_path / "bare.log", tmp_path / "out2")
    text = (tmp_path / "bare.log").read_text()
    assert "upstream git repo ... FAILED (unknown public key" in text
    assert "One or more PGP signatures could not be verified" in text
    assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").iterdir())


@pytest.mark.parametrize("defect", ["another key under its name", "a symbolic link to the key", "a linked folder",
                                    "not a key file name", "too large"])
def test_key_files_that_cannot_be_used_refuse_the_build_before_makepkg_runs(cfg, signed_upstream, tmp_path, defect):
    up = signed_upstream
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f"{up.fpr}.asc").write_bytes(up.key)       # the right key, but not in the package
    keys, message = {
        "another key under its name": ({f"{up.fpr}.asc": up.other},
                                       f"keys/pgp/{up.fpr}.asc holds {up.other_fpr}, not (only) the key {up.fpr}"),
        "a symbolic link to the key": ({f"{up.fpr}.asc": str(outside / f"{up.fpr}.asc")},
                                       f"keys/pgp/{up.fpr}.asc: not a regular file"),
        "a linked folder": ({}, "keys/pgp: not a folder (a symbolic link is not followed)"),
        "not a key file name": ({"signer.asc": up.key}, "keys/pgp/signer.asc: not a key file name"),
        "too large": ({f"{up.fpr}.asc": up.key + b"\n" * mk.MAX_KEY_BYTES},
                      f"keys/pgp/{up.fpr}.asc: {len(up.key) + mk.MAX_KEY_BYTES} bytes, more than"),
    }[defect]
    pkg = signed_package(tmp_path / "pkg", up, keys)
    if defect == "a linked folder":
        (pkg / "keys").mkdir()
        (pkg / "keys/pgp").symlink_to(outside)
    log = tmp_path / "build.log"
    with pytest.raises(mk.SourceKeyError) as err:
        MakepkgBackend(cfg).build(pkg, [], log, tmp_path / "out")
    assert message in str(err.value)
    assert not log.exists()                                  # makepkg never ran


class VerifySourcesLikeMakechrootpkgDouble:
    """TEST DOUBLE for avfrepo.run.run at the makechrootpkg boundary (devtools is not packaged for
    Debian). It does the one step of makechrootpkg that checks signatures, as devtools' src/
    makechrootpkg.in does it (download_sources: `makepkg --verifysource -o` as the -U user,
    outside the chroot, GNUPGHOME passed on; inside the chroot makepkg runs with --skipinteg),
    with the real makepkg, then leaves a package file in PKGDEST like makechrootpkg would."""

    def __init__(self, cfg, placeholder: Path):
        self.cfg = cfg
        self.placeholder = placeholder
        self.handed = None
        self.verified = None

    def __call__(self, argv, *, cwd, env, **kw):
        user = argv[argv.index("-U") + 1]
        self.handed = {str(p.relative_to(cwd)) for p in Path(cwd).rglob("*")}
        self.gnupghome = env.get("GNUPGHOME")
        home = self.gnupghome or str(Path(pwd.getpwnam(user).pw_dir) / ".gnupg")   # sudo -u without it
        try:
            res = mk.makepkg(self.cfg, Path(cwd), ["--verifysource", "-o"],
                             env={"GNUPGHOME": home, "SRCDEST": str(Path(cwd).parent / "srcdest")})
            self.verified = res.stdout + res.stderr
        except AvfrepoError as exc:
            self.verified = str(exc)
            raise
        shutil.copy(self.placeholder, Path(env["PKGDEST"]) / self.placeholder.name)


def test_makechrootpkg_gets_the_key_files_and_a_keyring_of_its_own_for_the_signed_tag(cfg, signed_upstream,
                                                                                      tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the makechrootpkg backend runs as root (it refuses otherwise)")
    up = signed_upstream
    (tmp_path / "chroot/root").mkdir(parents=True)
    c = dataclasses.replace(cfg, build=dataclasses.replace(cfg.build, backend="makechrootpkg",
                                                           chroot=tmp_path / "chroot"))
    placeholder = tmp_path / "t-signed-tag-1-1-any.pkg.tar.zst"
    placeholder.write_bytes(b"stands in for what makechrootpkg builds\n")
    double = VerifySourcesLikeMakechrootpkgDouble(c, placeholder)
    good = signed_package(tmp_path / "good", up, {f"{up.fpr}.asc": up.key})
    (pkg,) = MakechrootpkgBackend(c, runner=double).build(good, [], tmp_path / "log", tmp_path / "out")
    assert pkg.name == placeholder.name
    assert f"keys/pgp/{up.fpr}.asc" in double.handed                # the folder handed over carries them
    assert "upstream git repo ... Passed" in double.verified
    home = Path(double.gnupghome)
    assert home != cfg.signing.gnupg_home and not home.exists()      # the build's own, gone with it

    double = VerifySourcesLikeMakechrootpkgDouble(c, placeholder)
    bare = signed_package(tmp_path / "bare", up)
    with pytest.raises(AvfrepoError):
        MakechrootpkgBackend(c, runner=double).build(bare, [], tmp_path / "log2", tmp_path / "out2")
    assert "One or more PGP signatures could not be verified" in double.verified


def test_check_source_keys_names_every_problem(signed_upstream):
    up = signed_upstream
    listed = [up.fpr, up.other_fpr, "0123", up.fpr.lower()]
    with pytest.raises(mk.SourceKeyError) as err:
        mk.check_source_keys({f"{up.fpr}.asc": up.key, "x.asc": up.key}, listed)
    msg = str(err.value)
    assert "keys/pgp/x.asc: not a key file name" in msg
    assert f"validpgpkeys entry {up.other_fpr} has no key file keys/pgp/{up.other_fpr}.asc" in msg
    assert "validpgpkeys entry '0123' is not a full fingerprint" in msg
    assert f"validpgpkeys entry '{up.fpr.lower()}' is not a full fingerprint" in msg
    mk.check_source_keys({f"{up.fpr}.asc": up.key}, [up.fpr])              # the good case
    with pytest.raises(mk.SourceKeyError, match="not an armored OpenPGP public key"):
        mk.check_source_keys({f"{up.fpr}.asc": b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n"}, [up.fpr])
