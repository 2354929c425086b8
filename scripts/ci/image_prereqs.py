#!/usr/bin/env python3
"""The first step of .github/workflows/image.yml: what the image job needs from the fork's
settings, checked before anything is installed or built, each missing one named.

    AVF_SIGNING_FINGERPRINT  the repository variable (the job trusts [avf]'s key by it)
    release aarch64          the published [avf] (`gh release view aarch64`): the job fetches
                             avf.asc and avf.db from it; it exists once update.yml published
    [repo] server, [image]   avfrepo doctor's server and image checks: a real server, and the
                             image reading [avf] from it (a CI job never fills a local repo/)

Exit 0 when everything is set, 2 naming each missing setting (README: Fork checklist).
Runs outside Actions too: $GH (default gh) answers the release question.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from job import RELEASE, gh, summary  # noqa: E402

from avfrepo.doctor import doctor  # noqa: E402
from avfrepo.errors import ToolError  # noqa: E402


def missing_settings() -> list[str]:
    missing = []
    fpr = re.sub(r"\s+", "", os.environ.get("AVF_SIGNING_FINGERPRINT", ""))
    if not fpr:
        missing.append("the repository variable AVF_SIGNING_FINGERPRINT is not set: set it to the repository "
                       "key's fingerprint (Settings -> Secrets and variables -> Actions -> Variables)")
    elif not re.fullmatch(r"[0-9A-Fa-f]{40}", fpr):
        missing.append(f"the repository variable AVF_SIGNING_FINGERPRINT ({fpr!r}) is not a 40-hex-digit "
                       "fingerprint: set it to the repository key's")
    try:
        found = gh("release", "view", RELEASE, check=False)
    except ToolError as exc:
        missing.append(f"cannot ask GitHub whether the release {RELEASE} exists: {exc}")
    else:
        if found.returncode != 0:
            why = (found.stderr.strip().splitlines() or ["not found"])[-1]
            missing.append(f"the release {RELEASE} does not exist ({why}): run the update workflow and merge "
                           "its pull request; the merge publishes [avf] as that release")
    checked = doctor(None, only=("config", "server", "image"))
    missing += [c.line() for c in checked.missing()]
    return missing


def main() -> int:
    missing = missing_settings()
    if missing:
        summary("image: not set up (README: Fork checklist):\n" + "\n".join(f"- {m}" for m in missing))
        return 2
    summary(f"image: AVF_SIGNING_FINGERPRINT set, release {RELEASE} exists, [repo] server and [image] configured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
