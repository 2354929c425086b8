"""The repository lock file: never a path to another file."""

from __future__ import annotations

import os

import pytest

from avfrepo.errors import AvfrepoError
from avfrepo.repo.lock import repo_lock


def test_a_lock_file_hard_linked_to_another_file_is_refused_and_that_file_untouched(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    precious = tmp_path / "precious"
    precious.write_text("keep me\n")
    os.link(precious, repo / ".lock")
    with pytest.raises(AvfrepoError, match=r"\.lock: has 2 hard links; the lock must be a file of its own"):
        with repo_lock(repo, 1, "x"):
            pass
    with pytest.raises(AvfrepoError, match="hard links"):
        with repo_lock(repo, 1, "verify", shared=True):
            pass
    assert precious.read_text() == "keep me\n"

