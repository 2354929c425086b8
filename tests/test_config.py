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
    ("[reop]\nname = 'avf'\n", "", "reop"),
])
def test_unknown_key_is_an_error_naming_table_and_key(tmp_path, text, where, key):
    msg = config_error(tmp_path, text)
    assert f"{key}: unknown key" in msg
    assert where in msg


def test_unknown_key_message_lists_the_known_keys(tmp_path):
    msg = config_error(tmp_path, "[repo]\nnmae = 'avf'\n")
    assert "known: arch, name, path, server" in msg


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
    assert "[build] backend: must be one of makepkg, makechrootpkg, got 'docker'" in msg


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
    assert f"[signing] key: must be a full 40-hex-digit fingerprint, got '{key}'" in msg


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
