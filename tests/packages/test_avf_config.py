"""avf-config: upstream guest units adapted to Arch, plus the project's own units."""

from __future__ import annotations

import hashlib
import re

import pytest

from avfrepo.checkout import AVF_PATHS, tree_at
from avfrepo.packages import PKGREL_TOKEN, PKGVER_TOKEN, Context, RenderProblem, avf_config
from avfrepo.sources.git_tags import latest


def render_at(cfg, avf, tag=None):
    rel = latest(cfg.upstream("avf"))
    tree = tree_at("avf", avf.url, rel.version, rel.commit, AVF_PATHS, cfg.cache)
    return avf_config.render(Context(cfg, {"avf": rel}, {"avf": tree}))


@pytest.mark.parametrize("line,expected", [
    ("ExecStart=/usr/sbin/foo --x", "ExecStart=/usr/bin/foo --x"),
    ("ExecStart=/sbin/foo", "ExecStart=/usr/bin/foo"),
    ("ExecStart=/bin/bash -c '/usr/sbin/tool'", "ExecStart=/usr/bin/bash -c '/usr/bin/tool'"),
    ("ExecStart=/usr/bin/foo", "ExecStart=/usr/bin/foo"),
    ("ExecStart=/opt/vendor/bin/foo", "ExecStart=/opt/vendor/bin/foo"),
    ("After=virtiofs_internal.service", "After=mnt-internal.mount"),
])
def test_adapt_unit_moves_binaries_and_renames_units(line, expected):
    text, _ = avf_config.adapt_unit(line + "\n")
    assert text == expected + "\n"


def test_adapt_unit_reports_each_change_and_leaves_arch_units_alone():
    text, changes = avf_config.adapt_unit("[Service]\nExecStart=/usr/sbin/x\nAfter=virtiofs_internal.service")
    assert changes == ["binaries moved to /usr/bin", "virtiofs_internal.service -> mnt-internal.mount"]
    same, none = avf_config.adapt_unit("[Service]\nExecStart=/usr/bin/x\n")
    assert none == [] and same == "[Service]\nExecStart=/usr/bin/x\n"


def test_render_takes_every_guest_unit_and_checksums_every_source(cfg, avf):
    r = render_at(cfg, avf)
    assert r.pkgver == "16.0.0.r10" and r.upstreams == {"avf": "android-16.0.0_r10"}
    pkgbuild = r.files["PKGBUILD"].decode()
    assert f"pkgver={PKGVER_TOKEN}" in pkgbuild and f"pkgrel={PKGREL_TOKEN}" in pkgbuild
    sources = re.search(r"source=\((.*?)\)", pkgbuild, re.S).group(1).split()
    sums = re.search(r"sha256sums=\((.*?)\)", pkgbuild, re.S).group(1).split()
    names = [s.strip("'") for s in sources]
    assert {"forwarder_guest_launcher.service", "shutdown_runner.service", "storage_balloon_agent.service"} <= set(names)
    assert "forwarder_guest.service" not in names          # forwarder_guest has no debian/ dir
    for name, digest in zip(names, sums):
        assert hashlib.sha256(r.files[name]).hexdigest() == digest.strip("'"), name
    preset = r.files["80-avf.preset"].decode()
    assert "enable storage_balloon_agent.service" in preset and "enable ttyd.service" in preset


def test_inputs_hash_ignores_the_version_but_not_the_units(cfg, avf):
    a = render_at(cfg, avf)
    assert a.finalize("1", 1) != a.finalize("2", 1)
    assert a.inputs_hash() == render_at(cfg, avf).inputs_hash()
    from avfrepo.demo import unit_text
    avf.commit({"guest/shutdown_runner/debian/service": unit_text("shutdown_runner", " -v")}, "c")
    avf.tag("android-16.0.0_r11")
    assert render_at(cfg, avf).inputs_hash() != a.inputs_hash()


def test_tree_without_guest_units_is_a_render_problem(cfg, avf):
    avf.commit({}, "no units", remove=("guest",))
    avf.tag("android-16.0.0_r11")
    with pytest.raises(RenderProblem, match="no guest/\\*/debian/service unit at android-16.0.0_r11"):
        render_at(cfg, avf)
