"""systemd-avf: Arch Linux ARM's systemd, rebuilt to accept an ESP without the ESP partition type.

Why: `src/shared/find-esp.c` refuses an EFI System Partition whose GPT partition type is
not the ESP type (in `verify_esp_blkid()` and `verify_esp_udev()`), and the disks of the
Android Terminal VM do not expose one. bootctl, systemd-boot's updates and the
gpt-auto generator then fail to find the ESP.

- Version: exactly ALARM's `core/systemd` pkgver (upstream `systemd`, an alpm-db upstream
  with `source_git`): a systemd-avf behind or ahead of core's systemd-libs would be a
  partial upgrade. Built from systemd's git repository at the matching tag (`v<pkgver>`);
  the tags are not signature-checked (no `?signed`: avfrepo carries no list of systemd's
  release keys), so prepare() checks that the tag is still the commit sync examined.
- The ESP patch is generated at sync time by a rule (nothing is copied from elsewhere): in
  each of the two functions, the one `if (<condition naming SD_GPT_ESP>)` followed by
  `return log_...(...);` keeps its condition and gets a debug log instead of the error
  return. The rule matching nothing, or its diff not applying (`patch --dry-run`), refuses
  the render with a RenderProblem naming the patch, the file and the systemd version: that
  is what "systemd changed that code" looks like.
- Names: the split packages are systemd-avf, systemd-avf-libs, systemd-avf-resolvconf,
  systemd-avf-sysvcompat and systemd-avf-ukify; each provides and conflicts with the core
  package it stands in for (`systemd=$pkgver`, ...), never shadowing core's names. No
  `replaces`: that would make `pacman -Syu` swap core's systemd for every user who merely
  enabled [avf]; switching is an explicit `pacman -S systemd-avf` (or the image step).
- relax_env_supported(tree) reports whether the checked-out systemd honours
  SYSTEMD_RELAX_ESP_CHECKS; the finding goes into the sync report, because with it the
  package may be unnecessary.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from ..run import run
from . import PKGVER_TOKEN, Context, Rendered, RenderProblem, SourceFile, sha256, template

NAME = "systemd-avf"
UPSTREAMS = ("systemd",)
TREES = {"systemd": ("src/shared",)}

ESP_FILE = "src/shared/find-esp.c"
ESP_FUNCTIONS = ("verify_esp_blkid", "verify_esp_udev")
ESP_PATCH = "avf-esp-any-partition-type.patch"
RELAX_ENV = "SYSTEMD_RELAX_ESP_CHECKS"

# split package -> the core package it stands in for
SPLIT = {
    "systemd-avf": "systemd",
    "systemd-avf-libs": "systemd-libs",
    "systemd-avf-resolvconf": "systemd-resolvconf",
    "systemd-avf-sysvcompat": "systemd-sysvcompat",
    "systemd-avf-ukify": "systemd-ukify",
}

# pacman hooks systemd-avf ships (what keeps sysusers, tmpfiles, units, hwdb current when
# other packages change): file -> (description, targets, also on removal, command)
HOOKS = {
    "20-systemd-avf-sysusers.hook": ("Creating system users (sysusers.d)", ("usr/lib/sysusers.d/*.conf",),
                                     False, "/usr/bin/systemd-sysusers"),
    "30-systemd-avf-tmpfiles.hook": ("Creating temporary files (tmpfiles.d)", ("usr/lib/tmpfiles.d/*.conf",),
                                     False, "/usr/bin/systemd-tmpfiles --create"),
    "30-systemd-avf-daemon-reload.hook": ("Reloading the system manager", ("usr/lib/systemd/system/*",),
                                          True, "/usr/bin/systemctl daemon-reload"),
    "30-systemd-avf-sysctl.hook": ("Applying kernel parameters (sysctl.d)", ("usr/lib/sysctl.d/*.conf",),
                                   False, "/usr/lib/systemd/systemd-sysctl"),
    "30-systemd-avf-hwdb.hook": ("Updating the hardware database", ("usr/lib/udev/hwdb.d/*",),
                                 True, "/usr/bin/systemd-hwdb --usr update"),
    "30-systemd-avf-catalog.hook": ("Updating the journal message catalog", ("usr/lib/systemd/catalog/*",),
                                    True, "/usr/bin/journalctl --update-catalog"),
    "30-systemd-avf-udev-reload.hook": ("Reloading device manager rules", ("usr/lib/udev/rules.d/*",),
                                        True, "/bin/sh -c '/usr/bin/udevadm control --reload 2>/dev/null || :'"),
}

# The rule. A function definition (to the first `}` in column 0), and in it the partition
# type check: `if (<one line naming the ESP type>)` + `return log_...(...);` (strings may
# hold `;`), possibly over several lines.
# the ESP type by its name in the various systemd versions, or spelled out as a GUID string
_ESP_TYPE = r"(?:\b(?:SD_GPT_ESP|GPT_ESP|ESP_GUID)\b|\"(?i:c12a7328-f81f-11d2-ba4b-00a0c93ec93b)\")"
_TYPE_CHECK = re.compile(
    r"^(?P<if>[ \t]+if \([^\n]*" + _ESP_TYPE + r"[^\n]*\)[ \t]*\n)"
    r"(?P<indent>[ \t]+)return\s+log_\w+\((?:[^;\"]|\"(?:[^\"\\\n]|\\.)*\")*\);[ \t]*\n",
    re.M)
_RELAX = re.compile(r"\b\w*getenv\w*\s*\(\s*\"" + RELAX_ENV + r"\"")   # getenv_bool, secure_getenv, ...
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
    src = tree / ESP_FILE
    where = f"{ESP_PATCH} for {ESP_FILE} of systemd {version}"
    if not src.is_file():
        raise RenderProblem(f"cannot make {where}: the file does not exist any more")
    old = src.read_text()
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


def relax_env_supported(tree: Path) -> bool:
    """Whether the checked-out systemd reads SYSTEMD_RELAX_ESP_CHECKS in find-esp.c (a getenv
    call naming it, not a mere mention)."""
    src = tree / ESP_FILE
    return src.is_file() and bool(_RELAX.search(src.read_text(errors="replace")))


def render(ctx: Context) -> Rendered:
    rel = ctx.releases["systemd"]
    up = ctx.config.upstream("systemd")
    source_git = getattr(up, "source_git", None)
    if not source_git or not rel.tag or not rel.commit:
        raise RenderProblem("systemd-avf builds from systemd's git repository: [upstreams.systemd] needs "
                            "source_git (and its tag for the pkgver)")
    tree = ctx.trees["systemd"]
    files: dict[str, bytes] = {ESP_PATCH: esp_patch(tree, rel.pkgver)}
    sources = [SourceFile(ESP_PATCH, sha256(files[ESP_PATCH]))]
    for name, (description, targets, on_remove, command) in HOOKS.items():
        files[name] = template("systemd-avf/hook.j2", description=description, targets=targets,
                               on_remove=on_remove, command=command)
        sources.append(SourceFile(name, sha256(files[name]), f"/usr/share/libalpm/hooks/{name}"))
    # the tag as it follows from pkgver (the version token becomes the pkgver when finalized);
    # literal when the two disagree (cannot happen with alpm_db)
    tag = up.source_tag.format(pkgver=PKGVER_TOKEN)
    if up.source_tag.format(pkgver=rel.pkgver) != rel.tag:
        tag = rel.tag
    files["PKGBUILD"] = template("systemd-avf/PKGBUILD.j2", split=SPLIT, source_git=source_git,
                                 tag=tag, commit=rel.commit, sources=sources,
                                 patch=ESP_PATCH, hooks=[s for s in sources if s.dest])
    if relax_env_supported(tree):
        note = (f"systemd {rel.pkgver} honours {RELAX_ENV} ({ESP_FILE}): setting {RELAX_ENV}=1 in the guest "
                "may make systemd-avf unnecessary; check it on a device before dropping the package")
    else:
        note = f"systemd {rel.pkgver} does not read {RELAX_ENV} in {ESP_FILE}: the ESP patch is needed"
    return Rendered(NAME, rel.pkgver, {"systemd": rel.version}, files, (note,))
