"""`avfrepo doctor`: is this checkout (a fresh fork, a CI job) set up? Every check that can be
made locally, one line each: what holds, or what is MISSING and how to set it.

    config       the config file loads
    key          the repository key: its public part at least (sync renders avf-keyring with
                 it); with publish=True a secret key that can sign (preflight.signing)
    fingerprint  $AVF_SIGNING_FINGERPRINT, when set, names that key (CI sets it from the
                 repository variable of the same name)
    server       [repo] server is a real http(s) URL, not the shipped placeholder (a trailing
                 `/$arch` is refused by config.py already: the config check names it)
    image        [image] is present, reads [avf] from the server (a CI job never fills a
                 local repo/) and its system repositories are real servers
    tools        what the build backend needs on this host (preflight.for_build)

The checks before work themselves live in preflight.py; this module only runs them and
collects their one-line answers. Nothing is written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import config as config_mod, preflight
from .errors import AvfrepoError

CHECKS = ("config", "key", "fingerprint", "server", "image", "tools")
SYNC_CHECKS = ("config", "key", "fingerprint")       # what `avfrepo sync` in CI needs
FINGERPRINT_ENV = "AVF_SIGNING_FINGERPRINT"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str          # ok: what was found; not ok: what is missing and how to set it

    def line(self) -> str:
        return f"{self.name:<12} {'ok' if self.ok else 'MISSING'}: {self.detail}"


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks]

    def missing(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict:
        return {"ok": self.ok, "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks]}


def placeholder_host(url: str) -> bool:
    """A host that cannot exist (RFC 2606/6761), the same rule as RepoConfig.placeholder_server."""
    return config_mod.RepoConfig("", Path(), "", url).placeholder_server


def _real_url(url: str) -> str | None:
    """None when url is an http(s) URL of a real host, else why not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL a CI runner can reach"
    if placeholder_host(url):
        return "a placeholder (a reserved domain that cannot exist)"
    return None


def check_server(cfg: config_mod.Config) -> Check:
    server = cfg.repo.server
    fix = (f"set [repo] server in {cfg.file} to where repo/{cfg.repo.arch} is hosted, without /$arch "
           f"(a fork: https://github.com/OWNER/REPO/releases/download)")
    why = _real_url(server)
    if why:
        return Check("server", False, f"[repo] server {server} is {why}: {fix}")
    return Check("server", True, f"[repo] server {server} (pacman: Server = {server.rstrip('/')}/$arch)")


def check_image(cfg: config_mod.Config) -> Check:
    img = cfg.image
    if img is None:
        return Check("image", False, f"no [image] section in {cfg.file}: the image would read [avf] from the local "
                                     f"{cfg.repo.path}, which a CI job never fills: add [image] with "
                                     f'avf_source = "server"')
    if img.avf_source != "server":
        return Check("image", False, f'[image] avf_source = "{img.avf_source}" reads [avf] from the local '
                                     f"{cfg.repo.path}, which a CI job never fills: set [image] "
                                     f'avf_source = "server" in {cfg.file}')
    bad = [(r.name, r.server, why) for r in img.repos if (why := _real_url(r.server.replace("$arch", cfg.repo.arch)
                                                                            .replace("$repo", r.name)))]
    if bad:
        return Check("image", False, "; ".join(f"[image] repos {name}: server {server} is {why}" for name, server, why
                                               in bad) + f": set a real mirror in {cfg.file}")
    return Check("image", True, "[avf] from [repo] server; " + ", ".join(r.name for r in img.repos) + " from "
                 + ", ".join(sorted({r.server for r in img.repos})))


def check_key(cfg: config_mod.Config, *, publish: bool):
    """(Check, the key or None)."""
    from . import signing as signing_mod
    try:
        if publish:
            key = preflight.signing(cfg)
            return Check("key", True, f"secret key {key.fingerprint} ({key.uid}) can sign"), key
        key = signing_mod.keyring_key(cfg.signing)
    except AvfrepoError as exc:
        return Check("key", False, f"{exc} (CI: the variable AVF_PUBLIC_KEY"
                     + (", the secret AVF_SIGNING_KEY of the environment avf-signing" if publish else "")
                     + "; README: Fork checklist)"), None
    return Check("key", True, f"{key.fingerprint} ({key.uid}) in {cfg.signing.gnupg_home}"), key


def check_fingerprint(key, env: dict[str, str]) -> Check:
    want = re.sub(r"\s+", "", env.get(FINGERPRINT_ENV, "")).upper()
    if not want:
        return Check("fingerprint", True, f"{FINGERPRINT_ENV} not set here (CI sets it from the repository variable "
                                          f"{FINGERPRINT_ENV})")
    if not re.fullmatch(r"[0-9A-F]{40}", want):
        return Check("fingerprint", False, f"{FINGERPRINT_ENV}={env[FINGERPRINT_ENV]!r} is not a 40-hex-digit "
                                           f"fingerprint: set it to the key's (`gpg --list-keys --with-colons`)")
    if key is None:
        return Check("fingerprint", False, f"{FINGERPRINT_ENV}={want} cannot be checked: no key (see key)")
    if key.fingerprint.upper() != want:
        return Check("fingerprint", False, f"{FINGERPRINT_ENV}={want} but the key is {key.fingerprint}: set the "
                                           f"variable {FINGERPRINT_ENV} to {key.fingerprint}, or import the key "
                                           f"it names")
    return Check("fingerprint", True, f"{FINGERPRINT_ENV} names the key {key.fingerprint}")


def check_tools(cfg: config_mod.Config, *, publish: bool) -> Check:
    try:
        preflight.for_build(cfg, backend=cfg.build.backend, publish=publish)
    except preflight.PreflightError as exc:
        return Check("tools", False, str(exc))
    return Check("tools", True, f"the {cfg.build.backend} backend's tools, user and folders"
                 + (", and publishing's" if publish else ""))


def doctor(path: str | os.PathLike[str] | None = None, *, publish: bool = False,
           only: tuple[str, ...] = CHECKS, env: dict[str, str] | None = None) -> Report:
    """Run the checks named in `only` (CHECKS order) on the config at path (config.load's
    search when None); the fingerprint comes from env (default os.environ)."""
    unknown = set(only) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown doctor checks: {', '.join(sorted(unknown))}")
    env = os.environ if env is None else env
    report = Report()
    try:
        cfg = config_mod.load(path)
    except AvfrepoError as exc:
        report.checks.append(Check("config", False, f"{exc}"))
        return report                    # nothing else can be asked without it
    report.checks.append(Check("config", True, f"{cfg.file}"))
    key = None
    if "key" in only or "fingerprint" in only:
        check, key = check_key(cfg, publish=publish)
        if "key" in only:
            report.checks.append(check)
    if "fingerprint" in only:
        report.checks.append(check_fingerprint(key, env))
    if "server" in only:
        report.checks.append(check_server(cfg))
    if "image" in only:
        report.checks.append(check_image(cfg))
    if "tools" in only:
        report.checks.append(check_tools(cfg, publish=publish))
    return report
