"""Repository databases: read what the real repo-add writes for real makepkg packages."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

from avfrepo import config
from avfrepo.build.backends import MakepkgBackend
from avfrepo.demo import write_config
from avfrepo.formats.repodb import DbEntry, parse_desc, read_db, read_files_db

from ..conftest import require_build_user, require_tools

ALPHA = textwrap.dedent("""\
    pkgname=alpha
    pkgver=1.2.r3
    pkgrel=1
    pkgdesc='First test package'
    arch=(any)
    license=(MIT)
    depends=('bash>=5' coreutils)
    options=(!strip)
    package() {
        install -Dm644 /dev/null "$pkgdir/usr/share/alpha/hello.txt"
        install -Dm755 /dev/null "$pkgdir/usr/bin/alpha"
    }
    """)

BETA = textwrap.dedent("""\
    pkgname=beta
    pkgver=2.0
    pkgrel=3
    epoch=1
    pkgdesc='Second test package'
    arch=(any)
    license=(MIT)
    options=(!strip)
    package() {
        install -Dm644 /dev/null "$pkgdir/etc/beta.conf"
    }
    """)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, signing_home) -> tuple[Path, dict[str, Path]]:
    """Two packages built with makepkg and added with repo-add: (db path, name -> package)."""
    require_tools("makepkg", "repo-add", "bsdtar")
    require_build_user()
    base = tmp_path_factory.mktemp("repodb")
    cfg = config.load(write_config(base / "avfrepo.toml", "file:///nonexistent", signing_home))
    out = base / "repo"
    packages: dict[str, Path] = {}
    for name, text in (("alpha", ALPHA), ("beta", BETA)):
        src = base / name
        src.mkdir()
        (src / "PKGBUILD").write_text(text)
        [built] = MakepkgBackend(cfg).build(src, [], base / f"{name}.log", out)
        packages[name] = built
    db = out / "test.db.tar.gz"
    subprocess.run(["repo-add", "-q", str(db), *map(str, packages.values())], check=True,
                   capture_output=True)
    return db, packages


def test_read_db_returns_an_entry_per_package_matching_the_files(repo):
    db, packages = repo
    entries = read_db(db)
    assert set(entries) == {"alpha", "beta"}
    for name, pkg in packages.items():
        e = entries[name]
        assert isinstance(e, DbEntry)
        assert e.name == name
        assert e.filename == pkg.name
        assert e.csize == pkg.stat().st_size
        assert e.sha256 == hashlib.sha256(pkg.read_bytes()).hexdigest()
        assert e.arch == "any"
        assert e.pgpsig is None                        # repo-add without --sign, unsigned packages


def test_read_db_versions_include_epoch_and_pkgrel(repo):
    entries = read_db(repo[0])
    assert entries["alpha"].version == "1.2.r3-1"
    assert entries["beta"].version == "1:2.0-3"
    assert entries["beta"].filename.startswith("beta-1:2.0-3-any.pkg.tar")


def test_read_db_keeps_all_fields_and_depends(repo):
    alpha = read_db(repo[0])["alpha"]
    assert alpha.depends == ["bash>=5", "coreutils"]
    assert alpha.fields["DESC"] == ["First test package"]
    assert alpha.fields["LICENSE"] == ["MIT"]
    assert read_db(repo[0])["beta"].depends == []


def test_read_db_accepts_bytes_and_the_db_symlink(repo):
    db, _ = repo
    assert read_db(db.read_bytes()) == read_db(db)
    link = db.parent / "test.db"
    assert link.is_symlink()
    assert read_db(link) == read_db(db)


def test_read_files_db_lists_the_files_of_each_package(repo):
    files_db = repo[0].parent / "test.files.tar.gz"
    files = read_files_db(files_db)
    assert set(files) == {"alpha-1.2.r3-1", "beta-1:2.0-3"}
    assert "usr/share/alpha/hello.txt" in files["alpha-1.2.r3-1"]
    assert "usr/bin/alpha" in files["alpha-1.2.r3-1"]
    assert "etc/beta.conf" in files["beta-1:2.0-3"]
    assert not any(f.startswith(".") for f in files["alpha-1.2.r3-1"])   # no .PKGINFO / .MTREE


def test_files_db_is_also_a_db(repo):
    files_db = repo[0].parent / "test.files.tar.gz"
    assert set(read_db(files_db)) == {"alpha", "beta"}


@pytest.mark.parametrize("data", [b"", b"not a tar archive at all\n" * 100, b"\x1f\x8b\x08\x00garbage"])
def test_read_db_of_a_non_archive_raises_value_error(data, tmp_path):
    with pytest.raises(ValueError, match="not a readable repository database"):
        read_db(data)
    path = tmp_path / "x.db"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="not a readable repository database"):
        read_db(path)


def test_read_files_db_of_a_non_archive_raises_value_error(tmp_path):
    path = tmp_path / "x.files"
    path.write_text("plain text\n")
    with pytest.raises(ValueError, match="not a readable files database"):
        read_files_db(path)


def test_read_db_of_a_missing_path_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_db(tmp_path / "missing.db")


def tar_with(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_read_db_refuses_an_entry_without_name_version_or_filename():
    data = tar_with({"x-1-1/desc": "%NAME%\nx\n\n%VERSION%\n1-1\n"})
    with pytest.raises(ValueError, match="without NAME, VERSION or FILENAME"):
        read_db(data)


def test_read_db_ignores_members_other_than_desc():
    data = tar_with({
        "x-1-1/desc": "%FILENAME%\nx-1-1-any.pkg.tar.zst\n\n%NAME%\nx\n\n%VERSION%\n1-1\n",
        "x-1-1/files": "%FILES%\nusr/\n",
        "README": "%NAME%\nnot an entry\n",
    })
    entries = read_db(data)
    assert list(entries) == ["x"]
    assert entries["x"].csize is None and entries["x"].sha256 is None and entries["x"].arch == ""


# --- parse_desc ------------------------------------------------------------------------

def test_parse_desc_reads_keys_and_value_lists():
    text = textwrap.dedent("""\
        %FILENAME%
        avf-config-16.0.0.r10-1-aarch64.pkg.tar.zst

        %NAME%
        avf-config

        %DEPENDS%
        systemd
        ttyd>=1.7
        sudo

        %CSIZE%
        12345
        """)
    assert parse_desc(text) == {
        "FILENAME": ["avf-config-16.0.0.r10-1-aarch64.pkg.tar.zst"],
        "NAME": ["avf-config"],
        "DEPENDS": ["systemd", "ttyd>=1.7", "sudo"],
        "CSIZE": ["12345"],
    }


def test_parse_desc_ignores_lines_outside_a_section_and_keeps_empty_keys():
    text = "stray line\n%EMPTY%\n\nafter blank, no key\n%NAME%\nx"
    assert parse_desc(text) == {"EMPTY": [], "NAME": ["x"]}


def test_parse_desc_does_not_take_a_lone_percent_pair_for_a_key():
    assert parse_desc("%DESC%\n%%\n") == {"DESC": ["%%"]}


def test_parse_desc_of_empty_text_is_empty():
    assert parse_desc("") == {}


def _tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("compress", ["gzip", "xz", "bz2"])
def test_a_decompression_bomb_db_is_a_value_error_not_gigabytes(compress, monkeypatch):
    import bz2, gzip, lzma
    from avfrepo.formats import repodb
    monkeypatch.setattr(repodb, "MAX_TAR_BYTES", 1 << 20)
    tar = _tar_of({"a-1-1/desc": b"%NAME%\na\n\n%VERSION%\n1-1\n\n%FILENAME%\na.pkg\n",
                   "pad-1-1/junk": b"\0" * (8 << 20)})
    raw = {"gzip": gzip.compress, "xz": lzma.compress, "bz2": bz2.compress}[compress](tar)
    assert len(raw) < 64 * 1024
    with pytest.raises(ValueError, match="more than 1048576 bytes"):
        repodb.read_db(raw)

