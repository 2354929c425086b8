"""Cargo.lock reading, Cargo's version requirements, and the offline lock-fits check.

The requirement cases are the ones of Cargo's "Specifying Dependencies" page (caret, tilde,
wildcard, comparison, multiple requirements, pre-releases); the crates are small
Cargo.toml/Cargo.lock texts written here, shaped like AVF's agents (a path dependency two
levels up, registry and build dependencies, a lock in cargo's own v4 layout).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from avfrepo.errors import AvfrepoError
from avfrepo.formats.cargo import (
    CRATES_IO_SOURCES,
    CargoFormatError,
    CargoLock,
    LockedPackage,
    Version,
    VersionReq,
    lock_fits,
    read_lock,
)

CRATES_IO = CRATES_IO_SOURCES[0]
SUM = "a" * 64

# -- version requirements -------------------------------------------------------------------

# (requirement, versions it matches, versions it does not); from Cargo's documented equivalences
REQ_CASES = [
    # caret, and a bare version is a caret requirement
    ("^1.2.3", ["1.2.3", "1.2.4", "1.9.0", "1.99.99"], ["1.2.2", "2.0.0", "1.1.9", "0.9.0"]),
    ("1.2.3", ["1.2.3", "1.3.0"], ["1.2.2", "2.0.0"]),
    ("^1.2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0"]),
    ("^1", ["1.0.0", "1.9.9"], ["0.9.9", "2.0.0"]),
    ("^0.2.3", ["0.2.3", "0.2.9"], ["0.2.2", "0.3.0", "1.0.0"]),
    ("0.2.3", ["0.2.3", "0.2.10"], ["0.3.0"]),
    ("^0.2", ["0.2.0", "0.2.9"], ["0.1.9", "0.3.0"]),
    ("^0.0.3", ["0.0.3"], ["0.0.2", "0.0.4", "0.1.0"]),
    ("^0.0", ["0.0.0", "0.0.9"], ["0.1.0", "1.0.0"]),
    ("^0", ["0.0.0", "0.9.9"], ["1.0.0"]),
    # tilde
    ("~1.2.3", ["1.2.3", "1.2.9"], ["1.2.2", "1.3.0"]),
    ("~1.2", ["1.2.0", "1.2.9"], ["1.1.9", "1.3.0"]),
    ("~1", ["1.0.0", "1.9.9"], ["0.9.9", "2.0.0"]),
    ("~0.2.3", ["0.2.3", "0.2.4"], ["0.3.0"]),
    # wildcards
    ("*", ["0.0.0", "1.2.3", "99.0.0"], ["1.0.0-alpha"]),
    ("1.*", ["1.0.0", "1.9.9"], ["0.9.9", "2.0.0"]),
    ("1.2.*", ["1.2.0", "1.2.9"], ["1.1.9", "1.3.0"]),
    ("1.x", ["1.0.0"], ["2.0.0"]),
    ("0.*", ["0.0.1", "0.9.0"], ["1.0.0"]),
    # comparison
    (">= 1.2.0", ["1.2.0", "5.0.0"], ["1.1.9"]),
    ("> 1", ["2.0.0"], ["1.0.0", "1.9.9"]),
    ("> 1.2", ["1.3.0", "2.0.0"], ["1.2.9"]),
    ("< 2", ["1.9.9", "0.1.0"], ["2.0.0", "2.0.1"]),
    ("<= 1.2", ["1.2.9", "1.0.0"], ["1.3.0"]),
    ("= 1.2.3", ["1.2.3", "1.2.3+build.5"], ["1.2.4", "1.2.2"]),
    ("=1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
    ("=0.0.3", ["0.0.3"], ["0.0.4"]),
    # multiple requirements: all must hold
    (">= 1.2, < 1.5", ["1.2.0", "1.4.9"], ["1.1.0", "1.5.0"]),
    (">=1.0.0,<2.0.0", ["1.5.0"], ["0.9.0", "2.0.0"]),
    ("^1.2, ~1.4", ["1.4.0", "1.4.9"], ["1.3.0", "1.5.0"]),
    # build metadata is ignored on both sides
    ("1.2.3+meta", ["1.2.3", "1.2.4"], ["2.0.0"]),
    ("^0.11.0", ["0.11.0+wasi-snapshot-preview1"], ["0.13.3+wasi-0.2.2"]),
    # pre-releases: only a requirement naming a pre-release of the same x.y.z matches one
    ("1.0.0-alpha", ["1.0.0-alpha", "1.0.0-beta", "1.0.0", "1.2.0"], ["1.0.1-alpha", "0.9.0"]),
    (">=1.0.0-alpha, <1.0.0", ["1.0.0-alpha.1", "1.0.0-rc.1"], ["1.0.0", "1.0.1-beta"]),
    ("^1.2.3", [], ["1.2.4-beta", "1.3.0-alpha", "1.2.3-rc.1"]),
    (">=1.0.0", [], ["2.0.0-alpha"]),
    ("~1.2.3-beta", ["1.2.3-beta", "1.2.3-beta.2", "1.2.3", "1.2.4"], ["1.2.3-alpha", "1.3.0"]),
    ("=1.0.0-rc.1", ["1.0.0-rc.1"], ["1.0.0-rc.2", "1.0.0"]),
    ("^0.0.3-beta", ["0.0.3-beta", "0.0.3"], ["0.0.4"]),
    ("<1.0.0-beta", ["1.0.0-alpha", "0.9.9"], ["1.0.0-beta", "1.0.0"]),
]


@pytest.mark.parametrize(("req", "yes", "no"), REQ_CASES, ids=[c[0] for c in REQ_CASES])
def test_requirement_matches_as_cargo_documents(req, yes, no):
    r = VersionReq.parse(req)
    for v in yes:
        assert r.matches(Version.parse(v)), f"{req} should match {v}"
    for v in no:
        assert not r.matches(Version.parse(v)), f"{req} should not match {v}"


def test_prerelease_ordering_is_semvers():
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"]
    keys = [Version.parse(v).key() for v in order]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert Version.parse("1.2.3+b1").key() == Version.parse("1.2.3").key()
    assert str(Version.parse("1.2.3-rc.1+b1")) == "1.2.3-rc.1+b1"


@pytest.mark.parametrize("bad", ["", " ", "1.2.3.4", "01.2", "1.02", "^", ">=", "1.*.3", "*.1",
                                 "1, *", "~>1.2", "1.2.3-", "1.2-beta", "1.*-beta", "1.2.3-01",
                                 "a.b.c", "1 2", "=>1", "1.2.3,", "1.2.3 || 2"])
def test_malformed_requirement_is_a_cargo_format_error(bad):
    with pytest.raises(CargoFormatError):
        VersionReq.parse(bad)


@pytest.mark.parametrize("bad", ["1.2", "1", "1.2.3.4", "01.2.3", "1.2.3-", "1.2.3+", "v1.2.3",
                                 "1.2.3-beta..1", "1.2.3-01", "", " 1.2.3"])
def test_malformed_version_is_a_cargo_format_error(bad):
    with pytest.raises(CargoFormatError):
        Version.parse(bad)


# -- Cargo.lock -----------------------------------------------------------------------------

def lock_text(*packages: str, version: int | None = 4) -> str:
    head = ("# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\n"
            + (f"version = {version}\n" if version is not None else ""))
    return head + "".join("\n[[package]]\n" + textwrap.dedent(p).strip() + "\n" for p in packages)


def reg(name: str, version: str, *deps: str) -> str:
    text = f'name = "{name}"\nversion = "{version}"\nsource = "{CRATES_IO}"\nchecksum = "{SUM}"\n'
    if deps:
        text += "dependencies = [\n" + "".join(f' "{d}",\n' for d in deps) + "]\n"
    return text


def local(name: str, version: str, *deps: str) -> str:
    text = f'name = "{name}"\nversion = "{version}"\n'
    if deps:
        text += "dependencies = [\n" + "".join(f' "{d}",\n' for d in deps) + "]\n"
    return text


def test_read_lock_types_every_field():
    lock = read_lock(lock_text(
        local("agent", "0.1.0", "tonic", "windows-sys 0.59.0"),
        reg("tonic", "0.12.3", "windows-sys 0.52.0"),
        reg("windows-sys", "0.52.0"), reg("windows-sys", "0.59.0"),
        'name = "bar"\nversion = "0.3.0"\nsource = "git+https://example.org/bar?branch=main#0123abc"\n',
    ).encode())
    assert lock.version == 4 and len(lock.packages) == 5
    agent = lock.packages[0]
    assert agent == LockedPackage("agent", "0.1.0", None, None, ("tonic", "windows-sys 0.59.0"))
    assert lock.packages[1].source == CRATES_IO and lock.packages[1].checksum == SUM
    assert lock.resolve("windows-sys 0.59.0") is lock.packages[3]
    assert lock.resolve("windows-sys") is None                 # two of them: must be qualified
    assert lock.named("bar")[0].source.startswith("git+") and lock.named("bar")[0].checksum is None


def test_read_lock_v1_takes_checksums_from_metadata():
    text = lock_text(reg("log", "0.4.22").replace(f'checksum = "{SUM}"\n', ""),
                     local("a", "1.0.0", f"log 0.4.22 ({CRATES_IO})"),
                     version=None)
    text += f'\n[metadata]\n"checksum log 0.4.22 ({CRATES_IO})" = "{"b" * 64}"\n'
    lock = read_lock(text.encode())
    assert lock.version is None and lock.named("log")[0].checksum == "b" * 64
    assert lock.resolve(f"log 0.4.22 ({CRATES_IO})").name == "log"


GOOD = lock_text(local("agent", "0.1.0", "log"), reg("log", "0.4.22"))


@pytest.mark.parametrize("data", [
    b"\xff\xfe not utf-8",
    b"version = 4\n[[package]\n",                                    # not TOML
    b"version = '4'\n",
    b"version = 4.0\n",
    b"version = true\n",
    b"version = 4\npackage = 3\n",
    b"version = 4\npackage = [1, 2]\n",
    b"version = 4\nmetadata = 1\n",
    GOOD.replace('name = "agent"\n', "").encode(),                   # no name
    GOOD.replace('name = "agent"', "name = 7").encode(),
    GOOD.replace('name = "agent"', 'name = "a b"').encode(),
    GOOD.replace('version = "0.1.0"\n', "").encode(),                # no version
    GOOD.replace('version = "0.1.0"', 'version = "0.1"').encode(),   # not semver
    GOOD.replace('version = "0.4.22"', "version = 4").encode(),
    GOOD.replace(f'source = "{CRATES_IO}"', "source = 1").encode(),
    GOOD.replace(f'source = "{CRATES_IO}"', 'source = ""').encode(),
    GOOD.replace(f'checksum = "{SUM}"', "checksum = []").encode(),
    GOOD.replace('"log",', "7,").encode(),                          # dependency not a string
    GOOD.replace('"log",', '"log 0.4 (x) y",').encode(),            # unreadable entry
    GOOD.replace('dependencies = [\n "log",\n]', 'dependencies = "log"').encode(),
    (GOOD + "\n[[package]]\n" + reg("log", "0.4.22")).encode(),     # listed twice
])
def test_malformed_lock_is_a_cargo_format_error_and_nothing_else(data):
    with pytest.raises(CargoFormatError) as err:
        read_lock(data)
    assert isinstance(err.value, AvfrepoError) and isinstance(err.value, ValueError)


def test_every_truncation_and_byte_flip_of_a_lock_gives_a_lock_or_a_cargo_format_error():
    data = lock_text(local("agent", "0.1.0", "log", "tonic"), reg("log", "0.4.22"),
                     reg("tonic", "0.12.3", "log")).encode()
    mutants = [data[:i] for i in range(0, len(data), 7)]
    mutants += [data[:i] + bytes([c]) + data[i + 1:] for i in range(0, len(data), 5)
                for c in (0x22, 0x5B, 0x00, 0xFF, 0x3D)]
    errors = 0
    for m in mutants:
        try:
            assert isinstance(read_lock(m), CargoLock)
        except CargoFormatError:
            errors += 1
    assert 0 < errors < len(mutants)


def test_read_lock_refuses_a_str():
    with pytest.raises(CargoFormatError):
        read_lock(GOOD)   # type: ignore[arg-type]


# -- lock_fits ------------------------------------------------------------------------------

def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


AGENT_TOML = """\
    [package]
    name = "shutdown_runner"
    version = "0.1.0"
    edition = "2021"

    [dependencies]
    clap = { version = "4.5.20", features = ["derive"] }
    forwarder = { path = "../../libs/libforwarder" }
    tonic = "0.12.3"
    lg = { package = "log", version = "0.4.22" }
    serde = { version = "1.0", optional = true }

    [build-dependencies]
    tonic-build = "0.12.3"

    [dev-dependencies]
    tempfile = "3"

    [target.'cfg(windows)'.dependencies]
    windows-sys = "0.59"

    [package.metadata.deb]
    depends = "$auto"
    """
LIB_TOML = """\
    [package]
    name = "forwarder"
    version = "0.1.0"
    edition = "2021"

    [dependencies]
    vsock = "0.5.1"
    fancy = { version = "1", optional = true }

    [dev-dependencies]
    criterion = "0.5"
    """


def agent_lock(**override: str) -> CargoLock:
    pkgs = {
        "root": local("shutdown_runner", "0.1.0", "clap", "forwarder", "log", "serde", "tempfile", "tonic",
                      "tonic-build", "windows-sys"),
        "forwarder": local("forwarder", "0.1.0", "vsock"),
        "clap": reg("clap", "4.5.32"), "log": reg("log", "0.4.26"), "serde": reg("serde", "1.0.219"),
        "tempfile": reg("tempfile", "3.19.1"), "tonic": reg("tonic", "0.12.3", "log"),
        "tonic-build": reg("tonic-build", "0.12.3"), "windows-sys": reg("windows-sys", "0.59.0"),
        "vsock": reg("vsock", "0.5.1"),
    }
    pkgs.update(override)
    return read_lock(lock_text(*[p for p in pkgs.values() if p]).encode())


@pytest.fixture
def avf(tmp_path) -> Path:
    return write(tmp_path / "avf", {"guest/shutdown_runner/Cargo.toml": AGENT_TOML,
                                    "libs/libforwarder/Cargo.toml": LIB_TOML})


def fits(avf: Path, lock: CargoLock) -> list[str]:
    return lock_fits(avf / "guest/shutdown_runner", lock, root=avf)


def test_a_lock_made_for_the_crate_fits(avf):
    assert fits(avf, agent_lock()) == []


@pytest.mark.parametrize(("override", "reason"), [
    ({"tonic": reg("tonic", "0.13.0", "log")},
     'guest/shutdown_runner: tonic = "0.12.3" but the lock has tonic 0.13.0'),
    ({"clap": reg("clap", "4.5.19")}, 'guest/shutdown_runner: clap = "4.5.20" but the lock has clap 4.5.19'),
    ({"log": reg("log", "0.5.0")},                  # the rename: checked under the real name
     'guest/shutdown_runner: lg = "0.4.22" (package log) but the lock has log 0.5.0'),
    ({"vsock": reg("vsock", "0.4.0")},              # a path dependency's own dependency
     'libs/libforwarder: vsock = "0.5.1" but the lock has vsock 0.4.0'),
    ({"tonic-build": reg("tonic-build", "0.12.3").replace(CRATES_IO, "registry+https://example.org/index")},
     'guest/shutdown_runner: tonic-build = "0.12.3" from crates.io but the lock has tonic-build 0.12.3 '
     "from registry+https://example.org/index"),
    ({"serde": "", "root": local("shutdown_runner", "0.1.0", "clap", "forwarder", "log", "tempfile", "tonic",
                                 "tonic-build", "windows-sys")},   # the root's optional dependency is locked too
     'guest/shutdown_runner: serde = "1.0" but the lock has no serde as a dependency of shutdown_runner 0.1.0'),
    ({"tempfile": reg("tempfile", "2.0.0")},        # dev-dependencies of the root are locked
     'guest/shutdown_runner: tempfile = "3" but the lock has tempfile 2.0.0'),
    ({"windows-sys": reg("windows-sys", "0.52.0")},  # every target's table is locked
     'guest/shutdown_runner: windows-sys = "0.59" but the lock has windows-sys 0.52.0'),
    ({"root": local("shutdown_runner", "0.2.0", "clap")},
     "guest/shutdown_runner: the lock has no path package shutdown_runner 0.1.0 (it has: shutdown_runner 0.2.0)"),
    ({"forwarder": reg("forwarder", "0.1.0", "vsock")},
     "libs/libforwarder: the lock has no path package forwarder 0.1.0 (it has: none)"),
    ({"root": local("shutdown_runner", "0.1.0", "clap", "forwarder", "log", "serde", "tempfile", "tonic",
                    "tonic-build", "windows-sys", "nope")},
     "guest/shutdown_runner: the lock lists dependency 'nope' of shutdown_runner 0.1.0, "
     "which is not (exactly once) a package in the lock"),
])
def test_a_lock_that_does_not_fit_says_why_in_one_line(avf, override, reason):
    reasons = fits(avf, agent_lock(**override))
    assert reason in reasons, reasons
    assert all("\n" not in r for r in reasons)


def test_left_over_entries_are_tolerated_as_cargo_build_locked_tolerates_them(avf):
    """Measured with cargo 1.95: `cargo build --locked` accepts a lock that still lists a
    dependency Cargo.toml dropped, or a package nothing reaches; so the kept lock stays."""
    extra = agent_lock(extra=reg("anyhow", "1.0.97"), stray=reg("regex", "1.11.1"),
                       root=local("shutdown_runner", "0.1.0", "anyhow", "clap", "forwarder", "log", "serde",
                                  "tempfile", "tonic", "tonic-build", "windows-sys"))
    assert fits(avf, extra) == []


def test_optional_dependency_of_a_path_package_is_checked_only_when_locked(avf):
    lock = agent_lock(forwarder=local("forwarder", "0.1.0", "fancy", "vsock"), fancy=reg("fancy", "0.9.0"))
    assert fits(avf, lock) == ['libs/libforwarder: fancy = "1" but the lock has fancy 0.9.0']
    # its dev-dependencies are not resolved (it is no workspace member): criterion is not needed
    assert fits(avf, agent_lock()) == []


def test_two_versions_of_one_crate_are_told_apart(avf):
    toml = (avf / "guest/shutdown_runner/Cargo.toml").read_text()
    (avf / "guest/shutdown_runner/Cargo.toml").write_text(toml.replace('tonic-build = "0.12.3"', 'log = "0.3"'))
    root = local("shutdown_runner", "0.1.0", "clap", "forwarder", "log 0.3.9", "log 0.4.26", "serde",
                 "tempfile", "tonic", "windows-sys")
    lock = agent_lock(root=root, **{"tonic-build": "", "log3": reg("log", "0.3.9"),
                                    "tonic": reg("tonic", "0.12.3", "log 0.4.26")})
    assert fits(avf, lock) == []
    lock = agent_lock(root=root.replace("log 0.3.9", "log 0.2.0"),
                      **{"tonic-build": "", "log3": reg("log", "0.2.0"), "tonic": reg("tonic", "0.12.3", "log 0.4.26")})
    assert fits(avf, lock) == ['guest/shutdown_runner: log = "0.3" but the lock has log 0.2.0, log 0.4.26']


GIT = "git+https://github.com/Example/Bar.git?branch=main#0123456789abcdef"


@pytest.mark.parametrize(("spec", "source", "ok"), [
    ('{ git = "https://github.com/example/bar", branch = "main" }', GIT, True),
    ('{ git = "https://github.com/example/bar/", branch = "main" }', GIT, True),
    ('{ git = "https://github.com/example/bar", branch = "dev" }', GIT, False),
    ('{ git = "https://github.com/example/baz", branch = "main" }', GIT, False),
    ('{ git = "https://github.com/example/bar", rev = "0123abc" }',
     "git+https://github.com/example/bar?rev=0123abc#0123abcdef", True),
    ('{ git = "https://example.org/bar" }', "git+https://example.org/bar#0123abc", True),
    ('{ git = "https://example.org/bar", tag = "v1" }', "git+https://example.org/bar#0123abc", False),
    ('{ git = "https://example.org/bar" }', CRATES_IO, False),               # must come from git
    ('{ git = "https://example.org/bar", version = "0.4" }', "git+https://example.org/bar#0123abc", False),
    ('"0.3"', "git+https://example.org/bar#0123abc", False),                  # registry dep, git lock
])
def test_git_dependency_must_be_locked_from_that_git_source(tmp_path, spec, source, ok):
    crate = write(tmp_path, {"Cargo.toml": f'[package]\nname = "a"\nversion = "1.0.0"\n[dependencies]\nbar = {spec}\n'})
    lock = read_lock(lock_text(local("a", "1.0.0", "bar"), f'name = "bar"\nversion = "0.3.0"\nsource = "{source}"\n').encode())
    reasons = lock_fits(crate, lock)
    assert (reasons == []) is ok, reasons
    assert all(r.startswith(f"{tmp_path.name}: bar = ") and "\n" not in r for r in reasons), reasons


def test_refused_manifests_say_unsupported(tmp_path):
    crate = write(tmp_path / "c", {"Cargo.toml": """\
        [package]
        name = "a"
        version = "1.0.0"
        [dependencies]
        log = { workspace = true }
        priv = { version = "1", registry = "company" }
        bad = { version = "nope" }
        [patch.crates-io]
        log = { path = "x" }
        """})
    lock = read_lock(lock_text(local("a", "1.0.0", "log"), reg("log", "0.4.22")).encode())
    assert lock_fits(crate, lock) == [
        "c: [patch] is not supported by the offline lock check",
        "c: [dependencies] log: `workspace = true` is not supported by the offline lock check",
        "c: [dependencies] priv: only crates.io registry dependencies are supported",
        "c: [dependencies] bad: not a version requirement: 'nope'",
    ]


def test_path_dependency_leaving_the_tree_is_refused(avf, tmp_path):
    write(tmp_path, {"outside/Cargo.toml": '[package]\nname = "forwarder"\nversion = "0.1.0"\n'})
    toml = (avf / "guest/shutdown_runner/Cargo.toml").read_text()
    (avf / "guest/shutdown_runner/Cargo.toml").write_text(toml.replace("../../libs/libforwarder", "../../../outside"))
    reasons = fits(avf, agent_lock())
    assert reasons[0] == (f"guest/shutdown_runner: forwarder = {{ path = '../../../outside' }} leaves the tree "
                          f"the lock is checked in ({avf.resolve()})")
    # a symlink inside the tree that points out of it is no way round
    (avf / "libs/escape").symlink_to(tmp_path / "outside")
    (avf / "guest/shutdown_runner/Cargo.toml").write_text(toml.replace("../../libs/libforwarder", "../../libs/escape"))
    assert "leaves the tree" in fits(avf, agent_lock())[0]
    # by default the tree is the crate itself
    (avf / "guest/shutdown_runner/Cargo.toml").write_text(toml)
    assert "leaves the tree" in lock_fits(avf / "guest/shutdown_runner", agent_lock())[0]


def test_path_dependency_that_is_missing_or_named_otherwise(avf):
    toml = (avf / "guest/shutdown_runner/Cargo.toml").read_text()
    (avf / "guest/shutdown_runner/Cargo.toml").write_text(toml.replace("libs/libforwarder", "libs/nothing"))
    assert ("guest/shutdown_runner: forwarder = { path = '../../libs/nothing' }: no Cargo.toml there"
            in fits(avf, agent_lock()))
    (avf / "guest/shutdown_runner/Cargo.toml").write_text(toml.replace("forwarder = {", "fwd = {"))
    assert ("libs/libforwarder: is package forwarder, but the depending crate names it fwd"
            in fits(avf, agent_lock()))


def test_unreadable_manifest_is_a_reason_not_an_exception(tmp_path):
    crate = write(tmp_path / "c", {"Cargo.toml": "[package\n"})
    reasons = lock_fits(crate, read_lock(GOOD.encode()))
    assert len(reasons) == 1 and reasons[0].startswith("c: Cargo.toml cannot be read:")
    missing = tmp_path / "missing"
    assert lock_fits(missing, read_lock(GOOD.encode())) == [f"{missing}: not a directory inside {missing}"]


@pytest.mark.parametrize("workspace", [False, True])
def test_dev_dependencies_of_a_path_crate_count_only_for_workspace_members(tmp_path, workspace):
    """As cargo 1.95 locks it: a path crate under the root crate's directory is a member
    (its dev-dependencies locked) only when the root has a [workspace] table."""
    crate = write(tmp_path / "app", {
        "Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\n[dependencies]\nsub = { path = "sub" }\n'
                      + ("[workspace]\n" if workspace else ""),
        "sub/Cargo.toml": '[package]\nname = "sub"\nversion = "0.1.0"\n[dev-dependencies]\nlog = "0.4"\n'})
    without = read_lock(lock_text(local("app", "0.1.0", "sub"), local("sub", "0.1.0")).encode())
    with_log = read_lock(lock_text(local("app", "0.1.0", "sub"), local("sub", "0.1.0", "log"),
                                   reg("log", "0.4.26")).encode())
    assert lock_fits(crate, with_log) == []
    if workspace:
        assert lock_fits(crate, without) == [
            'sub: log = "0.4" but the lock has no log as a dependency of sub 0.1.0']
    else:
        assert lock_fits(crate, without) == []
