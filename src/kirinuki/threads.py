"""The threads the CPU stages share: numpy, SciPy, OpenCV, Pillow and zlib release the
interpreter lock in their heavy loops, so one thread per core runs them side by side. A process
that owns only a share of the machine (a rank of a bulk job) caps them, and OpenCV's own pool,
with :func:`set_thread_limit`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import cv2

__all__ = ["set_thread_limit", "thread_count", "on_threads", "parallel_strips"]

_thread_limit: int | None = None


def set_thread_limit(threads: int | None) -> None:
    """Cap the CPU stages' threads in this process (None: one per core, at most 8); a process
    that owns only a share of the machine, as a rank of a bulk job does, sets its share."""
    global _thread_limit
    _thread_limit = None if threads is None else max(1, int(threads))
    cv2.setNumThreads(-1 if _thread_limit is None else _thread_limit)  # -1: OpenCV's default


def thread_count() -> int:
    """How many threads the heavy loops use: one per core, at most 8, or the limit set."""
    return min(_thread_limit or os.cpu_count() or 1, 8)


def on_threads(work: Callable[[Any], None], items: Iterable[Any]) -> None:
    """Call ``work(item)`` for each item, on as many threads as there are cores (at most 8, or
    the limit set by :func:`set_thread_limit`)."""
    items = list(items)
    threads = min(len(items), thread_count())
    if threads <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(work, items):
            pass


def parallel_strips(work: Callable[[int, int], None], height: int, strip: int) -> None:
    """Call ``work(y0, y1)`` for each strip of rows, on one thread per core."""
    on_threads(lambda span: work(*span), [(y0, min(height, y0 + strip)) for y0 in range(0, height, strip)])
