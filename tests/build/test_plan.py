"""Which packages to build, why, and in which order."""

from __future__ import annotations

import pytest

from avfrepo.build.plan import plan
from avfrepo.errors import AvfrepoError, ConfigError

from .conftest import write_pkg


def test_everything_absent_from_the_repo_is_planned_dependencies_first(pkgs):
    items = plan(pkgs)
    order = [i.pkgbase for i in items]
    assert sorted(order) == ["t-a", "t-b", "t-c", "t-d"]
    assert order.index("t-a") < order.index("t-b") < order.index("t-c")
    assert next(i for i in items if i.pkgbase == "t-b").deps == ["t-a"]
    assert all(i.reasons == [f"new package: {i.pkgbase} is not in [avf]"] for i in items)


def test_only_packages_newer_than_the_repo_are_planned_with_the_reason(built_pkgs):
    pkgs = built_pkgs
    assert plan(pkgs) == []
    write_pkg(pkgs, "t-b", rel=2, depends=("t-a",))
    items = plan(pkgs)
    assert [(i.pkgbase, i.reasons) for i in items] == [("t-b", ["inputs changed: t-b 1.0-1 -> 1.0-2"])]


def test_requested_package_is_planned_even_when_current(built_pkgs):
    pkgs = built_pkgs
    assert [(i.pkgbase, i.reasons) for i in plan(pkgs, ["t-d"])] == [("t-d", ["requested"])]


def test_unknown_requested_package_is_a_usage_error(pkgs):
    with pytest.raises(ConfigError, match="no PKGBUILD for nope"):
        plan(pkgs, ["nope"])


def test_dependency_cycle_is_a_clear_error(cfg):
    write_pkg(cfg, "t-x", depends=("t-y",))
    write_pkg(cfg, "t-y", depends=("t-x",))
    with pytest.raises(AvfrepoError, match="dependency cycle"):
        plan(cfg)
