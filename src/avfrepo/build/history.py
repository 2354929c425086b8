"""What earlier runs could not build: `<logs>/.failures.json`.

    {"format": 1, "failures": {"<pkgbase>": {"version": "1.0-1", "status": "failed" | "skipped",
                                             "error": "...", "log": "...", "at": "2026-...Z"}}}

A package failed or skipped in a run is recorded; the next run plans it again with the
reason "retry after failure" (even when nothing else changed, e.g. a dependency rebuild that
failed after its dependency was published). Publishing it removes the record. The name
starts with a dot, which no pkgbase (and so no `logs/<pkgbase>/` folder) can.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..config import Config
from ..errors import AvfrepoError
from ..formats import jsondoc
from ..fsutil import atomic_write

FORMAT = 1


def path(cfg: Config) -> Path:
    return cfg.logs / ".failures.json"


def load(cfg: Config) -> dict[str, dict]:
    f = path(cfg)
    try:
        data = jsondoc.read(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise AvfrepoError(f"{f}: unreadable failure record ({jsondoc.one_line(exc)}); delete it to forget "
                           "earlier failures") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("failures"), dict) \
            or not all(isinstance(v, dict) for v in data["failures"].values()):
        raise AvfrepoError(f"{f}: not a failure record of format {FORMAT}; delete it to forget earlier failures")
    return data["failures"]


def update(cfg: Config, old: dict[str, dict], results: list, known: set[str]) -> dict[str, dict]:
    """Record this run's failed and skipped packages, forget published ones and packages
    whose PKGBUILD is gone; write the file only when it changes."""
    new = {b: r for b, r in old.items() if b in known}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for r in results:
        if r.status in ("failed", "skipped"):
            new[r.pkgbase] = {"version": r.version, "status": r.status, "error": r.error, "log": r.log, "at": now}
        elif r.status in ("built", "published", "held", "unchanged"):
            new.pop(r.pkgbase, None)
    if new != old:
        atomic_write(path(cfg), (json.dumps({"format": FORMAT, "failures": new}, indent=2, sort_keys=True)
                                 + "\n").encode())
    return new
