"""Property tests: random and mutated state files, configs, releases.json documents, ledgers
and provenance records give a value or the reader's typed error, never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from avfrepo import config, provenance, state
from avfrepo.config import KernelOrgUpstream
from avfrepo.errors import ConfigError, StateError, UpstreamError
from avfrepo.repo import ledger
from avfrepo.repo.publish import PublishRefused, read_plan
from avfrepo.sources import kernel_org

from .fuzz import PROPERTY, inputs, json_values, mutated

STATE = state.State(
    upstreams={"avf": state.UpstreamState("android-16.0.0_r10", "a" * 40, "16.0.0.r10")},
    packages={"avf-config": state.PackageState("16.0.0.r10", 2, "f" * 64, {"avf": "android-16.0.0_r10"})},
).to_json().encode()


def _with_file(data: bytes, name: str, fn):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / name
        p.write_bytes(data)
        return fn(p)


def _state_shapes():
    base = json.loads(STATE)
    keys = st.sampled_from([("upstreams", "avf", k) for k in ("version", "commit", "pkgver")]
                           + [("packages", "avf-config", k) for k in ("pkgver", "pkgrel", "inputs", "upstreams")])

    def put(kv):
        (a, b, c), v = kv
        doc = json.loads(json.dumps(base))
        doc[a][b][c] = v
        return json.dumps(doc).encode()
    return st.tuples(keys, json_values).map(put)


@PROPERTY
@given(st.one_of(inputs(STATE), _state_shapes(), json_values.map(lambda v: json.dumps(v).encode())))
def test_state_load_gives_a_state_or_state_error(data):
    try:
        st_ = _with_file(data, "avfrepo-state.json", state.load)
    except StateError:
        return
    for u in st_.upstreams.values():          # a value means a typed value: sync relies on it
        assert isinstance(u.version, str) and (u.commit is None or isinstance(u.commit, str))
    for p in st_.packages.values():
        assert isinstance(p.pkgver, str) and isinstance(p.pkgrel, int) and isinstance(p.inputs, str)
        assert all(isinstance(v, str) for v in p.upstreams.values())


CONFIG = b"""[paths]
pkgbuilds = "pkgbuilds"
cache = "cache"

[repo]
name = "avf"
path = "repo"
arch = "aarch64"
keep = 3

[signing]
gnupg_home = "gnupg"

[build]
backend = "makepkg"

[upstreams.avf]
url = "file:///srv/avf"
timeout = 30
retries = 2

[upstreams.kernel]
kind = "kernel-org"
series = "6.1"
"""


def _numbers_replaced():
    values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6))

    def put(v):
        text = repr(v).replace("nan", "nan").replace("inf", "inf")
        return CONFIG.replace(b"timeout = 30", f"timeout = {text}".encode())
    return values.map(put)


@PROPERTY
@given(st.one_of(inputs(CONFIG), _numbers_replaced()))
def test_config_load_gives_a_config_or_config_error(data):
    import math
    try:
        cfg = _with_file(data, "avfrepo.toml", config.load)
    except ConfigError:
        return
    assert cfg.repo.name
    for up in cfg.upstreams.values():          # a request must end: finite, positive timeouts
        assert math.isfinite(up.net.timeout) and up.net.timeout > 0


@PROPERTY
@given(st.dictionaries(st.sampled_from(["paths", "repo", "signing", "build", "packages", "upstreams", "image", "x"]),
                       json_values, max_size=4))
def test_config_parse_of_random_tables_gives_a_config_or_config_error(data):
    try:
        config.parse(data, None, Path("/tmp"))
    except ConfigError:
        pass


RELEASES = json.dumps({"releases": [
    {"moniker": "longterm", "version": "6.1.119", "iseol": False,
     "source": "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.119.tar.xz"},
    {"moniker": "mainline", "version": "6.13-rc1", "iseol": False, "source": None},
]}).encode()


@PROPERTY
@given(st.one_of(inputs(RELEASES), json_values.map(lambda v: json.dumps({"releases": [v]}).encode())))
def test_releases_json_gives_a_release_or_upstream_error(data):
    up = KernelOrgUpstream("kernel", series="6.1", url="http://127.0.0.1:9/releases.json")
    try:
        rel = kernel_org.from_releases_json(up, data)
    except UpstreamError:
        return
    assert isinstance(rel.version, str) and isinstance(rel.url, str)


LEDGER = ledger.Ledger({"t-a 1.0-1": {"filename": "t-a-1.0-1-any.pkg.tar.zst", "sha256": "0" * 64}},
                       3, "1" * 64, {"t-a": "1.0-2"}).to_bytes()


@PROPERTY
@given(st.one_of(inputs(LEDGER), json_values.map(lambda v: json.dumps(v).encode())))
def test_ledger_parse_gives_a_ledger_or_ledger_error(data):
    try:
        led = ledger.parse(data)
    except ledger.LedgerError:
        return
    led.digest("t-a", "1.0-1")
    led.to_bytes()


RECORD = provenance.Record(
    pkgname="t-a", pkgbase="t-a", version="1.0-1", arch="any", filename="t-a-1.0-1-any.pkg.tar.zst",
    sha256="0" * 64, size=1, pkgbuild_sha256="0" * 64, inputs=None, upstreams={"avf": {"version": "x", "commit": None}},
    builder_host="h", backend="makepkg", tools={}, build_started="a", build_finished="b",
    source_date_epoch=1).to_bytes()


@PROPERTY
@given(st.one_of(inputs(RECORD), mutated(RECORD)))
def test_provenance_parse_gives_a_record_or_value_error(data):
    try:
        provenance.parse(data)
    except ValueError:
        pass


# What the fuzzing above does not reach: nesting deeper than Python recurses (RecursionError
# from json, an internal error at the command line) or deeper than any file avfrepo writes.
DEEP = b"[" * 100_000 + b"]" * 100_000
NESTED = [DEEP, b'{"format": 1, "versions": ' + b"[" * 300 + b"]" * 300 + b"}", b'{"format": 1, "x": "\xff"}']


@pytest.mark.parametrize("data", NESTED, ids=["deep", "deeper-than-avfrepo-writes", "not-utf8"])
def test_nesting_and_bad_bytes_are_each_reader_s_one_line_error(tmp_path, data):
    def one_line(exc: BaseException) -> str:
        assert "\n" not in str(exc) and len(str(exc)) < 300, str(exc)
        return str(exc)
    path = tmp_path / "avfrepo-state.json"
    path.write_bytes(data)
    with pytest.raises(StateError) as info:
        state.load(path)
    assert one_line(info.value).startswith(f"{path}: corrupt state file (")
    with pytest.raises(ledger.LedgerError) as info:
        ledger.parse(data, "/srv/repo/ledger.json")
    assert one_line(info.value).startswith("/srv/repo/ledger.json: corrupt ledger (")
    with pytest.raises(ValueError) as info:
        provenance.parse(data)
    one_line(info.value)
    up = KernelOrgUpstream("kernel", series="6.1", url="http://127.0.0.1:9/releases.json")
    with pytest.raises(UpstreamError, match="not valid JSON: not ") as info:
        kernel_org.from_releases_json(up, data)
    one_line(info.value)
    plan = tmp_path / "plan.json"
    plan.write_bytes(data)
    with pytest.raises(PublishRefused) as info:
        read_plan(plan)
    assert one_line(info.value).startswith(f"{plan}: corrupt build plan (")
