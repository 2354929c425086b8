"""`avfrepo image`: images.tar.gz for the Android Terminal app, installed from the repositories.

1. check the tools, the keyring and [avf] first (nothing is written when one is missing);
2. `pacman -Sy --root` the configured packages (default avf-base) into a fresh root, from
   the system repositories (Arch Linux ARM core/extra/alarm) and [avf] (rootfs.py);
3. the per-image files (machine-id, fstab), presets, /boot moved to the ESP;
4. the ESP tree: systemd-boot, loader entry, kernel (vmconfig.py); both partition images
   (partitions.py); vm_config.json, build_id, README; the archive and a JSON manifest.
Everything happens in a folder next to the output; the archive and the manifest are renamed
into place at the end, so a failure never leaves a partial archive at the output path.

The archive and the manifest are signed with the repository key (FILE.sig), unless
`unsigned`: then the public key alone names the key in the manifest and the README, and
sign_image() signs them later where the secret key is (CI: a job that never runs the image),
after checking that the manifest names that key and records the archive's sha256.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .. import preflight as checks
from ..config import Config
from ..errors import ConfigError, ToolError
from ..formats import jsondoc
from ..run import which
from . import archive, partitions, rootfs, signature, vmconfig
from .errors import ImageError, ImageKeyMissing

__all__ = ["ImageError", "ImageKeyMissing", "ImageResult", "SignResult", "build_image", "sign_image",
           "manifest_path", "signature_paths", "REQUIRED_TOOLS"]

# tool -> the Debian package that has it
REQUIRED_TOOLS = {
    "pacman": "pacman-package-manager", "mkfs.ext4": "e2fsprogs", "resize2fs": "e2fsprogs",
    "e2fsck": "e2fsprogs", "mkfs.vfat": "dosfstools", "mmd": "mtools", "mcopy": "mtools",
    "tar": "tar", "gzip": "gzip", "gpg": "gnupg", "gpgv": "gpgv",
}


@dataclass
class ImageResult:
    output: str
    manifest: str | None
    dry_run: bool
    repos: list[dict[str, str]]
    packages_requested: list[str]
    build_id: str = ""
    archive_bytes: int = 0
    archive_sha256: str = ""
    compressor: str = ""
    partitions: dict[str, dict[str, object]] = field(default_factory=dict)
    packages: list[dict[str, str]] = field(default_factory=list)
    members: dict[str, dict[str, object]] = field(default_factory=dict)
    boot: dict[str, object] = field(default_factory=dict)
    build_time: dict[str, object] = field(default_factory=dict)
    first_boot: list[str] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)     # wall time of each step, seconds
    avf_packages: list[dict[str, object]] = field(default_factory=list)   # dry run: [avf] from pkgbuilds/
    problems: list[str] = field(default_factory=list)          # dry run: what stops the build now
    signing_key: str = ""                                      # fingerprint of the key that signs (dry run: would sign)
    signatures: list[str] = field(default_factory=list)        # the detached .sig files (dry run: that would be written)
    signed: bool = True                                        # False: --unsigned, no .sig written
    sign_command: str = ""                                     # unsigned: what signs it, where the secret key is

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


def signature_paths(output: Path) -> list[Path]:
    """The detached signatures written beside the archive and its manifest."""
    return [signature.sig_path(output), signature.sig_path(manifest_path(output))]


def missing_tools() -> str | None:
    missing = [t for t in REQUIRED_TOOLS if which(t) is None]
    if missing:
        pkgs = sorted({REQUIRED_TOOLS[t] for t in missing})
        return (f"missing tool(s): {', '.join(missing)} (Debian: apt-get install {' '.join(pkgs)}; "
                "scripts/setup-debian.sh installs them)")
    return None


def problems(cfg: Config, output: Path, *, unsigned: bool = False) -> list[str]:
    """What stops a build now, in the order preflight reports it (empty: ready)."""
    from ..build.plan import synced
    img = cfg.image_settings
    out = [p for p in [missing_tools()] if p]
    if output.parent.exists() and not output.parent.is_dir():
        out.append(f"{output.parent}: not a folder")
    if output.is_dir():
        out.append(f"{output}: is a folder, not an archive path")
    if img.avf_source == "local" and not cfg.repo.db.is_file():
        if not synced(cfg):
            out.append(f"nothing synced yet: {cfg.pkgbuilds} has no package (run `avfrepo sync`, then "
                       "`avfrepo build`, before the image)")
        else:
            out.append(f"[{cfg.repo.name}] is not published at {cfg.repo.published} (run `avfrepo build`, "
                       "or set [image] avf_source = \"server\")")
    key_problem = signature.key_problem(cfg, secret=not unsigned)
    if key_problem:
        out.append(key_problem)
    if not (img.gpgdir / "pubring.gpg").is_file() and not (img.gpgdir / "pubring.kbx").is_file():
        out.append(f"no pacman keyring at {img.gpgdir} ([image] gpgdir): pacman-key --init, then trust the "
                   f"Arch Linux ARM keys and the [{cfg.repo.name}] key")
    return out


def preflight(cfg: Config, output: Path, *, unsigned: bool = False) -> None:
    found = problems(cfg, output, unsigned=unsigned)
    if found:
        if found[0] == signature.key_problem(cfg, secret=not unsigned):
            signature.key(cfg, secret=not unsigned)     # raised with its own type (no key: exit 2)
        raise ImageError(found[0])


def avf_plan(cfg: Config) -> list[dict[str, object]]:
    """Each [avf] package as pkgbuilds/ has it, with what is published of it: what the image's
    [avf] will hold once `avfrepo build` has run (read from local files only)."""
    from ..build.plan import load_srcinfos, published
    repo = published(cfg)
    rows = []
    for base, (_, info) in sorted(load_srcinfos(cfg).items()):
        rows.append({"pkgbase": base, "pkgbuild": info.version,
                     "published": {n: repo[n].version if n in repo else None for n in info.pkgnames}})
    return rows


def build_image(cfg: Config, output: Path | None = None, *, dry_run: bool = False, unsigned: bool = False,
                progress: Callable[[str], None] = lambda s: None) -> ImageResult:
    """Build the image; unsigned: write no .sig, name the key from its public part alone."""
    img = cfg.image_settings
    output = Path(output or img.output).resolve()
    repos = rootfs.repos(cfg, img)
    result = ImageResult(output=str(output), manifest=str(manifest_path(output)), dry_run=dry_run,
                         repos=[{"name": r.name, "server": r.server, "siglevel": r.siglevel} for r in repos],
                         packages_requested=list(img.packages), first_boot=list(rootfs.FIRST_BOOT),
                         signatures=[] if unsigned else [str(p) for p in signature_paths(output)],
                         signed=not unsigned, sign_command=f"avfrepo image --sign {output}" if unsigned else "")
    if dry_run:                     # the plan, and what stops it, without stopping at the first
        result.avf_packages = avf_plan(cfg)
        result.problems = problems(cfg, output, unsigned=unsigned)
        if not signature.key_problem(cfg, secret=not unsigned):
            result.signing_key = signature.key(cfg, secret=not unsigned).fingerprint
        return result
    preflight(cfg, output, unsigned=unsigned)
    result.signing_key = signature.key(cfg, secret=not unsigned).fingerprint
    start = time.monotonic()
    output.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(output)
    work = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.build-"))
    (work / "pid").write_text(str(os.getpid()))
    try:
        _build(cfg, work, output, result, progress)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ImageError(f"no space left on the device of {output.parent} while building the image "
                             f"({exc.filename or exc})") from None
        raise
    except ToolError as exc:
        if partitions._no_space(exc):
            raise ImageError(f"no space left on the device of {output.parent}: {exc.tool} failed:\n  "
                             + "\n  ".join(exc.output.strip().splitlines()[-4:])) from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = round(time.monotonic() - start, 2)
    return result


def _remove_stale(output: Path) -> None:
    """Build folders of killed runs (their pid is gone) beside the output; a running one stays."""
    for d in output.parent.glob(f".{output.name}.build-*"):
        try:
            pid = int((d / "pid").read_text())
            os.kill(pid, 0)
            continue                          # still running
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            if time.time() - d.stat().st_mtime < 24 * 3600:
                continue                      # no readable pid yet: leave it a day
        shutil.rmtree(d, ignore_errors=True)


def _build(cfg: Config, work: Path, output: Path, result: ImageResult, progress: Callable[[str], None]) -> None:
    img = cfg.image_settings
    last = [time.monotonic()]

    def phase(name: str) -> None:
        now = time.monotonic()
        result.phases[name] = round(now - last[0], 2)
        last[0] = now

    root, esp, out = work / "root", work / "esp", work / "out"
    for d in (root, esp, out):
        d.mkdir()
    os.chmod(root, 0o755)
    progress(f"image: pacman -Sy --root {' '.join(img.packages)} from {', '.join(r['name'] for r in result.repos)}")
    pm = rootfs.Pacman(cfg, img, root, work)
    pacman_output = pm.install(img.packages)
    installed = pm.installed()
    result.packages = [{"name": p.name, "version": p.version, "repo": p.repo} for p in installed]
    result.build_time = rootfs.finish(root, pm, progress)
    result.build_time["pacman_messages"] = rootfs.messages(pacman_output)
    if result.build_time["pacman_messages"]:
        result.first_boot.append(rootfs.HOOKS_TASK)
    phase("pacman")
    result.build_time["moved_to_esp"] = rootfs.move_boot(root, esp)

    efi_p, root_p = vmconfig.new_partition(rootfs.EFI_LABEL), vmconfig.new_partition(rootfs.ROOT_LABEL)
    result.boot = vmconfig.populate_esp(root, esp, cfg.repo.arch, root_p)
    if result.boot["initrd"]:
        result.first_boot = [t for t in result.first_boot if "mkinitcpio" not in t]
    phase("root_finish_and_esp_tree")
    need = rootfs.tree_bytes(root)[0] * 2 + img.headroom_mib * partitions.MIB + img.efi_size_mib * partitions.MIB * 2
    free = shutil.disk_usage(work).free
    if free < need:
        raise ImageError(f"no space: the image needs about {need >> 20} MiB in {output.parent}, "
                         f"{free >> 20} MiB are free")
    result.partitions = {
        "efi_part": {"label": efi_p.label, "guid": efi_p.guid, "volume_id": efi_p.volume_id, "fs": "vfat",
                     **partitions.make_efi_part(esp, out / "efi_part", label=efi_p.label, volume_id=efi_p.volume_id,
                                                size_mib=img.efi_size_mib, progress=progress)},
        "root_part": {"label": root_p.label, "guid": root_p.guid, "fs_uuid": root_p.guid, "fs": "ext4",
                      **partitions.make_root_part(root, out / "root_part", label=root_p.label, uuid=root_p.guid,
                                                  headroom_mib=img.headroom_mib, progress=progress)},
    }
    phase("partitions")
    versions = {p.name: p.version for p in installed}
    result.build_id = vmconfig.build_id(versions.get("avf-base"), cfg.repo.arch)
    (out / "build_id").write_text(result.build_id)
    (out / "vm_config.json").write_text(vmconfig.render_vm_config(efi_p, root_p, img.memory_mib))
    (out / "README").write_text(vmconfig.render_readme(
        build_id=result.build_id.strip(), repo=cfg.repo.name, efi=efi_p, root=root_p, memory_mib=img.memory_mib,
        repo_names=", ".join(f"[{r['name']}]" for r in result.repos), packages=installed,
        top_packages=", ".join(img.packages), presets=result.build_time["presets"], first_boot=result.first_boot,
        signing_key=result.signing_key, display="avf-desktop" in versions))

    progress("image: tar + " + archive.compressor())
    tarball = work / "images.tar.gz"
    result.compressor = archive.write(out, tarball)
    phase("archive")
    result.members = archive.describe(out)
    result.archive_bytes = tarball.stat().st_size
    result.archive_sha256 = archive.sha256_file(tarball)
    manifest = work / manifest_path(output).name
    manifest.write_text(json.dumps({
        "archive": output.name, "bytes": result.archive_bytes, "sha256": result.archive_sha256,
        "signing_key": result.signing_key,
        "build_id": result.build_id.strip(), "compressor": result.compressor, "members": result.members,
        "partitions": result.partitions, "boot": result.boot, "repos": result.repos,
        "packages": result.packages, "build_time": result.build_time, "first_boot": result.first_boot,
    }, indent=2, sort_keys=True) + "\n")
    if not result.signed:
        # a signature left from an earlier archive at the output would not match this one
        for stale in signature_paths(output):
            stale.unlink(missing_ok=True)
        os.replace(manifest, manifest_path(output))
        os.replace(tarball, output)
        phase("manifest")
        progress(f"image: UNSIGNED (no .sig written); sign it where the key {result.signing_key} is: "
                 f"{result.sign_command}")
        return
    progress(f"image: signing the archive and the manifest with {result.signing_key}")
    tar_sig, man_sig = signature.sign_and_verify(cfg, signature.key(cfg), [tarball, manifest])
    # signatures first: an archive at the output always has its own signature beside it
    out_tar_sig, out_man_sig = signature_paths(output)
    os.replace(man_sig, out_man_sig)
    os.replace(manifest, manifest_path(output))
    os.replace(tar_sig, out_tar_sig)
    os.replace(tarball, output)
    phase("manifest_and_signatures")


# --- signing an image built --unsigned -----------------------------------------------------------

@dataclass
class SignResult:
    archive: str
    manifest: str
    signing_key: str
    sha256: str                    # the archive's, as the manifest records it and the file has it
    build_id: str
    signatures: list[str]
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def read_manifest(path: Path) -> tuple[bytes, dict[str, object]]:
    """The manifest's bytes and value; ImageError naming the file when it is missing or not one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file: the manifest `avfrepo image` writes beside the archive "
                         "is missing (it records the archive's sha256 and the key to sign with)") from None
    try:
        value = jsondoc.parse(data)
    except ValueError as exc:
        raise ImageError(f"{path}: corrupt manifest: {exc}") from None
    if not isinstance(value, dict):
        raise ImageError(f"{path}: corrupt manifest: not a JSON object")
    return data, value


def sign_image(cfg: Config, archive_file: Path, *, progress: Callable[[str], None] = lambda s: None) -> SignResult:
    """Sign an archive `build_image(unsigned=True)` made, and its manifest, with the secret
    repository key. First: the manifest names this archive, this key's fingerprint and the
    archive's sha256 (anything else is refused, nothing written). Both signatures are made in a
    folder beside the archive, verified with the public key alone, and renamed into place."""
    start = time.monotonic()
    archive_file = Path(archive_file).absolute()
    if not archive_file.is_file():
        raise ConfigError(f"{archive_file}: no such file (the archive `avfrepo image --unsigned` wrote)")
    checks.writable(archive_file.parent, "the archive's folder", "sign a copy in a folder you can write")
    k = signature.key(cfg)                                  # no secret key: exit 2, before any work
    man = manifest_path(archive_file)
    data, manifest = read_manifest(man)
    named = manifest.get("signing_key")
    if named != k.fingerprint:
        raise ImageError(f"{man.name} names the key {jsondoc.one_line(named or '(none)', 60)}, not {k.fingerprint}, "
                         f"the signing key in {cfg.signing.gnupg_home}: the image was built for another key; "
                         "nothing signed")
    if manifest.get("archive") != archive_file.name:
        raise ImageError(f"{man.name} describes the archive {jsondoc.one_line(repr(manifest.get('archive')), 80)}, "
                         f"not {archive_file.name!r}; nothing signed")
    recorded = manifest.get("sha256")
    if not isinstance(recorded, str) or not re.fullmatch(r"[0-9a-f]{64}", recorded):
        raise ImageError(f"{man.name} records no sha256 of the archive; nothing signed")
    progress(f"image: checking {archive_file.name} against the sha256 its manifest records")
    actual = archive.sha256_file(archive_file)
    if actual != recorded:
        raise ImageError(f"{archive_file.name}: sha256 {actual} is not the {recorded} its manifest records: "
                         "not the archive that was built (changed, truncated or swapped); nothing signed")
    progress(f"image: signing {archive_file.name} and {man.name} with {k.fingerprint}")
    work = Path(tempfile.mkdtemp(dir=archive_file.parent, prefix=f".{archive_file.name}.sign-"))
    try:
        (work / archive_file.name).symlink_to(archive_file)
        (work / man.name).write_bytes(data)                 # the bytes just checked, not a later read
        tar_sig, man_sig = signature.sign_and_verify(cfg, k, [work / archive_file.name, work / man.name])
        if archive.sha256_file(archive_file) != recorded:
            raise ImageError(f"{archive_file.name} changed while it was being signed; nothing signed")
        if man.read_bytes() != data:
            raise ImageError(f"{man.name} changed while it was being signed; nothing signed")
        out_tar_sig, out_man_sig = signature_paths(archive_file)
        os.replace(man_sig, out_man_sig)
        os.replace(tar_sig, out_tar_sig)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return SignResult(archive=str(archive_file), manifest=str(man), signing_key=k.fingerprint, sha256=recorded,
                      build_id=str(manifest.get("build_id", "")), signatures=[str(out_tar_sig), str(out_man_sig)],
                      seconds=round(time.monotonic() - start, 2))
