"""Dependency closure: which names are [avf]'s own, and which dependencies on them a set of
packages leaves unmet (pacman's rules: versions by libalpm's vercmp, provides)."""

from __future__ import annotations

import textwrap

import pytest

from avfrepo.formats import srcinfo
from avfrepo.repo import closure
from avfrepo.repo.closure import Package, Relation


def info(text: str) -> srcinfo.SrcInfo:
    return srcinfo.parse(textwrap.dedent(text))


# the shape of the real [avf]: avf-base depends on the agents, linux-avf and systemd-avf;
# systemd-avf stands in for ALARM's systemd (provides and conflicts with it), ttyd-avf for ttyd
AGENTS = info("""\
    pkgbase = avf-guest-agents
    \tpkgver = 16.0.0.r3
    \tpkgrel = 1
    \tarch = aarch64
    pkgname = forwarder-guest
    pkgname = shutdown-runner
    """)
SYSTEMD = info("""\
    pkgbase = systemd-avf
    \tpkgver = 261.2
    \tpkgrel = 1
    \tarch = aarch64
    \tconflicts = mkinitcpio<38-1
    pkgname = systemd-avf
    \tdepends = systemd-avf-libs=261.2
    \tprovides = nss-myhostname
    \tprovides = systemd=261.2
    \tconflicts = nss-myhostname
    \tconflicts = systemd
    pkgname = systemd-avf-libs
    \tprovides = libsystemd.so
    \tprovides = systemd-libs=261.2
    \tconflicts = systemd-libs
    """)
TTYD = info("""\
    pkgbase = ttyd-avf
    \tpkgver = 1.7.7
    \tpkgrel = 2
    \tarch = aarch64
    \tprovides = ttyd=1.7.7
    \tconflicts = ttyd
    pkgname = ttyd-avf
    """)
KERNEL = info("""\
    pkgbase = linux-avf
    \tpkgver = 6.1.158
    \tpkgrel = 1
    \tarch = aarch64
    pkgname = linux-avf
    \tprovides = LINUX-AVF-MODULES
    pkgname = linux-avf-headers
    """)
OWN = closure.own_names([AGENTS, SYSTEMD, TTYD, KERNEL])


def test_own_names_are_pkgnames_and_provides_of_packages_that_stand_in_for_nothing():
    assert OWN == {"forwarder-guest": "avf-guest-agents", "shutdown-runner": "avf-guest-agents",
                   "systemd-avf": "systemd-avf", "systemd-avf-libs": "systemd-avf", "ttyd-avf": "ttyd-avf",
                   "linux-avf": "linux-avf", "LINUX-AVF-MODULES": "linux-avf", "linux-avf-headers": "linux-avf"}
    # systemd, ttyd, libsystemd.so, nss-myhostname: Arch Linux ARM has them too


def base(*depends: str) -> Package:
    return Package("avf-base", "1-3", depends=tuple(depends))


def test_a_set_without_the_packages_its_meta_package_depends_on_is_unmet():
    pkgs = [base("base", "sudo", "forwarder-guest", "linux-avf", "shutdown-runner", "systemd-avf"),
            Package("ttyd-avf", "1.7.7-2")]
    [u] = closure.unmet(pkgs, OWN)
    assert (u.package, u.version) == ("avf-base", "1-3")
    assert [str(d) for d in u.depends] == ["forwarder-guest", "linux-avf", "shutdown-runner", "systemd-avf"]
    assert str(u) == "avf-base 1-3 depends on forwarder-guest, linux-avf, shutdown-runner, systemd-avf"
    assert closure.makers([u], OWN) == ["avf-guest-agents", "linux-avf", "systemd-avf"]


def test_names_avf_does_not_own_are_not_its_business():
    pkgs = [Package("avf-config", "16.0.0.r3-1", depends=("systemd", "ttyd", "glibc", "libsystemd.so", "sudo"))]
    assert closure.unmet(pkgs, OWN) == []


def test_a_complete_set_is_met():
    pkgs = [base("forwarder-guest", "linux-avf"), Package("forwarder-guest", "16.0.0.r3-1"),
            Package("linux-avf", "6.1.158-1")]
    assert closure.unmet(pkgs, OWN) == []


def test_versioned_dependencies_compare_with_vercmp_and_name_what_is_there():
    libs = Package("systemd-avf-libs", "261.2-1", provides=("libsystemd.so", "systemd-libs=261.2"))
    ok = Package("systemd-avf", "261.2-1", depends=("systemd-avf-libs=261.2",))
    assert closure.unmet([ok, libs], OWN) == []                      # no pkgrel in the dependency: any pkgrel
    newer = Package("systemd-avf", "261.3-1", depends=("systemd-avf-libs=261.3",))
    [u] = closure.unmet([newer, libs], OWN)
    assert str(u) == "systemd-avf 261.3-1 depends on systemd-avf-libs=261.3 (systemd-avf-libs 261.2-1 is there)"
    assert closure.unmet([Package("x", "1-1", depends=("linux-avf>=6.1.150",)), Package("linux-avf", "6.1.158-1")],
                         OWN) == []
    assert closure.unmet([Package("x", "1-1", depends=("linux-avf<6.1",)), Package("linux-avf", "6.1.158-1")],
                         OWN)[0].depends == (Relation("linux-avf", "<", "6.1"),)


def test_a_provide_satisfies_by_name_and_a_versioned_dependency_only_when_versioned():
    dep = Package("dkms-thing", "1-1", depends=("LINUX-AVF-MODULES",))
    assert closure.unmet([dep, Package("linux-avf", "6.1.158-1", provides=("LINUX-AVF-MODULES",))], OWN) == []
    versioned = Package("dkms-thing", "1-1", depends=("LINUX-AVF-MODULES=6.1",))
    assert closure.unmet([versioned, Package("linux-avf", "6.1.158-1", provides=("LINUX-AVF-MODULES",))], OWN)
    assert closure.unmet([versioned, Package("linux-avf", "6.1.158-1", provides=("LINUX-AVF-MODULES=6.1",))], OWN) == []


@pytest.mark.parametrize("text, parsed", [
    ("glibc", Relation("glibc")), ("systemd-avf=261.2", Relation("systemd-avf", "=", "261.2")),
    ("linux-avf>=6.1-2", Relation("linux-avf", ">=", "6.1-2")), ("a<=1:2", Relation("a", "<=", "1:2")),
    ("libd.so=2-64", Relation("libd.so", "=", "2-64")), ("mkinitcpio<38-1", Relation("mkinitcpio", "<", "38-1")),
])
def test_relations_parse_like_pacman(text, parsed):
    assert Relation.parse(text) == parsed and str(parsed) == text


def test_a_split_package_of_a_srcinfo_carries_its_own_relations():
    pkg = closure.from_srcinfo(SYSTEMD, "systemd-avf")       # its own conflicts= replaces pkgbase's, as makepkg does
    assert pkg == Package("systemd-avf", "261.2-1", ("systemd-avf-libs=261.2",), ("nss-myhostname", "systemd=261.2"),
                          ("nss-myhostname", "systemd"))
    assert pkg.stands_in and not closure.from_srcinfo(AGENTS, "forwarder-guest").stands_in
