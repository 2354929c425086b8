"""The set-up scripts: what a fresh Debian or Arch machine gets, and CI using them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def words(script: str, array: str) -> set[str]:
    text = (ROOT / "scripts" / script).read_text()
    body = re.search(rf"^{array}=\((.*?)^\)", text, re.S | re.M).group(1)
    return {w for line in body.splitlines() for w in line.split("#")[0].split()}


@pytest.mark.parametrize("script", ["setup-debian.sh", "setup-arch.sh"])
def test_setup_scripts_are_valid_bash(script):
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)]).returncode == 0


def test_setup_debian_installs_what_the_tests_drive():
    apt = words("setup-debian.sh", "APT_PACKAGES")
    # xz and patch (kernel sources), systemctl/systemd-analyze (image presets, unit checks)
    assert {"xz-utils", "patch", "systemd", "pacman-package-manager", "makepkg", "libarchive-tools",
            "e2fsprogs", "dosfstools", "mtools", "gnupg", "zstd"} <= apt
    text = (ROOT / "scripts/setup-debian.sh").read_text()
    assert "command -v cargo >/dev/null 2>&1 || APT_PACKAGES+=(cargo)" in text


def test_setup_arch_installs_devtools_binfmt_and_python_deps_from_pacman():
    pkgs = words("setup-arch.sh", "PACKAGES")
    assert {"devtools", "base-devel", "pyalpm", "python-gitpython", "python-requests", "python-jinja",
            "python-packaging", "python-pytest", "python-pytest-xdist", "python-yaml", "rust", "systemd"} <= pkgs
    text = (ROOT / "scripts/setup-arch.sh").read_text()
    assert 'if [ "$(uname -m)" = x86_64 ]; then\n  PACKAGES+=(qemu-user-static qemu-user-static-binfmt)' in text
    assert "--system-site-packages" in text and "--no-deps" in text


def test_ci_arch_job_sets_up_with_setup_arch():
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    runs = [s.get("run", "") for s in ci["jobs"]["arch"]["steps"]]
    assert "bash scripts/setup-arch.sh" in runs
    checkout = next(i for i, s in enumerate(ci["jobs"]["arch"]["steps"]) if s.get("uses", "").startswith("actions/checkout"))
    assert runs.index("bash scripts/setup-arch.sh") > checkout      # the script comes with the checkout


@pytest.mark.skipif(not Path("/etc/debian_version").exists(), reason="a Debian host only")
def test_this_debian_host_has_every_tool_the_tests_need_but_devtools():
    """After setup-debian.sh, nothing a test needs is missing (so nothing but devtools skips)."""
    from ..conftest import DEVTOOLS
    needed = set()
    for f in (ROOT / "tests").rglob("*.py"):
        for call in re.findall(r"require_tools\(([^)]*)\)", f.read_text()):
            needed |= set(re.findall(r'"([^"]+)"', call))
    needed |= {"systemctl", "systemd-analyze", "xz", "cargo", "rustc", "patch"}
    missing = sorted(t for t in needed - DEVTOOLS if shutil.which(t) is None)
    assert missing == [], f"run scripts/setup-debian.sh: missing {missing}"
