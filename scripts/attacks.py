#!/usr/bin/env python3
"""Re-run the attacks of issue 12 against a repository made by `avfrepo demo --keep`.

    avfrepo demo --workdir /tmp/demo --keep
    python scripts/attacks.py /tmp/demo          # needs root (tmpfs mounts), like the demo

Each attack works on a fresh copy of the demo folder and prints HELD or FAILED with what it
saw; the last line counts them. Exit 0 when every attack held.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

AVFREPO = [sys.executable, "-m", "avfrepo"]
RESULTS: list[tuple[str, bool, str]] = []


class Demo:
    def __init__(self, src: Path, scratch: Path, label: str):
        self.dir = scratch / label
        shutil.copytree(src, self.dir, symlinks=True, ignore=shutil.ignore_patterns("S.gpg-agent*", "client"))
        self.src = src
        self.cfg = self.dir / "avfrepo.toml"
        self.cfg.write_text(self.cfg.read_text().replace(str(src), str(self.dir)))
        self.repo = self.dir / "repo"
        self.pub = self.repo / "aarch64"
        self.gnupg = self.dir / "gnupg"

    def run(self, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*AVFREPO, "--config", str(self.cfg), *args], capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, timeout=timeout, cwd=self.dir)

    def verify_ok(self) -> bool:
        return self.run("verify").returncode == 0

    def pkgs(self) -> list[Path]:
        return sorted(p for p in self.pub.glob("*.pkg.tar.zst") if not p.is_symlink())

    def sign(self, f: Path) -> None:
        subprocess.run(["gpg", "--homedir", str(self.gnupg), "--batch", "--yes", "--detach-sign", "--no-armor",
                        "--output", str(f) + ".sig", str(f)], check=True, capture_output=True)

    def craft(self, name: str, ver: str, filename: str | None = None, note: str = "") -> Path:
        """A signed package repacked from avf-base with other .PKGINFO name/version."""
        src = next((self.repo / "pool").glob("avf-base-*.pkg.tar.zst"), None) or \
            next(self.src.glob("repo/pool/avf-base-*.pkg.tar.zst"))
        work = Path(tempfile.mkdtemp(dir=self.dir))
        subprocess.run(["bsdtar", "-xf", str(src), "-C", str(work)], check=True)
        info = work / ".PKGINFO"
        lines = []
        for line in info.read_text().splitlines():
            k = line.partition(" = ")[0]
            lines.append(f"pkgname = {name}" if k == "pkgname" else f"pkgbase = {name}" if k == "pkgbase"
                         else f"pkgver = {ver}" if k == "pkgver" else line)
        info.write_text("\n".join(lines) + f"\n# {note}\n")
        (work / ".MTREE").unlink(missing_ok=True)
        (self.dir / "incoming").mkdir(exist_ok=True)
        out_dir = Path(tempfile.mkdtemp(dir=self.dir / "incoming", prefix=f"{name}-{ver}-{note}-"))
        out = out_dir / (filename or f"{name}-{ver}-any.pkg.tar.zst")
        subprocess.run(["bsdtar", "--zstd", "-cf", str(out), "-C", str(work), *sorted(os.listdir(work))], check=True)
        self.sign(out)
        return out


def one_line(res: subprocess.CompletedProcess) -> bool:
    return "Traceback" not in res.stderr and res.stderr.startswith("avfrepo: error:")


def attack(label: str):
    def deco(fn):
        fn.label = label
        ATTACKS.append(fn)
        return fn
    return deco


ATTACKS = []


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "attack", str(path)], check=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


def _on_full_disk(d: Demo, act) -> tuple[bool, str]:
    """Move the repo onto a small tmpfs, then try every amount of free space."""
    data = d.dir / "repo-data"
    shutil.move(d.repo, data)
    mount_tmpfs(d.repo, "2m")
    try:
        subprocess.run(["cp", "-a", f"{data}/.", str(d.repo)], check=True)
        seen = []
        for pages in range(0, 40, 2):
            filler = d.repo / "filler"
            st = os.statvfs(d.repo)
            with open(filler, "wb") as fh:
                fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - pages * 4096))
            res = act()
            filler.unlink()
            ok = d.verify_ok()
            seen.append((res.returncode, ok, one_line(res) if res.returncode else True))
            if not ok or (res.returncode and not one_line(res)):
                return False, f"at {pages} free pages: exit {res.returncode}, verify ok={ok}: {res.stderr[-300:]}"
            if res.returncode == 0:
                break
        return True, f"{len(seen)} tries: every failure one line, old view kept, then published"
    finally:
        umount(d.repo)


@attack("full disk during repo add: no 0-byte db published")
def a_full_disk_add(d):
    pkg = d.craft("avf-base", "1-2")
    return _on_full_disk(d, lambda: d.run("repo", "add", str(pkg)))


@attack("full disk during repo remove: no 0-byte db published")
def a_full_disk_remove(d):
    return _on_full_disk(d, lambda: d.run("repo", "remove", "avf-base"))


@attack("revoked signing key: refused before any work, db unchanged")
def a_revoked(d):
    fpr = next((d.gnupg / "openpgp-revocs.d").glob("*.rev")).stem
    rev = d.dir / "rev.asc"
    rev.write_text((d.gnupg / "openpgp-revocs.d" / f"{fpr}.rev").read_text().replace(":-----BEGIN", "-----BEGIN"))
    pkg = d.craft("avf-base", "1-2")
    subprocess.run(["gpg", "--homedir", str(d.gnupg), "--batch", "--import", str(rev)], check=True, capture_output=True)
    before = (d.pub / "avf.db.tar.gz").read_bytes()
    res = d.run("repo", "add", str(pkg))
    return (res.returncode == 1 and "revoked" in res.stderr and (d.pub / "avf.db.tar.gz").read_bytes() == before,
            res.stderr.strip()[:200])


@attack("provenance record symlinked to a secret: not copied into the served view")
def a_prov_symlink(d):
    pkg = d.craft("avf-base", "1-2")
    secret = d.dir / "secret"
    secret.write_text("TOP-SECRET\n")
    rec = Path(str(pkg) + ".provenance.json")
    rec.symlink_to(secret)
    d.sign(rec)
    res = d.run("repo", "add", str(pkg))
    leaked = any(b"TOP-SECRET" in p.read_bytes() for p in d.repo.rglob("*") if p.is_file())
    return res.returncode == 1 and not leaked and one_line(res), res.stderr.strip()[:200]


@attack("signed package named -dash: refused")
def a_dash(d):
    pkg = d.craft("-dash", "1-1")
    res = d.run("repo", "add", str(pkg))
    return res.returncode == 1 and "-dash" in res.stderr and d.verify_ok(), res.stderr.strip()[:200]


@attack("bytes after .pkg.tar in the file name: refused (no phantom)")
def a_suffix(d):
    pkg = d.craft("avf-base", "1-2", "avf-base-1-2-any.pkg.tar.zst.bak")
    res = d.run("repo", "add", str(pkg))
    return res.returncode == 1 and not list(d.repo.rglob("*.bak")), res.stderr.strip()[:200]


def _served(d: Demo) -> Path:
    return Path(os.path.realpath(d.pub))


@attack("verify: avf.db pointing at an old db left in the snapshot")
def a_db_old(d):
    snap = _served(d)
    shutil.copy(snap / "avf.db.tar.gz", snap / "old.db.tar.gz")
    (snap / "avf.db").unlink()
    (snap / "avf.db").symlink_to("old.db.tar.gz")
    return not d.verify_ok(), d.run("verify").stdout[-200:]


@attack("verify: avf.db deleted")
def a_db_deleted(d):
    (_served(d) / "avf.db").unlink()
    return not d.verify_ok(), ""


@attack("verify: avf.db garbage")
def a_db_garbage(d):
    (_served(d) / "avf.db").unlink()
    (_served(d) / "avf.db").write_bytes(os.urandom(300))
    return not d.verify_ok(), ""


@attack("verify: avf.asc replaced by another key")
def a_asc(d):
    other = d.dir / "other-gnupg"
    other.mkdir(mode=0o700)
    subprocess.run(["gpg", "--homedir", str(other), "--batch", "--passphrase", "", "--quick-gen-key", "x <x@x>",
                    "ed25519", "sign", "never"], check=True, capture_output=True)
    asc = _served(d) / "avf.asc"
    asc.unlink()
    asc.write_bytes(subprocess.run(["gpg", "--homedir", str(other), "--armor", "--export"], capture_output=True,
                                   check=True).stdout)
    return not d.verify_ok(), ""


@attack("verify: a package that is a symlink out of the repository")
def a_pkg_symlink(d):
    p = d.pkgs()[0]
    out = d.dir / "outside.pkg"
    shutil.copy(p, out)
    p.unlink()
    p.symlink_to(out)
    return not d.verify_ok(), ""


@attack("verify: the arch link pointing outside the repository")
def a_arch_outside(d):
    copy = shutil.copytree(_served(d), d.dir / "elsewhere", symlinks=True)
    d.pub.unlink()
    d.pub.symlink_to(copy)
    return not d.verify_ok(), ""


@attack("verify: an extra unsigned file served")
def a_extra(d):
    (_served(d) / "README.txt").write_text("hello\n")
    return not d.verify_ok(), ""


@attack("verify: replay of an older, validly signed snapshot")
def a_replay(d):
    pkg = d.craft("avf-base", "1-2")
    assert d.run("repo", "add", str(pkg)).returncode == 0
    gens = sorted(int(p.name) for p in (d.repo / "snapshots").iterdir() if p.name.isdigit())
    d.pub.unlink()
    d.pub.symlink_to(f"snapshots/{gens[0]}")
    first = d.verify_ok()
    shutil.rmtree(d.repo / "snapshots" / str(gens[-1]))
    return not first and not d.verify_ok(), ""


@attack("verify takes the repository lock (no false BAD during a publish)")
def a_verify_lock(d):
    bad = 0
    for i in range(6):
        pkg = d.craft("avf-base", f"1-{i + 2}", note=str(i))
        p = subprocess.Popen([*AVFREPO, "--config", str(d.cfg), "repo", "add", str(pkg)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        while p.poll() is None:
            if not d.verify_ok():
                bad += 1
        p.wait()
    return bad == 0, f"{bad} false BAD"


@attack("lock file symlink: target not truncated")
def a_lock_symlink(d):
    target = d.dir / "precious"
    target.write_text("precious\n")
    (d.repo / ".lock").unlink(missing_ok=True)
    (d.repo / ".lock").symlink_to(target)
    res = d.run("repo", "add", str(d.craft("avf-base", "1-2")))
    return target.read_text() == "precious\n" and res.returncode == 1 and one_line(res), res.stderr.strip()[:200]


@attack("dangling arch link: not taken as an empty repository")
def a_dangling(d):
    d.pub.unlink()
    d.pub.symlink_to("snapshots/999")
    res = d.run("repo", "add", str(d.craft("avf-base", "1-2")))
    return res.returncode == 1 and "dangling" in res.stderr, res.stderr.strip()[:200]


@attack("repo and cache on different file systems: publish works")
def a_exdev(d):
    cache = d.dir / "cache"
    data = d.dir / "cache-data"
    shutil.move(cache, data)
    mount_tmpfs(cache, "16m")
    try:
        subprocess.run(["cp", "-a", f"{data}/.", str(cache)], check=True)
        res = d.run("repo", "add", str(d.craft("avf-base", "1-2")))
        return res.returncode == 0 and d.verify_ok(), res.stderr.strip()[:200]
    finally:
        umount(cache)


@attack("pool copy left by a killed build does not block the rebuild")
def a_pool_leftover(d):
    other = d.craft("avf-base", "1-2", note="killed")
    shutil.copy(other, d.repo / "pool" / other.name)
    shutil.copy(str(other) + ".sig", d.repo / "pool" / (other.name + ".sig"))
    res = d.run("repo", "add", str(d.craft("avf-base", "1-2", note="rebuild")))
    return res.returncode == 0 and d.verify_ok(), res.stderr.strip()[:200]


@attack("repo remove + repo add of the same version with other bytes: refused")
def a_remove_add(d):
    assert d.run("repo", "remove", "avf-base").returncode == 0
    res = d.run("repo", "add", str(d.craft("avf-base", "1-1", note="other")))
    return res.returncode == 1 and "bytes forever" in res.stderr, res.stderr.strip()[:200]


@attack("a rollback is not undone by the next build")
def a_rollback(d):
    pkg2 = d.craft("avf-base", "1-2")
    assert d.run("repo", "add", str(pkg2)).returncode == 0
    assert d.run("repo", "rollback", "avf-base").returncode == 0
    d.run("repo", "add", str(pkg2))        # the next build: the same (reproducible) 1-2 again
    out = d.run("repo", "list", "--json").stdout
    rows = {r["name"]: r["published"] for r in json.loads(out)}
    return rows.get("avf-base") == "1-1", f"published after the rebuild: {rows.get('avf-base')}"


@attack("a kill inside the swap of pkgbuilds/<pkg> leaves it present")
def a_pkgbuilds_kill(d):
    code = ("import os,sys,time\nfrom pathlib import Path\nfrom avfrepo import fsutil\nreal=os.replace\n"
            "def slow(a,b):\n  real(a,b); time.sleep(0.3)\nos.replace=slow\nprint('go',flush=True)\n"
            "fsutil.replace_dir(Path(sys.argv[1]), {'PKGBUILD': b'new'})\n")
    target = d.dir / "pkgbuilds" / "avf-config"
    for delay in (0.05, 0.15, 0.25, 0.35, 0.5):
        p = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE)
        p.stdout.readline()
        time.sleep(delay)
        p.kill()
        p.wait()
        if not (target / "PKGBUILD").is_file():
            return False, f"missing after a kill at {delay} s"
    return True, "present after 5 kills"


@attack("the staging dir of a killed swap is never committed by sync --commit")
def a_staging(d):
    git = ["git", "-C", str(d.dir), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "avfrepo.toml"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    stale = d.dir / "pkgbuilds" / ".avf-config.new.dead"
    stale.mkdir()
    (stale / "PKGBUILD").write_text("half\n")
    res = d.run("sync", "--commit")
    files = subprocess.run([*git, "log", "--name-only", "--format="], capture_output=True, text=True).stdout
    return ".new." not in files and res.returncode == 0, f"sync exit {res.returncode}; committed: {files.split()[:5]}"


@attack("timeout = inf / nan rejected by the config")
def a_inf(d):
    ok = True
    for v in ("inf", "nan"):
        d.cfg.write_text(d.cfg.read_text() + "")
        text = d.cfg.read_text()
        d.cfg.write_text(text.replace("[upstreams.avf]\n", f"[upstreams.avf]\ntimeout = {v}\n"))
        res = d.run("status")
        ok &= res.returncode == 2 and "finite" in res.stderr
        d.cfg.write_text(text)
    return ok, ""


class _Trickle(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass

    def log_message(self, *a):
        pass


@attack("an upstream sending 1 byte every 0.5 s meets the deadline")
def a_trickle(d):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    code = ("import sys\nfrom avfrepo.sources.net import http_get\nfrom avfrepo.config import NetPolicy\n"
            "http_get('x', sys.argv[1], NetPolicy(timeout=5, retries=0, deadline=3))\n")
    start = time.monotonic()
    try:
        res = subprocess.run([sys.executable, "-c", code, f"http://127.0.0.1:{srv.server_address[1]}/core.db"],
                             capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False, "still hanging after 60 s"
    finally:
        srv.shutdown()
    took = time.monotonic() - start
    return "no complete answer within 3 s" in res.stderr and took < 10, f"ended after {took:.1f} s"


def _db_bomb(d: Demo, raw: bytes) -> tuple[bool, str]:
    code = ("import sys, resource\nfrom pathlib import Path\nfrom avfrepo.sources import alpm_db\n"
            "from avfrepo.config import AlpmDbUpstream\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "try:\n  alpm_db.parse_db(AlpmDbUpstream('alarm'), Path(sys.argv[1]).read_bytes())\n"
            "except Exception as e:\n  print(type(e).__name__, e)\n")
    f = d.dir / "bomb.db"
    f.write_bytes(raw)
    res = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TMPDIR": str(d.dir)})
    return res.stdout.startswith("UpstreamError") and "more than" in res.stdout, (res.stdout + res.stderr).strip()[-200:]


@attack("a 2 MB gzip db bomb: refused within 1 GiB of memory")
def a_gzip_bomb(d):
    raw = gzip.compress(b"\0" * (2 << 30), compresslevel=9)
    return _db_bomb(d, raw)


@attack("a small zstd db bomb: refused without writing gigabytes")
def a_zstd_bomb(d):
    raw = subprocess.run(["zstd", "-q", "-19", "-c"], input=b"\0" * (2 << 30), capture_output=True, check=True).stdout
    ok, why = _db_bomb(d, raw)
    return ok, f"{len(raw)} bytes of zstd: {why}"


@attack("ENOSPC while copying into the pool: one line")
def a_enospc_copy(d):
    return _on_full_disk(d, lambda: d.run("repo", "add", str(d.craft("avf-base", "1-2"))))


@attack("ENOSPC in a download: one line")
def a_enospc_download(d):
    cache = d.dir / "cache"
    shutil.rmtree(cache)
    mount_tmpfs(cache, "64k")
    import functools
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(d.dir)))
    big = d.dir / "big.tar.gz"
    big.write_bytes(os.urandom(1 << 20))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    code = ("import sys\nfrom pathlib import Path\nfrom avfrepo import downloads\nfrom avfrepo.errors import describe\n"
            "try:\n  downloads.cached('x', sys.argv[1], Path(sys.argv[2]))\n"
            "except Exception as e:\n  print(type(e).__name__, describe(e)[0])\n")
    try:
        res = subprocess.run([sys.executable, "-c", code, f"http://127.0.0.1:{srv.server_address[1]}/big.tar.gz",
                              str(cache)], capture_output=True, text=True, timeout=60, cwd=d.dir)
    finally:
        srv.shutdown()
        umount(cache)
    return "No space left" in res.stdout and "\n" not in res.stdout.strip(), (res.stdout + res.stderr).strip()[-200:]


@attack("a deleted pool: one line, no traceback")
def a_deleted_pool(d):
    shutil.rmtree(d.repo / "pool")
    res = d.run("repo", "add", str(d.craft("avf-base", "1-2")))
    return res.returncode == 1 and one_line(res), res.stderr.strip()[:200]


@attack("wrong-type state values: one line naming the key")
def a_state_types(d):
    st = d.dir / "pkgbuilds" / "avfrepo-state.json"
    data = json.loads(st.read_text())
    next(iter(data["packages"].values()))["pkgrel"] = "one"
    st.write_text(json.dumps(data))
    res = d.run("status")
    return res.returncode == 1 and one_line(res) and "pkgrel" in res.stderr, res.stderr.strip()[:200]


@attack("read-only GnuPG home: not misreported as 'no signing key', one line")
def a_ro_gnupg(d):
    ro = d.dir / "gnupg-ro"
    ro.mkdir()
    subprocess.run(["mount", "--bind", str(d.gnupg), str(ro)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
    try:
        d.cfg.write_text(d.cfg.read_text().replace(f'gnupg_home = "{d.gnupg}"', f'gnupg_home = "{ro}"'))
        res = d.run("repo", "add", str(d.craft("avf-base", "1-2")))
    finally:
        subprocess.run(["umount", str(ro)], check=False)
    # gpg 2.2 keeps its agent socket under /run/user when it can: then a read-only home signs fine
    ok = res.returncode == 0 or (res.returncode == 1 and one_line(res) and "no signing key" not in res.stderr)
    return ok, f"exit {res.returncode}: {(res.stdout + res.stderr).strip()[:200]}"


@attack("git's unsafe-URL error: one line")
def a_git_unsafe(d):
    text = d.cfg.read_text()
    import re
    d.cfg.write_text(re.sub(r'(\[upstreams\.avf\]\nurl = )"[^"]*"', r'\1"ext::sh -c touch% /tmp/pwned-avfrepo"', text))
    res = d.run("sync", "--dry-run")
    return res.returncode in (1, 2) and one_line(res) and not os.path.exists("/tmp/pwned-avfrepo"), res.stderr.strip()[:200]


@attack("requests redirect loop: one line")
def a_redirect(d):
    class Loop(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Loop)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    code = ("import sys\nfrom pathlib import Path\nfrom avfrepo import downloads\nfrom avfrepo.config import NetPolicy\n"
            "from avfrepo.errors import describe\n"
            "try:\n  downloads.cached('x', sys.argv[1], Path(sys.argv[2]), NetPolicy(timeout=5, retries=0))\n"
            "except Exception as e:\n  print(type(e).__name__, describe(e)[0])\n")
    try:
        res = subprocess.run([sys.executable, "-c", code, f"http://127.0.0.1:{srv.server_address[1]}/x.tar.gz",
                              str(d.dir / "cache")], capture_output=True, text=True, timeout=60)
    finally:
        srv.shutdown()
    return res.stdout.startswith("UpstreamError") and "redirect" in res.stdout.lower(), res.stdout.strip()[:200]


def main() -> int:
    src = Path(sys.argv[1]).resolve()
    only = sys.argv[2:]
    scratch = Path(tempfile.mkdtemp(prefix="avfrepo-attacks-"))
    try:
        for i, fn in enumerate(ATTACKS):
            if only and not any(o in fn.__name__ for o in only):
                continue
            d = Demo(src, scratch, f"{i:02d}")
            try:
                held, detail = fn(d)
            except Exception as exc:           # an attack that crashes the harness counts as failed
                held, detail = False, f"harness: {type(exc).__name__}: {exc} {traceback.format_exc()[-300:]}"
            RESULTS.append((fn.label, held, detail))
            print(f"{'HELD  ' if held else 'FAILED'} {fn.label}" + (f"  [{detail}]" if detail else ""), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    held = sum(1 for _, h, _ in RESULTS if h)
    print(f"{held} of {len(RESULTS)} attacks held")
    return 0 if held == len(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
