"""atomic_write, replace_dir and read_tree: readers see the old or the new content, never a
mix, and failures leave the old content in place with no debris."""

from __future__ import annotations

import os
import stat

import pytest

from avfrepo import fsutil
from avfrepo.fsutil import atomic_write, read_tree, replace_dir


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


# --- atomic_write ----------------------------------------------------------------------

def test_atomic_write_creates_parents_and_writes_bytes(tmp_path):
    target = tmp_path / "a" / "b" / "file.txt"
    atomic_write(target, b"hello\n")
    assert target.read_bytes() == b"hello\n"
    assert mode(target) == 0o644
    assert listing(target.parent) == ["file.txt"]


def test_atomic_write_replaces_existing_content_and_applies_mode(tmp_path):
    target = tmp_path / "script"
    target.write_bytes(b"old, and longer than the new content")
    atomic_write(target, b"new", mode=0o750)
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o750


def test_atomic_write_mode_does_not_depend_on_umask(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "f") == 0o644


def test_atomic_write_replaces_rather_than_rewrites_in_place(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"old")
    inode = target.stat().st_ino
    atomic_write(target, b"new")
    assert target.stat().st_ino != inode


def test_atomic_write_failure_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def crash(src, dst):
        raise OSError("simulated crash")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["f"]


# --- replace_dir -----------------------------------------------------------------------

def test_replace_dir_creates_the_directory_with_exactly_the_files(tmp_path):
    target = tmp_path / "pkgbuilds" / "avf-config"
    replace_dir(target, {"PKGBUILD": b"pkgname=x\n", "sub/dir/unit.service": b"[Unit]\n"})
    assert read_tree(target) == {"PKGBUILD": b"pkgname=x\n", "sub/dir/unit.service": b"[Unit]\n"}
    assert mode(target) == 0o755
    assert listing(target.parent) == ["avf-config"]      # no staging or .old left over


def test_replace_dir_removes_files_not_given_and_keeps_siblings(tmp_path):
    target = tmp_path / "pkg"
    replace_dir(target, {"keep": b"1", "gone": b"2", "olddir/x": b"3"})
    (tmp_path / "sibling").write_text("untouched")
    replace_dir(target, {"keep": b"one", "new": b"4"})
    assert read_tree(target) == {"keep": b"one", "new": b"4"}
    assert not (target / "olddir").exists()
    assert (tmp_path / "sibling").read_text() == "untouched"
    assert listing(tmp_path) == ["pkg", "sibling"]


def test_replace_dir_applies_modes_and_defaults_to_0644(tmp_path):
    target = tmp_path / "pkg"
    replace_dir(target, {"run.sh": b"#!/bin/sh\n", "sudoers": b"x\n", "plain": b""},
                modes={"run.sh": 0o755, "sudoers": 0o440})
    assert mode(target / "run.sh") == 0o755
    assert mode(target / "sudoers") == 0o440
    assert mode(target / "plain") == 0o644


def test_replace_dir_with_no_files_leaves_an_empty_directory(tmp_path):
    target = tmp_path / "pkg"
    replace_dir(target, {"a": b"1"})
    replace_dir(target, {})
    assert target.is_dir() and listing(target) == []


def test_replace_dir_failure_while_writing_keeps_the_old_directory(tmp_path):
    target = tmp_path / "pkg"
    replace_dir(target, {"PKGBUILD": b"old"})
    # "a" is written as a file, then "a/b" needs "a" to be a directory: the write fails midway
    with pytest.raises(OSError):
        replace_dir(target, {"PKGBUILD": b"new", "a": b"file", "a/b": b"under a file"})
    assert read_tree(target) == {"PKGBUILD": b"old"}
    assert listing(tmp_path) == ["pkg"]


def test_replace_dir_failure_at_the_swap_restores_the_old_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "_exchange", lambda a, b: False)     # the fallback: two renames
    target = tmp_path / "pkg"
    replace_dir(target, {"PKGBUILD": b"old", "extra": b"e"})
    real_replace = os.replace
    calls = []

    def crash_on_swap_in(src, dst):
        calls.append((os.path.basename(src), os.path.basename(dst)))
        if os.path.basename(src).startswith(".pkg.new."):     # moving the new copy into place
            raise OSError("simulated crash")
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", crash_on_swap_in)
    with pytest.raises(OSError, match="simulated crash"):
        replace_dir(target, {"PKGBUILD": b"new"})
    monkeypatch.undo()

    assert ("pkg", ".pkg.old") in calls                      # the old copy had been moved aside
    assert read_tree(target) == {"PKGBUILD": b"old", "extra": b"e"}
    assert listing(tmp_path) == ["pkg"]


def test_replace_dir_failure_at_the_first_rename_keeps_the_old_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "_exchange", lambda a, b: False)     # the fallback: two renames
    target = tmp_path / "pkg"
    replace_dir(target, {"PKGBUILD": b"old"})

    def crash(src, dst):
        raise OSError("simulated crash")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        replace_dir(target, {"PKGBUILD": b"new"})
    monkeypatch.undo()
    assert read_tree(target) == {"PKGBUILD": b"old"}
    assert listing(tmp_path) == ["pkg"]


def test_replace_dir_clears_a_stale_old_copy_from_an_earlier_crash(tmp_path):
    target = tmp_path / "pkg"
    (tmp_path / ".pkg.old").mkdir()
    (tmp_path / ".pkg.old" / "stale").write_text("x")
    replace_dir(target, {"f": b"1"})
    assert read_tree(target) == {"f": b"1"}
    assert listing(tmp_path) == ["pkg"]


# --- read_tree -------------------------------------------------------------------------

def test_read_tree_returns_every_file_by_relative_path(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "top").write_bytes(b"t")
    (tmp_path / ".hidden").write_bytes(b"h")
    (tmp_path / "d" / "e" / "deep").write_bytes(b"\x00\xff")
    (tmp_path / "empty-dir").mkdir()
    assert read_tree(tmp_path) == {".hidden": b"h", "d/e/deep": b"\x00\xff", "top": b"t"}


def test_read_tree_of_a_missing_directory_is_empty(tmp_path):
    assert read_tree(tmp_path / "missing") == {}


def test_read_tree_of_a_file_is_empty(tmp_path):
    (tmp_path / "f").write_text("x")
    assert read_tree(tmp_path / "f") == {}


def test_read_tree_inverts_replace_dir(tmp_path):
    files = {"PKGBUILD": b"a", "x/y/z.conf": b"b", ".SRCINFO": b"c"}
    replace_dir(tmp_path / "pkg", files)
    assert read_tree(tmp_path / "pkg") == files


_SLOW_SWAP = """
import os, sys, time
from pathlib import Path
from avfrepo import fsutil
real = os.replace
def slow(a, b):            # a slow file system: each rename takes a while to land
    real(a, b)
    time.sleep(0.25)
fsutil.os.replace = slow
print("ready", flush=True)
fsutil.replace_dir(Path(sys.argv[1]), {"PKGBUILD": b"new\\n", "x.patch": b"new\\n"})
"""


def test_a_kill_during_replace_dir_leaves_the_old_or_the_new_directory(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    target = tmp_path / "pkgbuilds" / "avf-config"
    seen = set()
    for i in range(8):
        fsutil.replace_dir(target, {"PKGBUILD": b"old\n", "x.patch": b"old\n"})
        proc = subprocess.Popen([sys.executable, "-c", _SLOW_SWAP, str(target)], stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.05 + 0.06 * i)         # inside the swap (writing, then the renames)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tree = fsutil.read_tree(target)
        assert tree in ({"PKGBUILD": b"old\n", "x.patch": b"old\n"}, {"PKGBUILD": b"new\n", "x.patch": b"new\n"}), (i, tree)
        seen.add(tree["PKGBUILD"])
    # leftovers of the killed runs are removed by the next replace_dir (never committed later)
    fsutil.replace_dir(target, {"PKGBUILD": b"last\n"})
    assert sorted(p.name for p in target.parent.iterdir()) == ["avf-config"]


def test_replace_dir_removes_leftovers_of_a_killed_run(tmp_path):
    target = tmp_path / "avf-config"
    fsutil.replace_dir(target, {"a": b"1"})
    (tmp_path / ".avf-config.new.abc123").mkdir()
    (tmp_path / ".avf-config.new.abc123" / "PKGBUILD").write_text("stale")
    (tmp_path / ".avf-config.old").mkdir()
    fsutil.replace_dir(target, {"a": b"2"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avf-config"]


# --- read_tree_file: the one reader of upstream trees -------------------------------------

def upstream_tree(tmp_path):
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f.txt").write_bytes(b"inside\n")
    (tmp_path / "host").write_bytes(b"root:x:0:0:host file\n")
    return tree


def test_read_tree_file_reads_a_regular_file_below_the_tree(tmp_path):
    tree = upstream_tree(tmp_path)
    assert fsutil.read_tree_file(tree, "a/b/f.txt") == b"inside\n"
    assert fsutil.read_tree_file(tree, "a/b/f.txt", text=True) == "inside\n"
    with pytest.raises(FileNotFoundError):
        fsutil.read_tree_file(tree, "a/b/missing")


@pytest.mark.parametrize("link, target, rel, says", [
    ("a/b/f.txt", "../../../host", "a/b/f.txt", "a/b/f.txt is a symbolic link (to '../../../host')"),
    ("a/b/f.txt", "/etc/passwd", "a/b/f.txt", "a/b/f.txt is a symbolic link (to '/etc/passwd')"),
    ("a/b/in.txt", "f.txt", "a/b/in.txt", "a/b/in.txt is a symbolic link (to 'f.txt')"),   # inside: refused too
    ("a/b", "/etc", "a/b/passwd", "a/b/passwd has a/b, which is a symbolic link (to '/etc')"),
])
def test_read_tree_file_refuses_every_symbolic_link_on_the_path(tmp_path, link, target, rel, says):
    tree = upstream_tree(tmp_path)
    p = tree / link
    if p.is_dir():
        import shutil
        shutil.rmtree(p)
    else:
        p.unlink(missing_ok=True)
    p.symlink_to(target)
    with pytest.raises(fsutil.TreeFileError) as err:
        fsutil.read_tree_file(tree, rel)
    assert str(err.value) == says + ": a link in an upstream tree is never followed"
    assert err.value.rel == rel and not err.value.local


def test_read_tree_file_refuses_a_fifo_without_opening_it(tmp_path):
    tree = upstream_tree(tmp_path)
    os.mkfifo(tree / "a" / "fifo")           # opening it for reading would block: no writer
    with pytest.raises(fsutil.TreeFileError, match="^a/fifo is a FIFO, not a regular file$") as err:
        fsutil.read_tree_file(tree, "a/fifo")
    assert err.value.local


def test_read_tree_file_refuses_a_device(tmp_path):
    tree = upstream_tree(tmp_path)
    try:
        os.mknod(tree / "a" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    with pytest.raises(fsutil.TreeFileError, match="^a/null is a character device, not a regular file$"):
        fsutil.read_tree_file(tree, "a/null")


def test_read_tree_file_refuses_a_directory_and_a_file_used_as_one(tmp_path):
    tree = upstream_tree(tmp_path)
    with pytest.raises(fsutil.TreeFileError, match="^a/b is a directory, not a regular file$"):
        fsutil.read_tree_file(tree, "a/b")
    with pytest.raises(fsutil.TreeFileError, match="^a/b/f.txt/x has a/b/f.txt, which is a regular file, not a dir"):
        fsutil.read_tree_file(tree, "a/b/f.txt/x")


@pytest.mark.parametrize("rel", ["/etc/passwd", "../host", "a/../../host", "", "a/b/f.txt\0"])
def test_read_tree_file_refuses_a_path_that_is_not_plain(tmp_path, rel):
    with pytest.raises(fsutil.TreeFileError, match="is not a plain relative path"):
        fsutil.read_tree_file(upstream_tree(tmp_path), rel)


def test_read_tree_file_refuses_a_file_over_the_size_before_reading_it(tmp_path, monkeypatch):
    tree = upstream_tree(tmp_path)
    (tree / "big").write_bytes(b"x" * 101)
    monkeypatch.setattr(os, "read", lambda *a: pytest.fail("read before the size was checked"))
    with pytest.raises(fsutil.TreeFileError, match="^big has 101 bytes, more than the 100 an upstream file may have$"):
        fsutil.read_tree_file(tree, "big", 100)
    monkeypatch.undo()
    assert fsutil.read_tree_file(tree, "big", 101) == b"x" * 101
    assert fsutil.MAX_UPSTREAM_FILE >= 8 * 1024 * 1024       # AVF's ttyd patch is ~2.4 MB


def test_read_tree_file_as_text_refuses_what_is_not_utf8(tmp_path):
    tree = upstream_tree(tmp_path)
    (tree / "unit").write_bytes(b"[Unit]\n\xe9t\xe9\n")
    assert fsutil.read_tree_file(tree, "unit") == b"[Unit]\n\xe9t\xe9\n"
    with pytest.raises(fsutil.TreeFileError, match=r"^unit is not UTF-8 text \(byte 0xe9 at offset 7\)$"):
        fsutil.read_tree_file(tree, "unit", text=True)


def test_remove_swap_leftovers_removes_a_killed_atomic_write_s_temporary_file(tmp_path):
    (tmp_path / ".avfrepo-state.json.k1ll3d.tmp").write_text("{half")     # what atomic_write leaves
    (tmp_path / "avfrepo-state.json").write_text("{}")
    (tmp_path / "notes.tmp").write_text("not ours")
    (tmp_path / ".gitignore").write_text("x")
    (tmp_path / ".link.abc.tmp").symlink_to(tmp_path / "avfrepo-state.json")
    gone = fsutil.remove_swap_leftovers(tmp_path)
    assert [p.name for p in gone] == [".avfrepo-state.json.k1ll3d.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", ".link.abc.tmp", "avfrepo-state.json",
                                                          "notes.tmp"]
