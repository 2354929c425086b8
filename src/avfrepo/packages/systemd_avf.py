"""systemd-avf: Arch Linux ARM's own core/systemd, rebuilt to accept an ESP without the ESP partition type.

Why: `src/shared/find-esp.c` refuses an EFI System Partition whose GPT partition type is
not the ESP type (in `verify_esp_blkid()` and `verify_esp_udev()`), and the disks of the
Android Terminal VM do not expose one. bootctl, systemd-boot's updates and the
gpt-auto generator then fail to find the ESP.

- Derived, not hand-written (the way lilac imports official PKGBUILDs): the package is ALARM's
  core/systemd directory (upstream `alarm-pkgbuilds`, a git-branch upstream) at the revision
  whose PKGBUILD has the version of `systemd` in ALARM's core database (upstream `systemd`,
  alpm-db): the newest revision at that pkgver-pkgrel, else at that pkgver. A systemd-avf
  behind or ahead of core's systemd-libs would be a partial upgrade. Its PKGBUILD, and the
  local files it names (source=() and install=), are taken as they are; only the PKGBUILD is
  changed, by the named rules in RULES (each one a function below, each tested). A rule that
  no longer matches ALARM's file refuses the render with a RenderProblem naming the rule:
  sync then keeps the previous PKGBUILD.
- Source keys: ALARM's source is systemd's git tag with `?signed` and validpgpkeys=(...);
  makepkg verifies the tag with the keys of keys/pgp/<FINGERPRINT>.asc, which come along too
  (the build backends import them for the build user: avfrepo.makepkg.source_keyring()). Each
  one is checked (avfrepo.makepkg.check_source_keys: a regular file, not too large, exactly the
  public key its name says, listed in validpgpkeys), and each validpgpkeys entry must have its
  file; anything else under keys/ (a symbolic link above all: it is never followed) refuses
  the render, naming it.
- The ESP patch is generated at sync time from find-esp.c of systemd's own repository at the
  tag (`source_git` of the systemd upstream), by a rule (nothing is copied from elsewhere): in
  each of the two functions, the one `if (<condition naming SD_GPT_ESP>)` followed by
  `return log_...(...);` keeps its condition and gets a debug log instead of the error
  return. The rule matching nothing, or its diff not applying (`patch --dry-run`), refuses
  the render with a RenderProblem naming the patch, the file and the systemd version.
- Names: every split package `systemd*` becomes `systemd-avf*` and provides and conflicts with
  the ALARM package it stands in for (`systemd=$pkgver`, ...). No `replaces` (ALARM's are
  dropped): that would make `pacman -Syu` swap core's packages for every user who merely
  enabled [avf]; switching is an explicit `pacman -S systemd-avf` (or the image step).
- relax_env_supported(tree) reports whether the checked-out systemd honours
  SYSTEMD_RELAX_ESP_CHECKS: the name anywhere in find-esp.c once comments are removed (the way
  the compiler sees it: a direct getenv_bool("...") or the name handed to a helper such as
  verify_esp_flags_init()). The finding goes into the sync report; with it, a configuration can
  leave systemd-avf out of `[packages] enable` and let the image set the variable instead
  (relax_dropins()).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import alarm_pkgbuilds
from .. import makepkg as mk
from ..config import ALARM_PKGBUILDS
from ..errors import UpstreamError
from ..formats import pkgbuild as pkgb
from ..run import run
from . import PKGREL_TOKEN, PKGVER_TOKEN, Context, Rendered, RenderProblem, ToolProblem, template, tree_file

NAME = "systemd-avf"
UPSTREAMS = ("systemd", ALARM_PKGBUILDS)
TREES = {"systemd": ("src/shared",)}
ALARM_DIR = "core/systemd"
SUFFIX = "-avf"

ESP_FILE = "src/shared/find-esp.c"
ESP_FUNCTIONS = ("verify_esp_blkid", "verify_esp_udev")
ESP_PATCH = "avf-esp-any-partition-type.patch"
RELAX_ENV = "SYSTEMD_RELAX_ESP_CHECKS"

# The rule. A function definition (to the first `}` in column 0), and in it the partition
# type check: `if (<one line naming the ESP type>)` + `return log_...(...);` (strings may
# hold `;`), possibly over several lines.
# the ESP type by its name in the various systemd versions, or spelled out as a GUID string
_ESP_TYPE = r"(?:\b(?:SD_GPT_ESP|GPT_ESP|ESP_GUID)\b|\"(?i:c12a7328-f81f-11d2-ba4b-00a0c93ec93b)\")"
_TYPE_CHECK = re.compile(
    r"^(?P<if>[ \t]+if \([^\n]*" + _ESP_TYPE + r"[^\n]*\)[ \t]*\n)"
    r"(?P<indent>[ \t]+)return\s+log_\w+\((?:[^;\"]|\"(?:[^\"\\\n]|\\.)*\")*\);[ \t]*\n",
    re.M)
_RELAX = re.compile(r"\b" + RELAX_ENV + r"\b")
REPLACEMENT = ('{indent}log_debug("Partition type is not the ESP type; accepted anyway '
               '(systemd-avf: the Android Terminal VM\'s disks carry no partition types).");\n')


def _function_span(text: str, name: str) -> tuple[int, int] | None:
    m = re.search(rf"^(?:static\s+)?int\s+{name}\s*\([^)]*\)\s*\{{\n", text, re.M)
    if not m:
        return None
    end = re.compile(r"^\}", re.M).search(text, m.end())
    return (m.end(), end.start()) if end else None


def relax_esp_checks(text: str) -> tuple[str, list[str]]:
    """find-esp.c -> (patched text, problems). A problem per function the rule cannot handle."""
    problems: list[str] = []
    edits: list[tuple[int, int, str]] = []
    for fn in ESP_FUNCTIONS:
        span = _function_span(text, fn)
        if span is None:
            problems.append(f"{fn}() not found")
            continue
        hits = list(_TYPE_CHECK.finditer(text, *span))
        if len(hits) != 1:
            problems.append(f"{fn}(): {'no' if not hits else len(hits)} partition type check"
                            f"{'s' if len(hits) > 1 else ''} of the form `if (... SD_GPT_ESP ...) return log_...;`")
            continue
        m = hits[0]
        edits.append((m.start(), m.end(), m.group("if") + REPLACEMENT.format(indent=m.group("indent"))))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text, problems


def unified_diff(old: str, new: str, path: str) -> str:
    """A `patch -p1` diff of one file (a/ b/ paths); marks a last line without newline."""
    out = []
    for line in difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def esp_patch(tree: Path, version: str) -> bytes:
    """The generated ESP patch for the checked-out systemd `version`, dry-run against it."""
    where = f"{ESP_PATCH} for {ESP_FILE} of systemd {version}"
    try:
        old = tree_file(tree, ESP_FILE, f"systemd {version}", text=True)
    except FileNotFoundError:
        raise RenderProblem(f"cannot make {where}: the file does not exist any more") from None
    new, problems = relax_esp_checks(old)
    if problems:
        raise RenderProblem(f"cannot make {where}: the rule no longer matches ({'; '.join(problems)}); "
                            "systemd changed that code: adapt the rule in avfrepo/packages/systemd_avf.py")
    header = ("avfrepo: accept an ESP whose GPT partition type is not the ESP type\n\n"
              "Generated by avfrepo sync: in " + ", ".join(f"{f}()" for f in ESP_FUNCTIONS) +
              ", the partition type check logs instead of failing.\n\n")
    patch = header + unified_diff(old, new, ESP_FILE)
    check_applies(patch.encode(), tree, f"{ESP_PATCH} no longer applies to {ESP_FILE} of systemd {version}")
    return patch.encode()


def check_applies(patch: bytes, tree: Path, what: str) -> None:
    res = run(["patch", "-p1", "--dry-run", "--force", "--batch", "--fuzz=0"], cwd=tree, input=patch.decode(),
              check=False, timeout=120)
    if res.returncode != 0:
        detail = " ".join((res.stdout + res.stderr).split())
        raise RenderProblem(f"{what}: patch --dry-run: {detail or 'failed'}")


def strip_c_comments(text: str) -> str:
    """C source with /* */ and // comments replaced by a space (string and character literals
    kept, so a name inside "..." stays visible), as the compiler's first phase does."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif text.startswith("//", i):
            j = i + 2
            while j < n and text[j] != "\n":     # a backslash-newline continues the comment
                j += 2 if text[j] == "\\" else 1
            i = j
            out.append(" ")
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def relax_env_in(text: str) -> bool:
    """Whether find-esp.c's code (comments removed) names SYSTEMD_RELAX_ESP_CHECKS: read
    directly (`getenv_bool("SYSTEMD_RELAX_ESP_CHECKS")`) or handed to a helper that reads it
    (`verify_esp_flags_init(..., "SYSTEMD_RELAX_ESP_CHECKS")`)."""
    return bool(_RELAX.search(strip_c_comments(text)))


def relax_env_supported(tree: Path) -> bool:
    """Whether the checked-out systemd's find-esp.c names SYSTEMD_RELAX_ESP_CHECKS in its code."""
    try:
        return relax_env_in(tree_file(tree, ESP_FILE, "systemd").decode(errors="replace"))
    except FileNotFoundError:
        return False


RELAX_DROPINS = {   # file in the image -> template: where bootctl and systemd-boot-update run
    "usr/lib/systemd/system.conf.d/50-avf-relax-esp-checks.conf": "systemd-avf/relax/system.conf",
    "usr/lib/environment.d/50-avf-relax-esp-checks.conf": "systemd-avf/relax/environment.conf",
    "etc/profile.d/avf-relax-esp-checks.sh": "systemd-avf/relax/profile.sh",
}


def relax_dropins() -> dict[str, bytes]:
    """What an image without systemd-avf installs to set SYSTEMD_RELAX_ESP_CHECKS=1 for the
    service manager (systemd-boot-update.service, generators' services), user sessions and
    login shells (bootctl run by hand, pacman hooks run from a shell)."""
    return {dest: template(src) for dest, src in RELAX_DROPINS.items()}


# --- the rules that turn ALARM's core/systemd PKGBUILD into systemd-avf's -------------------

class RuleMismatch(Exception):
    def __init__(self, rule: str, reason: str):
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason


@dataclass
class Derivation:
    """The PKGBUILD being transformed and what the rules learn on the way."""

    text: str
    arch: str
    patch_name: str
    patch: bytes
    revision: str
    split: dict[str, str]        # our package -> ALARM's, filled by the pkgname rule

    def function_of(self, pkg: str) -> pkgb.Span:
        span = pkgb.function(self.text, f"package_{pkg}")
        if span is None:
            raise RuleMismatch("package-functions", f"no package_{pkg}() function")
        return span


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _one(pattern: str, text: str, rule: str, what: str) -> re.Match[str]:
    hits = list(re.finditer(pattern, text, re.M))
    if len(hits) != 1:
        raise RuleMismatch(rule, f"{'no' if not hits else len(hits)} {what}")
    return hits[0]


def rule_header(d: Derivation) -> None:
    """A comment saying where the file came from and that it is generated."""
    d.text = (f"# Generated by avfrepo from Arch Linux ARM's {ALARM_DIR} at {d.revision}:\n"
              "# renamed to systemd-avf, provides/conflicts for each ALARM package, no replaces,\n"
              f"# {d.patch_name} (generated from find-esp.c by avfrepo sync) applied in prepare().\n"
              "# Do not edit: the rules are in avfrepo/packages/systemd_avf.py; run `avfrepo sync`.\n\n") + d.text


def rule_pkgbase(d: Derivation) -> None:
    """pkgbase=systemd -> pkgbase=systemd-avf."""
    m = _one(r"^pkgbase=(['\"]?)systemd\1[ \t]*$", d.text, "pkgbase", "`pkgbase=systemd` line")
    d.text = d.text[:m.start()] + "pkgbase=systemd" + SUFFIX + d.text[m.end():]


def rule_pkgname(d: Derivation) -> None:
    """pkgname=(systemd systemd-libs ...) -> (systemd-avf systemd-avf-libs ...)."""
    try:
        span = pkgb.array(d.text, "pkgname")
    except ValueError as exc:
        raise RuleMismatch("pkgname", str(exc)) from None
    if span is None:
        raise RuleMismatch("pkgname", "no pkgname=(...) array")
    names = pkgb.words(d.text[span.inner:span.inner_end])
    bad = [n for n in names if not re.fullmatch(r"systemd(-[a-z0-9][a-z0-9-]*)?", n)]
    if not names or bad or "systemd" not in names:
        raise RuleMismatch("pkgname", f"expected systemd and systemd-* split packages, got {names}")
    d.split = {"systemd" + SUFFIX + n[len("systemd"):]: n for n in names}
    body = "\n".join(f"         {_q(new)}" for new in d.split).lstrip()
    d.text = d.text[:span.inner] + body + d.text[span.inner_end:]


def rule_version(d: Derivation) -> None:
    """pkgver and pkgrel -> avfrepo's version tokens (pkgver stays ALARM's, pkgrel is ours)."""
    for name, token in (("pkgver", PKGVER_TOKEN), ("pkgrel", PKGREL_TOKEN)):
        m = _one(rf"^{name}=[A-Za-z0-9._+'\"]+[ \t]*$", d.text, "version", f"plain `{name}=` line")
        d.text = d.text[:m.start()] + f"{name}={token}" + d.text[m.end():]


def rule_arch(d: Derivation) -> None:
    """arch=(...) -> the repository's arch (ALARM's files say x86_64; its build farm ignores it)."""
    m = _one(r"^arch=\([^)\n]*\)[ \t]*$", d.text, "arch", "one-line `arch=(...)`")
    d.text = d.text[:m.start()] + f"arch=({_q(d.arch)})" + d.text[m.end():]


def rule_source_dir(d: Derivation) -> None:
    """_systemd_src_dir="${pkgbase}" -> 'systemd': the git source is checked out as systemd/,
    which the renamed pkgbase no longer names."""
    m = _one(r"^_systemd_src_dir=(\"\$\{pkgbase\}\"|\$\{pkgbase\}|\"\$pkgbase\"|\$pkgbase)[ \t]*$", d.text,
             "source-dir", '`_systemd_src_dir="${pkgbase}"` line')
    d.text = d.text[:m.start()] + "_systemd_src_dir='systemd'" + d.text[m.end():]


def rule_split_depends(d: Derivation) -> None:
    """Inside the package functions, "systemd=${pkgver}" / "systemd-libs=${pkgver}" (the exact
    version bonds between split packages) -> the systemd-avf names."""
    count = 0
    for old in d.split.values():
        span = d.function_of(old)
        changed = d.text[span.inner:span.inner_end]
        for ours, alarm_name in d.split.items():
            changed, k = re.subn(rf"([\"']){re.escape(alarm_name)}=\$\{{pkgver\}}\1",
                                 lambda m, o=ours: f'"{o}=${{pkgver}}"', changed)
            count += k
        d.text = d.text[:span.inner] + changed + d.text[span.inner_end:]
    if count == 0:
        raise RuleMismatch("split-depends", 'no "systemd=${pkgver}"-style bond between the split packages')


def rule_no_replaces(d: Derivation) -> None:
    """replaces=(...) in the package functions are dropped: only who asks gets systemd-avf."""
    for old in d.split.values():
        span = d.function_of(old)
        try:
            r = pkgb.array(d.text, "replaces", span.inner, span.inner_end)
        except ValueError as exc:
            raise RuleMismatch("no-replaces", f"package_{old}(): {exc}") from None
        if r is not None:
            line_end = d.text.find("\n", r.end)
            d.text = d.text[:r.start] + d.text[line_end + 1:]


def rule_package_functions(d: Derivation) -> None:
    """package_systemd() -> package_systemd-avf(), ... for every split package."""
    for new, old in d.split.items():
        m = _one(rf"^package_{re.escape(old)}\(\)", d.text, "package-functions", f"package_{old}() function")
        d.text = d.text[:m.start()] + f"package_{new}()" + d.text[m.end():]


def rule_stand_in(d: Derivation) -> None:
    """Each package provides its ALARM package at the exact version and conflicts with it
    (appended at the end of its function: after ALARM's own provides=/conflicts=)."""
    for new, old in d.split.items():
        span = pkgb.function(d.text, f"package_{new}")
        if span is None:
            raise RuleMismatch("stand-in", f"no package_{new}() function")
        add = (f"\n  # avfrepo: {new} stands in for ALARM's {old}\n"
               f'  provides+=("{old}=${{pkgver}}")\n'
               f"  conflicts+=({_q(old)})\n")
        d.text = d.text[:span.inner_end] + add + d.text[span.inner_end:]


_SUMS = ("sha512sums", "sha256sums", "b2sums", "sha384sums", "sha224sums", "sha1sums", "md5sums", "cksums")


def _digest(alg: str, data: bytes) -> str:
    if alg == "b2sums":
        return hashlib.blake2b(data).hexdigest()
    if alg == "cksums":
        raise RuleMismatch("esp-source", "cksums (CRC) cannot be computed here")
    return hashlib.new(alg[:-4], data).hexdigest()


def rule_esp_source(d: Derivation) -> None:
    """The generated ESP patch is appended to source=() and its checksum to the checksum array
    (whichever algorithm ALARM uses; there must be exactly one, as long as source=())."""
    try:
        src = pkgb.array(d.text, "source")
        sums = {alg: span for alg in _SUMS if (span := pkgb.array(d.text, alg)) is not None}
    except ValueError as exc:
        raise RuleMismatch("esp-source", str(exc)) from None
    if src is None:
        raise RuleMismatch("esp-source", "no source=(...) array")
    if len(sums) != 1:
        raise RuleMismatch("esp-source", f"expected one checksum array, found {', '.join(sums) or 'none'}")
    alg, span = next(iter(sums.items()))
    n_src = len(pkgb.words(d.text[src.inner:src.inner_end]))
    n_sums = len(pkgb.words(d.text[span.inner:span.inner_end]))
    if n_src != n_sums:
        raise RuleMismatch("esp-source", f"source=() has {n_src} entries, {alg}=() {n_sums}")
    # the later array first, so the earlier one's offsets stay valid
    edits = sorted([(src, _q(d.patch_name)), (span, _q(_digest(alg, d.patch)))], key=lambda e: -e[0].start)
    for arr, word in edits:
        body = d.text[arr.inner:arr.inner_end]
        lines = body.rstrip().split("\n")
        if len(lines) > 1:
            indent = re.match(r"[ \t]*", lines[-1]).group(0)
        else:   # one line: line up under the first word
            indent = " " * (arr.inner - d.text.rfind("\n", 0, arr.inner) - 1)
        d.text = d.text[:arr.inner] + body.rstrip() + f"\n{indent}{word}" + d.text[arr.inner_end:]


def rule_esp_prepare(d: Derivation) -> None:
    """prepare() applies the ESP patch last, in the source tree it has changed into (exactly one
    `cd` in prepare(), so the tree is known)."""
    span = pkgb.function(d.text, "prepare")
    if span is None:
        raise RuleMismatch("esp-prepare", "no prepare() function")
    body = d.text[span.inner:span.inner_end]
    cds = re.findall(r"^[ \t]+cd[ \t]", body, re.M)
    if len(cds) != 1:
        raise RuleMismatch("esp-prepare", f"prepare() has {len(cds)} `cd` lines, expected 1")
    add = (f"\n  # avfrepo: accept an ESP without the ESP partition type (the Android Terminal VM)\n"
           f'  patch -Np1 -i "$srcdir/{d.patch_name}"\n')
    d.text = d.text[:span.inner_end] + add + d.text[span.inner_end:]


RULES: tuple[tuple[str, Callable[[Derivation], None]], ...] = (
    ("pkgname", rule_pkgname),                 # first: the others need the split names
    ("pkgbase", rule_pkgbase),
    ("version", rule_version),
    ("arch", rule_arch),
    ("source-dir", rule_source_dir),
    ("split-depends", rule_split_depends),
    ("no-replaces", rule_no_replaces),
    ("package-functions", rule_package_functions),
    ("stand-in", rule_stand_in),
    ("esp-source", rule_esp_source),
    ("esp-prepare", rule_esp_prepare),
    ("header", rule_header),
)


def derive(alarm: str, *, arch: str, patch_name: str, patch: bytes, revision: str) -> tuple[str, dict[str, str]]:
    """ALARM's core/systemd PKGBUILD -> (systemd-avf's, {our package: ALARM's}); RuleMismatch
    naming the first rule that no longer matches."""
    d = Derivation(alarm, arch, patch_name, patch, revision, {})
    for _, rule in RULES:
        rule(d)
    return d.text, d.split


def alarm_local_files(text: str) -> list[str]:
    """The files beside ALARM's PKGBUILD that it uses: local source=() entries and install=."""
    span = pkgb.array(text, "source")
    names = pkgb.local_sources(pkgb.words(text[span.inner:span.inner_end])) if span else []
    names += re.findall(r"^[ \t]*install=['\"]?([A-Za-z0-9._+-]+)['\"]?[ \t]*$", text, re.M)
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9._+-]+", n) or n.startswith(".")]
    if bad:
        raise ValueError(f"local file names that are not plain file names: {bad}")
    return sorted(set(names))


def validpgpkeys(text: str) -> list[str]:
    """The words of the PKGBUILD's validpgpkeys=(...) ([] without one; comments dropped)."""
    span = pkgb.array(text, "validpgpkeys")
    return pkgb.words(text[span.inner:span.inner_end]) if span else []


def key_paths(listing: dict[str, alarm_pkgbuilds.Entry]) -> list[str]:
    """The key files of a package directory's listing: every entry at or under keys/ must be a
    regular file keys/pgp/<name> (the names and contents are checked with the keys); a symbolic
    link (keys, keys/pgp or a key file), a submodule or a deeper folder is a ValueError naming it."""
    out, bad = [], []
    top = mk.SOURCE_KEYS_DIR.split("/")[0]
    for rel, entry in sorted(listing.items()):
        if rel != top and not rel.startswith(top + "/"):
            continue
        if not entry.regular:
            bad.append(f"{rel} (mode {entry.mode}: not a regular file; a symbolic link is not followed)")
        elif rel.rsplit("/", 1)[0] != mk.SOURCE_KEYS_DIR:
            bad.append(f"{rel} (not {mk.SOURCE_KEYS_DIR}/<FINGERPRINT>.asc)")
        else:
            out.append(rel)
    if bad:
        raise ValueError(f"refusing {', '.join(bad)}")
    return out


def render(ctx: Context) -> Rendered:
    rel = ctx.releases["systemd"]
    up = ctx.config.upstream("systemd")
    if not getattr(up, "source_git", None) or not rel.tag or not rel.commit:
        raise RenderProblem("systemd-avf generates its ESP patch from systemd's git repository: "
                            "[upstreams.systemd] needs source_git (and its tag for the pkgver)")
    head = ctx.releases[ALARM_PKGBUILDS]
    try:
        repo = alarm_pkgbuilds.PkgbuildsRepo.open(ctx.config.upstream(ALARM_PKGBUILDS), head.commit or "",
                                                   ctx.config.cache)
        revision = alarm_pkgbuilds.matching(repo.revisions(ALARM_DIR), rel.pkgver, rel.pkgrel)
        if revision is None:
            raise RenderProblem(f"ALARM's PKGBUILDs have no revision of {ALARM_DIR} at systemd {rel.pkgver} "
                                f"(core.db has {rel.version}; head {head.commit}): wait for ALARM to push it")
        pkgbuild = repo.files(revision.commit, ALARM_DIR, only=("PKGBUILD",))["PKGBUILD"].decode()
        local = alarm_local_files(pkgbuild)
        files = repo.files(revision.commit, ALARM_DIR, only=tuple(local))
        key_files = key_paths(repo.entries(revision.commit, ALARM_DIR))
        keys = (repo.files(revision.commit, ALARM_DIR, only=tuple(key_files), max_bytes=mk.MAX_KEY_BYTES)
                if key_files else {})
        fingerprints = validpgpkeys(pkgbuild)
    except UpstreamError as exc:        # git could not fetch it: asked again next sync
        raise ToolProblem(f"cannot read ALARM's {ALARM_DIR} for systemd {rel.version}: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RenderProblem(f"cannot read ALARM's {ALARM_DIR} for systemd {rel.version}: {exc}") from None
    try:
        mk.check_source_keys({path.rsplit("/", 1)[1]: data for path, data in keys.items()}, fingerprints)
    except mk.SourceKeyError as exc:
        raise RenderProblem(f"ALARM's {ALARM_DIR} at {revision.commit[:12]} ({revision.version}): source keys "
                            f"for its signed sources: {exc}") from None
    if ESP_PATCH in files:
        raise RenderProblem(f"ALARM's {ALARM_DIR} has a file named {ESP_PATCH}: rename avfrepo's")

    patch = esp_patch(ctx.trees["systemd"], rel.pkgver)
    try:
        text, split = derive(pkgbuild, arch=ctx.config.repo.arch, patch_name=ESP_PATCH, patch=patch,
                             revision=revision.commit)
    except RuleMismatch as exc:
        raise RenderProblem(f"systemd-avf rule {exc.rule} no longer matches ALARM's {ALARM_DIR}/PKGBUILD at "
                            f"{revision.commit[:12]} ({revision.version}): {exc.reason}; the previous PKGBUILD "
                            "stays: adapt the rule in avfrepo/packages/systemd_avf.py") from None
    files = {**files, **keys, "PKGBUILD": text.encode(), ESP_PATCH: patch}
    notes = [f"ALARM {ALARM_DIR} at {revision.commit[:12]} ({revision.version}), {len(RULES)} rules: "
             + ", ".join(name for name, _ in RULES)]
    if relax_env_supported(ctx.trees["systemd"]):
        notes.append(f"systemd {rel.pkgver} honours {RELAX_ENV} ({ESP_FILE}): a configuration can leave "
                     f"systemd-avf out of [packages] enable and have the image set {RELAX_ENV}=1 where bootctl "
                     "and systemd-boot-update run (systemd_avf.relax_dropins()); check it on a device first")
    else:
        notes.append(f"systemd {rel.pkgver} does not read {RELAX_ENV} in {ESP_FILE}: the ESP patch is needed")
    if keys:
        notes.append(f"source keys from {ALARM_DIR}/{mk.SOURCE_KEYS_DIR}, each the key its name says and "
                     f"listed in validpgpkeys: {', '.join(sorted(fingerprints))}")
    return Rendered(NAME, rel.pkgver, {"systemd": rel.version, ALARM_PKGBUILDS: revision.commit}, files,
                    tuple(notes))
