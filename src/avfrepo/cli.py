"""The `avfrepo` command: parse arguments, call one library function, print, exit.

Exit codes: the table in EPILOG (and README.md), the one place they are defined.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable

from . import __version__, config as config_mod, preflight
from .errors import AvfrepoError, ConfigError, describe

EPILOG = """\
configuration: avfrepo.toml in the current folder or the nearest one above it (as git finds .git),
or --config FILE, or $AVFREPO_CONFIG.

exit codes (every command):
  0    done, or nothing to do (a package `repo rollback` holds is reported "held", not an error)
  1    refused or failed: something was checked and said no, or a tool failed (named)
  2    usage or configuration: a bad option, config key or value, an unknown package name,
       or a check before work failed (a tool missing, no build user, no key, read-only repo)
  3    pending: `status` found something not yet published
  141  the output was closed early (`avfrepo repo list | head`): it stops quietly, as git does

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
    from .sync import SyncReport, commit, sync
    report, sha = SyncReport(dry_run=args.dry_run), None
    try:
        cfg = config_mod.load(args.config)
        if args.commit and not args.dry_run:     # before anything is rendered, never after
            preflight.git_tree(cfg.pkgbuilds, "sync --commit")
        if not args.dry_run:
            preflight.writable(cfg.pkgbuilds, "[paths] pkgbuilds", f"set [paths] pkgbuilds in {cfg.file}")
        preflight.tools("git", why="sync")
        preflight.build_user(cfg)                # makepkg --printsrcinfo runs as that user
        report = sync(cfg, dry_run=args.dry_run, only=args.names or None, rerender=args.rerender,
                      discard_edits=args.discard_edits)
        if args.commit and report.written:
            sha = commit(cfg, report)
    except Exception as exc:
        if not args.json:
            raise
        if args.debug:
            import traceback
            traceback.print_exc()
        # a script reading --json always gets a whole report: what was done, and the error
        report.error, code = describe(exc)
        _print_json({**report.to_json(), "commit": sha})
        return code
    if args.json:
        _print_json({**report.to_json(), "commit": sha})
    else:
        for name, info in report.upstreams.items():
            if "error" in info:
                print(f"upstream {name}: FAILED: {info['error']}")
                continue
            print(f"upstream {name}: {info['version']} ({(info['commit'] or '')[:12]})"
                  + (f"  note: {info['note']}" if info.get("note") else ""))
        for p in report.packages:
            ver = f"{p.old or '-'} -> {p.new}" if p.new else (p.old or "")
            print(f"  {p.name:<22} {p.action:<9} {ver}")
            for why in p.reasons:
                print(f"      because: {why}")
            for prob in p.problems:
                print(f"      REFUSED: {prob}")
        for name, why in report.skipped.items():
            print(f"  {name:<22} skipped   {why}")
        for prob in report.problems:
            if not any(prob in p.problems for p in report.packages):     # said once, under its packages
                print(f"REFUSED: {prob}")
        if sha:
            print(f"committed {sha[:12]}")
        if report.dry_run:
            print("dry run: nothing written")
        elif not report.changed and not report.refused:
            print("everything is current")
    return 1 if report.refused else 0


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build, format_summary
    fmt = "json" if args.json else args.format
    if fmt == "github-matrix" and not (args.plan or args.dry_run):
        print("avfrepo: error: --format github-matrix needs --plan", file=sys.stderr)
        return 2
    if args.only and not args.names:
        print("avfrepo: error: --only needs the packages to build", file=sys.stderr)
        return 2
    if args.unsigned is not None and (args.dry_run or args.plan or args.reproduce is not None):
        print("avfrepo: error: --unsigned builds; it takes no --dry-run, --plan or --reproduce", file=sys.stderr)
        return 2
    if args.reproduce is not None:
        if args.names or args.only or args.dry_run or args.plan or fmt == "github-matrix":
            print("avfrepo: error: --reproduce takes one package and no other packages, --only, --dry-run or --plan",
                  file=sys.stderr)
            return 2
        from .build.reproduce import format_report, reproduce
        cfg = config_mod.load(args.config)
        preflight.for_build(cfg, backend=cfg.build.backend, publish=False)
        rep = reproduce(cfg, args.reproduce, progress=_progress)
        if fmt == "json":
            _print_json(rep.to_json())
        else:
            print(format_report(rep))
        return 0 if rep.reproducible else 1
    cfg = config_mod.load(args.config)
    from pathlib import Path
    from .progress import Reporter
    # -v / --log-follow: makepkg's output as it comes; else on a terminal a live status line
    with Reporter(sys.stderr, follow=args.log_follow or args.verbose) as reporter:
        report = build(cfg, None if args.only else args.names or None, dry_run=args.dry_run or args.plan,
                       progress=reporter.say, jobs=args.jobs, only=args.names if args.only else None,
                       unsigned_to=Path(args.unsigned).resolve() if args.unsigned is not None else None,
                       tracker=reporter)
    if fmt == "json":
        _print_json(report.to_json())
    elif fmt == "github-matrix":
        print(json.dumps(report.github_matrix(), sort_keys=True))
    elif not report.results:
        print(f"nothing to build: [{cfg.repo.name}] is current with pkgbuilds/")
    else:
        print(format_summary(report))
    return 1 if report.failed else 0


def cmd_chroot(args: argparse.Namespace) -> int:
    from .build import chroot
    cfg = config_mod.load(args.config)
    result = (chroot.init if args.chroot_command == "init" else chroot.update)(cfg, progress=_progress)
    if args.json:
        _print_json(result.to_json())
    else:
        print(f"{result.chroot}/root: {args.chroot_command} done (log: {result.log})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .repo.verify import verify
    cfg = config_mod.load(args.config)
    report = verify(cfg, provenance=args.provenance)
    if args.json:
        _print_json(report.to_json())
    else:
        for c in report.checks:
            print(f"  {'ok ' if c.ok else 'BAD'} {c.path}: {c.message}")
        print(f"{cfg.repo.path}: {'OK' if report.ok else 'FAILED'} ({len(report.bad())} problem(s), key {report.key})")
    return 0 if report.ok else 1


def _key_uid(cfg: config_mod.Config) -> str:
    """A new key's user id from [build] packager ("Name <mail>", as makepkg.conf's PACKAGER),
    so users' `pacman-key --list-keys` names a person, not a placeholder."""
    import re
    m = re.fullmatch(r"\s*([^<>]*?)\s*<([^<>\s]+@[^<>\s]+)>\s*", cfg.build.packager)
    name, mail = (m.group(1) or cfg.repo.name, m.group(2)) if m else (cfg.build.packager, f"{cfg.repo.name}@example.invalid")
    return f"{name} ([{cfg.repo.name}] repository signing key) <{mail}>"


def cmd_key_init(args: argparse.Namespace) -> int:
    import shlex
    from .signing import check_expire, init_key
    cfg = config_mod.load(args.config)
    uid = args.uid or _key_uid(cfg)
    key, created = init_key(cfg.signing, uid, check_expire(args.expire))
    home = cfg.signing.gnupg_home
    backup = f"gpg --homedir {shlex.quote(str(home))} --export-secret-keys --armor {key.fingerprint} > {cfg.repo.name}-signing-key.asc"
    expires = key.expires.date().isoformat() if key.expires else None
    if args.json:
        _print_json({"fingerprint": key.fingerprint, "uid": key.uid, "created": created,
                     "expires": expires, "gnupg_home": str(home), "backup": backup})
        return 0
    print(("created " if created else "using existing ") + f"key {key.fingerprint} ({key.uid}) in {home}")
    print(f"expires: {expires or 'never'}" + (f" (extend it with `gpg --homedir {shlex.quote(str(home))} "
                                              f"--quick-set-expire {key.fingerprint} 2y`, then publish)" if expires else ""))
    if "@example.invalid" in key.uid:
        print(f"the user id is a placeholder: set [build] packager in {cfg.file} (\"Your Name <you@host>\") "
              "or pass --uid before the key is published")
    print(f"back it up now and keep the copy offline (whoever has it can sign for [{cfg.repo.name}]):\n  {backup}")
    return 0


def cmd_repo_list(args: argparse.Namespace) -> int:
    from .repo.manage import list_packages
    cfg = config_mod.load(args.config)
    rows = list_packages(cfg)
    if args.json:
        _print_json([r.to_json() for r in rows])
    else:
        for r in rows:
            print(f"  {r.name:<26} {r.published or '(not published)':<22} archived: {', '.join(r.archived) or '-'}")
        if not rows:
            print(f"[{cfg.repo.name}] is empty")
    return 0


def cmd_repo_add(args: argparse.Namespace) -> int:
    from pathlib import Path
    from .repo.publish import publish, sign_and_publish
    from .signing import signing_key
    cfg = config_mod.load(args.config)
    if args.dry_run and args.plan is None:
        print("avfrepo: error: --dry-run checks unsigned packages against a plan: it needs --plan", file=sys.stderr)
        return 2
    if not args.dry_run:
        preflight.for_publish(cfg)
        preflight.signing(cfg)
    if args.plan is not None:
        key = None if args.dry_run else signing_key(cfg.signing)
        checked = sign_and_publish(cfg, key, Path(args.plan), [Path(p).resolve() for p in args.packages],
                                   dry_run=args.dry_run, progress=_progress)
        if args.json:
            _print_json({**checked.to_json(), "dry_run": args.dry_run})
        else:
            names = ", ".join(p.name for p in checked.packages)
            print(("would sign and publish" if args.dry_run else "signed and published")
                  + f" {len(checked.packages)} package(s): {names}")
            if checked.missing:
                print(f"planned but not handed over (their builds failed?): {', '.join(checked.missing)}")
        return 0
    done = publish(cfg, signing_key(cfg.signing), [Path(p).resolve() for p in args.packages], progress=_progress)
    print(f"published {len(done)} package(s)" + (": " + ", ".join(p.name for p in done) if done else ""))
    return 0


def cmd_repo_rollback(args: argparse.Namespace) -> int:
    from .repo.manage import rollback
    cfg = config_mod.load(args.config)
    preflight.for_publish(cfg)
    preflight.signing(cfg)
    version = rollback(cfg, args.package, args.version, progress=_progress)
    print(f"{args.package} {version} is published again")
    return 0


def cmd_repo_remove(args: argparse.Namespace) -> int:
    from .repo.manage import remove
    cfg = config_mod.load(args.config)
    preflight.for_publish(cfg)
    preflight.signing(cfg)
    version = remove(cfg, args.package, progress=_progress)
    print(f"removed {args.package} {version} from [{cfg.repo.name}]")
    return 0


def cmd_key_import(args: argparse.Namespace) -> int:
    from .signing import import_public, import_secret, keyring_key, signing_key
    cfg = config_mod.load(args.config)
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    except OSError as exc:
        raise ConfigError(f"{args.file}: cannot read: {exc.strerror}") from None
    if args.public:
        import_public(cfg.signing, data)
        key = keyring_key(cfg.signing)
        print(f"public key {key.fingerprint} ({key.uid}) ready in {cfg.signing.gnupg_home} (sync can render avf-keyring)")
        return 0
    import_secret(cfg.signing, data)
    key = signing_key(cfg.signing)
    print(f"signing key {key.fingerprint} ({key.uid}) ready in {cfg.signing.gnupg_home}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .status import status
    cfg = config_mod.load(args.config)
    report = status(cfg)
    if args.json:
        _print_json(report.to_json())
    elif not report.synced:
        print(f"nothing synced yet: {cfg.pkgbuilds} has no package (run `avfrepo sync`, review and commit "
              "pkgbuilds/, then `avfrepo build`)")
    else:
        print(f"{'package':<22} {'upstream':<28} {'PKGBUILD':<18} {'published':<18} last build")
        for p in report.packages:
            ups = ", ".join(f"{u} {v['version']}" for u, v in p.upstreams.items()) or "-"
            pub = ", ".join(sorted({v or "-" for v in p.published.values()})) or "-"
            last = (p.last_build or {}).get("status", "-")
            print(f"{p.pkgbase:<22} {ups[:28]:<28} {p.pkgbuild or '-':<18} {pub:<18} {last}")
            if p.last_build and p.last_build.get("log"):
                print(f"{'':<22} log: {p.last_build['log']}")
            for why in p.pending:
                print(f"{'':<22} pending: {why}")
        print("all published and current" if not report.pending else f"{len(report.pending)} package(s) pending")
    return 0 if report.current else 3


def _trust_steps(cfg: config_mod.Config) -> str:
    """How a user trusts the repository key before the first `pacman -Sy` (SigLevel = Required
    refuses every package until then), as comments: the whole output can still be pasted."""
    from .errors import ToolError
    from .packages.avf_keyring import NAME as KEYRING
    from .signing import SigningError, keyring_key
    fpr = cfg.signing.key
    if not fpr:
        try:
            fpr = keyring_key(cfg.signing).fingerprint
        except (SigningError, ToolError):
            fpr = None
    name, key_url = cfg.repo.name, f"{cfg.repo.server}/{cfg.repo.arch}/{cfg.repo.name}.asc"
    return "\n".join([
        f"# Before the first `pacman -Sy`, trust the key [{name}] is signed with (as root):",
        f"#   curl -fLO {key_url}",
        f"#   pacman-key --add {name}.asc",
        f"#   pacman-key --lsign-key {fpr or '<fingerprint>'}"
        + ("" if fpr else f"    (`gpg --show-keys {name}.asc` prints it; compare it with the publisher's)"),
        f"# Then `pacman -Syu {name}/{KEYRING}`: its install hook (pacman-key --populate) keeps the key current.",
    ])


def cmd_completion(args: argparse.Namespace) -> int:
    try:
        import shtab
    except ImportError:
        raise ConfigError("shell completion needs shtab: pip install 'avfrepo[native]'") from None
    print(shtab.complete(parser(), shell=args.shell), end="")
    return 0


def cmd_pacman_conf(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    if cfg.repo.placeholder_server:
        # said where it is pasted (a comment) and where a script notices (stderr, exit 1)
        print(f"# {cfg.repo.server} is a placeholder: set [repo] server in {cfg.file} to where repo/ is hosted")
    print(f"[{cfg.repo.name}]\nSigLevel = Required\nServer = {cfg.repo.server}/$arch")
    print(_trust_steps(cfg))
    if cfg.repo.placeholder_server:
        print(f"avfrepo: [repo] server {cfg.repo.server} is a placeholder (a reserved domain that cannot exist): "
              f"set it in {cfg.file} to the URL where repo/ is hosted", file=sys.stderr)
        return 1
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor
    report = doctor(args.config, publish=args.publish)
    if args.json:
        _print_json(report.to_json())
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def cmd_image_sign(args: argparse.Namespace) -> int:
    if args.output or args.dry_run or args.unsigned:
        print("avfrepo: error: --sign ARCHIVE signs an existing image; it takes no --output, --dry-run or --unsigned",
              file=sys.stderr)
        return 2
    from .image import sign_image
    result = sign_image(config_mod.load(args.config), Path(args.sign), progress=_progress)
    if args.json:
        _print_json(result.to_json())
    else:
        print(f"{result.archive}: signed by {result.signing_key} (sha256 {result.sha256} as its manifest records)")
        print(f"  verified: {', '.join(result.signatures)}")
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    if args.sign is not None:
        return cmd_image_sign(args)
    if not args.dry_run:
        preflight.root("image", "pacman --root installs as root; mkfs.ext4, mkfs.vfat and the image's file "
                                "owners need it")
    from .image import build_image
    cfg = config_mod.load(args.config)
    result = build_image(cfg, args.output, dry_run=args.dry_run, unsigned=args.unsigned, progress=_progress)
    if result.dry_run and result.problems:
        code = 1                    # the plan is shown; a script still learns it cannot run yet
    else:
        code = 0
    if args.json:
        _print_json(result.to_json())
    elif result.dry_run:
        print(f"would build {result.output} (+ {result.manifest})")
        print("  repositories: " + ", ".join(f"[{r['name']}] {r['server']}" for r in result.repos))
        print(f"  packages: {' '.join(result.packages_requested)}")
        if result.avf_packages:
            print(f"  [{cfg.repo.name}] from pkgbuilds/ (PKGBUILD version, published):")
            for row in result.avf_packages:
                pub = ", ".join(sorted({v or "not published" for v in row["published"].values()}))
                print(f"    {row['pkgbase']:<22} {row['pkgbuild']:<22} {pub}")
        if result.signing_key and not result.signed:
            print(f"  would not sign (--unsigned), would name the key {result.signing_key}; then: {result.sign_command}")
        elif result.signing_key:
            print(f"  would sign with {result.signing_key}: {', '.join(result.signatures)}")
        for problem in result.problems:
            print(f"  before building: {problem}")
        print("dry run: nothing written")
    else:
        print(f"{result.output}: {result.archive_bytes / (1 << 20):.1f} MiB, {len(result.packages)} packages, "
              f"built in {result.seconds:.1f} s")
        if result.signed:
            print(f"  signed by {result.signing_key}: {', '.join(result.signatures)}")
        else:
            print(f"  UNSIGNED: no .sig written; the manifest and README name the key {result.signing_key}")
            print(f"  sign it where that secret key is: {result.sign_command}")
        print(f"  build_id: {result.build_id.strip()}")
        for name, part in result.partitions.items():
            print(f"  {name}: {part['fs']} {part['label']} {part['guid']} ({int(part['bytes']) >> 20} MiB)")
        print(f"  manifest: {result.manifest}")
    return code


def cmd_boot(args: argparse.Namespace) -> int:
    from .boot import boot, exit_code
    from .errors import ConfigError
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be a number of seconds > 0, got {args.timeout}")
    avf_tree = Path(args.avf_tree) if args.avf_tree else _tracked_avf_tree(args.config)
    if avf_tree is not None and not (avf_tree / "libs/debian_service/proto").is_dir():
        raise ConfigError(f"--avf-tree {avf_tree}: no libs/debian_service/proto there")
    report = boot(Path(args.image), timeout=args.timeout, keep=Path(args.keep) if args.keep else None,
                  console=args.console, avf_tree=avf_tree, progress=_progress if not args.json else lambda s: None)
    if args.json:
        _print_json(report.to_json())
    else:
        print(report.text())
    return exit_code(report)


def _tracked_avf_tree(config: str | None) -> Path | None:
    """The AVF checkout `avfrepo sync` keeps (when there is a config and it has the proto)."""
    try:
        cfg = config_mod.load(config)
    except AvfrepoError:
        return None
    tree = cfg.cache / "git" / "avf"
    return tree if (tree / "libs/debian_service/proto").is_dir() else None


def cmd_demo(args: argparse.Namespace) -> int:
    preflight.root("demo", "its last step installs with the real pacman and pacman-key into a private root")
    from .demo import run_demo
    return run_demo(args.workdir, keep=args.keep, progress=_progress)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="avfrepo",
        description="Keep the signed pacman repository [avf] (Arch Linux ARM for the Android Terminal app) current.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="config file (default: $AVFREPO_CONFIG, else avfrepo.toml here or in the nearest folder above)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every external command")
    p.add_argument("--debug", action="store_true", help="on an error, also print the Python traceback")
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
             "every upstream answered. A package whose inputs (upstream releases, avfrepo.toml,\n"
             "its pkgbuilds/ directory, the key, avfrepo and its tools) are those of its last\n"
             "render is not rendered again (record: <cache>/sync-inputs.json; --rerender ignores\n"
             "it). A package directory with a file changed or added by hand since sync wrote it is\n"
             "refused with the diff and left as it is: drop the edit (git checkout), or let sync\n"
             "rewrite it with --discard-edits NAME. Exit 0 applied/nothing to do, 1 refused, 2 usage.")
    sp.add_argument("names", nargs="*", metavar="NAME", help="limit to these packages or upstreams")
    sp.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")
    sp.add_argument("--commit", action="store_true",
                    help="commit what changed under pkgbuilds/ (one git commit listing packages and reasons)")
    sp.add_argument("--rerender", action="store_true",
                    help="render every package, even those whose inputs are as at their last render")
    sp.add_argument("--discard-edits", action="append", default=[], metavar="PKG",
                    help="rewrite pkgbuilds/PKG as sync renders it even where it was edited by hand "
                         "(the edits are lost; repeatable)")

    sp = add("build", cmd_build, "build what changed, sign and publish it",
             "Build every package whose PKGBUILD version is newer than the repository's (and the\n"
             "named ones, reverse dependencies of soname-relevant changes, earlier failures), in\n"
             "dependency order, --jobs at a time, with the configured backend (makepkg or\n"
             "makechrootpkg); check each artifact, sign it and publish with repo-add -s -v.\n"
             "A failed package is reported with its log; its dependents are skipped, the rest\n"
             "goes on; a summary table ends the run (exit 1 when anything failed).\n"
             "On a terminal a status line, redrawn in place, shows each running package, its\n"
             "makepkg step, the time so far and how long its last build took; -v/--log-follow\n"
             "shows makepkg's own output instead; piped, plain lines only.\n"
             "--plan --format github-matrix prints the dependency layers as a GitHub Actions\n"
             'matrix: {"include": [{"layer": 0, "packages": "a b", "pkgbases": ["a", "b"]}, ...]}.\n'
             "--unsigned DIR builds without the key (CI build jobs): checked packages and their\n"
             "unsigned provenance records go to DIR; `avfrepo repo add --plan` signs them.\n"
             "--plan and --dry-run need no key.")
    sp.add_argument("names", nargs="*", metavar="PKGBASE", help="build these even if current")
    sp.add_argument("--dry-run", action="store_true", help="print the plan with reasons, build nothing")
    sp.add_argument("--plan", action="store_true", help="print the plan (like --dry-run), see --format")
    sp.add_argument("--format", choices=("text", "json", "github-matrix"), default="text",
                    help="output: text (default), json, or github-matrix (dependency layers; with --plan)")
    sp.add_argument("--json", action="store_true", help="print plan/results as JSON (= --format json)")
    sp.add_argument("-j", "--jobs", type=int, metavar="N", help="build N packages at a time (default: [build] jobs)")
    sp.add_argument("--only", action="store_true",
                    help="build exactly the named packages, nothing else (e.g. one layer of a matrix)")
    sp.add_argument("--unsigned", metavar="DIR",
                    help="build without the signing key: check each package, leave it and its unsigned "
                         "provenance record in DIR, publish nothing (the signer runs `repo add --plan`)")
    sp.add_argument("--reproduce", metavar="PKG",
                    help="rebuild the published PKG (pkgname or pkgbase) with its recorded SOURCE_DATE_EPOCH, "
                         "publish nothing, compare the bytes (exit 0 identical, 1 not)")
    sp.add_argument("-v", "--log-follow", action="store_true",
                    help="show each package's build output (makepkg's lines) as it is written, prefixed "
                         "with its name (also with avfrepo -v); without it a terminal gets a live status line")

    sp = add("chroot", lambda a: 2, "create or refresh the aarch64 build chroot (makechrootpkg)",
             "Manage the clean Arch Linux ARM build root at [build] chroot:\n"
             "  init    mkarchroot -C pacman.conf -M makepkg.conf CHROOT/root base-devel\n"
             "  update  arch-nspawn CHROOT/root pacman -Syu\n"
             "with the aarch64 pacman.conf/makepkg.conf avfrepo ships. Needs root and devtools;\n"
             "on x86_64 also qemu-user-static with its aarch64 binfmt handler (docs/building.md; scripts/setup-arch.sh installs them).")
    csub = sp.add_subparsers(dest="chroot_command", metavar="ACTION", required=True)
    for action, text in (("init", "create CHROOT/root with base-devel"), ("update", "pacman -Syu inside CHROOT/root")):
        c = csub.add_parser(action, help=text, description=text + ".")
        c.set_defaults(func=cmd_chroot)
        c.add_argument("--json", action="store_true", help="print the result as JSON")

    sp = add("verify", cmd_verify, "check the published repository file by file",
             "Check that the db and files db are signed by the repository key, that every package\n"
             "the db lists exists with the size and sha256 the db records, and that its signature\n"
             "verifies with the repository key. Exit 0 all good, 1 a problem (each file named).\n"
             "--provenance also checks every package's provenance record (present, signed by\n"
             "the repository key, naming the db entry's file, version and sha256).")
    sp.add_argument("--json", action="store_true", help="print the per-file report as JSON")
    sp.add_argument("--provenance", action="store_true",
                    help="also check each package's signed provenance record (<file>.provenance.json)")

    kp = add("key", lambda a: 2, "manage the repository signing key", "Manage the repository signing key.")
    ksub = kp.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    ki = ksub.add_parser("init", help="create an ed25519 signing key unless one exists; print its fingerprint",
                         description="Create an ed25519 signing key in [signing] gnupg_home unless a usable one exists.")
    ki.set_defaults(func=cmd_key_init)
    ki.add_argument("--uid", help="user id of a new key (default: from [build] packager, \"Name <mail>\")")
    ki.add_argument("--expire", default="2y", metavar="WHEN",
                    help="expiry of a new key, gpg notation: 2y, 18m, 52w, 730d or never (default: 2y)")
    ki.add_argument("--json", action="store_true", help="print the key as JSON")

    rp = add("repo", lambda a: 2, "list, roll back or remove published packages",
             "Manage the published repository. Every change is one atomic switch to a new\n"
             "snapshot, under the repository lock; the pool keeps [repo] keep versions of each\n"
             "package for rollback.")
    rsub = rp.add_subparsers(dest="repo_command", metavar="ACTION", required=True)
    r = rsub.add_parser("list", help="published and archived versions of every package",
                        description="List every package of the repository: the published version and the archived\n"
                                    "ones kept in the pool ([repo] keep), newest first, which `repo rollback` can\n"
                                    "publish again. Reads local files only.",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    r.set_defaults(func=cmd_repo_list)
    r.add_argument("--json", action="store_true", help="print as JSON")
    r = rsub.add_parser("add", help="publish packages built elsewhere (signed, or unsigned checked against a plan)",
                        description="Validate and publish package files, e.g. from distributed builders: each\n"
                                    "must carry a .sig by the repository key, match its .PKGINFO and not\n"
                                    "downgrade or replace a published version with other bytes.\n"
                                    "--plan PLAN: the packages are UNSIGNED outputs of `avfrepo build --unsigned`\n"
                                    "(CI build jobs never hold the key). Each is checked against PLAN (from\n"
                                    "`avfrepo build --plan --json`): its pkgbase is planned, its pkgname belongs\n"
                                    "to it, its version is the planned one, its pkgbase is complete, and its\n"
                                    "provenance record (beside it) names it; only then are they signed and\n"
                                    "published. A planned pkgbase with no package is reported, not an error.\n"
                                    "  avfrepo build --plan --json > plan.json        # before the builds\n"
                                    "  avfrepo build --only PKGBASE --unsigned out/   # each build job, no key\n"
                                    "  avfrepo repo add --plan plan.json out/*.pkg.tar.zst   # the signer",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    r.set_defaults(func=cmd_repo_add)
    r.add_argument("packages", nargs="+", metavar="PKG", help="package files (*.pkg.tar.*), each with its .sig beside it")
    r.add_argument("--plan", metavar="PLAN", help="check unsigned packages against this build plan, then sign them")
    r.add_argument("--dry-run", action="store_true", help="with --plan: check only, sign and publish nothing")
    r.add_argument("--json", action="store_true", help="with --plan: print what was checked as JSON")
    r = rsub.add_parser("rollback", help="publish an archived version again",
                        description="Publish an archived version again (default: the newest one older than the "
                                    "published). Users get it with `pacman -Syuu`.")
    r.set_defaults(func=cmd_repo_rollback)
    r.add_argument("package", help="package name, as `avfrepo repo list` shows it")
    r.add_argument("version", nargs="?", help="full version (pkgver-pkgrel) from `avfrepo repo list`")
    r = rsub.add_parser("remove", help="take a package out of the repository (file and signature together)",
                        description="Take a package out of the db (repo-remove, one atomic switch); its published\n"
                                    "file, signature and provenance record leave the pool. Users' pacman stops\n"
                                    "seeing it; installed copies stay. Archived versions remain for rollback.",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    r.set_defaults(func=cmd_repo_remove)
    r.add_argument("package", help="package name, as `avfrepo repo list` shows it")

    ki = ksub.add_parser("import", help="import the secret signing key (CI: from a secret, into a temporary home)",
                         description="Import an armored secret key into [signing] gnupg_home (or $AVFREPO_GNUPGHOME)\n"
                                     "and check it is usable for signing: unattended jobs do\n"
                                     "  AVFREPO_GNUPGHOME=$(mktemp -d) avfrepo key import - <<<\"$SECRET\"",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    ki.set_defaults(func=cmd_key_import)
    ki.add_argument("file", metavar="FILE", help="armored secret key, or - for standard input")
    ki.add_argument("--public", action="store_true",
                    help="import the repository's armored PUBLIC key instead: enough for sync (avf-keyring), "
                         "so a job that only syncs never holds the secret")

    sp = add("status", cmd_status, "where every package stands, upstream to published",
             "Per package: the upstream versions and commits it was rendered from, the PKGBUILD\n"
             "version, the published version, the last build's result and log, and why it is\n"
             "still pending. Reads local files only. Exit 0 when everything is published and\n"
             "current, 3 when something is pending (for monitoring), 2 on a config error.")
    sp.add_argument("--json", action="store_true", help="print as JSON")

    add("pacman-conf", cmd_pacman_conf, "print the pacman.conf section for the repository",
        "Print the [avf] section users add to /etc/pacman.conf. A placeholder [repo] server (a\n"
        "reserved domain such as example.invalid, as the shipped avfrepo.toml has) is named as\n"
        "such, and the exit code is 1 until the real URL is set. Comments after the section say\n"
        "how to trust the repository key first (pacman-key --add/--lsign-key, then avf-keyring).")

    sp = add("completion", cmd_completion, "print the bash or zsh completion script (shtab)",
             "Print a completion script generated from avfrepo's own options (shtab). The set-up\n"
             "scripts install it; by hand:\n"
             "  bash: avfrepo completion bash > /usr/share/bash-completion/completions/avfrepo\n"
             "  zsh:  avfrepo completion zsh > /usr/share/zsh/site-functions/_avfrepo")
    sp.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete for")

    sp = add("doctor", cmd_doctor, "check this checkout's set-up (config, key, server, image, tools)",
             "Check everything that can be checked locally, one line each (ok, or MISSING and what\n"
             "to set): the config loads; the repository key (its public part; with --publish a\n"
             "secret key that can sign); $AVF_SIGNING_FINGERPRINT, when set, names that key;\n"
             "[repo] server is real (not the placeholder, no trailing /$arch); [image] reads [avf]\n"
             "from that server and its system repositories are real; the build backend's tools.\n"
             "Exit 0 when everything holds, 1 otherwise (a config that does not load included).")
    sp.add_argument("--publish", action="store_true", help="also check the secret key can sign, and publishing's tools")
    sp.add_argument("--json", action="store_true", help="print the checks as JSON")

    sp = add("image", cmd_image, "build images.tar.gz for the Android Terminal app from the repositories",
             "Install [image] packages (default avf-base) with the real pacman --root from the\n"
             "[image] repos (Arch Linux ARM core/extra/alarm) and [avf], then make efi_part (vfat:\n"
             "systemd-boot, loader entry, kernel) and root_part (ext4 from the directory, no\n"
             "orphan_file, shrunk to content + headroom), vm_config.json with the partitions'\n"
             "GUIDs, build_id and README, and tar + gzip them (pigz when present). A JSON manifest\n"
             "(packages, versions, repos, member sizes and sha256) is written beside the archive;\n"
             "both are signed with the repository key (FILE.sig, FILE.manifest.json.sig, verified\n"
             "right after signing; no signing key: refused before anything is written).\n"
             "Needs root (pacman). Nothing is left at --output when anything fails.\n"
             "Signing apart from building (CI: the job that boots the image never holds the key):\n"
             "  avfrepo image --unsigned             # no .sig; the public key names the key (manifest)\n"
             "  avfrepo image --sign images.tar.gz   # where the secret key is: checks that the manifest\n"
             "                                       # names this key and the archive's sha256, signs both")
    sp.add_argument("--output", metavar="FILE", help="the archive (default: [image] output, images.tar.gz)")
    sp.add_argument("--unsigned", action="store_true",
                    help="build without the secret key (its public part names it); write no .sig")
    sp.add_argument("--sign", metavar="ARCHIVE",
                    help="sign an archive built --unsigned and its manifest (no build, no root needed)")
    sp.add_argument("--json", action="store_true", help="print the result as JSON")
    sp.add_argument("--dry-run", action="store_true", help="check tools and configuration, print the plan, build nothing")

    sp = add("boot", cmd_boot, "boot images.tar.gz as the Android Terminal app does and report what a user sees",
             "Read the archive as the app does (refusing what it refuses), assemble the GPT disk like\n"
             "AVF's VM manager (vm_config GUIDs, generic Linux type), start qemu-system-aarch64 -M virt\n"
             "with UEFI (KVM on arm64 hosts, else TCG), virtio-blk/net/balloon, the virtiofs shares\n"
             "'internal' (ca.crt, debian_service_port) and 'android', and a DebianService stand-in\n"
             "(gRPC stubs generated from the AVF checkout's libs/debian_service/proto). Then check:\n"
             "firmware -> systemd-boot -> kernel -> multi-user.target, failed units, the mounts,\n"
             "every [avf] unit, ttyd over TLS with the app's client certificate (and refusing none\n"
             "or another CA's), the agents that called DebianService, a clean poweroff.\n"
             "Exit 0: every check held; 1: something failed (named) or the image was refused; 2: usage.\n"
             "Needs root (virtiofsd), qemu-system-arm, qemu-efi-aarch64 (scripts/setup-debian.sh).\n"
             "Example: avfrepo boot images.tar.gz --keep /tmp/boot1   # keeps the disk and console logs")
    sp.add_argument("image", metavar="IMAGES.tar.gz", help="the archive `avfrepo image` made")
    sp.add_argument("--timeout", type=float, default=900, metavar="S",
                    help="seconds to reach multi-user.target (default 900: TCG emulation is slow)")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")
    sp.add_argument("--console", action="store_true",
                    help="hand the guest's serial console (ttyS0) to this terminal instead of checking")
    sp.add_argument("--keep", metavar="DIR", help="work in DIR (must be empty) and keep it: disk, logs, certificates")
    sp.add_argument("--avf-tree", metavar="DIR",
                    help="AVF checkout with libs/debian_service/proto (default: the one `avfrepo sync` tracks)")

    sp = add("demo", cmd_demo, "run the whole cycle against a local demo upstream",
             "Build a small AVF-shaped upstream git repository in a temporary folder, then run\n"
             "key init, sync, build and verify against it, and install avf-config with the real\n"
             "pacman into a private root. Touches nothing outside the folder (needs root for pacman).")
    sp.add_argument("--workdir", help="folder to use (default: a new temporary folder)")
    sp.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    _mark_subparsers(p)
    return p


class _Parser(argparse.ArgumentParser):
    """An unknown option is reported by the subcommand it was given to, with that
    subcommand's usage (`avfrepo sync --bogus` shows sync's usage, not the top level's)."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            argv = sys.argv[1:] if args is None else list(args)
            command = getattr(ns, "command", None)
            before_command = command in argv and argv.index(extra[0]) < argv.index(command)
            owner = self if before_command else getattr(ns, "_usage_parser", None) or self
            owner.error(f"unrecognized arguments: {' '.join(extra)}")
        if hasattr(ns, "_usage_parser"):
            del ns._usage_parser
        return ns


def _mark_subparsers(p: argparse.ArgumentParser) -> None:
    """Each subparser records itself in the namespace (the innermost one wins)."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in action.choices.values():
                sp.set_defaults(_usage_parser=sp)
                _mark_subparsers(sp)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    except BrokenPipeError:
        return _closed_pipe()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        code = args.func(args)
        sys.stdout.flush()          # a closed pipe shows here, not in the interpreter's last flush
        return code
    except KeyboardInterrupt:
        print("avfrepo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    except Exception as exc:        # the one top-level error path: one line, exit 1 (2 config)
        if args.debug:
            import traceback
            traceback.print_exc()
        message, code = describe(exc)
        print(f"avfrepo: error: {message}", file=sys.stderr)
        return code


def _closed_pipe() -> int:
    """The reader went away (`avfrepo repo list | head`): stop quietly with 141 (128 + SIGPIPE),
    what git and other programs killed by SIGPIPE report, so `set -o pipefail` still sees it.
    stdout is pointed at /dev/null so the interpreter's final flush cannot complain either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
