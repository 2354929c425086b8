"""Stand-in repositories for the image step (no Arch Linux ARM mirror here).

Small noarch packages written for the tests, built by the real makepkg, signed with the test
key and published by avfrepo's publish() into two signed repositories:

- [core] (stands in for Arch Linux ARM's core/extra/alarm): `filesystem` (etc files, /boot),
  `systemd` (a unit with a preset, and a STAND-IN file at systemd-boot's path: not an EFI
  binary), and with bulk_mib > 0 `standin-data` (mixed compressible/random bytes, benchmark);
- [avf]: `avf-base` (depends on the rest), `linux-avf` (a STAND-IN kernel image at
  usr/lib/modules/<release>/vmlinuz with its pkgbase file), `avf-config` (a scriptlet that
  must NOT run: the image step uses --noscriptlet; a pacman hook whose program the target
  does not have, as an aarch64 hook on an x86_64 build host; a user unit with a user preset,
  as avf-desktop's Wayland socket).

Used by tests/image/conftest.py and bench/bench_image.py.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from avfrepo import config as config_mod
from avfrepo.build.backends import MakepkgBackend
from avfrepo.demo import write_config
from avfrepo.repo.publish import publish
from avfrepo.signing import detach_sign, signing_key

KERNEL_RELEASE = "6.1.158-1-avf"
SYSTEMD_BOOT_STANDIN = b"STAND-IN for systemd-bootaa64.efi (test package; not an EFI binary)\n"
KERNEL_STANDIN = b"STAND-IN for the linux-avf Image (test package; not a kernel)\n"


def _pkgbuild(name: str, body: str, depends: tuple[str, ...] = (), install: str | None = None) -> str:
    head = textwrap.dedent(f"""\
        pkgname={name}
        pkgver=1.0
        pkgrel=1
        pkgdesc="image test stand-in"
        arch=(any)
        license=(MIT)
        options=(!strip !debug)
        depends=({' '.join(depends)})
        """)
    if install:
        head += f"install={install}\n"
    return head + "package() {\n" + textwrap.indent(textwrap.dedent(body), "  ") + "}\n"


def _packages(bulk_mib: int) -> dict[str, dict[str, object]]:
    core = {
        "filesystem": dict(body="""\
            install -d "$pkgdir"/{boot,etc,usr/bin,usr/lib,var/lib,home,root,tmp,mnt}
            ln -s usr/bin "$pkgdir/bin"
            printf 'root:x:0:0::/root:/bin/bash\\n' > "$pkgdir/etc/passwd"
            printf 'root:x:0:root\\nwheel:x:998:\\n' > "$pkgdir/etc/group"
            printf '# stand-in fstab template\\n' > "$pkgdir/etc/fstab"
            printf 'NAME="Arch Linux ARM (stand-in)"\\nID=archarm\\n' > "$pkgdir/etc/os-release"
            """),
        "systemd": dict(depends=("filesystem",), body=f"""\
            install -d "$pkgdir/usr/lib/systemd/boot/efi" "$pkgdir/usr/lib/systemd/system-preset"
            printf '{SYSTEMD_BOOT_STANDIN.decode().strip()}\\n' > "$pkgdir/usr/lib/systemd/boot/efi/systemd-bootaa64.efi"
            install -d "$pkgdir/usr/lib/systemd/system"
            printf '[Unit]\\nDescription=stand-in\\n[Service]\\nExecStart=/usr/bin/true\\n[Install]\\nWantedBy=multi-user.target\\n' \\
              > "$pkgdir/usr/lib/systemd/system/standin-agent.service"
            printf 'enable standin-agent.service\\ndisable *\\n' > "$pkgdir/usr/lib/systemd/system-preset/90-standin.preset"
            """),
    }
    if bulk_mib:
        core["standin-data"] = dict(body=f"""\
            install -d "$pkgdir/usr/share/standin-data"
            for i in $(seq 1 {bulk_mib}); do
              head -c 262144 /dev/urandom > "$pkgdir/usr/share/standin-data/random-$i"
              seq 1 120000 | head -c 786432 > "$pkgdir/usr/share/standin-data/text-$i"
            done
            """)
    avf = {
        "linux-avf": dict(body=f"""\
            install -d "$pkgdir/usr/lib/modules/{KERNEL_RELEASE}/kernel"
            printf '{KERNEL_STANDIN.decode().strip()}\\n' > "$pkgdir/usr/lib/modules/{KERNEL_RELEASE}/vmlinuz"
            echo linux-avf > "$pkgdir/usr/lib/modules/{KERNEL_RELEASE}/pkgbase"
            """),
        "avf-config": dict(depends=("systemd",), install="avf-config.install", body="""\
            install -d "$pkgdir/etc/avf"
            echo stand-in > "$pkgdir/etc/avf/config"
            install -d "$pkgdir/usr/share/libalpm/hooks"
            printf '[Trigger]\nOperation = Install\nType = Path\nTarget = etc/avf/config\n\n[Action]\nDescription = stand-in hook the build host cannot run\nWhen = PostTransaction\nExec = /usr/bin/standin-hook\n' \
              > "$pkgdir/usr/share/libalpm/hooks/90-standin.hook"
            install -d "$pkgdir/usr/lib/systemd/user" "$pkgdir/usr/lib/systemd/user-preset"
            printf '[Socket]\nListenStream=%%t/standin-0\n[Install]\nWantedBy=sockets.target\n' \
              > "$pkgdir/usr/lib/systemd/user/standin-display.socket"
            echo 'enable standin-display.socket' > "$pkgdir/usr/lib/systemd/user-preset/80-standin.preset"
            """),
        "avf-base": dict(depends=("filesystem", "systemd", "linux-avf", "avf-config")
                         + (("standin-data",) if bulk_mib else ()), body="""\
            install -d "$pkgdir/usr/share/avf-base"
            echo base > "$pkgdir/usr/share/avf-base/README"
            """),
    }
    return {"core": core, "avf": avf}


def _config(path: Path, signing_home: Path, name: str, extra: str = "") -> config_mod.Config:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_config(path, "file:///nowhere", signing_home, extra=extra)
    text = path.read_text().replace('name = "avf"', f'name = "{name}"', 1)
    path.write_text(text)
    return config_mod.load(path)


def make_repos(base: Path, signing_home: Path, *, bulk_mib: int = 0) -> tuple[Path, Path]:
    """Build and publish the stand-in repositories under base; returns (core repo path, avf repo path)."""
    built = {}
    for repo, pkgs in _packages(bulk_mib).items():
        cfg = _config(base / repo / "avfrepo.toml", signing_home, repo)
        key = signing_key(cfg.signing)
        files = []
        for name, spec in pkgs.items():
            src = base / repo / "src" / name
            src.mkdir(parents=True)
            if spec.get("install"):
                (src / spec["install"]).write_text(
                    "post_install() {\n  echo scriptlet-ran > /etc/avf/SCRIPTLET-RAN\n}\n")
            (src / "PKGBUILD").write_text(_pkgbuild(name, spec["body"], spec.get("depends", ()), spec.get("install")))
            os.chmod(src, 0o755)
            pkg, = MakepkgBackend(cfg).build(src, [], base / repo / "logs" / name, base / repo / "out" / name)
            detach_sign(cfg.signing, key, pkg)
            files.append(pkg)
        publish(cfg, key, files)
        built[repo] = cfg.repo.path
    return built["core"], built["avf"]


def image_config(path: Path, signing_home: Path, core_repo: Path, avf_repo: Path, gpgdir: Path, *,
                 packages: tuple[str, ...] = ("avf-base",), headroom_mib: int = 8, efi_size_mib: int = 40,
                 memory_mib: int = 2048, output: Path | None = None, cachedir: Path | None = None,
                 ) -> config_mod.Config:
    """A config whose [avf] is avf_repo and whose [image] installs from the stand-in [core]."""
    output = output or path.parent / "out" / "images.tar.gz"
    cachedir = cachedir or path.parent / "pkgcache"
    extra = textwrap.dedent(f"""
        [image]
        repos = [{{ name = "core", server = "{core_repo.as_uri()}/$arch", siglevel = "Required" }}]
        packages = [{", ".join(f'"{p}"' for p in packages)}]
        headroom_mib = {headroom_mib}
        efi_size_mib = {efi_size_mib}
        memory_mib = {memory_mib}
        output = "{output}"
        cachedir = "{cachedir}"
        gpgdir = "{gpgdir}"
        """)
    cfg = _config(path, signing_home, "avf", extra)
    text = path.read_text().replace('path = "repo"', f'path = "{avf_repo}"', 1)
    path.write_text(text)
    return config_mod.load(path)
