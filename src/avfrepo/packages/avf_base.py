"""avf-base: the meta package an AVF Terminal image installs; depends on everything it needs.

Its version is its own (1, then pkgrel bumps whenever the set of dependencies changes),
since it has no upstream.
"""

from __future__ import annotations

from . import Context, Rendered, template

NAME = "avf-base"
UPSTREAMS: tuple[str, ...] = ()

# Arch Linux ARM packages an AVF guest needs besides [avf]'s own
SYSTEM = ("base", "sudo", "avahi", "zram-generator", "openssl", "bash-completion")


def render(ctx: Context) -> Rendered:
    ours = sorted(n for n in ctx.enabled if n != NAME)
    files = {"PKGBUILD": template("avf-base/PKGBUILD.j2", depends=list(SYSTEM) + ours, repo=ctx.config.repo.name)}
    return Rendered(NAME, "1", {}, files)
