"""A git repository shaped like Arch Linux ARM's PKGBUILDs (archlinuxarm/PKGBUILDs): core/systemd
and core/linux-aarch64 with several revisions, plus unrelated packages. Every file here is
synthetic, written for these tests; only the shape (file names, the PKGBUILD's structure:
split package functions, git source + local files + sha512sums, `_systemd_src_dir="${pkgbase}"`,
a prepare() that cds and patches, validpgpkeys=() with one keys/pgp/<FINGERPRINT>.asc each)
follows the real repository. The keys are throwaway ed25519 keys made at test time."""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

from avfrepo.config import SigningConfig
from avfrepo.demo import FakeAvf, Symlink
from avfrepo.signing import export_public, init_key

SYSTEMD_SPLIT = ("systemd", "systemd-libs", "systemd-resolvconf", "systemd-sysvcompat", "systemd-tests",
                 "systemd-ukify")

SYSTEMD_LOCAL = {
    "0001-Use-Arch-Linux-device-access-groups.patch": textwrap.dedent("""\
        Subject: [PATCH] fixture: use other device groups

        --- a/rules.d/50-udev-default.rules.in
        +++ b/rules.d/50-udev-default.rules.in
        @@ -1,1 +1,1 @@
        -SUBSYSTEM=="tty", GROUP="dialout"
        +SUBSYSTEM=="tty", GROUP="uucp"
        """),
    "systemd-user.pam": "# fixture PAM stack for systemd --user\naccount include system-login\n",
    "systemd-hook": "#!/bin/sh -e\n# fixture hook helper\n[ -d /run/systemd/system ] || exit 0\nexec \"$@\"\n",
    "20-systemd-sysusers.hook": "[Trigger]\nType = Path\nOperation = Install\nTarget = usr/lib/sysusers.d/*.conf\n\n"
                                "[Action]\nDescription = fixture sysusers\nWhen = PostTransaction\n"
                                "Exec = /usr/share/libalpm/scripts/systemd-hook sysusers\n",
    "arch.conf": "title fixture\nlinux /vmlinuz-linux\n",
}
SYSTEMD_INSTALL = "post_upgrade() {\n  : fixture install script\n}\n"


def throwaway_key(home: Path, uid: str) -> tuple[str, bytes]:
    """A new ed25519 key in GnuPG home `home`: (fingerprint, armored public key)."""
    cfg = SigningConfig(None, home)
    key, _ = init_key(cfg, uid)
    return key.fingerprint, export_public(cfg, key.fingerprint, armor=True)


@functools.cache
def source_keys() -> dict[str, bytes]:
    """Two throwaway keys standing in for systemd's release signers, made once per test process:
    fingerprint -> armored public key (their home, and its gpg-agent, are gone afterwards)."""
    base = Path(tempfile.mkdtemp(prefix="avfrepo-fixture-keys-"))
    homes = [base / str(n) for n in (1, 2)]
    try:
        return dict(throwaway_key(home, f"Fixture Release Signer {home.name} <signer{home.name}@example.invalid>")
                    for home in homes)
    finally:
        for home in homes:
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def _sums(files: dict[str, str]) -> str:
    return "\n".join(f"            '{hashlib.sha512(files[n].encode()).hexdigest()}'" for n in files)


def systemd_pkgbuild(pkgver: str, pkgrel: str = "1", *, local: dict[str, str] | None = None,
                     keys: tuple[str, ...] | None = None) -> str:
    """keys: the validpgpkeys fingerprints (default: source_keys())."""
    local = SYSTEMD_LOCAL if local is None else local
    keys = tuple(source_keys()) if keys is None else keys
    validpgpkeys = "\n".join(f"              '{k}'  # fixture signer {i}" for i, k in enumerate(keys, 1)).lstrip()
    sources = "\n".join(f"        '{n}'" for n in local)
    names = "\n".join(f"         '{n}'" for n in SYSTEMD_SPLIT).lstrip()
    return textwrap.dedent("""\
        # Maintainer: fixture <fixture@example.invalid>
        # ALARM: a synthetic stand-in with the real file's structure

        pkgbase=systemd
        pkgname=(@NAMES@)
        pkgver=@PKGVER@
        pkgrel=@PKGREL@
        arch=('x86_64')
        license=('LGPL-2.1-or-later')
        url='https://systemd.example.invalid'
        makedepends=('gperf' 'meson' 'python-jinja' 'git')
        options=('!distcc')
        validpgpkeys=(@VALIDPGPKEYS@
                     )
        source=("git+https://example.invalid/systemd/systemd#tag=v${pkgver/rc/-rc}?signed"
        @SOURCES@)
        sha512sums=('SKIP'
        @SUMS@)

        _meson_version="${pkgver}-${pkgrel}"
        _systemd_src_dir="${pkgbase}"

        prepare() {
          cd "${_systemd_src_dir}"

          # fixture: device groups
          patch -Np1 -i ../0001-Use-Arch-Linux-device-access-groups.patch
        }

        build() {
          local _meson_options=(
            -Dversion-tag="${_meson_version}-arch"
            -Dman=enabled
          )
          arch-meson "${_systemd_src_dir}" build "${_meson_options[@]}"
          meson compile -C build
        }

        package_systemd() {
          pkgdesc='system and service manager'
          depends=("systemd-libs=${pkgver}" 'acl' 'bash')
          provides=('nss-myhostname' "udev=$pkgver")
          replaces=('nss-myhostname' 'udev')
          conflicts=('nss-myhostname' 'udev')
          install=systemd.install

          meson install -C build --destdir "$pkgdir"
          install -D -m0644 -t "$pkgdir"/usr/share/libalpm/hooks *.hook
          install -D -m0644 systemd-user.pam "$pkgdir"/usr/lib/pam.d/systemd-user
        }

        package_systemd-libs() {
          pkgdesc='systemd client libraries'
          depends=('glibc' 'libgcc')
          provides=('libsystemd' 'libsystemd.so' 'libudev.so')
          conflicts=('libsystemd')
          replaces=('libsystemd')
          :
        }

        package_systemd-resolvconf() {
          pkgdesc='systemd resolvconf replacement'
          depends=("systemd=${pkgver}")
          provides=('openresolv' 'resolvconf')
          conflicts=('resolvconf')
          :
        }

        package_systemd-sysvcompat() {
          pkgdesc='sysvinit compat for systemd'
          conflicts=('sysvinit')
          depends=("systemd=${pkgver}")
          :
        }

        package_systemd-tests() {
          pkgdesc='systemd tests'
          depends=("systemd=${pkgver}")
          :
        }

        package_systemd-ukify() {
          pkgdesc='Combine kernel and initrd into a signed Unified Kernel Image'
          provides=('ukify')
          depends=("systemd=${pkgver}" 'binutils')
          :
        }

        # vim:ft=sh syn=sh et sw=2
        """).replace("@NAMES@", names).replace("@PKGVER@", pkgver).replace("@PKGREL@", pkgrel) \
        .replace("@VALIDPGPKEYS@", validpgpkeys) \
        .replace("@SOURCES@", sources.lstrip()).replace("@SUMS@", _sums(local).lstrip())


def linux_pkgbuild(pkgver: str, pkgrel: str = "1") -> str:
    base = ".".join(pkgver.split(".")[:2])
    return textwrap.dedent(f"""\
        # fixture: AArch64 multi-platform (synthetic)
        pkgbase=linux-aarch64
        _srcname=linux-{base}
        pkgver={pkgver}
        pkgrel={pkgrel}
        arch=('aarch64')
        source=("https://example.invalid/linux-{base}.tar.xz" 'config' 'linux.preset')
        md5sums=('SKIP' 'SKIP' 'SKIP')
        """)


def linux_config(pkgver: str, extra: str = "") -> str:
    return (f"#\n# Automatically generated file; DO NOT EDIT.\n# Linux/arm64 {pkgver} Kernel Configuration (fixture)\n#\n"
            "CONFIG_64BIT=y\nCONFIG_MODULES=y\nCONFIG_VIRTIO_MENU=y\nCONFIG_VIRTIO_PCI=y\n"
            f"# CONFIG_KPROBES is not set\nCONFIG_LOCALVERSION=\"\"\n# from ALARM {pkgver}\n{extra}")


class AlarmPkgbuilds:
    """The repository, with the history tests need; `commits` maps a label to its commit."""

    def __init__(self, path):
        self.repo = FakeAvf(path)
        self.repo.repo.git.symbolic_ref("HEAD", "refs/heads/master")    # ALARM's branch
        self.commits: dict[str, str] = {}

    @property
    def url(self) -> str:
        return self.repo.url

    def head(self) -> str:
        return self.repo.head()

    def systemd(self, pkgver: str, pkgrel: str = "1", label: str | None = None, *, remove: tuple[str, ...] = (),
                **changes: str | bytes) -> str:
        """core/systemd at pkgver-pkgrel: ALARM's files, keys/pgp/<FPR>.asc for source_keys();
        changes: files (relative to core/systemd) to write instead or in addition; remove: paths to
        delete first (with the files above below them; `changes` are written after)."""
        local = {n: changes.pop(n, t) for n, t in SYSTEMD_LOCAL.items()}
        files = {f"core/systemd/{n}": t for n, t in local.items()}
        files.update({f"core/systemd/keys/pgp/{fpr}.asc": key for fpr, key in source_keys().items()})
        files["core/systemd/systemd.install"] = SYSTEMD_INSTALL
        files["core/systemd/PKGBUILD"] = changes.pop("PKGBUILD", None) or systemd_pkgbuild(pkgver, pkgrel, local=local)
        files["core/systemd/.SRCINFO"] = f"pkgbase = systemd\n\tpkgver = {pkgver}\n"
        files["core/systemd/REUSE.toml"] = "version = 1\n"
        files["core/systemd/LICENSES/MIT-0.txt"] = "fixture license text\n"
        files["core/systemd/LICENSES/0BSD.txt"] = Symlink("MIT-0.txt")
        removed = tuple(f"core/systemd/{r}" for r in remove)
        below = tuple(r + "/" for r in removed)
        files = {k: v for k, v in files.items() if k not in removed and not k.startswith(below)}
        files.update({f"core/systemd/{k}": v for k, v in changes.items()})
        c = self.repo.commit(files, f"core/systemd to {pkgver}-{pkgrel}", remove=removed)
        self.commits[label or f"systemd {pkgver}-{pkgrel}"] = c
        return c

    def linux(self, pkgver: str, pkgrel: str = "1", extra_config: str = "") -> str:
        c = self.repo.commit({
            "core/linux-aarch64/PKGBUILD": linux_pkgbuild(pkgver, pkgrel),
            "core/linux-aarch64/config": linux_config(pkgver, extra_config),
            "core/linux-aarch64/linux.preset": "# fixture preset for '%PKGBASE%'\nALL_kver=\"%KERNVER%\"\n",
            "core/linux-aarch64/linux-aarch64.install": "post_install() {\n  : fixture\n}\n",
        }, f"core/linux-aarch64 to {pkgver}-{pkgrel}")
        self.commits[f"linux {pkgver}-{pkgrel}"] = c
        return c

    def other(self, message: str = "extra/foo to 1.0-1") -> str:
        n = len(self.commits)
        c = self.repo.commit({"extra/foo/PKGBUILD": f"pkgname=foo\npkgver=1.{n}\npkgrel=1\n"}, message)
        self.commits[f"other {n}"] = c
        return c


def make_alarm(path) -> AlarmPkgbuilds:
    """History: linux 5.19.8, systemd 260.1, linux 6.2.0 + 6.2.1, systemd 261.1, 261.2, unrelated
    work, linux 6.18.1, then systemd 261.2's hooks change without a new version, more work."""
    a = AlarmPkgbuilds(path)
    a.linux("5.19.8")
    a.systemd("260.1")
    a.linux("6.2.0", extra_config="CONFIG_FROM_620=y\n")
    a.linux("6.2.1", extra_config="CONFIG_FROM_621=y\n")
    a.systemd("261.1")
    a.other()
    a.systemd("261.2")
    a.other()
    a.linux("6.18.1", extra_config="CONFIG_FROM_6181=y\n")
    a.systemd("261.2", label="systemd 261.2-1 hooks", **{"20-systemd-sysusers.hook":
                                                         SYSTEMD_LOCAL["20-systemd-sysusers.hook"] + "# touched\n"})
    a.other()
    return a
