"""What sync counts as a hand edit of a package directory (the sync tests drive it end to end)."""

from __future__ import annotations

from avfrepo import hand_edits


def test_hand_edits_leave_alone_what_a_render_reads_back_and_what_sync_would_write():
    wrote = {"PKGBUILD": b"v1\n", "a.Cargo.lock": b"lock1\n", ".SRCINFO": b"info\n"}
    record = hand_edits.written(wrote)
    assert set(record) == {"PKGBUILD", "a.Cargo.lock"}

    def kept(rel):
        return rel.endswith(".Cargo.lock")
    after = {"PKGBUILD": b"v2\n", "a.Cargo.lock": b"lock2\n"}
    # a maintainer's lock (an input the render reads back) and a .SRCINFO are not edits
    assert hand_edits.find(record, {**wrote, "a.Cargo.lock": b"mine\n", "b.Cargo.lock": b"x"}, after, wrote, kept) is None
    # what a killed sync already wrote is what this one writes: nothing is lost
    assert hand_edits.find(record, {"PKGBUILD": b"v2\n", "extra": b"e"}, {**after, "extra": b"e"}, wrote, kept) is None
    edits = hand_edits.find(record, {"PKGBUILD": b"v1\nmine\n"}, after, wrote, kept)
    assert (edits.changed, edits.added, edits.missing) == (["PKGBUILD"], [], [])
    assert "+mine" in edits.diff
    assert hand_edits.find(None, {"PKGBUILD": b"anything"}, after, wrote, kept) is None
