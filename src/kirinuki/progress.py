"""A dependency-free progress line on stderr (shared by the cutout batch and training)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """``done/total unit | rate | ETA`` on one line. On a terminal the line is redrawn in
    place; elsewhere (logs, CI) a line is printed at most every ``every`` seconds."""

    def __init__(self, total: int | None, unit: str = "files", enabled: bool = True,
                 stream: TextIO | None = None, every: float = 10.0, initial: int = 0) -> None:
        self.total, self.unit, self.enabled, self.initial = total, unit, enabled, initial
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self.start = self._last = time.monotonic()
        self._drawn = False

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not self.tty and not force and now - self._last < self.every:
            return
        self._last = now
        rate = (done - self.initial) / max(1e-9, now - self.start)
        parts = [f"{done}/{self.total} {self.unit}" if self.total else f"{done} {self.unit}",
                 f"{rate:.2f} {self.unit}/s"]
        if self.total and rate > 0:
            parts.append(f"ETA {_clock((self.total - done) / rate)}")
        if extra:
            parts.append(extra)
        text = " | ".join(parts)
        if self.tty:
            self.stream.write("\r" + text.ljust(79))
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
