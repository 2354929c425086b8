"""Crash safety and concurrency of publishing, with real processes and real signals."""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from avfrepo.formats.repodb import read_db
from avfrepo.repo.manage import remove
from avfrepo.repo.publish import PublishRefused, publish
from avfrepo.repo.verify import verify
from avfrepo.signing import signing_key

from .conftest import fresh, pacman_client

pytestmark = pytest.mark.slow

KILL_RUNS = 50
CHECK_KILLS = 12        # of KILL_RUNS, landing inside publish's check of the new snapshot


def add_cmd(cfg, paths) -> list[str]:
    return [sys.executable, "-m", "avfrepo", "--config", str(cfg.file), "repo", "add", *map(str, paths)]


# `python -m avfrepo`, except that it starts python and imports the publish code first, says
# so, and runs the command line once told to on stdin. No kill during python's start and
# imports tests anything; with the process started ahead, they overlap the previous run's
# checks, and the kill clock (and the measured publish) starts with the command itself.
_PRIMED = ("import sys; from avfrepo.cli import main; import avfrepo.repo.publish, avfrepo.signing; "
           "print('ready', flush=True); sys.stdin.readline(); sys.exit(main(sys.argv[1:]))")


class Primed:
    def __init__(self, args: list[str], **popen):
        self.proc = subprocess.Popen([sys.executable, "-c", _PRIMED, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, **popen)

    def go(self) -> float:
        """Wait until the imports are done, start the command; returns when it started."""
        assert self.proc.stdout.readline() == "ready\n"
        self.proc.stdin.write("go\n")
        self.proc.stdin.close()
        return time.monotonic()

    def wait(self) -> int:
        code = self.proc.wait()
        self.proc.stdout.close()
        return code


def test_sigkill_at_50_points_leaves_the_old_or_the_new_repository(rcfg, built, tmp_path, trusted_gpgdir):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    baseline = tmp_path / "baseline"
    shutil.copytree(rcfg.repo.path, baseline, symlinks=True)
    argv = add_cmd(rcfg, fresh(built, tmp_path, "t-a-2", "t-b-1"))

    duration, check_window = _timed_publish(argv[3:], rcfg)
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
    installed: dict[str, str] = {}      # served_view -> the t-a version pacman installed from it
    tmpdir = tmp_path / "tmpdir"        # the killed runs' $TMPDIR: a killed repo-add must leave nothing here
    tmpdir.mkdir()

    def primed() -> Primed:
        return Primed(argv[3:], stderr=subprocess.DEVNULL, start_new_session=True,
                      env={**os.environ, "TMPDIR": str(tmpdir)})

    following = primed()
    for run, delay in enumerate(delays):
        shutil.rmtree(rcfg.repo.path)
        shutil.copytree(baseline, rcfg.repo.path, symlinks=True)
        proc, started = following, following.go()
        time.sleep(max(0.0, started + delay - time.monotonic()))
        # the whole process group: python and the repo-add/gpg it started
        os.killpg(proc.proc.pid, signal.SIGKILL)
        proc.wait()
        if run + 1 < len(delays):
            following = primed()        # starts python while this run is checked
        report = verify(rcfg)
        assert report.ok, (run, [(c.path, c.message) for c in report.bad()])
        db = read_db(rcfg.repo.db)
        state = "new" if db["t-a"].version == "1.0-2" else "old"
        assert (state == "new") == ("t-b" in db), (run, db.keys())    # never half of the new set
        seen[state] += 1
        # pacman installs from what the kill left. Most runs leave the old snapshot byte for
        # byte as the runs before them did, and a fresh pacman root given the same served files
        # installs the same: pacman runs once per distinct served view, each run is checked
        view = served_view(rcfg)
        if view not in installed:
            c = pacman_client(rcfg, tmp_path / f"run{run}", trusted_gpgdir)
            c.install("t-a")
            installed[view] = c.pacman("-Q", "t-a").stdout.split()[1]
        assert installed[view] == db["t-a"].version, run
    assert seen["old"] and seen["new"], seen        # kills landed before and after the switch
    # and the next publish cleans up and succeeds
    subprocess.run(argv, check=True, capture_output=True)
    final = verify(rcfg)
    assert final.ok and not final.warnings()
    # repo-add's repo-tools.* work folders went with the snapshot (a SIGKILLed python may still
    # leave its own tempfile folder: nothing can clean up after SIGKILL; the test removes those)
    assert sorted(tmpdir.glob("repo-tools.*")) == []
    shutil.rmtree(tmpdir)


def served_view(cfg) -> str:
    """sha256 over the names and bytes of every file in the served <repo>/<arch> (all pacman reads)."""
    h = hashlib.sha256(os.readlink(cfg.repo.published).encode())
    for p in sorted(cfg.repo.published.iterdir()):
        h.update(b"\0" + p.name.encode() + b"\0" + (hashlib.sha256(p.read_bytes()).digest() if p.is_file() else b"-"))
    return h.hexdigest()


def _timed_publish(args: list[str], cfg) -> tuple[float, tuple[float, float]]:
    """Run one publish (primed, as the kill runs are) with -v on a copy of the repository;
    return its duration and the (start, end) seconds of its snapshot check: from the first
    gpgv after repo-add to the last gpgv before the process ends."""
    backup = cfg.repo.path.with_name("before-timing")
    shutil.copytree(cfg.repo.path, backup, symlinks=True)
    proc = Primed(["-v", *args], stderr=subprocess.PIPE)
    start = proc.go()
    stamps = [(time.monotonic() - start, line) for line in proc.proc.stderr]
    proc.proc.stderr.close()
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


def test_killed_between_snapshot_rename_and_switch_serves_the_old_and_the_next_publish_cleans_up(
        rcfg, built, tmp_path, monkeypatch):
    """The window the 50 kills found: snapshot N renamed into place, the link not yet switched.
    pacman still gets snapshot N-1, complete; verify calls N a leftover (warning), not a replay;
    the next publish removes it and publishes as N."""
    from avfrepo.repo import publish as publish_mod
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))

    def killed(cfg, snapshot):
        raise KeyboardInterrupt("SIGKILL here")
    with monkeypatch.context() as m:
        m.setattr(publish_mod, "_switch", killed)
        with pytest.raises(KeyboardInterrupt):
            publish(rcfg, key, fresh(built, tmp_path, "t-a-2", "t-b-1"))
    snaps = rcfg.repo.path / "snapshots"
    assert (snaps / "2").is_dir() and os.readlink(rcfg.repo.published) == "snapshots/1"
    report = verify(rcfg)
    assert report.ok, [(c.path, c.message) for c in report.bad()]
    assert [(c.path, c.level) for c in report.warnings()] == [("snapshots/2", "warning")]
    assert "never served" in report.warnings()[0].message
    assert read_db(rcfg.repo.db)["t-a"].version == "1.0-1"
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2", "t-b-1"))
    assert os.readlink(rcfg.repo.published) == "snapshots/2"
    final = verify(rcfg)
    assert final.ok and not final.warnings()
    assert {n: e.version for n, e in read_db(rcfg.repo.db).items()} == {"t-a": "1.0-2", "t-b": "1.0-1"}


def test_a_served_snapshot_older_than_the_ledger_is_still_a_replay(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    link = rcfg.repo.published
    link.unlink()
    link.symlink_to("snapshots/1")              # an attacker (or a restore) serves the old snapshot
    report = verify(rcfg)
    assert not report.ok and any("an old snapshot replayed" in c.message for c in report.bad())
    publish(rcfg, key, fresh(built, tmp_path, "t-b-1"))   # never "cleans up" snapshot 2 as a leftover
    assert (rcfg.repo.path / "snapshots/2").is_dir()


# `python -m avfrepo`, with every os.replace/os.rename of the process counted: at the N-th the
# whole process group is SIGKILLed, just before the rename or just after it (real processes,
# real signals; the count only picks the instant)
_KILL_AT_RENAME = """
import os, signal, sys
n, when, count = int(sys.argv[1]), sys.argv[2], 0
def counted(real):
    def call(*args, **kw):
        global count
        count += 1
        if count == n and when == "before":
            os.killpg(os.getpgrp(), signal.SIGKILL)
        done = real(*args, **kw)
        if count == n and when == "after":
            os.killpg(os.getpgrp(), signal.SIGKILL)
        return done
    return call
os.replace, os.rename = counted(os.replace), counted(os.rename)
from avfrepo.cli import main
sys.exit(main(sys.argv[3:]))
"""


def killed_at_every_rename(cfg, baseline, args: list[str], check) -> int:
    """Run `avfrepo ARGS` on a copy of baseline once per rename it makes, SIGKILLed before and
    after that rename; check(run) after each kill. Returns how many renames the command made."""
    n = 0
    while True:
        n += 1
        for when in ("before", "after"):
            shutil.rmtree(cfg.repo.path)
            shutil.copytree(baseline, cfg.repo.path, symlinks=True)
            proc = subprocess.run([sys.executable, "-c", _KILL_AT_RENAME, str(n), when, "--config", str(cfg.file),
                                   *args], capture_output=True, text=True, start_new_session=True)
            if proc.returncode == 0:
                assert when == "before", proc
                return n - 1                       # the command made n-1 renames, and completed
            assert proc.returncode == -signal.SIGKILL, (n, when, proc.stderr)
            check((n, when))


def _state(cfg, run) -> dict[str, str]:
    report = verify(cfg)
    assert report.ok, (run, [(c.path, c.message) for c in report.bad()])
    return {n: e.version for n, e in read_db(cfg.repo.db).items()}


def test_sigkill_at_every_rename_of_rollback_keeps_the_hold(rcfg, built, tmp_path):
    """Before: a kill on ledger.json's rename after the switch lost the hold, and the next add
    published the rolled-back-from version again."""
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1", "t-b-1"))
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    baseline = tmp_path / "baseline"
    shutil.copytree(rcfg.repo.path, baseline, symlinks=True)
    seen = collections.Counter()

    def check(run):
        served = _state(rcfg, run)["t-a"]
        seen[served] += 1
        publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))       # what the next build would add
        assert _state(rcfg, run)["t-a"] == served, run          # rolled back: held; else already there
        publish(rcfg, key, fresh(built, tmp_path, "t-a-3"))       # a newer version ends the hold
        after = _state(rcfg, run)
        assert after == {"t-a": "1.0-3", "t-b": "1.0-1"}, run
        assert not list(rcfg.repo.path.glob(".ledger.json.*")), run
    renames = killed_at_every_rename(rcfg, baseline, ["repo", "rollback", "t-a"], check)
    assert renames >= 4 and seen["1.0-1"] and seen["1.0-2"], (renames, seen)


def test_sigkill_at_every_rename_of_remove_keeps_what_was_published(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1", "t-b-1"))
    baseline = tmp_path / "baseline"
    shutil.copytree(rcfg.repo.path, baseline, symlinks=True)
    seen = collections.Counter()

    def check(run):
        state = _state(rcfg, run)
        seen["removed" if "t-a" not in state else "kept"] += 1
        if "t-a" in state:
            remove(rcfg, "t-a")
        assert _state(rcfg, run) == {"t-b": "1.0-1"}, run
        # the version once published keeps its bytes, whatever the kill left
        with pytest.raises(PublishRefused, match="was published before with other content"):
            publish(rcfg, key, fresh(built, tmp_path, "t-a-1-other"))
        publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
        assert _state(rcfg, run) == {"t-a": "1.0-2", "t-b": "1.0-1"}, run
    renames = killed_at_every_rename(rcfg, baseline, ["repo", "remove", "t-a"], check)
    assert renames >= 3 and seen["removed"] and seen["kept"], (renames, seen)
