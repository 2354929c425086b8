"""Incoming files are validated before anything moves; a published version keeps its bytes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from avfrepo.formats.repodb import read_db
from avfrepo.fsutil import read_tree
from avfrepo.repo import layout
from avfrepo.repo.manage import remove, rollback
from avfrepo.repo.publish import PublishRefused, publish
from avfrepo.repo.verify import verify
from avfrepo.signing import detach_sign, signing_key

from .conftest import fresh


def tree_state(cfg) -> tuple[dict[str, bytes], str | None]:
    link = cfg.repo.published
    return read_tree(cfg.repo.path), (os.readlink(link) if link.is_symlink() else None)


def repack(cfg, pkg: Path, dest: Path, **pkginfo: str) -> Path:
    """pkg with .PKGINFO fields replaced, repacked with bsdtar and signed by the repository key
    (what an attacker holding a signing job could publish)."""
    work = dest.parent / (dest.name + ".d")
    work.mkdir(parents=True)
    subprocess.run(["bsdtar", "-xf", str(pkg), "-C", str(work)], check=True)
    lines = []
    for line in (work / ".PKGINFO").read_text().splitlines():
        k, sep, _ = line.partition(" = ")
        lines.append(f"{k} = {pkginfo[k]}" if sep and k in pkginfo else line)
    (work / ".PKGINFO").write_text("\n".join(lines) + "\n")
    (work / ".MTREE").unlink(missing_ok=True)
    members = sorted(p.name for p in work.iterdir())
    subprocess.run(["bsdtar", "--zstd", "-cf", str(dest.resolve()), "-C", str(work), *members], check=True)
    detach_sign(cfg.signing, signing_key(cfg.signing), dest)
    return dest


def test_package_named_dash_is_refused(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    bad = repack(rcfg, built["t-b-1"], tmp_path / "evil" / "-dash-1.0-1-any.pkg.tar.zst", pkgname="-dash", pkgbase="-dash")
    before = tree_state(rcfg)
    with pytest.raises(PublishRefused, match="pkgname '-dash' is not valid"):
        publish(rcfg, key, [bad])
    assert tree_state(rcfg) == before


@pytest.mark.parametrize("suffix", [".pkg.tar.zstX", ".pkg.tar.zst.old", ".pkg.tar", ".pkg.tar.zst "])
def test_bytes_after_pkg_tar_in_the_file_name_are_refused(rcfg, built, tmp_path, suffix):
    key = signing_key(rcfg.signing)
    src, = fresh(built, tmp_path, "t-a-1")
    odd = src.with_name(src.name.replace(".pkg.tar.zst", suffix))
    os.rename(src, odd)
    os.rename(str(src) + ".sig", str(odd) + ".sig")
    with pytest.raises(PublishRefused, match="file name does not match"):
        publish(rcfg, key, [odd])
    assert not layout.pool(rcfg).exists() or not list(layout.pool(rcfg).iterdir())


def test_bad_version_and_arch_in_pkginfo_are_refused(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    bad = repack(rcfg, built["t-b-1"], tmp_path / "v" / "t-b-1.0-x-any.pkg.tar.zst", pkgver="1.0-x")
    with pytest.raises(PublishRefused, match="version '1.0-x' is not valid"):
        publish(rcfg, key, [bad])
    bad = repack(rcfg, built["t-b-1"], tmp_path / "a" / "t-b-1.0-1-a-b.pkg.tar.zst", arch="a-b")
    with pytest.raises(PublishRefused, match="arch 'a-b' is not valid"):
        publish(rcfg, key, [bad])


def test_signature_that_is_a_symlink_is_refused(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    pkg, = fresh(built, tmp_path, "t-a-1")
    sig = Path(str(pkg) + ".sig")
    real = tmp_path / "elsewhere.sig"
    shutil.move(sig, real)
    sig.symlink_to(real)
    with pytest.raises(PublishRefused, match="not a regular file"):
        publish(rcfg, key, [pkg])


def _record(cfg, pkg: Path, **change) -> Path:
    from avfrepo import provenance
    from avfrepo.fsutil import sha256_file
    from avfrepo.formats import pkginfo
    info = pkginfo.read(pkg)
    rec = provenance.Record(pkgname=info.pkgname, pkgbase=info.pkgbase, version=info.pkgver, arch=info.arch,
                            filename=pkg.name, sha256=sha256_file(pkg), size=pkg.stat().st_size,
                            pkgbuild_sha256="0" * 64, inputs=None, upstreams={}, builder_host="h",
                            backend="makepkg", tools={}, build_started="x", build_finished="y",
                            source_date_epoch=1)
    data = json.loads(rec.to_bytes())
    data.update(change)
    path = provenance.path_for(pkg)
    path.write_text(json.dumps(data))
    detach_sign(cfg.signing, signing_key(cfg.signing), path)
    return path


def test_provenance_record_symlink_to_a_secret_is_refused(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    pkg, = fresh(built, tmp_path, "t-a-1")
    secret = tmp_path / "secret"
    secret.write_text("ssh-private-key\n")
    record = _record(rcfg, pkg)
    record.unlink()
    record.symlink_to(secret)
    detach_sign(rcfg.signing, key, record)          # even with a signature over the secret
    with pytest.raises(PublishRefused, match="not a regular file"):
        publish(rcfg, key, [pkg])
    assert not any(b"ssh-private-key" in v for v in read_tree(rcfg.repo.path).values())


def test_provenance_record_of_wrong_schema_or_unsigned_is_refused(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    pkg, = fresh(built, tmp_path, "t-a-1")
    record = _record(rcfg, pkg, extra="x")
    with pytest.raises(PublishRefused, match="not a provenance record"):
        publish(rcfg, key, [pkg])
    record = _record(rcfg, pkg, sha256="f" * 64)
    with pytest.raises(PublishRefused, match="names another package"):
        publish(rcfg, key, [pkg])
    record = _record(rcfg, pkg)
    record.write_text(record.read_text().replace('"h"', '"x"'))           # altered after signing
    with pytest.raises(PublishRefused, match="bad signature"):
        publish(rcfg, key, [pkg])
    Path(str(record) + ".sig").unlink()
    with pytest.raises(PublishRefused, match="signature file missing"):
        publish(rcfg, key, [pkg])
    assert not layout.pool(rcfg).exists() or not list(layout.pool(rcfg).iterdir())
    _record(rcfg, pkg)
    publish(rcfg, key, [pkg])                                                # the good one lands
    assert (rcfg.repo.published / (pkg.name + ".provenance.json")).is_file()


def test_remove_then_add_of_the_same_version_with_other_bytes_is_refused(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1", "t-b-1"))
    remove(rcfg, "t-a")
    assert not (layout.pool(rcfg) / built["t-a-1"].name).exists()
    with pytest.raises(PublishRefused, match="keeps its bytes forever"):
        publish(rcfg, key, fresh(built, tmp_path, "t-a-1-other"))
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))                     # the same bytes may return
    assert read_db(rcfg.repo.db)["t-a"].version == "1.0-1"


def test_pool_copy_left_by_a_killed_run_does_not_block_the_rebuild(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    # a killed build copied its (never published) t-a 1.0-2 into the pool; the rebuild differs
    pool = layout.pool(rcfg)
    shutil.copy(built["t-a-1-other"], pool / built["t-a-2"].name)
    shutil.copy(str(built["t-a-1-other"]) + ".sig", pool / (built["t-a-2"].name + ".sig"))
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    assert read_db(rcfg.repo.db)["t-a"].version == "1.0-2"
    assert verify(rcfg).ok


def test_rollback_is_held_until_a_newer_version(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    assert rollback(rcfg, "t-a") == "1.0-1"
    said = []
    assert publish(rcfg, key, fresh(built, tmp_path, "t-a-2"), progress=said.append) == []   # the next build
    assert read_db(rcfg.repo.db)["t-a"].version == "1.0-1"
    assert any("held until a newer version" in s for s in said), said
    publish(rcfg, key, fresh(built, tmp_path, "t-a-3"))
    assert read_db(rcfg.repo.db)["t-a"].version == "1.0-3"
