"""Decisions come from signed data only (issue 23, point 3): the downgrade check reads the
signed db, not a local index; a lost or older ledger is named, never started afresh; a served
package missing from the pool is a verify failure. Real makepkg, gpg, repo-add."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from avfrepo.errors import AvfrepoError
from avfrepo.formats.repodb import read_db
from avfrepo.repo.ledger import LedgerError
from avfrepo.repo.manage import remove
from avfrepo.repo.publish import PublishRefused, publish
from avfrepo.repo.verify import verify
from avfrepo.signing import signing_key

from .conftest import fresh


def bad(report) -> dict[str, str]:
    return {c.path: c.message for c in report.bad()}


def test_a_forged_local_index_does_not_decide_the_downgrade_check(rcfg, built, tmp_path):
    """Before: publishes left cache/db-index/<db sha256>.json, read instead of the signed db;
    a version edited there (t-a 1.0-3 -> 0.5-1) let an older signed package through."""
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-3"))
    db = read_db(rcfg.repo.db)
    index = rcfg.cache / "db-index" / f"{hashlib.sha256(rcfg.repo.db.read_bytes()).hexdigest()}.json"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(json.dumps([{"name": e.name, "version": "0.5-1", "filename": e.filename, "arch": e.arch,
                                  "csize": e.csize, "sha256": e.sha256, "relations": {}} for e in db.values()]))
    with pytest.raises(PublishRefused, match=r"would downgrade t-a from 1\.0-3"):
        publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    assert read_db(rcfg.repo.db)["t-a"].version == "1.0-3"


def test_a_deleted_ledger_is_named_and_refused_not_started_afresh(rcfg, built, tmp_path):
    """Before: with ledger.json deleted, remove + add published other bytes under a version
    once published (the archived pool copy overwritten), and verify said OK."""
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1", "t-b-1"))
    original = (rcfg.repo.path / "pool" / built["t-a-1"].name).read_bytes()
    (rcfg.repo.path / "ledger.json").unlink()
    report = verify(rcfg)
    assert not report.ok and "missing" in bad(report)["ledger.json"]
    with pytest.raises(LedgerError, match=r"ledger\.json: missing, but \[avf\] has published .*restore it"):
        remove(rcfg, "t-a")
    with pytest.raises(LedgerError, match="missing"):
        publish(rcfg, key, fresh(built, tmp_path, "t-a-1-other"))
    assert read_db(rcfg.repo.db)["t-a"].version == "1.0-1"
    assert (rcfg.repo.path / "pool" / built["t-a-1"].name).read_bytes() == original
    assert not (rcfg.repo.path / "ledger.json").exists()          # nothing started afresh


def test_an_older_copy_of_the_ledger_is_named_and_refused(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    old = (rcfg.repo.path / "ledger.json").read_bytes()
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    (rcfg.repo.path / "ledger.json").write_bytes(old)           # forgets that 1.0-2 was published
    report = verify(rcfg)
    assert not report.ok and "an older copy of the ledger" in bad(report)["ledger.json"]
    with pytest.raises(PublishRefused, match="replaced by an older copy"):
        publish(rcfg, key, fresh(built, tmp_path, "t-a-3"))


@pytest.mark.parametrize("what", ["one file", "the whole pool"])
def test_a_served_package_missing_from_the_pool_fails_verify(rcfg, built, tmp_path, what):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1", "t-b-1"))
    name = built["t-a-1"].name
    if what == "one file":
        (rcfg.repo.path / "pool" / name).unlink()
    else:
        shutil.rmtree(rcfg.repo.path / "pool")
    report = verify(rcfg)
    assert not report.ok
    assert "missing from the pool" in bad(report)[f"pool/{name}"]
    assert (f"pool/{built['t-b-1'].name}" in bad(report)) == (what == "the whole pool")


def test_a_replaced_pool_file_fails_verify(rcfg, built, tmp_path):
    """The pool copy of a served package is the served file itself (a hard link)."""
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    pooled = rcfg.repo.path / "pool" / built["t-a-1"].name
    data = pooled.read_bytes()
    pooled.unlink()
    pooled.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert "differs from the file served under that name" in bad(verify(rcfg))[f"pool/{pooled.name}"]
