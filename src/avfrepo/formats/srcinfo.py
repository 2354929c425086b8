"""`.SRCINFO` (makepkg --printsrcinfo output) -> typed packages."""

from __future__ import annotations

from dataclasses import dataclass, field

@dataclass(frozen=True)
class SrcInfo:
    pkgbase: str
    pkgver: str
    pkgrel: str
    epoch: str
    pkgnames: tuple[str, ...]
    base: dict[str, list[str]] = field(default_factory=dict)
    per_package: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return (f"{self.epoch}:" if self.epoch else "") + f"{self.pkgver}-{self.pkgrel}"

    def get(self, key: str, pkgname: str | None = None) -> list[str]:
        """A key's values for one split package, resolved as makepkg resolves them.

        makepkg first merges pkgbase's arch variants (depends_aarch64, ...) into the plain key;
        a package function that sets the plain key replaces that merged list (an empty
        `depends = ` clears it); arch variants the package function sets are appended.
        """
        own = self.per_package.get(pkgname or "", {})
        if key in own:
            plain = list(own[key])
        else:
            plain = [v for k in sorted(self.base) if _is(k, key) for v in self.base[k]]
        return plain + [v for k in sorted(own) if k != key and _is(k, key) for v in own[k]]

    def all_depends(self) -> set[str]:
        """Names (without version constraints) from depends and makedepends of every package."""
        names: set[str] = set()
        for pkg in self.pkgnames:
            for key in ("depends", "makedepends"):
                for dep in self.get(key, pkg):
                    names.add(_dep_name(dep))
        return names


def _is(k: str, key: str) -> bool:
    return k == key or k.startswith(key + "_")


def _dep_name(dep: str) -> str:
    for op in (">=", "<=", "=", ">", "<"):
        if op in dep:
            return dep.split(op, 1)[0]
    return dep


def parse(text: str) -> SrcInfo:
    base: dict[str, list[str]] = {}
    per: dict[str, dict[str, list[str]]] = {}
    names: list[str] = []
    current = base
    pkgbase = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # makepkg writes "key = value"; a cleared array is "key = " (trailing space)
        key, sep, value = (line[:-2], " =", "") if line.endswith(" =") else line.partition(" = ")
        if not sep or not key:
            raise ValueError(f".SRCINFO: cannot read line {raw!r}")
        if key == "pkgbase":
            pkgbase = value
            current = base
            continue
        if key == "pkgname":
            names.append(value)
            current = per.setdefault(value, {})
            continue
        values = current.setdefault(key, [])
        if value:
            values.append(value)
    if not pkgbase or not names:
        raise ValueError(".SRCINFO: no pkgbase or pkgname")

    def one(key: str) -> str:
        vals = base.get(key, [])
        return vals[0] if vals else ""
    return SrcInfo(pkgbase, one("pkgver"), one("pkgrel"), one("epoch"), tuple(names), base, per)
