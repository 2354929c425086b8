"""Real pacman against a private root: the client side of [avf], for the demo and tests.

Everything pacman touches (config, root, db, cache, keyring, log) lives under one folder,
so nothing on the host changes. Needs root (pacman -S refuses otherwise).
"""

from __future__ import annotations

from pathlib import Path

from .run import Result, run


class PacmanRoot:
    def __init__(self, base: Path, repos: dict[str, str], arch: str = "aarch64", siglevel: str = "Required",
                 gpgdir: Path | None = None):
        self.base = base
        self.root = base / "root"
        self.dbpath = base / "db"
        self.cache = base / "cache"
        self.gpgdir = gpgdir or base / "gnupg"
        self.conf = base / "pacman.conf"
        for d in (self.root, self.dbpath, self.cache):
            d.mkdir(parents=True, exist_ok=True)
        lines = ["[options]", f"Architecture = {arch}", f"SigLevel = {siglevel}",
                 "LocalFileSigLevel = Optional", ""]
        for name, server in repos.items():
            lines += [f"[{name}]", f"SigLevel = {siglevel}", f"Server = {server}", ""]
        self.conf.write_text("\n".join(lines))

    def _argv(self, *args: str) -> list[str]:
        return ["pacman", "--config", str(self.conf), "--root", str(self.root), "--dbpath", str(self.dbpath),
                "--cachedir", str(self.cache), "--gpgdir", str(self.gpgdir), "--logfile",
                str(self.base / "pacman.log"), *args]

    def trust(self, armored_key: Path, fingerprint: str) -> None:
        """Initialise the private keyring and locally sign the repository key."""
        g = ["--gpgdir", str(self.gpgdir)]
        run(["pacman-key", *g, "--init"], timeout=300)
        run(["pacman-key", *g, "--add", str(armored_key)])
        run(["pacman-key", *g, "--lsign-key", fingerprint])

    def pacman(self, *args: str, check: bool = True) -> Result:
        return run(self._argv(*args), check=check, timeout=600)

    def install(self, *packages: str, check: bool = True) -> Result:
        """Sync the dbs and install (dependencies not checked: the demo repo has no Arch core)."""
        return self.pacman("-Sy", "--noconfirm", "--noprogressbar", "--nodeps", "--nodeps", "--noscriptlet", *packages, check=check)
