"""avf-keyring: the repository's public key, for `pacman-key --populate <repo>`.

pkgver is the key's creation date, so a new signing key is a new upstream version.
"""

from __future__ import annotations

from . import Context, RenderProblem, Rendered, SourceFile, sha256, template

NAME = "avf-keyring"
UPSTREAMS: tuple[str, ...] = ()
READS_KEY = True            # ctx.key and ctx.public_key (sync shows them only to modules that say so)


def render(ctx: Context) -> Rendered:
    if ctx.key is None or not ctx.public_key:
        raise RenderProblem("no signing key to put in the keyring: run `avfrepo key init` "
                            "or configure [signing]")
    repo = ctx.config.repo.name
    files = {
        f"{repo}.gpg": ctx.public_key,
        f"{repo}-trusted": f"{ctx.key.fingerprint}:4:\n".encode(),
        f"{repo}-revoked": b"",
    }
    sources = [SourceFile(n, sha256(d), f"/usr/share/pacman/keyrings/{n}") for n, d in files.items()]
    files["avf-keyring.install"] = template("avf-keyring/avf-keyring.install", repo=repo)
    files["PKGBUILD"] = template("avf-keyring/PKGBUILD.j2", sources=sources, repo=repo,
                                 fingerprint=ctx.key.fingerprint, server=ctx.config.repo.server)
    return Rendered(NAME, ctx.key.created_date, {"signing-key": ctx.key.fingerprint}, files)
