"""Stand-in repositories for the boot tests, carrying REAL aarch64 payloads from Debian.

[core] (stands in for Arch Linux ARM's core/extra): one package
  `standin-debian-userland`: the arm64 Debian userland of userland.py (systemd, udev, dbus,
  avahi, openssl, sudo, zram-generator, ttyd, python3-grpcio, systemd-bootaa64.efi at
  systemd-boot's path), `provides` the Arch names avf-base and avf-config depend on.
[avf]: the project's REAL avf-config, avf-keyring and avf-base, rendered by `avfrepo sync` from
  the demo AVF upstream and built by `avfrepo build`; plus two stand-ins:
  `linux-avf` = Debian's arm64 kernel (its EFI-stub Image), modules and initramfs, laid out as
  linux-avf is (usr/lib/modules/<release>/vmlinuz + pkgbase, /boot/initramfs-linux-avf.img);
  `avf-guest-agents` = STAND-IN agents (python3 speaking one gRPC call over HTTP/2 itself, not
  AVF's Rust agents, which cannot be built here): each reads --grpc-port-file, calls DebianService
  once on the host (10.0.2.2) saying which agent it is, and stays running.
The built stand-in packages are cached unsigned next to the userland (keyed by its key and the
PKGBUILD); each session signs them with its own key.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

from avfrepo import config as config_mod
from avfrepo.build import build
from avfrepo.build.backends import MakepkgBackend
from avfrepo.demo import GRPC_SERVICES, make_demo_upstream, write_config
from avfrepo.packages import guest_agents, template
from avfrepo.repo.publish import publish
from avfrepo.signing import detach_sign, signing_key
from avfrepo.sync import sync

from . import userland

PROVIDES = ("filesystem", "base", "bash", "systemd", "systemd-libs", "sudo", "avahi", "zram-generator", "openssl",
            "bash-completion", "ttyd", "python", "python-grpcio")
AGENT = textwrap.dedent('''\
    #!/usr/bin/python3
    # STAND-IN for the AVF guest agent {name} (boot test package; not AVF's agent): tells the
    # host's DebianService it is running, then stays up as the agent would. One unary gRPC call
    # spoken directly (HTTP/2 with prior knowledge, as grpc's insecure channel does), with the
    # standard library only: importing python3-grpcio takes seconds of CPU under TCG, three
    # times, while the boot runs; AVF's Rust agents cost nothing like that.
    import argparse, socket, struct, sys, time
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc-port-file", required=True)
    args, _ = ap.parse_known_args()
    port = open(args.grpc_port_file).read().strip()

    def frame(kind, flags, stream, payload=b""):
        return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

    def hpack_int(n, prefix=7):
        if n < (1 << prefix) - 1:
            return bytes([n])
        out, n = [(1 << prefix) - 1], n - ((1 << prefix) - 1)
        while n >= 128:
            out.append(n % 128 + 128)
            n //= 128
        return bytes(out + [n])

    def literal(name, value):             # literal header field without indexing, new name, no Huffman
        return b"\\x00" + hpack_int(len(name)) + name.encode() + hpack_int(len(value)) + value.encode()

    headers = (b"\\x83\\x86" + literal(":path", "/{service}/{method}") + literal(":authority", f"10.0.2.2:{{port}}")
               + literal("content-type", "application/grpc") + literal("te", "trailers")
               + literal("x-standin-agent", "{name}"))
    s = socket.create_connection(("10.0.2.2", int(port)), timeout=60)
    s.sendall(b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n" + frame(4, 0, 0) + frame(1, 4, 1, headers)
              + frame(0, 1, 1, b"\\x00\\x00\\x00\\x00\\x00"))     # END_HEADERS; an empty message, END_STREAM

    def read(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                sys.exit("{name} stand-in: DebianService closed the connection")
            buf += chunk
        return buf

    while True:                           # until the call's trailers (HEADERS with END_STREAM on stream 1)
        head = read(9)
        length, kind, flags, stream = int.from_bytes(head[:3], "big"), head[3], head[4], \\
            struct.unpack(">I", head[5:])[0] & 0x7FFFFFFF
        payload = read(length)
        if kind == 4 and not flags & 1:   # SETTINGS: acknowledge
            s.sendall(frame(4, 1, 0))
        elif kind == 6 and not flags & 1: # PING: answer
            s.sendall(frame(6, 1, 0, payload))
        elif kind == 3 and stream == 1 or kind == 7:
            sys.exit(f"{name} stand-in: DebianService reset the call (frame type {{kind}}, {{payload.hex()}})")
        elif kind == 1 and stream == 1 and flags & 1:
            break
    print("{name} stand-in: reported to DebianService on port", port, flush=True)
    while True:
        time.sleep(3600)
    ''')


def _pkgbuild(name: str, body: str, *, provides: tuple[str, ...] = (), depends: tuple[str, ...] = (),
              source: tuple[str, ...] = ()) -> str:
    return textwrap.dedent(f"""\
        pkgname={name}
        pkgver=1.0
        pkgrel=1
        pkgdesc="boot test STAND-IN carrying Debian arm64 binaries"
        arch=(aarch64)
        license=(custom)
        options=(!strip !debug !zipman !purge !libtool !staticlibs)
        provides=({' '.join(provides)})
        depends=({' '.join(depends)})
        source=({' '.join(source)})
        noextract=({' '.join(source)})
        sha256sums=({' '.join('SKIP' for _ in source)})
        """) + "package() {\n" + textwrap.indent(textwrap.dedent(body), "  ") + "}\n"


def _tar(tree: Path, out: Path, *members: str, exclude: tuple[str, ...] = ()) -> None:
    args = ["tar", "--create", "--file", str(out), "--numeric-owner", "--xattrs", "-C", str(tree)]
    args += [f"--exclude=./{e}" for e in exclude]
    subprocess.run(args + list(members), check=True)
    os.chmod(out, 0o644)


def _kernel(tree: Path) -> tuple[str, Path, Path]:
    """(release, vmlinuz, initrd) of Debian's kernel in the userland."""
    releases = sorted(p.name for p in (tree / "usr/lib/modules").iterdir())
    assert len(releases) == 1, releases
    rel = releases[0]
    return rel, tree / f"boot/vmlinuz-{rel}", tree / f"boot/initrd.img-{rel}"


def _packages(tree: Path, src: Path, agent_service: str, agent_method: str, avf_tree: Path) -> dict[str, dict]:
    """name -> dict(pkgbuild=..., prepare=callable(folder))."""
    rel, vmlinuz, initrd = _kernel(tree)

    def userland_src(folder: Path) -> None:
        _tar(tree, folder / "userland.tar", ".", exclude=("usr/lib/modules", "boot/*", ".complete", ".base", "etc/machine-id",
                                                        "etc/fstab", "etc/hostname", "dev/*", "proc/*", "sys/*",
                                                        "run/*", "tmp/*", "var/cache/apt/*"))

    def kernel_src(folder: Path) -> None:
        stage = folder / "stage"
        (stage / "usr/lib/modules").mkdir(parents=True)
        (stage / "boot").mkdir()
        mods = stage / "usr/lib/modules" / rel
        shutil.copytree(tree / "usr/lib/modules" / rel, mods, symlinks=True)
        data = vmlinuz.read_bytes()
        if data[:2] == b"\x1f\x8b":                  # Debian's arm64 vmlinuz is a gzip'd Image
            data = gzip.decompress(data)
        (mods / "vmlinuz").write_bytes(data)         # the EFI-stub Image systemd-boot starts
        (mods / "pkgbase").write_text("linux-avf\n")
        shutil.copyfile(initrd, stage / "boot/initramfs-linux-avf.img")
        _tar(stage, folder / "kernel.tar", ".")
        shutil.rmtree(stage)

    def agents_src(folder: Path) -> None:
        for svc in GRPC_SERVICES:
            (folder / svc).write_text(AGENT.format(name=svc, service=agent_service, method=agent_method))
            # the REAL units and presets, as avf-guest-agents makes them from AVF's debian/service
            unit, _ = guest_agents.adapt_unit((avf_tree / "guest" / svc / "debian/service").read_text())
            (folder / f"{svc}.service").write_text(unit)
            (folder / f"80-{guest_agents.pkgname(svc)}.preset").write_bytes(
                template("avf-guest-agents/agent.preset", unit=f"{svc}.service", pkgname=guest_agents.pkgname(svc)))

    agent_hash = hashlib.sha256(AGENT.encode()).hexdigest()[:12]      # in the PKGBUILD: the package cache's key
    agent_files = [f for s in GRPC_SERVICES for f in (s, f"{s}.service", f"80-{guest_agents.pkgname(s)}.preset")]

    extract = 'bsdtar -xpf "$srcdir/{}" -C "$pkgdir"\n'
    return {
        "core": {
            "standin-debian-userland": dict(
                pkgbuild=_pkgbuild("standin-debian-userland", extract.format("userland.tar"), provides=PROVIDES,
                                   source=("userland.tar",)), prepare=userland_src),
        },
        "avf": {
            "linux-avf": dict(pkgbuild=_pkgbuild("linux-avf", extract.format("kernel.tar"), source=("kernel.tar",)),
                              prepare=kernel_src),
            "avf-guest-agents": dict(
                pkgbuild=_pkgbuild("avf-guest-agents", f"# stand-in agent {agent_hash}\n" + "".join(
                    f'install -Dm755 "$srcdir/{s}" "$pkgdir/usr/bin/{s}"\n'
                    f'install -Dm644 "$srcdir/{s}.service" "$pkgdir/usr/lib/systemd/system/{s}.service"\n'
                    f'install -Dm644 "$srcdir/80-{guest_agents.pkgname(s)}.preset" '
                    f'"$pkgdir/usr/lib/systemd/system-preset/80-{guest_agents.pkgname(s)}.preset"\n'
                    for s in GRPC_SERVICES),
                    depends=("python",), source=tuple(agent_files)), prepare=agents_src),
        },
    }


def _config(path: Path, signing_home: Path, name: str, avf_url: str = "file:///nowhere",
            enable: tuple[str, ...] = ("avf-config", "avf-keyring")) -> config_mod.Config:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_config(path, avf_url, signing_home, enable=enable)
    path.write_text(path.read_text().replace('name = "avf"', f'name = "{name}"', 1))
    return config_mod.load(path)


def _built(name: str, spec: dict, base: Path, cfg: config_mod.Config, tree: Path) -> Path:
    """The unsigned package, from the cache when the same userland and PKGBUILD made it before."""
    h = hashlib.sha256((userland.key() + spec["pkgbuild"]).encode()).hexdigest()[:12]
    cached = userland.cache_root() / "standin-packages" / f"{name}-{h}"
    hit = sorted(cached.glob("*.pkg.tar.*")) if cached.is_dir() else []
    if not hit:
        src = base / "src" / name
        src.mkdir(parents=True)
        os.chmod(src, 0o755)
        (src / "PKGBUILD").write_text(spec["pkgbuild"])
        spec["prepare"](src)
        pkg, = MakepkgBackend(cfg).build(src, [], base / "logs" / name, base / "out" / name)
        tmp = cached.with_name(cached.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        shutil.copy2(pkg, tmp / pkg.name)
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(tmp, cached)
        for stale in cached.parent.glob(f"{name}-*"):      # packages of an older userland or PKGBUILD
            if stale != cached and not stale.name.endswith(".tmp"):
                shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(src)
        hit = [cached / pkg.name]
    out = base / "pkgs" / name
    out.mkdir(parents=True, exist_ok=True)
    dest = out / hit[0].name
    shutil.copyfile(hit[0], dest)
    return dest


def make_repos(base: Path, signing_home: Path, tree: Path) -> tuple[Path, Path, Path]:
    """(core repo, avf repo, AVF checkout tree with libs/debian_service/proto)."""
    upstream = make_demo_upstream(base / "upstream" / "Virtualization")
    cfg = _config(base / "avf" / "avfrepo.toml", signing_home, "avf", upstream.url,
                  enable=("avf-config", "avf-keyring", "avf-base"))
    rep = sync(cfg)
    assert not rep.refused, rep
    brep = build(cfg)
    assert not brep.failed, brep
    # the AVF checkout the sync made, when it holds the proto; else the demo upstream itself
    trees = [p for p in (cfg.cache / "git").iterdir()] if (cfg.cache / "git").is_dir() else []
    avf_tree = next((p for p in trees if (p / "libs/debian_service/proto").is_dir()), upstream.path)
    service, method = _first_method(avf_tree)
    specs = _packages(tree, base, service, method, upstream.path)
    core_cfg = _config(base / "core" / "avfrepo.toml", signing_home, "core")
    key = signing_key(cfg.signing)
    for repo_cfg, group in ((core_cfg, "core"), (cfg, "avf")):
        files = []
        for name, spec in specs[group].items():
            pkg = _built(name, spec, base / group, repo_cfg, tree)
            detach_sign(repo_cfg.signing, key, pkg)
            files.append(pkg)
        publish(repo_cfg, key, files)
    return core_cfg.repo.path, cfg.repo.path, avf_tree


def _first_method(avf_tree: Path) -> tuple[str, str]:
    """(package.Service, first rpc) of DebianService.proto: what the stand-in agents call."""
    import re
    text = (avf_tree / "libs/debian_service/proto/DebianService.proto").read_text()
    pkg = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)
    svc, body = re.search(r"service\s+(\w+)\s*\{(.*?)\n\}", text, re.S).groups()
    method = re.search(r"rpc\s+(\w+)\s*\(", body).group(1)
    return f"{pkg}.{svc}", method
