"""What enters [avf] is what it says: every ELF object for the package's arch (none in an `any`
package), and every dependency on one of [avf]'s own packages met inside [avf]. Refused by
`avfrepo repo add` (nothing on disk changed), reported by `avfrepo verify` when a repository
published before these checks holds such a package. Real makepkg, gpg, repo-add, bsdtar."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

from avfrepo import config as config_mod
from avfrepo.build.backends import MakepkgBackend
from avfrepo.cli import main
from avfrepo.demo import write_config
from avfrepo.formats import pkginfo
from avfrepo.formats.repodb import read_db
from avfrepo.fsutil import read_tree
from avfrepo.repo import publish as publish_mod
from avfrepo.repo.manage import remove
from avfrepo.repo.publish import PublishRefused, publish, sign_and_publish
from avfrepo.repo.verify import verify
from avfrepo.signing import detach_sign, signing_key

from ..build.conftest import write_pkg
from ..conftest import require_build_user, require_tools, shared

MISLABELLED = {
    # the host's own /usr/bin/true (x86-64) in a package that says aarch64: what makepkg on
    # this x86_64 host made of ttyd-avf
    "t-true": ("aarch64", 'install -Dm755 /usr/bin/true "$pkgdir/usr/bin/t-true"'),
    # an ELF object in an arch=any package
    "t-any-true": ("any", 'install -Dm755 /usr/bin/true "$pkgdir/usr/lib/t-any-true/true"'),
}


def _pkgbuild(name: str, arch: str, body: str) -> str:
    return textwrap.dedent(f"""\
        pkgname={name}
        pkgver=1.0
        pkgrel=1
        pkgdesc="package whose files contradict its arch"
        arch=({arch})
        license=(MIT)
        options=(!strip !debug)
        package() {{ {body}; }}
        """)


@pytest.fixture(scope="session")
def packages(tmp_path_factory, signing_home) -> dict[str, Path]:
    """Signed packages built once per run by the real makepkg: t-true, t-any-true (above), and
    t-a, t-b (t-b depends on t-a>=1.0), t-d as tests/build's write_pkg writes them."""
    require_tools("makepkg", "repo-add", "bsdtar", "gpg")
    require_build_user()

    def make(base: Path) -> dict[str, str]:
        cfg = config_mod.load(write_config(base / "avfrepo.toml", "file:///nowhere", signing_home))
        key = signing_key(cfg.signing)
        srcs = {}
        for name, (arch, body) in MISLABELLED.items():
            srcs[name] = base / "src" / name
            srcs[name].mkdir(parents=True)
            (srcs[name] / "PKGBUILD").write_text(_pkgbuild(name, arch, body))
        write_pkg(cfg, "t-a")
        write_pkg(cfg, "t-b", depends=("t-a>=1.0",))
        write_pkg(cfg, "t-d")
        srcs.update({n: cfg.pkgbuilds / n for n in ("t-a", "t-b", "t-d")})
        out = {}
        for name, src in srcs.items():
            pkg, = MakepkgBackend(cfg).build(src, [], base / "logs" / name, base / "out" / name)
            detach_sign(cfg.signing, key, pkg)
            out[name] = str(pkg)
        return out
    return {n: Path(p) for n, p in shared(tmp_path_factory, "arch-closure-packages", make).items()}


def copies(packages: dict[str, Path], tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        d = tmp_path / "incoming" / name
        d.mkdir(parents=True, exist_ok=True)
        for f in (packages[name], Path(f"{packages[name]}.sig")):
            shutil.copy(f, d / f.name)
        out.append(d / packages[name].name)
    return out


def state(cfg) -> tuple[dict[str, bytes], str | None]:
    link = cfg.repo.published
    return read_tree(cfg.repo.path), (os.readlink(link) if link.is_symlink() else None)


# --- architecture: `avfrepo repo add` refuses ----------------------------------------------

def test_repo_add_refuses_x86_64_code_labelled_aarch64_and_changes_nothing(rcfg, packages, tmp_path, capsys):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, copies(packages, tmp_path, "t-a"))
    before = state(rcfg)
    pkg, = copies(packages, tmp_path, "t-true")
    assert main(["--config", str(rcfg.file), "repo", "add", str(pkg)]) == 1
    err = capsys.readouterr().err
    assert (f"avfrepo: error: {pkg.name}: the files of t-true contradict its arch=aarch64: "
            "usr/bin/t-true: an ELF object for x86-64, not AArch64 (the package says arch=aarch64)") in err
    assert state(rcfg) == before
    assert set(read_db(rcfg.repo.db)) == {"t-a"}


def test_repo_add_refuses_an_elf_object_in_an_any_package(rcfg, packages, tmp_path):
    with pytest.raises(PublishRefused) as exc:
        publish(rcfg, signing_key(rcfg.signing), copies(packages, tmp_path, "t-any-true"))
    assert ("usr/lib/t-any-true/true: an ELF object for x86-64 in an arch=any package "
            "(an `any` package holds no machine code)") in str(exc.value)
    assert not rcfg.repo.path.exists() or not os.path.lexists(rcfg.repo.published)


def test_repo_add_plan_refuses_before_signing(rcfg, packages, tmp_path):
    """The CI publish job: the unsigned package is refused by the plan check, before the key signs anything."""
    import json
    pkg, = copies(packages, tmp_path, "t-true")
    Path(f"{pkg}.sig").unlink()
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"results": [{"pkgbase": "t-true", "version": "1.0-1", "pkgnames": ["t-true"]}]}))
    with pytest.raises(PublishRefused, match="usr/bin/t-true: an ELF object for x86-64, not AArch64"):
        sign_and_publish(rcfg, signing_key(rcfg.signing), plan, [pkg])
    assert not Path(f"{pkg}.sig").exists() and not rcfg.repo.path.exists()


# --- architecture: `avfrepo verify` reports a published one ------------------------------

def test_verify_names_package_member_and_machine_of_a_published_mislabelled_package(rcfg, packages, tmp_path,
                                                                                   monkeypatch, capsys):
    # planted as a repository published before the check existed: publish without it
    with monkeypatch.context() as m:
        m.setattr(pkginfo, "arch_refusal", lambda *a, **k: None, raising=False)
        publish(rcfg, signing_key(rcfg.signing), copies(packages, tmp_path, "t-true", "t-any-true", "t-a"))
    bad = {c.path: c.message for c in verify(rcfg).bad()}
    name = packages["t-true"].name
    assert bad == {
        name: "the files of t-true contradict its arch=aarch64: usr/bin/t-true: an ELF object for x86-64, "
              "not AArch64 (the package says arch=aarch64)",
        packages["t-any-true"].name: "the files of t-any-true contradict its arch=any: usr/lib/t-any-true/true: an "
                                     "ELF object for x86-64 in an arch=any package (an `any` package holds no machine code)",
    }
    assert main(["--config", str(rcfg.file), "verify"]) == 1
    assert f"BAD {name}: the files of t-true contradict its arch=aarch64" in capsys.readouterr().out


# --- dependency closure --------------------------------------------------------------------

def with_pkgbuilds(cfg, *names: str):
    """pkgbuilds/ as sync leaves it: the .SRCINFO of [avf]'s own packages."""
    for name in names:
        write_pkg(cfg, name, depends=("t-a>=1.0",) if name == "t-b" else ())
    return cfg


def test_publish_refuses_a_package_whose_avf_dependency_the_new_repository_lacks(rcfg, packages, tmp_path):
    with_pkgbuilds(rcfg, "t-a", "t-b")
    key = signing_key(rcfg.signing)
    with pytest.raises(PublishRefused) as exc:
        publish(rcfg, key, copies(packages, tmp_path, "t-b"))
    assert str(exc.value) == (
        "[avf] would not be installable: t-b 1.0-1 depends on t-a>=1.0. [avf]'s own packages make these "
        "(t-a: pkgbuilds/) and the new [avf] would not hold them (pacman: unable to satisfy dependency): "
        "publish them with it")
    assert not os.path.lexists(rcfg.repo.published)
    publish(rcfg, key, copies(packages, tmp_path, "t-b", "t-a"))        # together: fine
    assert set(read_db(rcfg.repo.db)) == {"t-a", "t-b"}
    # where t-a is not one of [avf]'s own packages, a dependency on it is not [avf]'s business
    (tmp_path / "other").mkdir()
    other = with_pkgbuilds(config_mod.load(write_config(tmp_path / "other" / "avfrepo.toml", "file:///nowhere",
                                                        rcfg.signing.gnupg_home)), "t-b")
    publish(other, key, copies(packages, tmp_path / "other", "t-b"))
    assert set(read_db(other.repo.db)) == {"t-b"}


def test_repo_add_cli_refusal_names_the_missing_package(rcfg, packages, tmp_path, capsys):
    with_pkgbuilds(rcfg, "t-a", "t-b")
    pkg, = copies(packages, tmp_path, "t-b")
    assert main(["--config", str(rcfg.file), "repo", "add", str(pkg)]) == 1
    assert "t-b 1.0-1 depends on t-a>=1.0" in capsys.readouterr().err


def test_removing_a_package_another_depends_on_is_refused(rcfg, packages, tmp_path):
    with_pkgbuilds(rcfg, "t-a", "t-b")
    publish(rcfg, signing_key(rcfg.signing), copies(packages, tmp_path, "t-a", "t-b"))
    before = state(rcfg)
    with pytest.raises(PublishRefused, match=r"t-b 1.0-1 depends on t-a>=1.0\..*keep t-a, or take t-b out"):
        remove(rcfg, "t-a")
    assert state(rcfg) == before


def test_verify_reports_a_published_package_whose_avf_dependency_is_missing(rcfg, packages, tmp_path, monkeypatch,
                                                                            capsys):
    with_pkgbuilds(rcfg, "t-a", "t-b")
    key = signing_key(rcfg.signing)
    publish(rcfg, key, copies(packages, tmp_path, "t-a", "t-b"))
    assert verify(rcfg).ok
    with monkeypatch.context() as m:                # planted: removed without the closure check
        m.setattr(publish_mod, "check_closure", lambda *a, **k: None, raising=False)
        remove(rcfg, "t-a")
    bad = {c.path: c.message for c in verify(rcfg).bad()}
    assert bad == {packages["t-b"].name: "t-b 1.0-1 depends on t-a>=1.0: [avf]'s own packages make it "
                                         "(t-a: pkgbuilds/) and [avf] does not hold it (pacman: unable to "
                                         "satisfy dependency)"}
    assert main(["--config", str(rcfg.file), "verify", "--json"]) == 1
    # and the next publish of anything else says so too, until it is mended
    with pytest.raises(PublishRefused, match="publish them with it, or take t-b out"):
        publish(rcfg, key, copies(packages, tmp_path, "t-d"))
