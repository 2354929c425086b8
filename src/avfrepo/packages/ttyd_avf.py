"""ttyd-avf: ttyd, the Terminal app's web terminal, with AVF's patches where they apply.

- Source: ttyd's git repository pinned to the release's commit (small; no tarball to trust).
- AVF's `build/debian/ttyd/xtermjs_a11y.patch` rewrites the generated `src/html.h` of one
  ttyd release (1.7.7): it is carried when it applies to the tracked release, and left
  out, with a note in the sync report, when it does not.
- avfrepo's own `login-vhangup.patch` (templates/ttyd-avf/): ttyd 1.7.7 stops reading the
  terminal for good when util-linux login (Arch's /usr/bin/login) hangs it up at the start of
  every session, so the Terminal app's terminal could stay blank; carried while it applies, left
  out with a note (check whether the ttyd release fixed it) when it does not.
- libwebsockets: Arch's package, built with OpenSSL. AVF's `client_cert.patch` only touches
  libwebsockets' mbedtls backend, so it would change nothing here; OpenSSL verifies the
  host's client certificate with `--ssl-ca` unpatched (see ttyd.service in avf-config).
"""

from __future__ import annotations

from ..run import run
from . import Context, Rendered, SourceFile, sha256, template, template_bytes, tree_file

NAME = "ttyd-avf"
UPSTREAMS = ("ttyd", "avf")
TREES = {"ttyd": (), "avf": ("build/debian/ttyd",)}
PATCH = "xtermjs_a11y.patch"
OWN_PATCH = "login-vhangup.patch"


def applies(patch: bytes, tree) -> tuple[bool, str]:
    res = run(["patch", "-p1", "--dry-run", "--force", "--silent"], cwd=tree, input=patch.decode(), check=False)
    return res.returncode == 0, (res.stdout + res.stderr).strip()


def _carry(name: str, data: bytes, tree, files: dict[str, bytes], sources: list[SourceFile]) -> str | None:
    """Carry the patch when it applies to tree: None. Else the refusal's first line, as " (...)"
    for the sync report's note ("" when patch said nothing), and nothing is carried."""
    ok, why = applies(data, tree)
    if not ok:
        return f" ({why.splitlines()[0]})" if why else ""
    files[name] = data
    sources.append(SourceFile(name, sha256(data)))
    return None


def render(ctx: Context) -> Rendered:
    ttyd, avf = ctx.releases["ttyd"], ctx.releases["avf"]
    notes: list[str] = []
    files: dict[str, bytes] = {}
    sources: list[SourceFile] = []
    try:
        patch: bytes | None = tree_file(ctx.trees["avf"], f"build/debian/ttyd/{PATCH}", f"AVF {avf.version}")
    except FileNotFoundError:
        patch = None
    if patch is None:
        notes.append(f"AVF {avf.version} has no build/debian/ttyd/{PATCH}")
    elif (why := _carry(PATCH, patch, ctx.trees["ttyd"], files, sources)) is not None:
        notes.append(f"{PATCH} from AVF {avf.version} does not apply to ttyd {ttyd.version}: left out" + why)
    why = _carry(OWN_PATCH, template_bytes(f"ttyd-avf/{OWN_PATCH}"), ctx.trees["ttyd"], files, sources)
    if why is not None:
        notes.append(f"avfrepo's {OWN_PATCH} does not apply to ttyd {ttyd.version}: left out; check whether this "
                     "release still stops reading the terminal when login hangs it up (a blank terminal)" + why)
    files["PKGBUILD"] = template("ttyd-avf/PKGBUILD.j2", url=ctx.config.upstream("ttyd").url,
                                 commit=ttyd.commit, sources=sources)
    return Rendered(NAME, ttyd.pkgver, {"ttyd": ttyd.version, "avf": avf.version}, files, tuple(notes))
