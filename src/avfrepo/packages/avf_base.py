"""avf-base: the meta package an AVF Terminal image installs; depends on everything it needs.

It depends only on [avf] packages that have a rendered PKGBUILD in pkgbuilds/ (written by an
earlier sync or by this one): a package refused before it ever rendered is no dependency,
or the image could not be installed at all. Its version is its own (1, then pkgrel bumps
whenever the set of dependencies changes), since it has no upstream.
"""

from __future__ import annotations

from . import Context, Rendered, image_packages, registry, template

NAME = "avf-base"
UPSTREAMS: tuple[str, ...] = ()
READS_AVAILABLE = True      # ctx.available: the other packages' names (sync shows it only to modules that say so)

# Arch Linux ARM packages an AVF guest needs besides [avf]'s own
SYSTEM = ("base", "sudo", "avahi", "zram-generator", "openssl", "bash-completion")


def render(ctx: Context) -> Rendered:
    modules = registry()
    ours = sorted({p for module, names in ctx.available.items() if module != NAME and module in modules
                   for p in image_packages(modules[module], names)})
    files = {"PKGBUILD": template("avf-base/PKGBUILD.j2", depends=list(SYSTEM) + ours, repo=ctx.config.repo.name)}
    return Rendered(NAME, "1", {}, files)
