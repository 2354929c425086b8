"""systemd-avf: the version of an ALARM-shaped core.db served on 127.0.0.1, a synthetic
systemd git repository (annotated v<pkgver> tags) holding a small find-esp.c of our own,
the ESP patch generated from the rule and dry-run, and the split package's .SRCINFO."""

from __future__ import annotations

import hashlib
import re
import shutil
import textwrap

import pytest

from avfrepo import config as config_mod
from avfrepo import sources
from avfrepo.checkout import tree_at
from avfrepo.demo import write_config
from avfrepo.formats import srcinfo
from avfrepo.makepkg import printsrcinfo
from avfrepo.packages import PKGREL_TOKEN, PKGVER_TOKEN, Context, RenderProblem, systemd_avf
from avfrepo.run import run

from ..conftest import require_build_user, require_tools
from ..sources.conftest import DB_PATH, desc_db, git_repo, http_server, no_proxy_and_recorded_sleeps  # noqa: F401

ESP = "src/shared/find-esp.c"
PATCH = systemd_avf.ESP_PATCH
SPLIT = ("systemd-avf", "systemd-avf-libs", "systemd-avf-resolvconf", "systemd-avf-sysvcompat", "systemd-avf-ukify")


def find_esp_c(*, relax: str = "getenv", changed: bool = False) -> str:
    """A small find-esp.c of our own with the shape that matters: two functions that compare a
    partition's type with the ESP type and return an error. relax: "getenv" (reads
    SYSTEMD_RELAX_ESP_CHECKS), "comment" (only mentions it), "none". changed: the type check
    moved into helpers (the rule must no longer match)."""
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
        "comment": "        /* one day: SYSTEMD_RELAX_ESP_CHECKS */\n",
        "none": "",
    }[relax]
    return (
        "/* SPDX-License-Identifier: LGPL-2.1-or-later */\n"
        "/* test fixture: how a candidate EFI System Partition is checked */\n"
        "\n"
        "#include \"find-esp.h\"\n"
        "\n"
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
def scfg(tmp_path, systemd, signing_home) -> config_mod.Config:
    extra = textwrap.dedent(f"""
        [upstreams.systemd]
        kind = "alpm-db"
        server = "{systemd.srv.base}"
        source_git = "{systemd.repo.url}"
        retries = 0
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
    return systemd_avf.render(Context(cfg, {"systemd": rel}, {"systemd": tree}))


def array(pkgbuild: str, name: str) -> list[str]:
    return [s.strip("'\"") for s in re.search(rf"^{name}=\((.*?)\)", pkgbuild, re.S | re.M).group(1).split()]


# --- the render and the generated patch ------------------------------------------------------

def test_render_follows_alarms_pkgver_and_builds_from_the_tag(scfg, systemd):
    r = render_at(scfg)
    assert (r.name, r.pkgver, r.upstreams) == ("systemd-avf", "261.2", {"systemd": "261.2-1"})
    pkgbuild = r.files["PKGBUILD"].decode()
    assert f"pkgver={PKGVER_TOKEN}" in pkgbuild and f"pkgrel={PKGREL_TOKEN}" in pkgbuild
    assert "pkgname=(" + " ".join(SPLIT) + ")" in pkgbuild
    srcs, sums = array(pkgbuild, "source"), array(pkgbuild, "sha256sums")
    assert srcs[0] == f"systemd::git+{systemd.repo.url}#tag=v{PKGVER_TOKEN}" and sums[0] == "SKIP"
    assert "?signed" not in pkgbuild and not re.search(r"^validpgpkeys=", pkgbuild, re.M)
    assert f"_commit={systemd.commits['v261.2']}\n" in pkgbuild
    assert srcs[1] == PATCH and f'patch -Np1 -i "$srcdir/"{PATCH}' in pkgbuild
    for name, digest in zip(srcs[1:], sums[1:]):
        assert hashlib.sha256(r.files[name]).hexdigest() == digest, name
    hooks = [n for n in srcs if n.endswith(".hook")]
    assert len(hooks) == len(systemd_avf.HOOKS) >= 5
    for h in hooks:
        assert f'"$pkgdir"/usr/share/libalpm/hooks/{h}' in pkgbuild
        assert "[Trigger]" in r.files[h].decode() and "Exec = /" in r.files[h].decode()
    assert "arch-meson systemd build" in pkgbuild and "meson compile -C build" in pkgbuild


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


def test_an_unchanged_check_gives_the_same_patch_on_the_next_version(scfg, systemd):
    a = render_at(scfg)
    systemd.release("v261.3", find_esp_c(), other="unrelated change")
    systemd.serve("261.3-1")
    b = render_at(scfg)
    assert a.files[PATCH] == b.files[PATCH]
    assert a.inputs_hash() != b.inputs_hash()                          # the pinned commit moved


def test_pkgver_follows_the_database(scfg, systemd):
    assert render_at(scfg).pkgver == "261.2"
    systemd.release("v261.3", find_esp_c(), other="261.3")
    systemd.serve("261.3-1")
    r = render_at(scfg)
    assert (r.pkgver, r.upstreams) == ("261.3", {"systemd": "261.3-1"})
    assert f"_commit={systemd.commits['v261.3']}\n" in r.files["PKGBUILD"].decode()


def test_a_pkgrel_only_change_of_alarm_changes_no_input(scfg, systemd):
    a = render_at(scfg)
    systemd.serve("261.2-2")
    b = render_at(scfg)
    assert b.upstreams == {"systemd": "261.2-2"} and b.pkgver == "261.2"
    assert a.inputs_hash() == b.inputs_hash()


def test_changed_upstream_code_refuses_naming_patch_file_and_version(scfg, systemd):
    systemd.release("v262", find_esp_c(changed=True))
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

def test_relax_env_support_is_read_from_the_checkout_and_reported(scfg, systemd):
    r = render_at(scfg)
    _, tree = release_and_tree(scfg)
    assert systemd_avf.relax_env_supported(tree) is True
    assert r.notes == ("systemd 261.2 honours SYSTEMD_RELAX_ESP_CHECKS (src/shared/find-esp.c): setting "
                       "SYSTEMD_RELAX_ESP_CHECKS=1 in the guest may make systemd-avf unnecessary; check it on a "
                       "device before dropping the package",)
    systemd.serve("260.1-1")                     # only a comment mentions the variable there
    old = render_at(scfg)
    _, tree = release_and_tree(scfg)
    assert systemd_avf.relax_env_supported(tree) is False
    assert old.notes == ("systemd 260.1 does not read SYSTEMD_RELAX_ESP_CHECKS in src/shared/find-esp.c: "
                         "the ESP patch is needed",)
    assert old.files[PATCH] == r.files[PATCH]     # the relax code is not part of the patch context
    (tree / ESP).write_text(find_esp_c().replace("getenv_bool(", "secure_getenv_bool("))
    assert systemd_avf.relax_env_supported(tree) is True
    (tree / ESP).unlink()
    assert systemd_avf.relax_env_supported(tree) is False


def test_without_source_git_there_is_nothing_to_build(tmp_path, systemd, signing_home):
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
    assert info.base["source"][0] == f"systemd::git+{systemd.repo.url}#tag=v261.2"
    for name, core in systemd_avf.SPLIT.items():
        provides = info.get("provides", name)
        assert f"{core}=261.2" in provides, name
        assert core in info.get("conflicts", name), name
        assert info.get("replaces", name) == [], name
    assert "systemd-avf-libs=261.2" in info.get("depends", "systemd-avf")
    for name in SPLIT[2:]:
        assert "systemd-avf=261.2" in info.get("depends", name), name
    assert not any(d.startswith("systemd=") or d == "systemd" for n in SPLIT for d in info.get("depends", n))
    assert {"libsystemd.so", "libudev.so"} <= set(info.get("provides", "systemd-avf-libs"))
    assert "resolvconf" in info.get("provides", "systemd-avf-resolvconf")
