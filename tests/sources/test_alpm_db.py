"""The alpm-db source: the version of a package in an Arch Linux ARM-shaped `core` repository
served over HTTP from 127.0.0.1, the database made by the real repo-add from packages built
by the real makepkg (plus hand-written databases for the odd shapes)."""

from __future__ import annotations

import socket
import subprocess
import textwrap
from pathlib import Path

import pytest

from avfrepo import config
from avfrepo.build.backends import MakepkgBackend
from avfrepo.config import AlpmDbUpstream, NetPolicy
from avfrepo.errors import UpstreamError
from avfrepo.sources import alpm_db
from avfrepo.sources.alpm_db import find_source_tag

from ..conftest import require_build_user, require_tools
from .conftest import DB_PATH, FAST, Answer, desc_db, flaky, git_repo

SYSTEMD = textwrap.dedent("""\
    pkgbase=systemd
    pkgname=(systemd systemd-libs)
    pkgver=261.2
    pkgrel=1
    pkgdesc='stand-in for the split systemd of ALARM core'
    arch=(aarch64)
    url='https://example.invalid/systemd'
    license=(LGPL-2.1-or-later)
    options=(!strip)

    package_systemd() {
      depends=("systemd-libs=${pkgver}")
      install -Dm644 /dev/null "$pkgdir/usr/lib/systemd/fixture"
    }

    package_systemd-libs() {
      install -Dm644 /dev/null "$pkgdir/usr/lib/libsystemd-fixture"
    }
    """)

KERNEL = textwrap.dedent("""\
    pkgname=linux-aarch64
    pkgver=6.17.8
    pkgrel=3
    pkgdesc='stand-in for the ALARM kernel'
    arch=(aarch64)
    license=(GPL-2.0-only)
    options=(!strip)

    package() {
      install -Dm644 /dev/null "$pkgdir/usr/lib/modules/fixture"
    }
    """)


@pytest.fixture(scope="module")
def alarm_core(tmp_path_factory) -> dict[str, bytes]:
    """core.db as repo-add writes it: {"gz": gzip'd db, "zst": zstd'd db} (same packages)."""
    require_tools("makepkg", "repo-add", "bsdtar", "zstd")
    require_build_user()
    base = tmp_path_factory.mktemp("alarm-core")
    cfg = config.parse({}, None, base)
    out = base / "pkgs"
    built: list[Path] = []
    for name, text in (("systemd", SYSTEMD), ("linux-aarch64", KERNEL)):
        src = base / name
        src.mkdir()
        (src / "PKGBUILD").write_text(text)
        built += MakepkgBackend(cfg).build(src, [], base / f"{name}.log", out)
    assert len(built) == 3                  # systemd, systemd-libs, linux-aarch64
    dbs = {}
    for ext in ("gz", "zst"):
        d = base / f"repo-{ext}"
        d.mkdir()
        subprocess.run(["repo-add", "-q", str(d / f"core.db.tar.{ext}"), *map(str, built)],
                       check=True, capture_output=True)
        dbs[ext] = (d / "core.db").read_bytes()   # repo-add's core.db link, what mirrors serve
    assert dbs["zst"][:4] == alpm_db.ZSTD_MAGIC and dbs["gz"][:2] == b"\x1f\x8b"
    return dbs


def upstream(server, **kw) -> AlpmDbUpstream:
    kw.setdefault("net", FAST)
    return AlpmDbUpstream("systemd", server=server.base, **kw)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the real shape: repo-add's core.db ---------------------------------------------------

def test_systemd_version_is_read_from_the_repo_add_database(http_server, alarm_core):
    srv = http_server({DB_PATH: alarm_core["gz"]})
    rel = alpm_db.query(upstream(srv))
    assert (rel.upstream, rel.version, rel.pkgver, rel.pkgrel) == ("systemd", "261.2-1", "261.2", "1")
    assert rel.commit is None and rel.tag is None
    assert rel.url == srv.url(DB_PATH)
    assert srv.requests == [DB_PATH]
    assert rel.to_json()["pkgrel"] == "1"


@pytest.mark.parametrize("package, version", [("systemd-libs", "261.2-1"), ("linux-aarch64", "6.17.8-3")])
def test_any_package_of_the_database_can_be_followed(http_server, alarm_core, package, version):
    srv = http_server({DB_PATH: alarm_core["gz"]})
    assert alpm_db.query(upstream(srv, package=package)).version == version


def test_a_zstd_compressed_database_reads_the_same(http_server, alarm_core):
    srv = http_server({DB_PATH: alarm_core["zst"]})
    rel = alpm_db.query(upstream(srv))
    assert (rel.version, rel.pkgver, rel.pkgrel) == ("261.2-1", "261.2", "1")


def test_server_follows_pacmans_layout_and_its_placeholders(http_server, alarm_core):
    srv = http_server({"/mirror/aarch64/core/core.db": alarm_core["gz"],
                       "/other/core/os/aarch64/core.db": alarm_core["gz"]})
    plain = AlpmDbUpstream("systemd", server=srv.base + "/mirror/", net=FAST)
    assert plain.url == srv.url("/mirror/aarch64/core/core.db")
    assert alpm_db.query(plain).pkgver == "261.2"
    templated = AlpmDbUpstream("systemd", server=srv.base + "/other/$repo/os/$arch", net=FAST)
    assert alpm_db.query(templated).pkgver == "261.2"
    assert srv.requests == ["/mirror/aarch64/core/core.db", "/other/core/os/aarch64/core.db"]


def test_a_redirect_to_a_nearby_mirror_is_followed(http_server, alarm_core):
    # mirror.archlinuxarm.org answers with a redirect to a mirror near the client
    def redirect(server, path):
        return Answer(302, b"", {"Location": server.url("/de" + path)})

    srv = http_server({DB_PATH: redirect, "/de" + DB_PATH: alarm_core["gz"]})
    rel = alpm_db.query(upstream(srv))
    assert rel.version == "261.2-1" and rel.url == srv.url(DB_PATH)
    assert srv.requests == [DB_PATH, "/de" + DB_PATH]


def test_default_server_is_the_alarm_mirror():
    assert AlpmDbUpstream("systemd").url == "http://mirror.archlinuxarm.org/aarch64/core/core.db"


# --- odd versions and bad databases ----------------------------------------------------------

def test_epoch_and_dotted_pkgrel_are_split(http_server):
    srv = http_server({DB_PATH: desc_db({"systemd": "1:261.2-1.1"})})
    rel = alpm_db.query(upstream(srv))
    assert (rel.version, rel.pkgver, rel.pkgrel) == ("1:261.2-1.1", "261.2", "1.1")


def test_entries_other_than_desc_are_ignored(http_server):
    db = desc_db({"systemd": "260.1-4"}, extra={"systemd-260.1-4/files": b"%FILES%\nusr/\n\n"})
    srv = http_server({DB_PATH: db})
    assert alpm_db.query(upstream(srv)).version == "260.1-4"


def test_missing_package_names_package_repo_and_url(http_server):
    srv = http_server({DB_PATH: desc_db({"glibc": "2.42-1", "linux-aarch64": "6.17.8-3"})})
    with pytest.raises(UpstreamError) as err:
        alpm_db.query(upstream(srv))
    msg = str(err.value)
    assert "no package systemd in [core] (2 packages listed)" in msg
    assert srv.url(DB_PATH) in msg and err.value.upstream == "systemd"


def test_a_page_instead_of_a_database_is_an_error(http_server, slept):
    srv = http_server({DB_PATH: b"<html><body>mirror maintenance</body></html>\n"})
    with pytest.raises(UpstreamError, match="not a readable repository database") as err:
        alpm_db.query(upstream(srv))
    assert err.value.url == srv.url(DB_PATH)
    assert slept == []                      # a bad answer is not retried


def test_a_version_that_is_no_arch_version_is_an_error(http_server):
    srv = http_server({DB_PATH: desc_db({"systemd": "261.2"})})
    with pytest.raises(UpstreamError, match="package systemd: not an Arch package version"):
        alpm_db.query(upstream(srv))


# --- the network: 404, retries, unreachable, timeout -----------------------------------------

def test_not_found_is_reported_at_once_without_retrying(http_server, slept):
    srv = http_server({})
    with pytest.raises(UpstreamError, match="HTTP 404") as err:
        alpm_db.query(upstream(srv))
    assert srv.url(DB_PATH) in str(err.value)
    assert srv.requests == [DB_PATH] and slept == []


def test_server_errors_are_retried_with_exponential_backoff(http_server, slept):
    srv = http_server({DB_PATH: flaky(2, desc_db({"systemd": "261.2-1"}))})
    net = NetPolicy(timeout=5, retries=3, backoff=0.25)
    assert alpm_db.query(upstream(srv, net=net)).version == "261.2-1"
    assert srv.requests == [DB_PATH] * 3
    assert slept == [0.25, 0.5]


def test_too_many_server_errors_give_up_naming_status_and_attempts(http_server, slept):
    srv = http_server({DB_PATH: Answer(503, b"busy")})
    with pytest.raises(UpstreamError) as err:
        alpm_db.query(upstream(srv))
    msg = str(err.value)
    assert "HTTP 503" in msg and "gave up after 4 attempts" in msg and srv.url(DB_PATH) in msg
    assert len(srv.requests) == 4 and slept == [0.001, 0.002, 0.004]


def test_retries_zero_means_a_single_try(http_server, slept):
    srv = http_server({DB_PATH: Answer(500)})
    with pytest.raises(UpstreamError, match="HTTP 500"):
        alpm_db.query(upstream(srv, net=NetPolicy(timeout=5, retries=0, backoff=1)))
    assert len(srv.requests) == 1 and slept == []


def test_unreachable_server_is_an_error_naming_upstream_and_url(slept):
    base = f"http://127.0.0.1:{closed_port()}"
    up = AlpmDbUpstream("systemd", server=base, net=FAST)
    with pytest.raises(UpstreamError) as err:
        alpm_db.query(up)
    msg = str(err.value)
    assert msg.startswith(f"upstream systemd ({base}/aarch64/core/core.db): connection failed")
    assert len(slept) == FAST.retries        # connection failures are worth retrying


def test_a_server_that_does_not_answer_times_out(http_server, slept):
    def hang(server, path):
        server.stopping.wait(30)
        return Answer(200, b"")

    srv = http_server({DB_PATH: hang})
    with pytest.raises(UpstreamError, match=r"no answer within 0.2 s \(gave up after 2 attempts\)"):
        alpm_db.query(upstream(srv, net=NetPolicy(timeout=0.2, retries=1, backoff=0)))
    assert srv.requests == [DB_PATH] * 2


def test_requests_name_the_tool(http_server):
    srv = http_server({DB_PATH: desc_db({"systemd": "261.2-1"})})
    alpm_db.query(upstream(srv))
    assert srv.headers[0]["User-Agent"].startswith("avfrepo")


# --- the systemd source tag --------------------------------------------------------------------

@pytest.fixture(scope="module")
def systemd_git(tmp_path_factory):
    """A repository shaped like systemd's: annotated v<N> and v<N>.<M> tags, a main branch."""
    require_tools("git")
    repo = git_repo(tmp_path_factory.mktemp("systemd") / "systemd")
    commits = {}
    for tag in ("v260", "v260.1", "v261-rc1", "v261", "v261.1", "v261.2"):
        commits[tag] = repo.commit({"meson.build": f"project('systemd', version: '{tag}')\n"}, f"Release {tag}")
        repo.tag(tag, message=f"systemd {tag[1:]}")
    repo.commit({"NEWS": "work after the release\n"}, "main moves on")
    return repo, commits


def test_source_tag_of_the_pkgver_gives_its_peeled_commit(http_server, systemd_git):
    repo, commits = systemd_git
    srv = http_server({DB_PATH: desc_db({"systemd": "261.2-1"})})
    rel = alpm_db.query(upstream(srv, source_git=repo.url))
    assert rel.tag == "v261.2"
    assert rel.commit == commits["v261.2"] != repo.head()
    assert rel.commit != repo.repo.tags["v261.2"].tag.hexsha    # the commit, not the tag object
    assert (rel.version, rel.pkgver, rel.pkgrel, rel.url) == ("261.2-1", "261.2", "1", srv.url(DB_PATH))
    assert rel.to_json()["tag"] == "v261.2"


def test_source_tag_missing_upstream_is_an_error_naming_tag_and_repository(http_server, systemd_git):
    repo, _ = systemd_git
    srv = http_server({DB_PATH: desc_db({"systemd": "261.3-1"})})
    with pytest.raises(UpstreamError) as err:
        alpm_db.query(upstream(srv, source_git=repo.url))
    assert "no tag v261.3 for pkgver 261.3" in str(err.value)
    assert err.value.url == repo.url


def test_find_source_tag_honours_another_tag_format(systemd_git):
    repo, commits = systemd_git
    repo.tag("systemd-261.1", commits["v261.1"])
    ref = find_source_tag("systemd", repo.url, "261.1", "systemd-{pkgver}", FAST)
    assert ref.name == "systemd-261.1" and ref.commit == commits["v261.1"]
    assert find_source_tag("systemd", repo.url, "260", net=FAST).commit == commits["v260"]


def test_a_zstd_bomb_db_is_refused_without_writing_gigabytes(tmp_path, monkeypatch):
    from avfrepo.formats import repodb
    if not shutil_which("zstd"):
        pytest.skip("zstd is not installed")
    monkeypatch.setattr(repodb, "MAX_TAR_BYTES", 1 << 20)
    raw = subprocess.run(["zstd", "-q", "-19", "-c"], input=b"\0" * (16 << 20), capture_output=True, check=True).stdout
    assert raw[:4] == alpm_db.ZSTD_MAGIC and len(raw) < 64 * 1024
    up = AlpmDbUpstream("alarm", server="http://127.0.0.1:9")
    with pytest.raises(UpstreamError, match="more than 1048576 bytes"):
        alpm_db.parse_db(up, raw)


def shutil_which(tool: str):
    import shutil
    return shutil.which(tool)
