"""Reading and editing PKGBUILD text without running it (it is untrusted upstream input).

Only the shapes a maintained PKGBUILD uses are understood: top-level array assignments
`name=(...)` over one or more lines (quoted words, bare words, `#` comments), function
definitions `name() {` ... a `}` alone in column 0, and single assignments `name=value`.
Anything else is a ValueError naming what was not understood; callers turn that into a
refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    start: int      # first character of the construct
    end: int        # one past its last character (the closing `)` or `}`)
    inner: int      # first character of the body (after `(` or the `{` line)
    inner_end: int  # the closing `)` or the start of the closing `}` line


def _scan_array(text: str, i: int, name: str) -> int:
    """Index of the `)` closing the array whose `(` is at i-1."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == ")":
            return i
        if c == "#" and (i == 0 or text[i - 1] in " \t\n("):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise ValueError(f"{name}=(...): unterminated single quote")
            i = j + 1
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise ValueError(f"{name}=(...): unterminated double quote")
            i = j + 1
            continue
        if c in "`" or text.startswith("$(", i):
            raise ValueError(f"{name}=(...): command substitution is not understood")
        i += 1
    raise ValueError(f"{name}=(...): no closing parenthesis")


def array(text: str, name: str, start: int = 0, end: int | None = None) -> Span | None:
    """The one `name=(...)` (or `name+=(...)` is not it) at the start of a line in
    text[start:end]; None if absent, ValueError if there are several."""
    rx = re.compile(rf"^[ \t]*{re.escape(name)}=\(", re.M)
    hits = list(rx.finditer(text, start, len(text) if end is None else end))
    if not hits:
        return None
    if len(hits) > 1:
        raise ValueError(f"{name}=(...) is assigned {len(hits)} times")
    m = hits[0]
    close = _scan_array(text, m.end(), name)
    return Span(m.start(), close + 1, m.end(), close)


def words(body: str, name: str = "array") -> list[str]:
    """The words of an array body, quotes removed (no expansion: `$x` stays as written)."""
    out: list[str] = []
    for m in re.finditer(r"""#[^\n]*|'([^']*)'|"((?:[^"\\]|\\.)*)"|([^\s'"#]+)""", body):
        if m.group(0).startswith("#"):
            continue
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(re.sub(r"\\(.)", r"\1", m.group(2)))
        else:
            out.append(m.group(3))
    return out


def function(text: str, name: str) -> Span | None:
    """`name() {` ... the first `}` alone at the start of a line after it."""
    m = re.search(rf"^{re.escape(name)}\(\)[ \t]*\{{[ \t]*\n", text, re.M)
    if not m:
        return None
    close = re.compile(r"^\}[ \t]*$", re.M).search(text, m.end())
    if not close:
        raise ValueError(f"{name}(): no closing brace in column 0")
    return Span(m.start(), close.end(), m.end(), close.start())


def assignment(text: str, name: str) -> re.Match[str] | None:
    """The one top-level `name=value` line (value: the rest of the line)."""
    hits = list(re.finditer(rf"^{re.escape(name)}=(?P<value>[^(\n][^\n]*|)$", text, re.M))
    if len(hits) > 1:
        raise ValueError(f"{name}= is assigned {len(hits)} times")
    return hits[0] if hits else None


def local_sources(entries: list[str]) -> list[str]:
    """The file names of source=() entries that are files beside the PKGBUILD (no URL)."""
    out = []
    for entry in entries:
        target = entry.split("::", 1)[1] if "::" in entry else entry
        if "://" in target or target.startswith(("git+", "svn+", "hg+", "bzr+", "fossil+")):
            continue
        out.append(target)
    return out
