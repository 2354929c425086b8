"""Crash safety and concurrency of publishing, with real processes and real signals."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from avfrepo.formats.repodb import read_db
from avfrepo.repo.publish import publish
from avfrepo.repo.verify import verify
from avfrepo.signing import signing_key

from .conftest import fresh, pacman_client

pytestmark = pytest.mark.slow

KILL_RUNS = 50
CHECK_KILLS = 12        # of KILL_RUNS, landing inside publish's check of the new snapshot


def add_cmd(cfg, paths) -> list[str]:
    return [sys.executable, "-m", "avfrepo", "--config", str(cfg.file), "repo", "add", *map(str, paths)]


def test_sigkill_at_50_points_leaves_the_old_or_the_new_repository(rcfg, built, tmp_path, trusted_gpgdir):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    baseline = tmp_path / "baseline"
    shutil.copytree(rcfg.repo.path, baseline, symlinks=True)
    argv = add_cmd(rcfg, fresh(built, tmp_path, "t-a-2", "t-b-1"))

    duration, check_window = _timed_publish(argv, rcfg)
    # kill points spread over 1.6x one measured publish, so that on a loaded machine (slower
    # than when measured) kills still land on both sides of the switch; CHECK_KILLS more land
    # inside the window where the publish checks the snapshot it made (the gpgv runs after
    # repo-add, seen in the -v log of the measured run)
    span = 1.6 * duration
    spread = KILL_RUNS - CHECK_KILLS
    lo, hi = check_window
    delays = [span * (i + 0.5) / spread for i in range(spread)] + \
             [lo + (hi - lo) * (i + 0.5) / CHECK_KILLS for i in range(CHECK_KILLS)]

    seen = collections.Counter()
    tmpdir = tmp_path / "tmpdir"        # the killed runs' $TMPDIR: a killed repo-add must leave nothing here
    tmpdir.mkdir()
    for run, delay in enumerate(delays):
        shutil.rmtree(rcfg.repo.path)
        shutil.copytree(baseline, rcfg.repo.path, symlinks=True)
        # the whole process group: python and the repo-add/gpg it started
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "TMPDIR": str(tmpdir)})
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        report = verify(rcfg)
        assert report.ok, (run, [(c.path, c.message) for c in report.bad()])
        db = read_db(rcfg.repo.db)
        state = "new" if db["t-a"].version == "1.0-2" else "old"
        assert (state == "new") == ("t-b" in db), (run, db.keys())    # never half of the new set
        seen[state] += 1
        c = pacman_client(rcfg, tmp_path / f"run{run}", trusted_gpgdir)
        c.install("t-a")
        assert c.pacman("-Q", "t-a").stdout.split()[1] == db["t-a"].version
    assert seen["old"] and seen["new"], seen        # kills landed before and after the switch
    # and the next publish cleans up and succeeds
    subprocess.run(argv, check=True, capture_output=True)
    final = verify(rcfg)
    assert final.ok and not final.warnings()
    # repo-add's repo-tools.* work folders went with the snapshot (a SIGKILLed python may still
    # leave its own tempfile folder: nothing can clean up after SIGKILL; the test removes those)
    assert sorted(tmpdir.glob("repo-tools.*")) == []
    shutil.rmtree(tmpdir)


def _timed_publish(argv: list[str], cfg) -> tuple[float, tuple[float, float]]:
    """Run one publish with -v on a copy of the repository; return its duration and the
    (start, end) seconds of its snapshot check: from the first gpgv after repo-add to the
    last gpgv before the process ends."""
    backup = cfg.repo.path.with_name("before-timing")
    shutil.copytree(cfg.repo.path, backup, symlinks=True)
    start = time.monotonic()
    proc = subprocess.Popen([*argv[:3], "-v", *argv[3:]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stamps = [(time.monotonic() - start, line) for line in proc.stderr]
    assert proc.wait() == 0, stamps
    duration = time.monotonic() - start
    shutil.rmtree(cfg.repo.path)
    shutil.move(backup, cfg.repo.path)
    added = next(i for i, (_, l) in enumerate(stamps) if "run repo-add" in l and "--version" not in l)
    gpgv = [t for t, l in stamps[added:] if "run gpgv" in l]
    assert gpgv, stamps
    return duration, (gpgv[0], gpgv[-1] + 0.02)


def test_two_publishes_at_once_both_land(rcfg, built, tmp_path):
    publish(rcfg, signing_key(rcfg.signing), fresh(built, tmp_path, "t-a-1"))
    procs = [subprocess.Popen(add_cmd(rcfg, fresh(built, tmp_path, label)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for label in ("t-a-2", "t-b-1")]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0], results
    db = read_db(rcfg.repo.db)
    assert {n: e.version for n, e in db.items()} == {"t-a": "1.0-2", "t-b": "1.0-1"}
    assert verify(rcfg).ok
