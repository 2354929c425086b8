"""The one way a value reaches a generated file: every template expression passes a filter."""

from __future__ import annotations

import subprocess

import pytest

from avfrepo.packages import _env, UnsafeValue, Rendered, template


def render(source: str, **values) -> str:
    return _env().from_string(source).render(**values)


def test_an_unfiltered_value_is_refused():
    with pytest.raises(UnsafeValue, match="did not pass a quoting filter"):
        render("pkgdesc={{ desc }}", desc="harmless")


@pytest.mark.parametrize("value", ["x'$(touch /tmp/avfrepo-pwned)'y", 'a"b`c`$d', "--", "semi;colon & amp", ""])
def test_sh_quotes_any_text_into_one_bash_word_that_bash_reads_back_literally(value):
    script = render("v={{ v | sh }}; printf %s \"$v\"", v=value)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == value


@pytest.mark.parametrize("value", ["a\nb", "tab\there", "nul\x00"])
def test_control_characters_are_refused_even_quoted(value):
    with pytest.raises(UnsafeValue, match="control characters"):
        render("{{ v | sh }}", v=value)


@pytest.mark.parametrize("value", ["x'y", "a b", "$(id)", "-rf", "a/b", ""])
def test_word_takes_plain_names_only(value):
    with pytest.raises(UnsafeValue, match="not a plain"):
        render("{{ v | word }}", v=value)
    assert render("{{ v | word }}", v="forwarder_guest-1.2+x") == "forwarder_guest-1.2+x"


def test_every_package_template_renders_only_through_filters():
    # a template that pasted a raw value would raise here: render one with hostile values
    out = template("avf-guest-agents/agent.install", unit="a'$(b)'.service").decode()
    assert "preset 'a'\"'\"'$(b)'\"'\"'.service'" in out


@pytest.mark.parametrize("pkgver", ["1-2", "1:2", "a b", "$(x)", ""])
def test_finalize_refuses_a_pkgver_arch_does_not_allow(pkgver):
    with pytest.raises(UnsafeValue, match="not an Arch pkgver-pkgrel"):
        Rendered("p", "1", {}, {"PKGBUILD": b"pkgver=@@PKGVER@@"}).finalize(pkgver, 1)
