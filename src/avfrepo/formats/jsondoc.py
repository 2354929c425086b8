"""JSON as avfrepo reads it from disk (the state file, the ledger, the render record, a build
plan, provenance records, ...): one parser whose every failure is a ValueError with a
one-line reason, so that each reader can say "<file>: corrupt ...: <reason>".

json.loads alone fails in ways a reader's `except ValueError` misses: bytes that are not
UTF-8 (UnicodeDecodeError), and nesting deep enough to exhaust Python's recursion
(RecursionError, in the parser, or later in whatever walks or prints the value). None of
avfrepo's files nests deeper than a few levels, so anything deeper than MAX_DEPTH is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_DEPTH = 32


def one_line(text: object, limit: int = 200) -> str:
    """text on one line (whitespace runs collapsed), at most `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def parse(data: bytes | str) -> object:
    """The JSON value of data (bytes must be UTF-8); ValueError with a one-line reason."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 (byte {exc.start}: {exc.reason})") from None
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise ValueError(f"not JSON avfrepo reads (nested deeper than {MAX_DEPTH} levels)") from None
    except ValueError as exc:        # e.g. an integer of more digits than Python converts
        raise ValueError(f"not JSON avfrepo reads ({one_line(exc, 120)})") from None
    _check_depth(value)
    return value


def read(path: Path) -> object:
    """parse() of a file's bytes; OSError (FileNotFoundError, ...) as open() raises it."""
    return parse(Path(path).read_bytes())


def _check_depth(value: object) -> None:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > MAX_DEPTH:
                raise ValueError(f"not JSON avfrepo reads (nested deeper than {MAX_DEPTH} levels)")
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
