"""What a long run shows while it works: plain lines, a live status line, or the logs followed.

A Reporter is handed what a command says (say(), one line each) and what it is doing
(start() / phase() / finish() of a task: a package being built, the publish step). It shows
that in one of three ways:

- plain (stderr is not a terminal: pipes, CI, tests): every line as it comes, nothing else;
  the tasks are not shown (the command's own lines, e.g. "still building", say enough);
- live (stderr is a terminal): the same lines, and below them one status line redrawn in
  place every half second (carriage return, then the line cleared to its end): each running
  task with its phase, its elapsed time and, when known, how long its last build took;
- follow (`build -v` / `--log-follow`): the same lines, and every line a task's log gets
  (makepkg's own output), as it is written, prefixed with the task's name.

The phase of a task with a log is its log's last makepkg step ("==> Starting build()...").
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

TICK = 0.5                      # seconds between redraws of the status line / polls of the logs
CLEAR = "\x1b[K"                # erase from the cursor to the end of the line


def duration(seconds: float) -> str:
    """1:05 for 65 s, 1:02:03 for 3723 s."""
    s = int(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02}:{s % 60:02}" if h else f"{m}:{s % 60:02}"


@dataclass
class _Task:
    label: str
    log: Path | None
    estimate: float | None
    phase: str
    started: float = field(default_factory=time.monotonic)
    offset: int = 0
    partial: bytes = b""


class Reporter:
    def __init__(self, stream: IO[str] | None = None, *, follow: bool = False, live: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.follow = follow
        if live is None:
            try:
                live = self.stream.isatty()
            except (AttributeError, ValueError, OSError):
                live = False
        self.live = bool(live) and not follow
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.RLock()
        self._drawn = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what a command calls ------------------------------------------------------------
    def say(self, msg: str) -> None:
        """One plain line (above the status line, which is drawn again below it)."""
        with self._lock:
            self._clear()
            self._write(msg + "\n")
            self._draw()

    def start(self, key: str, label: str, *, log: Path | None = None, estimate: float | None = None,
              phase: str = "starting") -> None:
        """A task began: label names it on the status line; its log is followed (follow mode)
        or read for its phase (live mode); estimate: seconds its last run took."""
        if not (self.live or self.follow):
            return
        with self._lock:
            self._tasks[key] = _Task(label, log, estimate, phase)
            self._draw()
        if self._thread is None:
            self._thread = threading.Thread(target=self._tick, name="avfrepo-progress", daemon=True)
            self._thread.start()

    def phase(self, key: str, phase: str) -> None:
        with self._lock:
            task = self._tasks.get(key)
            if task is not None:
                task.phase = phase
                self._draw()

    def finish(self, key: str) -> None:
        """The task ended: the rest of its log is shown (follow mode), it leaves the status line."""
        with self._lock:
            task = self._tasks.pop(key, None)
            if task is not None:
                self._read_log(key, task, final=True)
            self._clear()
            self._draw()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for key in list(self._tasks):
                self.finish(key)
            self._clear()

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- inside ----------------------------------------------------------------------------
    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            with self._lock:
                for key, task in list(self._tasks.items()):
                    self._read_log(key, task)
                self._draw()

    def _read_log(self, key: str, task: _Task, final: bool = False) -> None:
        if task.log is None:
            return
        try:
            with open(task.log, "rb") as fh:
                fh.seek(task.offset)
                data = fh.read()
        except OSError:             # not created yet, or gone
            return
        task.offset += len(data)
        lines = (task.partial + data).split(b"\n")
        task.partial = lines.pop()
        if final and task.partial:
            lines.append(task.partial)
            task.partial = b""
        shown = []
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if line.startswith("==> "):
                task.phase = line[4:].strip()
            if self.follow:
                shown.append(f"{key} | {line}\n")
        if shown:
            self._write("".join(shown))

    def _status(self) -> str:
        now = time.monotonic()
        parts = []
        for task in self._tasks.values():
            took = duration(now - task.started)
            est = f" (last build {duration(task.estimate)})" if task.estimate is not None else ""
            parts.append(f"{task.label}: {task.phase} {took}{est}")
        return "; ".join(parts)

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80     # 0: size never set
        except (AttributeError, ValueError, OSError):
            return 80

    def _draw(self) -> None:
        if not self.live or not self._tasks:
            return
        text = self._status()[: max(10, self._width() - 1)]
        self._write(f"\r{text}{CLEAR}")
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self._write(f"\r{CLEAR}")
            self._drawn = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass
