"""The version of a package in a remote pacman repository database (Arch Linux ARM core/systemd).

The database is `<server>/<arch>/<repo>/<repo>.db` (pacman's `$server/$arch/$repo` layout;
for ALARM `http://mirror.archlinuxarm.org/aarch64/core/core.db`): a compressed tar of
`<name>-<version>/desc` entries, read by avfrepo.formats.repodb. gzip, bzip2 and xz are read
directly; zstd (what a pacman 7 repo-add may write) through the `zstd` tool.

The release: version "261.2-1" (as the database has it, epoch included if any), pkgver
"261.2", pkgrel "1". With `source_git`, also the peeled commit of the matching source tag
(`v261.2` in systemd's repository), which is what a patched rebuild pins.

The database is not signed on ALARM (its packages are): nothing here trusts it for more
than a version number.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..config import AlpmDbUpstream, NetPolicy
from ..errors import AvfrepoError, UpstreamError
from ..formats import repodb
from ..formats.repodb import DbEntry, read_db
from ..run import run_bounded
from ..versions import Version
from . import Release
from .git_tags import TagRef, ls_remote_tags
from .net import http_get

KIND = "alpm-db"

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def fetch_db(upstream: AlpmDbUpstream) -> dict[str, DbEntry]:
    """Download and parse the repository database: package name -> entry."""
    return parse_db(upstream, http_get(upstream.name, upstream.url, upstream.net))


def parse_db(upstream: AlpmDbUpstream, data: bytes) -> dict[str, DbEntry]:
    if data[:4] == ZSTD_MAGIC:
        data = _unzstd(upstream, data)
    try:
        return read_db(data)
    except ValueError as exc:
        raise UpstreamError(upstream.name, upstream.url, str(exc)) from None


def _unzstd(upstream: AlpmDbUpstream, data: bytes) -> bytes:
    """The tar inside, at most MAX_TAR_BYTES of it (a 64 KB zstd bomb unpacks to gigabytes)."""
    with tempfile.TemporaryDirectory(prefix="avfrepo-db-") as tmp:
        src = Path(tmp) / "db.zst"
        src.write_bytes(data)
        try:
            return run_bounded(["zstd", "-q", "-d", "-c", src], limit=repodb.MAX_TAR_BYTES, timeout=120)
        except AvfrepoError as exc:
            first = str(exc).splitlines()[0]
            tail = str(exc).strip().splitlines()[-1]
            raise UpstreamError(upstream.name, upstream.url,
                                f"cannot decompress the zstd database: {first}: {tail}") from None


def package_release(upstream: AlpmDbUpstream, entries: dict[str, DbEntry]) -> Release:
    """The Release of upstream.package among entries (no source tag lookup)."""
    entry = entries.get(upstream.package)
    if entry is None:
        raise UpstreamError(upstream.name, upstream.url,
                            f"no package {upstream.package} in [{upstream.repo}] ({len(entries)} packages listed)")
    try:
        v = Version.parse(entry.version)
    except ValueError as exc:
        raise UpstreamError(upstream.name, upstream.url, f"package {upstream.package}: {exc}") from None
    return Release(upstream.name, entry.version, v.pkgver, None, upstream.url, pkgrel=v.pkgrel)


def find_source_tag(name: str, git_url: str, pkgver: str, tag_format: str = "v{pkgver}",
                    net: NetPolicy | None = None, tags: dict[str, TagRef] | None = None) -> TagRef:
    """The source tag of pkgver (systemd 261.2 -> v261.2) in git_url; its peeled commit is
    `.commit`. UpstreamError naming the tag when the repository has no such tag."""
    tag = tag_format.format(pkgver=pkgver)
    if tags is None:
        tags = ls_remote_tags(name, git_url, net)
    ref = tags.get(tag)
    if ref is None:
        raise UpstreamError(name, git_url, f"no tag {tag} for pkgver {pkgver} ({len(tags)} tags seen)")
    return ref


def query(upstream: AlpmDbUpstream) -> Release:
    """The source interface: the package's version in the database (+ its source tag's commit)."""
    rel = package_release(upstream, fetch_db(upstream))
    if upstream.source_git is None:
        return rel
    ref = find_source_tag(upstream.name, upstream.source_git, rel.pkgver, upstream.source_tag, upstream.net)
    return Release(rel.upstream, rel.version, rel.pkgver, ref.commit, rel.url, pkgrel=rel.pkgrel, tag=ref.name)
