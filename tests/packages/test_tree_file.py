"""Reading an upstream tree never leaves it: every file the package renders read of a checkout
goes through packages.tree_file (fsutil.read_tree_file). A symbolic link where a file is
expected (to a host file, or even to a file inside the tree), an over-size file, a FIFO and a
unit that is not UTF-8 are refusals naming the path, never a copy of the host file in
pkgbuilds/ and never an internal error.

Against the demo AVF upstream (tests/conftest.py `avf`), its real shape: the attack commits
the link upstream and tags it, as an attacker controlling the upstream would.
"""

from __future__ import annotations

import os
import threading

import pytest

from avfrepo import config as config_mod
from avfrepo.checkout import tree_at
from avfrepo.demo import Symlink, write_config
from avfrepo.fsutil import MAX_UPSTREAM_FILE
from avfrepo.packages import Context, RenderProblem, ToolProblem, guest_agents, linux_avf, ttyd_avf
from avfrepo.sources import Release
from avfrepo.sources.git_tags import latest
from avfrepo.sync import sync

from ..conftest import require_tools

UNIT = "guest/storage_balloon_agent/debian/service"
NEXT = "android-16.0.0_r11"


@pytest.fixture
def agents_cfg(tmp_path, avf, signing_home, monkeypatch):
    require_tools("cargo", "patch", "git")
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    return config_mod.load(write_config(tmp_path / "avfrepo.toml", avf.url, signing_home,
                                        enable=(guest_agents.NAME,)))


def pkgbuilds_files(cfg) -> dict[str, bytes]:
    root = cfg.pkgbuilds / guest_agents.NAME
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def outside_manifest(tmp_path) -> str:
    """A file outside the tree a link can point at: a valid manifest, so only the link gives it away."""
    f = tmp_path / "host" / "Cargo.toml"
    f.parent.mkdir(exist_ok=True)
    f.write_text('[package]\nname = "shutdown_runner"\nversion = "9.9.9"\nedition = "2021"\n# host file\n')
    return str(f)


@pytest.mark.parametrize("path, target, says", [
    (UNIT, "/etc/passwd", f"{UNIT} is a symbolic link (to '/etc/passwd')"),
    (UNIT, "../src/main.rs", f"{UNIT} is a symbolic link (to '../src/main.rs')"),    # inside the tree too
    ("guest/shutdown_runner/Cargo.toml", "@outside", "guest/shutdown_runner/Cargo.toml is a symbolic link"),
    ("guest/shutdown_runner/build.rs", "@outside", "guest/shutdown_runner/build.rs is a symbolic link"),
])
def test_a_link_in_the_agents_tree_is_refused_naming_it_and_nothing_is_copied(
        agents_cfg, avf, tmp_path, path, target, says):
    first = sync(agents_cfg)
    assert not first.refused
    before = pkgbuilds_files(agents_cfg)
    avf.commit({path: Symlink(outside_manifest(tmp_path) if target == "@outside" else target)}, "a link",
               remove=(path,))
    avf.tag(NEXT)
    report = sync(agents_cfg)
    (rep,) = report.packages
    assert rep.action == "refused"
    assert f"AVF {NEXT}: {says}" in rep.problems[0] and "never followed; refused" in rep.problems[0]
    assert pkgbuilds_files(agents_cfg) == before
    assert not any(b"root:x:0:0" in data or b"host file" in data for data in before.values())


def test_a_unit_that_is_not_utf8_is_a_refusal_naming_it(agents_cfg, avf):
    assert not sync(agents_cfg).refused
    avf.commit({UNIT: b"[Unit]\nDescription=\xff\xfe balloon\n"}, "latin-1 in the unit")
    avf.tag(NEXT)
    (rep,) = sync(agents_cfg).packages
    assert rep.action == "refused"
    assert rep.problems[0] == (f"AVF {NEXT}: {UNIT} is not UTF-8 text (byte 0xff at offset 19); refused")


# --- the other readers: linux-avf (build/debian/kernel), ttyd-avf (build/debian/ttyd) -------

def checkout(cfg_path, avf, paths: tuple[str, ...]):
    cfg = config_mod.load(cfg_path)
    rel = latest(cfg.upstream("avf"))
    return cfg, rel, tree_at("avf", avf.url, rel.version, rel.commit, paths, cfg.cache)


KERNEL = Release("kernel", "6.1.158", "6.1.158", None, "https://cdn.kernel.org/linux-6.1.158.tar.xz")


def render_linux(tmp_path, avf, signing_home):
    cfg, rel, tree = checkout(write_config(tmp_path / "avfrepo.toml", avf.url, signing_home), avf,
                              linux_avf.TREES["avf"])
    return linux_avf.render(Context(cfg, {"kernel": KERNEL, "avf": rel}, {"avf": tree}))


@pytest.mark.parametrize("path", ["build/debian/kernel/patches/avf/arm64-balloon.patch",
                                  "build/debian/kernel/patches/series", "build/debian/kernel/config"])
def test_a_link_among_avfs_kernel_files_is_refused_naming_it(tmp_path, avf, signing_home, path):
    avf.commit({path: Symlink("/etc/passwd")}, "a link", remove=(path,))
    avf.tag(NEXT)
    with pytest.raises(RenderProblem) as err:
        render_linux(tmp_path, avf, signing_home)
    assert str(err.value).startswith(f"AVF {NEXT}: {path} is a symbolic link (to '/etc/passwd')")


def test_an_over_size_kernel_patch_is_refused_before_it_is_read(tmp_path, avf, signing_home):
    path = "build/debian/kernel/patches/avf/arm64-balloon.patch"
    avf.commit({path: b"+" * (MAX_UPSTREAM_FILE + 1)}, "a huge patch")
    avf.tag(NEXT)
    with pytest.raises(RenderProblem) as err:
        render_linux(tmp_path, avf, signing_home)
    assert str(err.value) == (f"AVF {NEXT}: {path} has {MAX_UPSTREAM_FILE + 1} bytes, more than the "
                              f"{MAX_UPSTREAM_FILE} an upstream file may have; refused")


def render_ttyd(tmp_path, avf, signing_home, tree_hook=None):
    cfg, rel, tree = checkout(write_config(tmp_path / "avfrepo.toml", avf.url, signing_home), avf,
                              ttyd_avf.TREES["avf"])
    if tree_hook:
        tree_hook(tree)
    ttyd = Release("ttyd", "1.7.7", "1.7.7", "0" * 40, "https://github.com/tsl0922/ttyd")
    # the refusal comes before ttyd's own tree is looked at: an empty folder stands in for it
    (tmp_path / "ttyd").mkdir(exist_ok=True)
    return ttyd_avf.render(Context(cfg, {"ttyd": ttyd, "avf": rel}, {"avf": tree, "ttyd": tmp_path / "ttyd"}))


@pytest.mark.parametrize("link", ["build/debian/ttyd/xtermjs_a11y.patch", "build/debian/ttyd"])
def test_a_link_at_avfs_ttyd_patch_is_refused_not_left_out_with_a_note(tmp_path, avf, signing_home, link):
    target = tmp_path / "host"
    (target / "xtermjs_a11y.patch").parent.mkdir(parents=True)
    (target / "xtermjs_a11y.patch").write_text("--- a/src/html.h\n+++ b/src/html.h\n")
    dir_link = link == "build/debian/ttyd"
    avf.commit({link: Symlink(str(target if dir_link else target / "xtermjs_a11y.patch"))}, "a link", remove=(link,))
    avf.tag(NEXT)
    with pytest.raises(RenderProblem) as err:
        render_ttyd(tmp_path, avf, signing_home)
    patch = "build/debian/ttyd/xtermjs_a11y.patch"
    said = f"{patch} has build/debian/ttyd, which is a symbolic link" if dir_link else f"{patch} is a symbolic link"
    assert str(err.value).startswith(f"AVF {NEXT}: {said} (to '{target}")


def test_a_fifo_in_the_checkout_is_refused_without_blocking_and_tried_again(tmp_path, avf, signing_home):
    """git never checks out a FIFO: one in the cache was put there on this machine, so the
    refusal is a ToolProblem (sync tries again next time), and reading it must not block."""
    rel = "build/debian/ttyd/xtermjs_a11y.patch"
    writer: list[threading.Thread] = []
    fifo: list[str] = []

    def plant(tree):
        os.unlink(tree / rel)
        os.mkfifo(tree / rel)
        fifo.append(str(tree / rel))

        def feed():     # a reader that opens the FIFO gets this patch: today's code would carry it
            with open(fifo[0], "wb") as fh:
                fh.write(b"--- a/src/html.h\n+++ b/src/html.h\n")
        writer.append(threading.Thread(target=feed, daemon=True))
        writer[0].start()

    try:
        with pytest.raises(ToolProblem) as err:
            render_ttyd(tmp_path, avf, signing_home, plant)
        assert str(err.value) == f"AVF android-16.0.0_r10: {rel} is a FIFO, not a regular file; refused"
    finally:
        if writer and writer[0].is_alive():     # let the writer's open() return
            fd = os.open(fifo[0], os.O_RDONLY | os.O_NONBLOCK)
            writer[0].join(5)
            os.close(fd)


def test_the_link_is_named_before_a_cargo_lock_that_cannot_be_made_offline(agents_cfg, avf):
    """A tag with a linked unit and a new registry dependency (crates.io out of reach, as on this
    machine): the refusal is the link, a verdict on the tag, not the lock, which is retried."""
    assert not sync(agents_cfg).refused
    manifest = (avf.path / "guest/storage_balloon_agent/Cargo.toml").read_text()
    avf.commit({UNIT: Symlink("/etc/passwd"),
                "guest/storage_balloon_agent/Cargo.toml": manifest + '\n[dependencies]\nanyhow = "1"\n'},
               "a link and a new dependency", remove=(UNIT,))
    avf.tag(NEXT)
    (rep,) = sync(agents_cfg).packages
    assert rep.action == "refused"
    assert rep.problems == [f"AVF {NEXT}: {UNIT} is a symbolic link (to '/etc/passwd'): a link in an upstream tree "
                            "is never followed; refused"]
