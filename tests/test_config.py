"""avfrepo.toml loading: defaults, path resolution, where the file comes from, and that every
bad input is a ConfigError (exit 2) naming the file and the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from avfrepo import config
from avfrepo.errors import ConfigError

FPR = "0123456789ABCDEF0123456789ABCDEF01234567"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load_text(tmp_path: Path, text: str) -> config.Config:
    return config.load(write(tmp_path / "avfrepo.toml", text))


def config_error(tmp_path: Path, text: str) -> str:
    """Load text that must be rejected; return the message."""
    file = write(tmp_path / "avfrepo.toml", text)
    with pytest.raises(ConfigError) as info:
        config.load(file)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert str(file) in message, message
    return message


# --- defaults and paths ----------------------------------------------------------------

def test_empty_file_gives_documented_defaults(tmp_path):
    cfg = load_text(tmp_path, "")
    root = tmp_path.resolve()
    assert cfg.file == root / "avfrepo.toml"
    assert cfg.root == root
    assert cfg.pkgbuilds == root / "pkgbuilds"
    assert cfg.cache == root / ".cache"
    assert cfg.logs == root / "logs"
    assert cfg.state_file == root / "pkgbuilds" / "avfrepo-state.json"
    assert cfg.repo == config.RepoConfig("avf", root / "repo", "aarch64", "https://example.invalid/avf")
    assert cfg.signing.key is None
    assert cfg.signing.gnupg_home == (Path.home() / ".gnupg").resolve()
    assert cfg.build.backend == "makepkg"
    assert cfg.build.user == "avfbuild"
    assert cfg.build.chroot == Path("/var/lib/avfrepo/chroot")
    assert list(cfg.upstreams) == ["avf"]
    avf = cfg.upstream("avf")
    assert (avf.url, avf.tag_pattern, avf.kind) == (config.AVF_URL, config.AVF_TAG_PATTERN, "git-tags")


def test_default_avf_pattern_matches_release_tags_only(tmp_path):
    rx = load_text(tmp_path, "").upstream("avf").regex
    assert rx.match("android-16.0.0_r10").groups() == ("16", "0", "0", "10")
    assert rx.match("android-platform-16.0.0_r12") is None
    assert rx.match("android-16.0.0_r11-rc1") is None


def test_relative_paths_resolve_against_the_config_files_folder_not_the_cwd(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    file = write(tmp_path / "conf" / "avfrepo.toml", """\
        [paths]
        pkgbuilds = "pkgs"
        cache = "../shared/cache"
        [repo]
        path = "out/repo"
        [signing]
        gnupg_home = "keys"
        """)
    cfg = config.load(file)
    base = (tmp_path / "conf").resolve()
    assert cfg.root == base
    assert cfg.pkgbuilds == base / "pkgs"
    assert cfg.cache == tmp_path.resolve() / "shared" / "cache"
    assert cfg.repo.path == base / "out" / "repo"
    assert cfg.signing.gnupg_home == base / "keys"


def test_absolute_paths_are_kept(tmp_path):
    cfg = load_text(tmp_path, f"""\
        [paths]
        logs = "{tmp_path / 'abs-logs'}"
        """)
    assert cfg.logs == (tmp_path / "abs-logs").resolve()


def test_tilde_expands_to_home_in_config_values(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    cfg = load_text(tmp_path / "conf", """\
        [signing]
        gnupg_home = "~/keys"
        [repo]
        path = "~/srv/repo"
        """)
    assert cfg.signing.gnupg_home == home.resolve() / "keys"
    assert cfg.repo.path == home.resolve() / "srv" / "repo"


def test_tilde_expands_in_the_config_path_itself(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    write(home / "cfg" / "avfrepo.toml", '[repo]\nname = "tilde"\n')
    cfg = config.load("~/cfg/avfrepo.toml")
    assert cfg.repo.name == "tilde"
    assert cfg.root == (home / "cfg").resolve()


def test_values_are_normalised(tmp_path):
    cfg = load_text(tmp_path, f"""\
        [repo]
        server = "https://example.org/avf///"
        arch = "x86_64"
        [signing]
        key = "{FPR.lower()}"
        [build]
        backend = "makechrootpkg"
        """)
    assert cfg.repo.server == "https://example.org/avf"
    assert cfg.repo.arch == "x86_64"
    assert cfg.signing.key == FPR
    assert cfg.build.backend == "makechrootpkg"


def test_empty_signing_key_means_no_key_configured(tmp_path):
    assert load_text(tmp_path, '[signing]\nkey = ""\n').signing.key is None


def test_extra_upstream_with_url_and_pattern_is_loaded_next_to_default_avf(tmp_path):
    cfg = load_text(tmp_path, r"""
        [upstreams.ttyd]
        url = "https://example.invalid/ttyd.git"
        tag_pattern = '^(\d+)\.(\d+)\.(\d+)$'
        """)
    assert set(cfg.upstreams) == {"avf", "ttyd"}
    ttyd = cfg.upstream("ttyd")
    assert ttyd.url == "https://example.invalid/ttyd.git"
    assert ttyd.regex.match("1.7.7").groups() == ("1", "7", "7")


def test_avf_upstream_can_override_only_the_url(tmp_path):
    cfg = load_text(tmp_path, '[upstreams.avf]\nurl = "file:///srv/avf"\n')
    assert cfg.upstream("avf").url == "file:///srv/avf"
    assert cfg.upstream("avf").tag_pattern == config.AVF_TAG_PATTERN


def test_asking_for_an_unconfigured_upstream_is_a_config_error(tmp_path):
    cfg = load_text(tmp_path, "")
    with pytest.raises(ConfigError, match=r"\[upstreams\.ttyd\] is required") as info:
        cfg.upstream("ttyd")
    assert str(cfg.file) in str(info.value)


# --- where the file comes from ---------------------------------------------------------

@pytest.fixture
def three_configs(tmp_path, monkeypatch):
    """./avfrepo.toml in the cwd, one named by $AVFREPO_CONFIG, one passed explicitly."""
    cwd = tmp_path / "cwd"
    write(cwd / "avfrepo.toml", '[repo]\nname = "from-cwd"\n')
    env = write(tmp_path / "env" / "env.toml", '[repo]\nname = "from-env"\n')
    explicit = write(tmp_path / "explicit" / "x.toml", '[repo]\nname = "from-arg"\n')
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    return env, explicit


def test_without_path_or_env_the_cwd_avfrepo_toml_is_loaded(three_configs, tmp_path):
    cfg = config.load(None)
    assert cfg.repo.name == "from-cwd"
    assert cfg.root == (tmp_path / "cwd").resolve()


def test_env_var_beats_the_cwd_file(three_configs, monkeypatch):
    env, _ = three_configs
    monkeypatch.setenv(config.ENV_VAR, str(env))
    assert config.load(None).repo.name == "from-env"


def test_empty_env_var_falls_back_to_the_cwd_file(three_configs, monkeypatch):
    monkeypatch.setenv(config.ENV_VAR, "")
    assert config.load(None).repo.name == "from-cwd"


def test_explicit_path_beats_the_env_var(three_configs, monkeypatch):
    env, explicit = three_configs
    monkeypatch.setenv(config.ENV_VAR, str(env))
    assert config.load(explicit).repo.name == "from-arg"
    assert config.load(str(explicit)).repo.name == "from-arg"


def test_relative_env_path_is_taken_from_the_cwd(three_configs, monkeypatch, tmp_path):
    monkeypatch.setenv(config.ENV_VAR, "../env/env.toml")
    cfg = config.load(None)
    assert cfg.repo.name == "from-env"
    assert cfg.file == (tmp_path / "env" / "env.toml").resolve()


def test_missing_file_names_the_file_and_how_to_choose_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    with pytest.raises(ConfigError) as info:
        config.load(None)
    assert info.value.exit_code == 2
    msg = str(info.value)
    assert str(tmp_path.resolve() / "avfrepo.toml") in msg
    assert "no such config file" in msg and "--config" in msg and config.ENV_VAR in msg


def test_missing_file_from_env_var_names_that_file(tmp_path, monkeypatch):
    monkeypatch.setenv(config.ENV_VAR, str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="nope.toml: no such config file"):
        config.load(None)


def test_a_directory_instead_of_a_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read") as info:
        config.load(tmp_path)
    assert str(tmp_path.resolve()) in str(info.value)


# --- bad input -------------------------------------------------------------------------

def test_invalid_toml_names_the_file(tmp_path):
    msg = config_error(tmp_path, "[repo\nname = 'x'\n")
    assert "not valid TOML" in msg


def test_non_utf8_file_is_reported_as_invalid_toml(tmp_path):
    file = tmp_path / "avfrepo.toml"
    file.write_bytes(b'[repo]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        config.load(file)
    assert str(file) in str(info.value)


@pytest.mark.parametrize("text, where, key", [
    ("[repo]\nnmae = 'avf'\n", "[repo]", "nmae"),
    ("[paths]\npkgbuild = 'p'\n", "[paths]", "pkgbuild"),
    ("[signing]\nkeys = ''\n", "[signing]", "keys"),
    ("[build]\nbackends = 'makepkg'\n", "[build]", "backends"),
    ("[upstreams.avf]\nurll = 'x'\n", "[upstreams.avf]", "urll"),
])
def test_unknown_key_is_an_error_naming_table_and_key(tmp_path, text, where, key):
    msg = config_error(tmp_path, text)
    assert f"{key}: unknown key" in msg
    assert where in msg


@pytest.mark.parametrize("text, expected", [
    ("[singing]\nkey = ''\n", "[singing]: unknown section (did you mean [signing]?)"),
    ("[reop]\nname = 'avf'\n", "[reop]: unknown section (did you mean [repo]?)"),
    ("[imgae]\npackages = ['avf-base']\n", "[imgae]: unknown section (did you mean [image]?)"),
    ("[repo]\nsever = 'https://x.org/avf'\n", "[repo] sever: unknown key (did you mean server?)"),
    ("[build]\nbackends = 'makepkg'\n", "[build] backends: unknown key (did you mean backend?)"),
    ("[packages]\nenable = ['avf-confg']\n", '[packages] enable: unknown package "avf-confg" (did you mean avf-config'),
    ("[[packages.linux-avff.carry]]\nfile = 'x.patch'\n", "[packages.linux-avff]: unknown package (did you mean linux-avf?)"),
    # a name Arch allows (first character '@', '_' or '+') is a package name: unknown, not a key
    ("[[packages._linux-avf.carry]]\nfile = 'x.patch'\n", "[packages._linux-avf]: unknown package (did you mean linux-avf?)"),
])
def test_did_you_mean_for_unknown_sections_keys_and_packages(tmp_path, text, expected):
    msg = config_error(tmp_path, text)
    assert expected in msg and "\n" not in msg


def test_an_unknown_upstream_table_is_refused_unless_it_has_a_kind(tmp_path):
    msg = config_error(tmp_path, "[upstreams.avff]\nurl = 'https://example.invalid/v'\ntag_pattern = '^v(\\d+)$'\n")
    assert "[upstreams.avff]: no package reads" in config_error(tmp_path, "[upstreams.avff]\nurl = 'https://x.org/v'\n")
    assert "[upstreams.avff]: no package reads an upstream of that name (did you mean [upstreams.avf]?)" in msg
    assert "give the table a kind" in msg
    cfg = load_text(tmp_path, "[upstreams.avff]\nkind = 'git-tags'\nurl = 'file:///x'\ntag_pattern = '^v(\\d+)$'\n")
    assert cfg.upstream("avff").url == "file:///x"


@pytest.mark.parametrize("text, shown", [
    ("[build]\nmakepkg_cross = 'yes'\n", 'got "yes"'),
    ("[build]\njobs = true\n", "got true"),
    ("[build]\nuser = 1000\n", "must be a string, got integer 1000"),
    ("[build]\nuser = false\n", "must be a string, got boolean false"),
    ("[repo]\nkeep = 'three'\n", 'got "three"'),
    ("[build]\nmakepkg_cross = ['no']\n", 'got ["no"]'),
    ("[packages]\nenable = [true]\n", "got [true]"),
    ("[image]\nrepos = [{name = 'core', server = 'x y', siglevel = 'Never'}]\n",
     'got {name = "core", server = "x y", siglevel = "Never"}'),
])
def test_values_are_shown_in_toml_notation(tmp_path, text, shown):
    msg = config_error(tmp_path, text)
    assert shown in msg, msg
    assert "True" not in msg and "False" not in msg and "got '" not in msg


@pytest.mark.parametrize("server, fixed", [
    ("https://github.com/o/r/releases/download/$arch", "https://github.com/o/r/releases/download"),
    ("https://host.org/avf/$arch/", "https://host.org/avf"),
])
def test_a_server_ending_in_arch_is_refused_naming_the_url_to_set(tmp_path, server, fixed):
    msg = config_error(tmp_path, f"[repo]\nserver = '{server}'\n")
    assert "[repo] server: must be the URL of the folder that holds $arch, without /$arch" in msg
    assert f'set server = "{fixed}"' in msg


def test_the_config_is_found_in_the_nearest_folder_above_as_git_does(tmp_path, monkeypatch):
    monkeypatch.delenv("AVFREPO_CONFIG", raising=False)
    conf = write(tmp_path / "top" / "avfrepo.toml", "[repo]\nname = 'mine'\n")
    deep = tmp_path / "top" / "pkgbuilds" / "avf-config"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    cfg = config.load()
    assert cfg.file == conf and cfg.repo.name == "mine" and cfg.pkgbuilds == tmp_path / "top" / "pkgbuilds"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no such config file, here or in any folder above"):
        config.load()


def test_unknown_key_message_lists_the_known_keys(tmp_path):
    msg = config_error(tmp_path, "[repo]\nnmae = 'avf'\n")
    assert "known: arch, keep, lock_timeout, name, path, server" in msg


@pytest.mark.parametrize("text, key", [
    ("[repo]\nname = 5\n", "[repo] name"),
    ("[repo]\nserver = true\n", "[repo] server"),
    ("[paths]\ncache = ['a']\n", "[paths] cache"),
    ("[signing]\ngnupg_home = 1.5\n", "[signing] gnupg_home"),
    ("[build]\nuser = 1000\n", "[build] user"),
    ("[upstreams.ttyd]\nurl = 1\ntag_pattern = '(x)'\n", "[upstreams.ttyd] url"),
])
def test_wrong_value_type_names_the_key(tmp_path, text, key):
    msg = config_error(tmp_path, text)
    assert f"{key}: must be a string" in msg


@pytest.mark.parametrize("text, key", [
    ("repo = 'avf'\n", "repo"),
    ("[upstreams]\nttyd = 'https://x'\n", "[upstreams] ttyd"),
])
def test_scalar_where_a_table_belongs_names_the_key(tmp_path, text, key):
    assert f"{key}: must be a table" in config_error(tmp_path, text)


def test_bad_backend_choice_lists_the_choices(tmp_path):
    msg = config_error(tmp_path, "[build]\nbackend = 'docker'\n")
    assert '[build] backend: must be one of makepkg, makechrootpkg, got "docker"' in msg


@pytest.mark.parametrize("arch", ["arm64", "armv7h", "AARCH64", ""])
def test_bad_arch_is_rejected(tmp_path, arch):
    msg = config_error(tmp_path, f"[repo]\narch = '{arch}'\n")
    assert "[repo] arch: must be one of aarch64, x86_64, any" in msg


@pytest.mark.parametrize("name", ["AVF", "my repo", "-avf", "avf/x", ""])
def test_bad_repo_name_is_rejected(tmp_path, name):
    msg = config_error(tmp_path, f"[repo]\nname = '{name}'\n")
    assert "[repo] name: must be a simple repository name" in msg


@pytest.mark.parametrize("key", [FPR[:-1], FPR + "0", "G" + FPR[1:], "0x" + FPR[2:], FPR[:16]])
def test_fingerprint_must_be_40_hex_digits(tmp_path, key):
    msg = config_error(tmp_path, f"[signing]\nkey = '{key}'\n")
    assert f'[signing] key: must be a full 40-hex-digit fingerprint, got "{key}"' in msg


def test_unknown_upstream_kind_is_rejected(tmp_path):
    msg = config_error(tmp_path, "[upstreams.avf]\nkind = 'svn'\n")
    assert "[upstreams.avf] kind: must be one of git-tags" in msg


def test_bad_upstream_name_is_rejected(tmp_path):
    msg = config_error(tmp_path, "[upstreams.TTYD]\nurl = 'x'\ntag_pattern = '(x)'\n")
    assert "[upstreams] TTYD: upstream names are lowercase" in msg


def test_invalid_regex_names_the_key(tmp_path):
    msg = config_error(tmp_path, "[upstreams.avf]\ntag_pattern = '^android-(16'\n")
    assert "[upstreams.avf] tag_pattern: not a valid regular expression" in msg


def test_regex_without_groups_is_rejected(tmp_path):
    msg = config_error(tmp_path, r"""
        [upstreams.avf]
        tag_pattern = '^android-16\.0\.0_r\d+$'
        """)
    assert "[upstreams.avf] tag_pattern: needs capture groups" in msg


@pytest.mark.parametrize("body, missing", [
    ("tag_pattern = '^(\\d+)$'\n", "url"),
    ("url = 'https://example.invalid/x.git'\n", "tag_pattern"),
])
def test_upstream_other_than_avf_needs_url_and_tag_pattern(tmp_path, body, missing):
    msg = config_error(tmp_path, "[upstreams.ttyd]\n" + body)
    assert f"[upstreams.ttyd] {missing}: is required" in msg


def test_upstream_other_than_avf_rejects_an_empty_url(tmp_path):
    msg = config_error(tmp_path, "[upstreams.ttyd]\nurl = ' '\ntag_pattern = '(x)'\n")
    assert "[upstreams.ttyd] url: must not be empty" in msg


def test_config_error_exit_code_is_2():
    assert ConfigError.exit_code == 2
    assert ConfigError("x").exit_code == 2


# --- upstream kinds: git-tags, alpm-db, kernel-org ------------------------------------------

def test_alpm_db_upstream_defaults_to_alarm_core_systemd(tmp_path):
    up = load_text(tmp_path, '[upstreams.systemd]\nkind = "alpm-db"\n').upstream("systemd")
    assert isinstance(up, config.AlpmDbUpstream)
    assert (up.kind, up.server, up.arch, up.repo, up.package) == (
        "alpm-db", "http://mirror.archlinuxarm.org", "aarch64", "core", "systemd")
    assert up.url == "http://mirror.archlinuxarm.org/aarch64/core/core.db"
    assert up.source_git is None and up.source_tag == "v{pkgver}"
    assert up.net == config.NetPolicy()


def test_alpm_db_upstream_with_every_key(tmp_path):
    up = load_text(tmp_path, """\
        [upstreams.sd]
        kind = "alpm-db"
        server = "https://mirror.example.invalid/alarm/$arch/$repo"
        arch = "armv7h"
        repo = "extra"
        package = "systemd-libs"
        source_git = "https://github.com/systemd/systemd"
        source_tag = "v{pkgver}-stable"
        timeout = 5
        retries = 0
        backoff = 0.5
        """).upstream("sd")
    assert up.url == "https://mirror.example.invalid/alarm/armv7h/extra/extra.db"
    assert (up.package, up.source_git, up.source_tag) == ("systemd-libs", "https://github.com/systemd/systemd",
                                                          "v{pkgver}-stable")
    assert up.net == config.NetPolicy(timeout=5.0, retries=0, backoff=0.5)


def test_kernel_org_upstream_defaults(tmp_path):
    up = load_text(tmp_path, '[upstreams.kernel]\nkind = "kernel-org"\n').upstream("kernel")
    assert isinstance(up, config.KernelOrgUpstream)
    assert (up.series, up.method, up.url) == ("6.1", "releases-json", "https://www.kernel.org/releases.json")


def test_kernel_org_git_tags_method_defaults_to_the_stable_tree(tmp_path):
    up = load_text(tmp_path, """\
        [upstreams.kernel]
        kind = "kernel-org"
        series = "5.15"
        method = "git-tags"
        """).upstream("kernel")
    assert (up.series, up.method, up.url) == ("5.15", "git-tags", config.KERNEL_STABLE_GIT)
    assert up.net.timeout == config.GIT_NET.timeout


def test_git_tags_upstream_takes_the_network_keys_too(tmp_path):
    up = load_text(tmp_path, r"""
        [upstreams.ttyd]
        kind = "git-tags"
        url = "https://github.com/tsl0922/ttyd"
        tag_pattern = '^(\d+)\.(\d+)\.(\d+)$'
        timeout = 10.5
        retries = 2
        """).upstream("ttyd")
    assert isinstance(up, config.GitTagsUpstream)
    assert up.net == config.NetPolicy(timeout=10.5, retries=2, backoff=config.GIT_NET.backoff)
    assert config.NetPolicy(retries=3, backoff=0.5).delays() == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("text, key", [
    ('kind = "alpm-db"\ntag_pattern = "(x)"\n', "tag_pattern"),           # a git-tags key
    ('kind = "alpm-db"\npackages = "systemd"\n', "packages"),
    ('kind = "kernel-org"\npackage = "linux"\n', "package"),              # an alpm-db key
    ('kind = "kernel-org"\nversion = "6.1"\n', "version"),
    ('kind = "git-tags"\nurl = "x"\ntag_pattern = "(x)"\nseries = "6.1"\n', "series"),
    ('kind = "git-tags"\nurl = "x"\ntag_pattern = "(x)"\nretry = 3\n', "retry"),
])
def test_a_key_of_another_kind_is_an_unknown_key_naming_file_and_key(tmp_path, text, key):
    msg = config_error(tmp_path, "[upstreams.up]\n" + text)
    assert f"[upstreams.up] {key}: unknown key" in msg


def test_unknown_key_of_a_kind_lists_that_kinds_keys(tmp_path):
    msg = config_error(tmp_path, '[upstreams.systemd]\nkind = "alpm-db"\nurl = "http://x"\n')
    assert ("known: arch, backoff, deadline, kind, package, repo, retries, server, source_git, source_tag, timeout"
            in msg)


@pytest.mark.parametrize("text, key, reason", [
    ('kind = "alpm-db"\nserver = "ftp://mirror.archlinuxarm.org"\n', "server", "must be an http:// or https:// URL"),
    ('kind = "alpm-db"\nserver = "mirror.archlinuxarm.org"\n', "server", "must be an http:// or https:// URL"),
    ('kind = "alpm-db"\npackage = "Systemd"\n', "package", "must be a package name"),
    ('kind = "alpm-db"\nrepo = "core/os"\n', "repo", "must be a repository name"),
    ('kind = "alpm-db"\narch = ""\n', "arch", "must be an architecture"),
    ('kind = "alpm-db"\nsource_tag = "v{pkgver}"\n', "source_tag", "only means something together with source_git"),
    ('kind = "alpm-db"\nsource_git = "https://x"\nsource_tag = "v261"\n', "source_tag", "must contain {pkgver}"),
    ('kind = "alpm-db"\nsource_git = "https://x"\nsource_tag = "v{version}"\n', "source_tag", "must contain {pkgver}"),
    ('kind = "kernel-org"\nseries = "6"\n', "series", "must be a kernel series like 6.1"),
    ('kind = "kernel-org"\nseries = "6.1.158"\n', "series", "must be a kernel series like 6.1"),
    ('kind = "kernel-org"\nmethod = "tarballs"\n', "method", "must be one of releases-json, git-tags"),
    ('kind = "kernel-org"\nurl = "file:///srv/releases.json"\n', "url", "must be an http:// or https:// URL"),
    ('kind = "kernel-org"\nmethod = "git-tags"\nurl = " "\n', "url", "must not be empty"),
    ('kind = "kernel-org"\ntimeout = 0\n', "timeout", "must be at least"),
    ('kind = "kernel-org"\ntimeout = "30"\n', "timeout", "must be a number"),
    ('kind = "kernel-org"\ntimeout = true\n', "timeout", "must be a number"),
    ('kind = "kernel-org"\nretries = -1\n', "retries", "must be at least 0"),
    ('kind = "kernel-org"\nretries = 1.5\n', "retries", "must be a number"),
    ('kind = "kernel-org"\nretries = 11\n', "retries", "must be at most 10"),
    ('kind = "alpm-db"\nbackoff = -0.5\n', "backoff", "must be at least 0"),
    ('kind = "alpm-db"\nserver = 5\n', "server", "must be a string"),
])
def test_bad_values_of_the_new_kinds_name_file_and_key(tmp_path, text, key, reason):
    msg = config_error(tmp_path, "[upstreams.up]\n" + text)
    assert f"[upstreams.up] {key}: {reason}" in msg


def test_kind_choice_lists_every_kind(tmp_path):
    msg = config_error(tmp_path, '[upstreams.up]\nkind = "alpm"\n')
    assert '[upstreams.up] kind: must be one of git-tags, alpm-db, kernel-org, git-branch, got "alpm"' in msg


def test_the_committed_config_follows_the_real_upstreams():
    cfg = config.load(Path(__file__).resolve().parents[1] / "avfrepo.toml")
    kinds = {name: up.kind for name, up in cfg.upstreams.items()}
    assert kinds == {"avf": "git-tags", "systemd": "alpm-db", "ttyd": "git-tags",
                     "libwebsockets": "git-tags", "kernel": "kernel-org", "alarm-pkgbuilds": "git-branch"}
    alarm = cfg.upstream("alarm-pkgbuilds")
    assert (alarm.url, alarm.branch) == ("https://github.com/archlinuxarm/PKGBUILDs", "master")
    assert cfg.upstream("systemd").url == "http://mirror.archlinuxarm.org/aarch64/core/core.db"
    assert cfg.upstream("systemd").source_git == "https://github.com/systemd/systemd"
    assert cfg.upstream("ttyd").url == "https://github.com/tsl0922/ttyd"
    assert cfg.upstream("ttyd").regex.fullmatch("1.7.7")
    assert cfg.upstream("libwebsockets").url == "https://github.com/warmcat/libwebsockets"
    assert cfg.upstream("libwebsockets").regex.fullmatch("v4.3.3")
    assert (cfg.upstream("kernel").series, cfg.upstream("kernel").url) == ("6.1", "https://www.kernel.org/releases.json")


def test_repo_keep_and_lock_timeout_are_validated(tmp_path):
    cfg_file = tmp_path / "avfrepo.toml"
    cfg_file.write_text("[repo]\nkeep = 5\nlock_timeout = 2.5\n")
    cfg = config.load(cfg_file)
    assert (cfg.repo.keep, cfg.repo.lock_timeout) == (5, 2.5)
    assert cfg.repo.published == cfg.repo.path / "aarch64"
    assert cfg.repo.db == cfg.repo.path / "aarch64" / "avf.db.tar.gz"
    for bad, msg in (("keep = 0", "must be at least 1"), ('keep = "3"', "must be a number"),
                     ("lock_timeout = -1", "must be at least 0"), ("keep = true", "must be a number")):
        cfg_file.write_text(f"[repo]\n{bad}\n")
        with pytest.raises(ConfigError, match=rf"\[repo\] {bad.split()[0]}: {msg}"):
            config.load(cfg_file)


def test_packages_enable_is_a_list_of_names(tmp_path):
    f = tmp_path / "avfrepo.toml"
    f.write_text('[packages]\nenable = ["avf-config"]\n')
    assert config.load(f).enabled == ("avf-config",)
    f.write_text("")
    assert config.load(f).enabled is None
    for bad in ('enable = "avf-config"', "enable = []", "enable = [1]"):
        f.write_text(f"[packages]\n{bad}\n")
        with pytest.raises(ConfigError, match=r"\[packages\] enable: must be a non-empty list"):
            config.load(f)


def test_unknown_enabled_package_is_a_config_error_at_load_for_every_command(tmp_path):
    f = tmp_path / "avfrepo.toml"
    f.write_text('[packages]\nenable = ["avf-confg"]\n')
    with pytest.raises(ConfigError, match='enable: unknown package "avf-confg" \\(did you mean avf-config'):
        config.load(f)


# --- git-branch (ALARM's PKGBUILDs) and the kernel's pins ------------------------------------

def test_alarm_pkgbuilds_defaults_to_a_git_branch_of_alarms_repository(tmp_path):
    cfg = load_text(tmp_path, "[upstreams.alarm-pkgbuilds]\n")
    up = cfg.upstream("alarm-pkgbuilds")
    assert (up.kind, up.url, up.branch) == ("git-branch", "https://github.com/archlinuxarm/PKGBUILDs", "master")
    other = load_text(tmp_path, '[upstreams.mine]\nkind = "git-branch"\nurl = "file:///x"\nbranch = "main"\n')
    assert (other.upstream("mine").url, other.upstream("mine").branch) == ("file:///x", "main")


@pytest.mark.parametrize("text, key, reason", [
    ('kind = "git-branch"\n', "url", "is required"),
    ('kind = "git-branch"\nurl = "file:///x"\nbranch = "a b"\n', "branch", "must be a branch name"),
    ('kind = "git-branch"\nurl = "file:///x"\nbranch = "a..b"\n', "branch", "must be a branch name"),
    ('kind = "kernel-org"\nmax_version = "6.2.1"\n', "max_version", "must be a release of series 6.1"),
    ('kind = "kernel-org"\npin = "6.1.187; rm -rf /"\n', "pin", "must be a release of series 6.1"),
    ('kind = "kernel-org"\npin = "6.1.187"\nmax_version = "6.1.187"\n', "pin", "set one of them"),
])
def test_bad_git_branch_and_pin_values(tmp_path, text, key, reason):
    msg = config_error(tmp_path, "[upstreams.up]\n" + text)
    assert f"[upstreams.up] {key}: {reason}" in msg


def test_kernel_pins(tmp_path):
    cfg = load_text(tmp_path, '[upstreams.kernel]\nkind = "kernel-org"\nmax_version = "6.1.187"\n')
    assert (cfg.upstream("kernel").max_version, cfg.upstream("kernel").pin) == ("6.1.187", None)
    cfg = load_text(tmp_path, '[upstreams.kernel]\nkind = "kernel-org"\npin = "6.1.135"\n')
    assert (cfg.upstream("kernel").max_version, cfg.upstream("kernel").pin) == (None, "6.1.135")


def test_carried_patches(tmp_path):
    cfg = load_text(tmp_path, '[[packages.linux-avf.carry]]\nfile = "balloon-rebased.patch"\n'
                              'replaces = "avf/arm64-balloon.patch"\n\n'
                              '[[packages.linux-avf.carry]]\nfile = "extra.patch"\n')
    assert cfg.carry == {"linux-avf": (config.CarriedPatch("balloon-rebased.patch", "avf/arm64-balloon.patch"),
                                       config.CarriedPatch("extra.patch", None))}
    assert load_text(tmp_path, "").carry == {}


@pytest.mark.parametrize("text, reason", [
    ('[[packages.linux-avf.carry]]\nfile = "../x.patch"\n', "plain *.patch name"),
    ('[[packages.linux-avf.carry]]\nfile = "x.sh"\n', "plain *.patch name"),
    ('[[packages.linux-avf.carry]]\nfile = "x.patch"\nreplaces = "../y"\n', "replaces must be a series entry"),
    ('[[packages.linux-avf.carry]]\nfile = "x.patch"\nwhy = "y"\n', "entry 1 must be"),
    ('[[packages.linux-avf.carry]]\nfile = "x.patch"\n[[packages.linux-avf.carry]]\nfile = "x.patch"\n', "carried twice"),
    ('[packages.linux-avf]\ncarry = "x.patch"\n', "must be a list"),
    ('[packages.linux-avf]\nkeep = 1\n', "unknown key"),
])
def test_bad_carried_patches(tmp_path, text, reason):
    assert reason in config_error(tmp_path, text)


@pytest.mark.parametrize("value", ["inf", "nan"])
@pytest.mark.parametrize("key", ["timeout", "deadline"])
def test_timeouts_must_be_finite(tmp_path, key, value):
    msg = config_error(tmp_path, f"[upstreams.avf]\nurl = 'file:///srv/avf'\n{key} = {value}\n")
    assert f"[upstreams.avf] {key}: must be a finite number" in msg


def test_deadline_is_at_least_the_timeout(tmp_path):
    msg = config_error(tmp_path, "[upstreams.avf]\nurl = 'file:///srv/avf'\ntimeout = 10\ndeadline = 5\n")
    assert "[upstreams.avf] deadline: must be at least 10" in msg


def test_lock_timeout_must_be_finite(tmp_path):
    msg = config_error(tmp_path, "[repo]\nlock_timeout = inf\n")
    assert "finite" in msg
