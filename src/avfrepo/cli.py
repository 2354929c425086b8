"""The `avfrepo` command: parse arguments, call one library function, print, exit.

Exit codes: 0 done (or nothing to do), 1 something refused or failed, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable

from . import __version__, config as config_mod
from .errors import AvfrepoError

EPILOG = """\
configuration: avfrepo.toml in the current directory, or --config FILE, or $AVFREPO_CONFIG.
exit codes: 0 done or nothing to do, 1 something refused or failed, 2 bad usage or config.

the update cycle:
  avfrepo key init        once: create the repository signing key
  avfrepo sync            follow upstreams, regenerate pkgbuilds/ (review, commit)
  avfrepo build           build what changed, sign, publish into the repository
  avfrepo verify          check every file of the published repository
"""


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_sync(args: argparse.Namespace) -> int:
    from .sync import sync
    cfg = config_mod.load(args.config)
    report = sync(cfg, dry_run=args.dry_run, only=args.names or None)
    if args.json:
        _print_json(report.to_json())
    else:
        for name, info in report.upstreams.items():
            print(f"upstream {name}: {info['version']} ({(info['commit'] or '')[:12]})"
                  + (f"  note: {info['note']}" if info.get("note") else ""))
        for p in report.packages:
            ver = f"{p.old or '-'} -> {p.new}" if p.new else (p.old or "")
            print(f"  {p.name:<22} {p.action:<9} {ver}")
            for why in p.reasons:
                print(f"      because: {why}")
            for prob in p.problems:
                print(f"      REFUSED: {prob}")
        for prob in report.problems:
            print(f"REFUSED: {prob}")
        if report.dry_run:
            print("dry run: nothing written")
        elif not report.changed and not report.refused:
            print("everything is current")
    return 1 if report.refused else 0


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build
    cfg = config_mod.load(args.config)
    report = build(cfg, args.names or None, dry_run=args.dry_run, progress=_progress)
    if args.json:
        _print_json(report.to_json())
    else:
        if not report.results:
            print(f"nothing to build: [{cfg.repo.name}] is current with pkgbuilds/")
        for r in report.results:
            print(f"  {r.pkgbase:<22} {r.version:<18} {r.status:<9} {'; '.join(r.reasons)}"
                  + (f"\n      {r.error}" if r.error else "") + (f"\n      log: {r.log}" if r.error and r.log else ""))
        if report.dry_run:
            print("dry run: nothing built")
    return 1 if report.failed else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .repo.verify import verify
    cfg = config_mod.load(args.config)
    report = verify(cfg)
    if args.json:
        _print_json(report.to_json())
    else:
        for c in report.checks:
            print(f"  {'ok ' if c.ok else 'BAD'} {c.path}: {c.message}")
        print(f"{cfg.repo.path}: {'OK' if report.ok else 'FAILED'} ({len(report.bad())} problem(s), key {report.key})")
    return 0 if report.ok else 1


def cmd_key_init(args: argparse.Namespace) -> int:
    from .signing import init_key
    cfg = config_mod.load(args.config)
    uid = args.uid or f"[{cfg.repo.name}] repository signing key <{cfg.repo.name}@example.invalid>"
    key, created = init_key(cfg.signing, uid)
    if args.json:
        _print_json({"fingerprint": key.fingerprint, "uid": key.uid, "created": created,
                     "gnupg_home": str(cfg.signing.gnupg_home)})
    else:
        print(("created " if created else "using existing ") + f"key {key.fingerprint} ({key.uid}) in {cfg.signing.gnupg_home}")
    return 0


def cmd_pacman_conf(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    print(f"[{cfg.repo.name}]\nSigLevel = Required\nServer = {cfg.repo.server}/$arch")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo(args.workdir, keep=args.keep, progress=_progress)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="avfrepo",
        description="Keep the signed pacman repository [avf] (Arch Linux ARM for the Android Terminal app) current.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="config file (default: ./avfrepo.toml or $AVFREPO_CONFIG)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every external command")
    p.add_argument("--version", action="version", version=f"avfrepo {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str, desc: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=desc, formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=fn)
        return sp

    sp = add("sync", cmd_sync, "follow upstreams and regenerate pkgbuilds/",
             "Query the upstreams (AVF release tags, ...), render every package's PKGBUILD, files and\n"
             ".SRCINFO under pkgbuilds/, and bump versions by the rules:\n"
             "  new upstream version with changed inputs -> pkgver = upstream, pkgrel = 1\n"
             "  same upstream version, changed inputs    -> pkgrel + 1\n"
             "  unchanged inputs                         -> nothing (even on a new tag)\n"
             "  older upstream version                   -> refused, never a downgrade\n"
             "A recorded tag that moved to another commit is refused. Nothing is written unless\n"
             "every upstream answered. Exit 0 applied/nothing to do, 1 refused, 2 usage.")
    sp.add_argument("names", nargs="*", metavar="NAME", help="limit to these packages or upstreams")
    sp.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")

    sp = add("build", cmd_build, "build what changed, sign and publish it",
             "Build every package whose PKGBUILD version is newer than the repository's (and the\n"
             "named ones), in dependency order, with the configured backend (makepkg or\n"
             "makechrootpkg); check each artifact, sign it and publish with repo-add -s -v.\n"
             "A failed package is reported with its log; its dependents are skipped.")
    sp.add_argument("names", nargs="*", metavar="PKGBASE", help="build these even if current")
    sp.add_argument("--dry-run", action="store_true", help="print the plan with reasons, build nothing")
    sp.add_argument("--json", action="store_true", help="print plan/results as JSON")

    sp = add("verify", cmd_verify, "check the published repository file by file",
             "Check that the db and files db are signed by the repository key, that every package\n"
             "the db lists exists with the size and sha256 the db records, and that its signature\n"
             "verifies with the repository key. Exit 0 all good, 1 a problem (each file named).")
    sp.add_argument("--json", action="store_true", help="print the per-file report as JSON")

    kp = add("key", lambda a: 2, "manage the repository signing key", "Manage the repository signing key.")
    ksub = kp.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    ki = ksub.add_parser("init", help="create an ed25519 signing key unless one exists; print its fingerprint",
                         description="Create an ed25519 signing key in [signing] gnupg_home unless a usable one exists.")
    ki.set_defaults(func=cmd_key_init)
    ki.add_argument("--uid", help="user id of a new key")
    ki.add_argument("--json", action="store_true", help="print the key as JSON")

    add("pacman-conf", cmd_pacman_conf, "print the pacman.conf section for the repository",
        "Print the [avf] section users add to /etc/pacman.conf.")

    sp = add("demo", cmd_demo, "run the whole cycle against a local demo upstream",
             "Build a small AVF-shaped upstream git repository in a temporary folder, then run\n"
             "key init, sync, build and verify against it, and install avf-config with the real\n"
             "pacman into a private root. Touches nothing outside the folder (needs root for pacman).")
    sp.add_argument("--workdir", help="folder to use (default: a new temporary folder)")
    sp.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except AvfrepoError as exc:
        print(f"avfrepo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("avfrepo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
