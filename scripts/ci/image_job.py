#!/usr/bin/env python3
"""The jobs of .github/workflows/image.yml, as commands that run outside GitHub Actions too.

    image_job.py build  avfrepo image --unsigned: the job that boots the image holds the public key only
    image_job.py sign   avfrepo image --sign on what the image job handed over; attach it all to the
                        release "image"

Why two jobs: the image job runs a privileged container that boots the image it just built
(the gate), so it never holds the secret key. The sign job (environment avf-signing, the
secret AVF_SIGNING_KEY) never runs the image: `avfrepo image --sign` checks that the
manifest names the repository key and records the archive's sha256, signs the archive and the
manifest, and verifies both signatures, before anything is uploaded.

The plumbing (gh, avfrepo, the key import, step summary, exit status) is job.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from job import JobError, avfrepo, gh, import_key, run_command, summary  # noqa: E402

from avfrepo.image import manifest_path  # noqa: E402

RELEASE = "image"                # the rolling release the README sends phone users to
ARCHIVE = "images.tar.gz"


def boot_report(archive: Path) -> Path:
    """What the image job's boot gate wrote (`avfrepo boot --json`), published beside the image."""
    return archive.with_name(archive.name + ".boot.json")


def cmd_build(args: argparse.Namespace) -> int:
    """The image, unsigned; the public key (repository variable) names the key that will sign it."""
    import_key("AVF_PUBLIC_KEY", public=True, fingerprint=os.environ.get("AVF_SIGNING_FINGERPRINT"))
    res = avfrepo("image", "--unsigned", "--output", args.output, timeout=None)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    if res.returncode != 0:
        raise JobError(f"avfrepo image --unsigned failed (exit {res.returncode})", res.returncode)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    archive = folder / ARCHIVE
    missing = [p.name for p in (archive, manifest_path(archive)) if not p.is_file()]
    if missing:
        raise JobError(f"sign: the image job handed over no {', '.join(missing)} in {folder}")
    import_key("AVF_SIGNING_KEY", public=False, fingerprint=os.environ.get("AVF_SIGNING_FINGERPRINT"))
    res = avfrepo("image", "--sign", str(archive), "--json", timeout=3600)
    if res.returncode != 0:
        raise JobError(f"avfrepo image --sign refused: {res.stderr.strip() or res.stdout.strip()}", res.returncode)
    signed = json.loads(res.stdout)
    assets = [archive, manifest_path(archive), *map(Path, signed["signatures"])]
    if boot_report(archive).is_file():
        assets.append(boot_report(archive))
    if gh("release", "view", RELEASE, check=False).returncode != 0:
        gh("release", "create", RELEASE, "--title", "AVF Terminal image", "--notes", "Built from [avf]")
    gh("release", "upload", RELEASE, "--clobber", *map(str, assets))
    summary(f"image: {signed['build_id']} signed by {signed['signing_key']} (sha256 {signed['sha256']}); "
            f"attached to the release {RELEASE}: " + ", ".join(p.name for p in assets))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="image_job.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("build", help="avfrepo image --unsigned (public key only)")
    s.add_argument("--output", default=ARCHIVE)
    s.set_defaults(func=cmd_build)
    s = sub.add_parser("sign", help="check, sign and attach the image job's files to the release")
    s.add_argument("--dir", default=".", help="where the image job's artifact was downloaded")
    s.set_defaults(func=cmd_sign)
    return run_command(p.prog, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
