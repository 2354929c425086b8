"""systemd-avf: the version of an ALARM-shaped core.db served on 127.0.0.1, an ALARM-shaped
PKGBUILDs git repository (alarm_fixture: core/systemd over several revisions), a synthetic
systemd git repository (annotated v<pkgver> tags) holding a small find-esp.c of our own, the
ESP patch generated from the rule and dry-run, the rules that derive systemd-avf's PKGBUILD from
ALARM's, and the split package's .SRCINFO."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import subprocess
import textwrap

import pytest

from avfrepo import config as config_mod
from avfrepo import sources
from avfrepo.checkout import tree_at
from avfrepo.demo import Symlink, write_config
from avfrepo.formats import srcinfo
from avfrepo.makepkg import printsrcinfo
from avfrepo.alarm_pkgbuilds import PkgbuildsRepo
from avfrepo.packages import PKGREL_TOKEN, PKGVER_TOKEN, Context, RenderProblem, systemd_avf
from avfrepo.run import run

from ..conftest import require_build_user, require_tools
from ..sources.conftest import DB_PATH, desc_db, git_repo, http_server, no_proxy_and_recorded_sleeps  # noqa: F401
from .alarm_fixture import SYSTEMD_LOCAL, SYSTEMD_SPLIT, make_alarm, source_keys, systemd_pkgbuild

ESP = "src/shared/find-esp.c"
PATCH = systemd_avf.ESP_PATCH
SPLIT = ("systemd-avf", "systemd-avf-libs", "systemd-avf-resolvconf", "systemd-avf-sysvcompat", "systemd-avf-tests",
         "systemd-avf-ukify")


def find_esp_c(*, relax: str = "getenv", changed: bool = False) -> str:
    """A small find-esp.c of our own with the shape that matters: two functions that compare a
    partition's type with the ESP type and return an error. relax: "getenv" (reads
    SYSTEMD_RELAX_ESP_CHECKS directly), "helper" (the name handed to verify_esp_flags_init(),
    which calls getenv_bool() on its argument), "comment" (only comments mention it), "none".
    changed: the type check moved into helpers (the rule must no longer match)."""
    if changed:
        check_blkid = ("        if (!esp_type_ok(v))\n"
                       "                return esp_wrong_type(node, searching);\n")
        check_udev = ("        if (!esp_type_ok(v))\n"
                      "                return esp_wrong_type(\"udev device\", searching);\n")
    else:
        check_blkid = ("        if (sd_id128_string_equal(v, SD_GPT_ESP) <= 0)\n"
                       "                return log_full_errno(searching ? LOG_DEBUG : LOG_ERR,\n"
                       "                                      SYNTHETIC_ERRNO(searching ? EADDRNOTAVAIL : ENODEV),\n"
                       "                                      \"Partition \\\"%s\\\" is not of the ESP type; refusing.\", node);\n")
        check_udev = ("        if (sd_id128_string_equal(v, SD_GPT_ESP) <= 0)\n"
                      "                return log_full_errno(searching ? LOG_DEBUG : LOG_ERR,\n"
                      "                                      SYNTHETIC_ERRNO(searching ? EADDRNOTAVAIL : ENODEV),\n"
                      "                                      \"Device %u:%u has the wrong type; refusing.\",\n"
                      "                                      major(devid), minor(devid));\n")
    relax_code = {
        "getenv": "        if (getenv_bool(\"SYSTEMD_RELAX_ESP_CHECKS\") > 0)\n                return 0;\n",
        "helper": "        r = verify_esp_flags_init(unprivileged, \"SYSTEMD_RELAX_ESP_CHECKS\");\n"
                  "        if (r > 0)\n                return 0;\n",
        "comment": "        /* one day: SYSTEMD_RELAX_ESP_CHECKS */\n"
                   "        // and \"SYSTEMD_RELAX_ESP_CHECKS\" in a line comment \\\n"
                   "           SYSTEMD_RELAX_ESP_CHECKS continued on the next line\n",
        "none": "",
    }[relax]
    helper = ("static int verify_esp_flags_init(bool unprivileged, const char *env_name_for_relaxing) {\n"
              "        /* the variable's name arrives as an argument */\n"
              "        return getenv_bool(env_name_for_relaxing) > 0;\n"
              "}\n\n") if relax == "helper" else ""
    return (
        "/* SPDX-License-Identifier: LGPL-2.1-or-later */\n"
        "/* test fixture: how a candidate EFI System Partition is checked */\n"
        "\n"
        "#include \"find-esp.h\"\n"
        "\n"
        + helper +
        "static int verify_esp_blkid(dev_t devid, bool searching, sd_id128_t *ret_uuid) {\n"
        "        const char *node, *v;\n"
        "        int r;\n"
        "\n"
        "        r = probe_partition(devid, &node);\n"
        "        if (r < 0)\n"
        "                return log_error_errno(r, \"Cannot probe %u:%u: %m\", major(devid), minor(devid));\n"
        "\n"
        "        r = probe_value(node, \"PART_ENTRY_TYPE\", &v);\n"
        "        if (r < 0)\n"
        "                return log_error_errno(r, \"No partition type on \\\"%s\\\": %m\", node);\n"
        + check_blkid +
        "\n"
        "        r = probe_value(node, \"PART_ENTRY_UUID\", &v);\n"
        "        if (r < 0)\n"
        "                return log_error_errno(r, \"No partition UUID on \\\"%s\\\": %m\", node);\n"
        "        return sd_id128_from_string(v, ret_uuid);\n"
        "}\n"
        "\n"
        "static int verify_esp_udev(dev_t devid, bool searching, sd_id128_t *ret_uuid) {\n"
        "        _cleanup_(sd_device_unrefp) sd_device *d = NULL;\n"
        "        const char *v;\n"
        "        int r;\n"
        "\n"
        "        r = sd_device_new_from_devnum(&d, 'b', devid);\n"
        "        if (r < 0)\n"
        "                return log_error_errno(r, \"No device for %u:%u: %m\", major(devid), minor(devid));\n"
        "\n"
        "        r = sd_device_get_property_value(d, \"ID_PART_ENTRY_TYPE\", &v);\n"
        "        if (r < 0)\n"
        "                return log_error_errno(r, \"No ID_PART_ENTRY_TYPE; it is needed: %m\");\n"
        + check_udev +
        "\n"
        "        r = sd_device_get_property_value(d, \"ID_PART_ENTRY_UUID\", &v);\n"
        "        if (r < 0)\n"
        "                return log_error_errno(r, \"No ID_PART_ENTRY_UUID: %m\");\n"
        "        return sd_id128_from_string(v, ret_uuid);\n"
        "}\n"
        "\n"
        "int verify_esp(const char *path, bool searching, bool unprivileged, sd_id128_t *ret_uuid) {\n"
        "        dev_t devid;\n"
        "        int r;\n"
        "\n"
        + relax_code +
        "        r = path_devnum(path, &devid);\n"
        "        if (r < 0)\n"
        "                return r;\n"
        "        if (unprivileged)\n"
        "                return verify_esp_udev(devid, searching, ret_uuid);\n"
        "        return verify_esp_blkid(devid, searching, ret_uuid);\n"
        "}\n")


class Systemd:
    """systemd's repository shape (annotated v<pkgver> tags, other source dirs) and ALARM's
    core.db listing the systemd split packages, served on 127.0.0.1."""

    def __init__(self, path, server):
        self.repo = git_repo(path)
        self.srv = server
        self.commits: dict[str, str] = {}

    def release(self, tag: str, find_esp: str, other: str = "") -> str:
        self.commits[tag] = self.repo.commit({
            "meson.build": f"project('systemd', 'c', version: '{tag[1:]}')\n",
            "src/basic/log.h": f"/* log helpers {other} */\n",
            ESP: find_esp,
        }, f"systemd {tag}")
        self.repo.tag(tag, message=f"systemd {tag[1:]}")
        return self.commits[tag]

    def serve(self, version: str) -> None:
        pkgs = {n: version for n in ("systemd", "systemd-libs", "systemd-sysvcompat", "systemd-resolvconf",
                                     "systemd-ukify", "systemd-tests", "linux-aarch64")}
        pkgs["linux-aarch64"] = "6.17.8-3"
        self.srv.routes[DB_PATH] = desc_db(pkgs)


@pytest.fixture
def systemd(tmp_path, http_server) -> Systemd:  # noqa: F811 (the imported fixture)
    require_tools("git", "patch")
    s = Systemd(tmp_path / "upstream" / "systemd", http_server({}))
    s.release("v260.1", find_esp_c(relax="comment"))
    s.release("v261.2", find_esp_c())
    s.repo.commit({"NEWS": "work after the release\n"}, "main moves on")
    s.serve("261.2-1")
    return s


@pytest.fixture
def alarm(tmp_path):
    return make_alarm(tmp_path / "upstream" / "PKGBUILDs")


@pytest.fixture
def scfg(tmp_path, systemd, alarm, signing_home) -> config_mod.Config:
    extra = textwrap.dedent(f"""
        [upstreams.systemd]
        kind = "alpm-db"
        server = "{systemd.srv.base}"
        source_git = "{systemd.repo.url}"
        retries = 0

        [upstreams.alarm-pkgbuilds]
        url = "{alarm.url}"
        """)
    return config_mod.load(write_config(tmp_path / "avfrepo.toml", (tmp_path / "no-avf").as_uri(), signing_home,
                                        extra=extra))


def release_and_tree(cfg):
    rel = sources.query(cfg.upstream("systemd"))
    tree = tree_at("systemd", cfg.upstream("systemd").source_git, rel.tag, rel.commit,
                   systemd_avf.TREES["systemd"], cfg.cache)
    return rel, tree


def render_at(cfg):
    rel, tree = release_and_tree(cfg)
    head = sources.query(cfg.upstream("alarm-pkgbuilds"))
    return systemd_avf.render(Context(cfg, {"systemd": rel, "alarm-pkgbuilds": head}, {"systemd": tree}))


def array(pkgbuild: str, name: str) -> list[str]:
    return [s.strip("'\"") for s in re.search(rf"^{name}=\((.*?)\)", pkgbuild, re.S | re.M).group(1).split()]


def alarm_file(alarm, label: str, name: str) -> bytes:
    return subprocess.run(["git", "-C", alarm.repo.path, "cat-file", "blob", f"{alarm.commits[label]}:core/systemd/{name}"],
                          check=True, capture_output=True).stdout


def derive(text: str) -> str:
    return systemd_avf.derive(text, arch="aarch64", patch_name=PATCH, patch=b"fixture patch\n",
                              revision="0" * 40)[0]


# --- the render: ALARM's directory at the database's version ------------------------------------

def test_render_is_alarms_core_systemd_at_the_database_version(scfg, systemd, alarm):
    r = render_at(scfg)
    label = "systemd 261.2-1 hooks"                # the newest revision at 261.2-1, not the first
    assert (r.name, r.pkgver) == ("systemd-avf", "261.2")
    assert r.upstreams == {"systemd": "261.2-1", "alarm-pkgbuilds": alarm.commits[label]}
    local = set(SYSTEMD_LOCAL) | {"systemd.install"}
    keys = {f"keys/pgp/{fpr}.asc" for fpr in source_keys()}
    assert set(r.files) == local | keys | {"PKGBUILD", PATCH}      # no .SRCINFO, REUSE.toml, LICENSES/
    for name in local:
        assert r.files[name] == alarm_file(alarm, label, name), name
    assert b"# touched" in r.files["20-systemd-sysusers.hook"]
    assert r.files["PKGBUILD"].decode() == derive_at(alarm, label, r.files[PATCH])
    assert r.notes[0].startswith(f"ALARM core/systemd at {alarm.commits[label][:12]} (261.2-1), ")


def test_the_source_keys_come_along_each_the_key_its_name_says(scfg, systemd, alarm):
    from avfrepo.signing import key_fingerprints
    r = render_at(scfg)
    label = "systemd 261.2-1 hooks"
    keys = {path: data for path, data in r.files.items() if path.startswith("keys/")}
    assert sorted(keys) == sorted(f"keys/pgp/{fpr}.asc" for fpr in source_keys())
    for path, data in keys.items():
        assert data == alarm_file(alarm, label, path)                     # byte for byte ALARM's
        assert key_fingerprints(data) == [path[len("keys/pgp/"):-len(".asc")]]
    assert sorted(systemd_avf.validpgpkeys(r.files["PKGBUILD"].decode())) == sorted(source_keys())
    assert r.notes[-1] == ("source keys from core/systemd/keys/pgp, each the key its name says and listed in "
                           f"validpgpkeys: {', '.join(sorted(source_keys()))}")


def _pad(data: bytes) -> bytes:
    return data + b"\n" * (300 * 1024)


# each: what the new ALARM revision 261.2-2 changes (files under core/systemd, removals, the
# PKGBUILD's validpgpkeys) -> what the refusal must name
KEY_DEFECTS = {
    "another key's content": (lambda k1, k2: {"files": {f"keys/pgp/{k1}.asc": source_keys()[k2]}},
                              r"keys/pgp/{k1}\.asc holds {k2}, not \(only\) the key {k1} its name says"),
    "a validpgpkeys entry without its file": (lambda k1, k2: {"remove": (f"keys/pgp/{k2}.asc",)},
                                              r"validpgpkeys entry {k2} has no key file keys/pgp/{k2}\.asc"),
    "a key file not in validpgpkeys": (lambda k1, k2: {"keys": (k1,)},
                                       r"keys/pgp/{k2}\.asc is not listed in validpgpkeys"),
    "a symlinked key file": (lambda k1, k2: {"remove": (f"keys/pgp/{k1}.asc",),
                                             "files": {f"keys/pgp/{k1}.asc": Symlink(f"{k2}.asc")}},
                             r"refusing keys/pgp/{k1}\.asc \(mode 120000: not a regular file; a symbolic link is "
                             r"not followed\)"),
    "a symlinked keys folder": (lambda k1, k2: {"remove": ("keys",), "files": {"keys": Symlink("../linux-aarch64")}},
                                r"refusing keys \(mode 120000: not a regular file"),
    "a symlinked keys/pgp folder": (lambda k1, k2: {"remove": ("keys/pgp",), "files": {"keys/pgp": Symlink("..")}},
                                    r"refusing keys/pgp \(mode 120000: not a regular file"),
    "a file too large to be a key": (lambda k1, k2: {"files": {f"keys/pgp/{k1}.asc": _pad(source_keys()[k1])}},
                                     r"larger than 262144 bytes: keys/pgp/{k1}\.asc \(\d+ bytes\)"),
    "a file that is not named for a key": (lambda k1, k2: {"files": {"keys/pgp/signer.asc": source_keys()[k1]}},
                                           r"keys/pgp/signer\.asc: not a key file name"),
    "a file in a folder below keys/pgp": (lambda k1, k2: {"files": {f"keys/pgp/old/{k1}.asc": source_keys()[k1]}},
                                          r"refusing keys/pgp/old/{k1}\.asc \(not keys/pgp/<FINGERPRINT>\.asc\)"),
}


@pytest.mark.parametrize("defect", KEY_DEFECTS)
def test_a_key_file_that_does_not_match_or_is_missing_refuses_the_render_naming_it(scfg, systemd, alarm, defect):
    k1, k2 = source_keys()
    change, message = KEY_DEFECTS[defect]
    c = change(k1, k2)
    pkgbuild = systemd_pkgbuild("261.2", "2", keys=c.get("keys", (k1, k2)))
    alarm.systemd("261.2", "2", label="261.2-2", remove=c.get("remove", ()), PKGBUILD=pkgbuild, **c.get("files", {}))
    systemd.serve("261.2-2")
    with pytest.raises(RenderProblem, match=message.format(k1=k1, k2=k2)) as err:
        render_at(scfg)
    assert "core/systemd" in str(err.value)
    # the same revision with ALARM's keys as they were renders
    for link in ("keys/pgp", "keys"):       # (the fixture's commit() would follow a link to a folder)
        if (alarm.repo.path / "core/systemd" / link).is_symlink():
            (alarm.repo.path / "core/systemd" / link).unlink()
    alarm.systemd("261.2", "2", label="261.2-2 fixed", remove=("keys",),
                  **{f"keys/pgp/{fpr}.asc": key for fpr, key in source_keys().items()})
    assert render_at(scfg).upstreams["alarm-pkgbuilds"] == alarm.commits["261.2-2 fixed"]


def derive_at(alarm, label: str, patch: bytes) -> str:
    return systemd_avf.derive(alarm_file(alarm, label, "PKGBUILD").decode(), arch="aarch64", patch_name=PATCH,
                              patch=patch, revision=alarm.commits[label])[0]


def test_the_database_version_picks_the_revision(scfg, systemd, alarm):
    systemd.serve("261.1-1")
    systemd.release("v261.1", find_esp_c())
    r = render_at(scfg)
    assert r.upstreams["alarm-pkgbuilds"] == alarm.commits["systemd 261.1-1"]
    # a pkgrel ALARM has not pushed yet: the newest revision at that pkgver
    systemd.serve("261.2-3")
    assert render_at(scfg).upstreams["alarm-pkgbuilds"] == alarm.commits["systemd 261.2-1 hooks"]
    alarm.systemd("261.2", "2", label="261.2-2")
    alarm.systemd("261.2", "3", label="261.2-3")
    alarm.systemd("261.2", "4", label="261.2-4")
    assert render_at(scfg).upstreams["alarm-pkgbuilds"] == alarm.commits["261.2-3"]


def test_a_version_alarm_never_pushed_refuses(scfg, systemd, alarm):
    systemd.release("v262", find_esp_c())
    systemd.serve("262-1")
    with pytest.raises(RenderProblem, match=r"no revision of core/systemd at systemd 262 \(core.db has 262-1"):
        render_at(scfg)


def test_only_core_systemds_pkgbuilds_and_used_files_are_fetched(scfg, systemd, alarm):
    render_at(scfg)
    head = sources.query(scfg.upstream("alarm-pkgbuilds"))
    repo = PkgbuildsRepo.open(scfg.upstream("alarm-pkgbuilds"), head.commit, scfg.cache)
    present = repo.present()
    git = alarm.repo.repo.git
    for label, c in alarm.commits.items():
        paths = ["extra/foo/PKGBUILD"] if label.startswith("other") else []
        if label.startswith("systemd"):
            paths += ["core/systemd/.SRCINFO", "core/systemd/REUSE.toml", "core/systemd/LICENSES/MIT-0.txt"]
        if label.startswith("linux"):
            paths += ["core/linux-aarch64/config", "core/linux-aarch64/PKGBUILD"]
        for path in paths:
            assert git.rev_parse(f"{c}:{path}") not in present, (label, path)
    assert git.rev_parse(f"{alarm.commits['systemd 260.1-1']}:core/systemd/PKGBUILD") in present
    # the same head again: nothing fetched, nothing asked
    again = PkgbuildsRepo.open(scfg.upstream("alarm-pkgbuilds"), head.commit, scfg.cache)
    again.files(alarm.commits["systemd 261.2-1 hooks"], "core/systemd", only=("systemd.install",))
    again.revisions("core/systemd")
    assert again.fetched_blobs == 0


# --- the rules ---------------------------------------------------------------------------------

def test_the_rules_change_only_what_they_name():
    alarm_text = systemd_pkgbuild("261.2")
    ours = derive(alarm_text)
    removed = [ln for ln in difflib_lines(alarm_text, ours, "-")]
    added = [ln for ln in difflib_lines(alarm_text, ours, "+")]
    assert sorted(removed) == sorted([
        "pkgbase=systemd", *(f"         '{n}'" for n in SYSTEMD_SPLIT[1:-1]), "pkgname=('systemd'",
        "         'systemd-ukify')",
        "pkgver=261.2", "pkgrel=1", "arch=('x86_64')", '_systemd_src_dir="${pkgbase}"',
        *(f"package_{n}() {{" for n in SYSTEMD_SPLIT),
        '  depends=("systemd-libs=${pkgver}" \'acl\' \'bash\')',
        "  replaces=('nss-myhostname' 'udev')", "  replaces=('libsystemd')",
        *(['  depends=("systemd=${pkgver}")'] * 3), '  depends=("systemd=${pkgver}" \'binutils\')',
        # the last entries of source=() and sha512sums=() get a line after them
        f"        '{list(SYSTEMD_LOCAL)[-1]}')", removed_last_sum(alarm_text),
    ])
    assert "pkgbase=systemd-avf" in added and f"pkgver={PKGVER_TOKEN}" in added and f"pkgrel={PKGREL_TOKEN}" in added
    assert "arch=('aarch64')" in added and "_systemd_src_dir='systemd'" in added
    assert f"        '{PATCH}')" in added
    assert f"            '{hashlib.sha512(b'fixture patch' + bytes([10])).hexdigest()}')" in added
    assert f'  patch -Np1 -i "$srcdir/{PATCH}"' in added
    for new, old in zip(SPLIT, SYSTEMD_SPLIT):
        assert f"package_{new}() {{" in added
        assert f'  provides+=("{old}=${{pkgver}}")' in added and f"  conflicts+=('{old}')" in added
    assert not any(ln.strip().startswith("replaces") for ln in added)


def difflib_lines(a: str, b: str, sign: str) -> list[str]:
    import difflib
    return [ln[1:] for ln in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if ln.startswith(sign) and not ln.startswith(sign * 3)]


def removed_last_sum(text: str) -> str:
    return [ln for ln in text.splitlines() if ln.endswith("')") and ln.strip().startswith("'") and len(ln) > 100][-1]


def test_the_esp_patch_is_applied_last_in_prepare_in_the_source_tree():
    ours = derive(systemd_pkgbuild("261.2"))
    prepare = ours.split("prepare() {\n", 1)[1].split("\n}\n", 1)[0]
    lines = [ln.strip() for ln in prepare.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert lines[0] == 'cd "${_systemd_src_dir}"'
    assert lines[-2:] == ["patch -Np1 -i ../0001-Use-Arch-Linux-device-access-groups.patch",
                          f'patch -Np1 -i "$srcdir/{PATCH}"']


def _drop_src_dir(t):
    return t.replace('_systemd_src_dir="${pkgbase}"\n', "")


@pytest.mark.parametrize("rule, mutate", [
    ("pkgname", lambda t: t.replace("pkgname=('systemd'", "pkgname=('sd'")),
    ("pkgname", lambda t: t.replace("pkgname=(", "pkgname=$(echo; ")),
    ("pkgbase", lambda t: t.replace("pkgbase=systemd\n", "pkgbase=systemd-git\n")),
    ("version", lambda t: t.replace("pkgver=261.2\n", "pkgver=${_tag}\n")),
    ("arch", lambda t: t.replace("arch=('x86_64')", "arch=('x86_64'\n      'aarch64')")),
    ("source-dir", _drop_src_dir),
    ("split-depends", lambda t: t.replace('"systemd=${pkgver}"', "'systemd'").replace(
        '"systemd-libs=${pkgver}"', "'systemd-libs'")),
    ("package-functions", lambda t: t.replace("package_systemd-tests() {", "_package_tests() {")),
    ("esp-source", lambda t: t.replace("sha512sums=('SKIP'\n", "sha512sums=(\n")),
    ("esp-source", lambda t: t.replace("sha512sums=(", "b2sums=('SKIP')\nsha512sums=(")),
    ("esp-prepare", lambda t: t.replace('  cd "${_systemd_src_dir}"\n', "")),
    ("esp-prepare", lambda t: t.replace("prepare() {", "_prepare() {")),
])
def test_a_rule_that_no_longer_matches_is_named(rule, mutate):
    text = mutate(systemd_pkgbuild("261.2"))
    assert text != systemd_pkgbuild("261.2")
    with pytest.raises(systemd_avf.RuleMismatch) as err:
        derive(text)
    assert err.value.rule == rule


def test_other_checksum_algorithms_get_their_own_digest():
    text = systemd_pkgbuild("261.2").replace("sha512sums=(", "b2sums=(")
    ours = derive(text)
    assert f"'{hashlib.blake2b(b'fixture patch' + bytes([10])).hexdigest()}')" in ours


def test_a_broken_rule_refuses_the_render_naming_it_and_sync_keeps_the_previous_pkgbuild(scfg, systemd, alarm):
    from avfrepo.sync import sync
    require_build_user()
    cfg = dataclasses.replace(scfg, enabled=("systemd-avf",))
    first = sync(cfg)
    assert [p.action for p in first.packages] == ["new"], first.to_json()
    before = (cfg.pkgbuilds / "systemd-avf" / "PKGBUILD").read_bytes()
    assert b"pkgbase=systemd-avf" in before and b"pkgver=261.2\n" in before and b"pkgrel=1\n" in before
    broken = systemd_pkgbuild("261.3").replace('_systemd_src_dir="${pkgbase}"', '_systemd_src_dir="systemd-${pkgver}"')
    alarm.systemd("261.3", PKGBUILD=broken)
    systemd.release("v261.3", find_esp_c(), other="261.3")
    systemd.serve("261.3-1")
    second = sync(cfg)
    (pkg,) = second.packages
    assert pkg.action == "refused"
    assert "systemd-avf rule source-dir no longer matches ALARM's core/systemd/PKGBUILD" in pkg.problems[0]
    assert "(261.3-1)" in pkg.problems[0] and "the previous PKGBUILD stays" in pkg.problems[0]
    assert (cfg.pkgbuilds / "systemd-avf" / "PKGBUILD").read_bytes() == before


def test_the_esp_patch_turns_exactly_the_two_type_checks_into_logs(scfg, systemd, tmp_path):
    r = render_at(scfg)
    patch = r.files[PATCH].decode()
    assert f"--- a/{ESP}\n+++ b/{ESP}\n" in patch
    removed = [ln for ln in patch.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    added = [ln for ln in patch.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert len(added) == 2 and all("log_debug(" in ln for ln in added)
    assert sum("return log_full_errno(" in ln for ln in removed) == 2
    assert not any("SD_GPT_ESP" in ln for ln in removed + added)      # the condition stays
    # applying it for real gives C whose type checks no longer return
    work = tmp_path / "apply"
    _, tree = release_and_tree(scfg)
    shutil.copytree(tree / "src", work / "src")
    run(["patch", "-p1", "-i", "-"], cwd=work, input=patch)
    text = (work / ESP).read_text()
    for fn in systemd_avf.ESP_FUNCTIONS:
        body = text.split(f"int {fn}(", 1)[1].split("\n}\n", 1)[0]
        after = body.split("SD_GPT_ESP", 1)[1]
        assert after.split("\n")[1].strip().startswith("log_debug(")
        assert "return log_error_errno" in body                       # other errors untouched
    assert text.count("log_full_errno") == 0 and text.count("return log_error_errno") == 6


def test_an_unchanged_check_gives_the_same_patch_on_the_next_version(scfg, systemd, alarm):
    a = render_at(scfg)
    systemd.release("v261.3", find_esp_c(), other="unrelated change")
    alarm.systemd("261.3")
    systemd.serve("261.3-1")
    b = render_at(scfg)
    assert a.files[PATCH] == b.files[PATCH]
    assert a.inputs_hash() != b.inputs_hash()                          # ALARM's file changed


def test_a_pkgrel_only_change_of_the_database_changes_no_input(scfg, systemd, alarm):
    a = render_at(scfg)
    systemd.serve("261.2-2")                 # ALARM's PKGBUILDs have no 261.2-2: same revision
    b = render_at(scfg)
    assert b.upstreams["systemd"] == "261.2-2" and b.pkgver == "261.2"
    assert a.inputs_hash() == b.inputs_hash()


def test_new_alarm_work_elsewhere_changes_no_input(scfg, systemd, alarm):
    a = render_at(scfg)
    alarm.other("extra/foo to 2.0-1")
    alarm.linux("6.18.2")
    b = render_at(scfg)
    assert a.inputs_hash() == b.inputs_hash() and a.upstreams == b.upstreams


def test_changed_upstream_code_refuses_naming_patch_file_and_version(scfg, systemd, alarm):
    systemd.release("v262", find_esp_c(changed=True))
    alarm.systemd("262")
    systemd.serve("262-1")
    with pytest.raises(RenderProblem) as err:
        render_at(scfg)
    msg = str(err.value)
    assert PATCH in msg and ESP in msg and "systemd 262" in msg
    assert "verify_esp_blkid(): no partition type check" in msg and "verify_esp_udev(): no partition type check" in msg
    assert "rule no longer matches" in msg


def test_a_vanished_function_or_file_refuses(scfg, systemd, tmp_path):
    _, tree = release_and_tree(scfg)
    src = tree / ESP
    src.write_text(src.read_text().replace("verify_esp_udev(dev_t", "verify_esp_by_udev(dev_t"))
    with pytest.raises(RenderProblem, match=r"verify_esp_udev\(\) not found"):
        systemd_avf.esp_patch(tree, "261.2")
    src.unlink()
    with pytest.raises(RenderProblem, match=rf"{PATCH} for {ESP} of systemd 261.2: the file does not exist"):
        systemd_avf.esp_patch(tree, "261.2")


def test_a_patch_that_fails_its_dry_run_refuses_naming_patch_file_and_version(scfg, systemd, monkeypatch):
    _, tree = release_and_tree(scfg)
    real = systemd_avf.unified_diff
    # a diff whose context is not the checked-out file (what a stale or wrong patch looks like)
    monkeypatch.setattr(systemd_avf, "unified_diff",
                        lambda old, new, path: real(old.replace("SYNTHETIC_ERRNO", "ERRNO"),
                                                    new.replace("SYNTHETIC_ERRNO", "ERRNO"), path))
    with pytest.raises(RenderProblem) as err:
        systemd_avf.esp_patch(tree, "261.2")
    msg = str(err.value)
    assert f"{PATCH} no longer applies to {ESP} of systemd 261.2" in msg and "FAILED" in msg


@pytest.mark.parametrize("condition", [
    "if (id128_equal_string(v, GPT_ESP) <= 0)",
    'if (!streq(v, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"))',
])
def test_the_rule_knows_other_spellings_of_the_esp_type(condition):
    text = find_esp_c().replace("if (sd_id128_string_equal(v, SD_GPT_ESP) <= 0)", condition)
    new, problems = systemd_avf.relax_esp_checks(text)
    assert problems == [] and new.count(condition) == 2
    assert new.count("return log_full_errno") == 0 and new.count("log_debug(") == 2


def test_a_check_of_another_partition_type_is_not_touched():
    text = find_esp_c().replace("SD_GPT_ESP", "SD_GPT_XBOOTLDR")
    new, problems = systemd_avf.relax_esp_checks(text)
    assert new == text and len(problems) == 2


def test_a_second_type_check_in_one_function_is_ambiguous():
    text = find_esp_c()
    check = "        if (sd_id128_string_equal(v, SD_GPT_ESP) <= 0)\n"
    i = text.index(check)
    j = text.index(";\n", i) + 2
    doubled = text[:j] + text[i:j] + text[j:]
    _, problems = systemd_avf.relax_esp_checks(doubled)
    assert problems == ["verify_esp_blkid(): 2 partition type checks of the form "
                        "`if (... SD_GPT_ESP ...) return log_...;`"]


def test_unified_diff_marks_a_last_line_without_newline(tmp_path):
    require_tools("patch")
    (tmp_path / "f.c").write_text("a\nb")
    diff = systemd_avf.unified_diff("a\nb", "a\nc", "f.c")
    assert "\\ No newline at end of file" in diff
    run(["patch", "-p1", "-i", "-"], cwd=tmp_path, input=diff)
    assert (tmp_path / "f.c").read_text() == "a\nc"


# --- SYSTEMD_RELAX_ESP_CHECKS ------------------------------------------------------------------

@pytest.mark.parametrize("shape, honoured", [
    ("getenv", True),           # getenv_bool("SYSTEMD_RELAX_ESP_CHECKS") in verify_esp()
    ("helper", True),           # verify_esp_flags_init(..., "SYSTEMD_RELAX_ESP_CHECKS") -> getenv_bool(arg)
    ("comment", False),         # only /* */ and // comments (one continued by a backslash) name it
    ("none", False),
])
def test_relax_detection_reads_the_code_as_the_compiler_does(shape, honoured):
    assert systemd_avf.relax_env_in(find_esp_c(relax=shape)) is honoured


def test_comment_stripping_keeps_strings_and_characters():
    text = 'a = "/* not a comment */"; b = \'"\'; /* gone */ c = "x\\"y"; // gone\nd = 1;'
    assert systemd_avf.strip_c_comments(text) == 'a = "/* not a comment */"; b = \'"\';   c = "x\\"y";  \nd = 1;'


def test_relax_env_support_is_read_from_the_checkout_and_reported(scfg, systemd, alarm):
    r = render_at(scfg)
    _, tree = release_and_tree(scfg)
    assert systemd_avf.relax_env_supported(tree) is True
    assert r.notes[1] == ("systemd 261.2 honours SYSTEMD_RELAX_ESP_CHECKS (src/shared/find-esp.c): a configuration "
                          "can leave systemd-avf out of [packages] enable and have the image set "
                          "SYSTEMD_RELAX_ESP_CHECKS=1 where bootctl and systemd-boot-update run "
                          "(systemd_avf.relax_dropins()); check it on a device first")
    systemd.serve("260.1-1")                     # only comments mention the variable there
    old = render_at(scfg)
    _, tree = release_and_tree(scfg)
    assert systemd_avf.relax_env_supported(tree) is False
    assert old.notes[1] == ("systemd 260.1 does not read SYSTEMD_RELAX_ESP_CHECKS in src/shared/find-esp.c: "
                            "the ESP patch is needed")
    assert old.files[PATCH] == r.files[PATCH]     # the relax code is not part of the patch context
    (tree / ESP).write_text(find_esp_c(relax="helper"))
    assert systemd_avf.relax_env_supported(tree) is True
    (tree / ESP).unlink()
    assert systemd_avf.relax_env_supported(tree) is False


def test_relax_dropins_set_the_variable_for_the_manager_sessions_and_shells():
    files = {k: v.decode() for k, v in systemd_avf.relax_dropins().items()}
    manager = files["usr/lib/systemd/system.conf.d/50-avf-relax-esp-checks.conf"]
    assert "[Manager]\nDefaultEnvironment=SYSTEMD_RELAX_ESP_CHECKS=1\n" in manager
    assert "\nSYSTEMD_RELAX_ESP_CHECKS=1\n" in files["usr/lib/environment.d/50-avf-relax-esp-checks.conf"]
    assert "\nexport SYSTEMD_RELAX_ESP_CHECKS=1\n" in files["etc/profile.d/avf-relax-esp-checks.sh"]
    res = run(["sh", "-c", f". /dev/stdin; echo $SYSTEMD_RELAX_ESP_CHECKS"],
              input=files["etc/profile.d/avf-relax-esp-checks.sh"])
    assert res.stdout.strip() == "1"


def test_without_source_git_there_is_nothing_to_build(tmp_path, systemd, alarm, signing_home):
    extra = f'\n[upstreams.systemd]\nkind = "alpm-db"\nserver = "{systemd.srv.base}"\nretries = 0\n'
    cfg = config_mod.load(write_config(tmp_path / "plain.toml", (tmp_path / "x").as_uri(), signing_home, extra=extra))
    rel = sources.query(cfg.upstream("systemd"))
    with pytest.raises(RenderProblem, match="needs source_git"):
        systemd_avf.render(Context(cfg, {"systemd": rel}, {"systemd": tmp_path}))


# --- .SRCINFO ------------------------------------------------------------------------------

def test_srcinfo_split_names_provides_conflicts_and_exact_versions(scfg, systemd):
    require_build_user()
    r = render_at(scfg)
    info = srcinfo.parse(printsrcinfo(scfg, r.finalize(r.pkgver, 1)))
    assert info.pkgbase == "systemd-avf" and info.pkgnames == SPLIT
    assert info.pkgver == "261.2" == sources.query(scfg.upstream("systemd")).pkgver
    assert info.base["arch"] == ["aarch64"]
    assert info.base["source"][0] == "git+https://example.invalid/systemd/systemd#tag=v261.2?signed"
    assert info.base["source"][-1] == PATCH
    assert info.base["sha512sums"][-1] == hashlib.sha512(r.files[PATCH]).hexdigest()
    assert len(info.base["source"]) == len(info.base["sha512sums"])
    for name, core in zip(SPLIT, SYSTEMD_SPLIT):
        assert f"{core}=261.2" in info.get("provides", name), name
        assert core in info.get("conflicts", name), name
        assert info.get("replaces", name) == [], name
    assert {"nss-myhostname", "udev=261.2"} <= set(info.get("provides", "systemd-avf"))   # ALARM's kept
    assert "systemd-avf-libs=261.2" in info.get("depends", "systemd-avf")
    for name in SPLIT[2:]:
        assert "systemd-avf=261.2" in info.get("depends", name), name
    assert not any(d.startswith("systemd=") or d == "systemd" for n in SPLIT for d in info.get("depends", n))
    assert {"libsystemd.so", "libudev.so"} <= set(info.get("provides", "systemd-avf-libs"))
    assert info.get("install", "systemd-avf") == ["systemd.install"]
