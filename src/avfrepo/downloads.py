"""Source files a PKGBUILD names by URL (tarballs), downloaded once into the cache.

sync needs their real sha256 (and sometimes their content, to dry-run patches against),
so each URL is fetched once, with the sources' retry policy, into
`<cache>/downloads/<sha256 of the URL>/<file name>`, written atomically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from .config import NetPolicy
from .errors import UpstreamError
from .fsutil import sha256_file as file_sha256  # re-exported: the one implementation
from .sources.net import USER_AGENT, Transient, with_retries





def cached(upstream: str, url: str, cache: Path, net: NetPolicy = NetPolicy()) -> Path:
    """The file at url, from the cache or downloaded into it."""
    name = os.path.basename(urlparse(url).path) or "download"
    dest = cache / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:32] / name
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{name}.", suffix=".part")
    os.close(fd)
    try:
        if urlparse(url).scheme == "file":
            try:
                shutil.copyfile(urlparse(url).path, tmp)
            except OSError as exc:
                raise UpstreamError(upstream, url, f"cannot read: {exc.strerror}") from None
        else:
            with_retries(upstream, url, net, lambda: _download(upstream, url, Path(tmp), net))
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _download(upstream: str, url: str, out: Path, net: NetPolicy) -> None:
    import requests     # only when something is downloaded (a no-op sync never imports it)
    try:
        with requests.get(url, timeout=(net.timeout, net.timeout), stream=True,
                          headers={"User-Agent": USER_AGENT}) as resp:
            if resp.status_code == 429 or resp.status_code >= 500:
                raise Transient(f"HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise UpstreamError(upstream, url, f"HTTP {resp.status_code}")
            with open(out, "wb") as fh:
                for chunk in resp.iter_content(1 << 20):
                    fh.write(chunk)
    except requests.Timeout:
        raise Transient(f"no answer within {net.timeout:g} s") from None
    except requests.ConnectionError as exc:
        raise Transient(f"connection failed: {exc.__class__.__name__}") from None
