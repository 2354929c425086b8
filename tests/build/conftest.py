"""Small synthetic packages written for the build tests (real makepkg builds them)."""

from __future__ import annotations

import textwrap

import pytest

from avfrepo.makepkg import printsrcinfo


def write_pkg(cfg, name: str, version: str = "1.0", rel: int | str = 1, depends: tuple[str, ...] = (),
              body: str = 'echo "$pkgname" > "$pkgdir/usr/share/$pkgname.txt"', fail: bool = False,
              provides: tuple[str, ...] = ()) -> None:
    deps = " ".join(f"'{d}'" for d in depends)
    provs = " ".join(f"'{p}'" for p in provides)
    pkgbuild = textwrap.dedent(f"""\
        pkgname={name}
        pkgver={version}
        pkgrel={rel}
        pkgdesc="synthetic test package {name}"
        arch=(any)
        license=(MIT)
        depends=({deps})
        provides=({provs})
        options=(!strip)

        package() {{
          install -d "$pkgdir/usr/share"
          {"false" if fail else body}
        }}
        """).encode()
    files = {"PKGBUILD": pkgbuild}
    files[".SRCINFO"] = printsrcinfo(cfg, files).encode()
    d = cfg.pkgbuilds / name
    d.mkdir(parents=True, exist_ok=True)
    for rel_path, data in files.items():
        (d / rel_path).write_bytes(data)


@pytest.fixture
def pkgs(cfg):
    """A chain a <- b <- c, an independent d."""
    write_pkg(cfg, "t-a")
    write_pkg(cfg, "t-b", depends=("t-a>=1.0",))
    write_pkg(cfg, "t-c", depends=("t-b",))
    write_pkg(cfg, "t-d")
    return cfg
