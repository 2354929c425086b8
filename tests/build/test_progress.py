"""What `avfrepo build` shows while it works (issue 25, item 3): makepkg's own lines with -v /
--log-follow, a live status line redrawn in place on a terminal (a real pty), plain lines only
when stderr is not a terminal. Real makepkg builds of the synthetic packages of conftest.py."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import sys
import termios
import threading

import pytest

from avfrepo.cli import main
from avfrepo.progress import Reporter, duration

from .conftest import write_pkg


@pytest.mark.parametrize("flag", [["build", "-v"], ["build", "--log-follow"], ["-v", "build"]])
def test_verbose_build_streams_makepkgs_own_lines_while_it_builds(capsys, cfg, flag):
    write_pkg(cfg, "t-a")
    code = main(["--config", str(cfg.file), *flag])
    _, err = capsys.readouterr()
    assert code == 0, err
    making = err.index("t-a | ==> Making package: t-a 1.0-1")
    assert err.index("t-a | ==> Finished making: t-a 1.0-1") > making
    # shown while the package was building: before the line that ends its build
    assert making < err.index("t-a: built t-a-1.0-1-any.pkg.tar.zst")
    assert "\r" not in err


def test_without_a_terminal_no_status_line_and_no_makepkg_output(capsys, cfg):
    write_pkg(cfg, "t-a")
    assert main(["--config", str(cfg.file), "build"]) == 0
    _, err = capsys.readouterr()
    assert "\r" not in err and "\x1b[" not in err and "==> " not in err
    assert "building with makepkg" in err and "t-a: built" in err     # today's lines, for pipes and CI


def _on_a_pty(monkeypatch):
    """sys.stderr on the slave side of a real pseudo-terminal; returns (the stream, a function
    that gives everything written to it)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))     # 24 rows, 200 columns
    stream = os.fdopen(slave, "w", buffering=1, closefd=True)
    got = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:         # EIO once the slave side is closed
                return
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    monkeypatch.setattr(sys, "stderr", stream)

    def output() -> str:
        stream.close()
        reader.join(timeout=10)
        os.close(master)
        return got.decode("utf-8", "replace")
    return stream, output


def test_on_a_terminal_a_live_status_line_is_redrawn_in_place(monkeypatch, built_a):
    """t-a was built and published before (its provenance record says how long that took):
    its rebuild shows a status line naming it, its phase and that estimate, redrawn with a
    carriage return and cleared to the end of the line; the lines above stay plain."""
    stream, output = _on_a_pty(monkeypatch)
    assert stream.isatty()
    code = main(["--config", str(built_a.file), "build", "t-a"])
    text = output()
    assert code == 0, text
    redraws = [part.split("\x1b[K")[0] for part in text.split("\r") if "\x1b[K" in part]
    status = [r for r in redraws if "t-a " in r]
    assert status, text
    assert any("] t-a 1.0-1" in r and "(last build 0:0" in r for r in status), status
    assert any("==> " not in r and ("makepkg" in r or "Making package" in r or "Starting" in r
                                   or "checking" in r) for r in status), status
    assert "building with makepkg" in text and "t-a: built" in text


def test_the_status_line_is_cleared_before_a_plain_line_and_drawn_again_below_it():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True
    out = Tty()
    with Reporter(out) as rep:
        rep.start("p", "[1/1] p 1.0-1", estimate=65)
        rep.say("a plain line")
    text = out.getvalue()
    assert text.startswith("\r[1/1] p 1.0-1: starting 0:00 (last build 1:05)\x1b[K")
    assert "\r\x1b[Ka plain line\n\r[1/1] p 1.0-1: starting" in text
    assert text.endswith("\r\x1b[K")            # nothing left on the terminal once it closes
    plain = io.StringIO()
    with Reporter(plain) as rep:
        rep.start("p", "p", estimate=65)
        rep.say("a plain line")
    assert plain.getvalue() == "a plain line\n"
    assert duration(3723) == "1:02:03" and duration(65.9) == "1:05"
