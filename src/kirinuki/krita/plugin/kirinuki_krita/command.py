"""Finding and running the ``kirinuki`` command, in plain Python.

Krita ships its own Python (Windows, macOS) or uses the system's (Linux), without numpy or
ONNX Runtime, so the plug-in does not import kirinuki: it runs the command line on a
temporary PNG, as a separate process. That keeps Krita's Python free of kirinuki's
dependencies, works with any kirinuki installation (a virtual environment, pipx, a
system package), needs no server to be running, and lets a long cut be cancelled by ending
the process. Nothing here imports Krita or Qt.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

#: The oldest kirinuki whose command line the plug-in knows (``--keep``/``--drop`` in order,
#: ``--force``, ``--no-decontaminate``).
MIN_VERSION = (0, 1, 0)
#: The most keep and drop points one cut may carry (kirinuki's own limit).
MAX_POINTS = 32
#: Where ``kirinuki krita install`` records the command of the installation it came from.
RECORDED_COMMAND = Path(__file__).with_name("command.txt")
#: Set to a command (a path, or a path and arguments) to override every other way of finding it.
ENVIRONMENT = "KIRINUKI_COMMAND"


class CutError(Exception):
    """Anything the plug-in cannot do, in one line for the artist."""


def find_command(setting: str = "") -> list[str]:
    """The command that runs kirinuki, as an argument list: ``$KIRINUKI_COMMAND``, else the
    plug-in's setting, else the command recorded at install time, else ``kirinuki`` on PATH."""
    for candidate in (os.environ.get(ENVIRONMENT, ""), setting,
                      RECORDED_COMMAND.read_text("utf-8").strip() if RECORDED_COMMAND.is_file() else ""):
        if candidate.strip():
            argv = candidate.split("\t") if "\t" in candidate else [candidate.strip()]
            if shutil.which(argv[0]) or Path(argv[0]).is_file():
                return argv
    found = shutil.which("kirinuki")
    if found:
        return [found]
    raise CutError("kirinuki was not found: install it (pip install kirinuki), then run "
                   "'kirinuki krita install', or set its path in Tools > Scripts > kirinuki settings")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``kirinuki 0.1.0 (default model: ...)`` -> (0, 1, 0); None when it is not kirinuki's."""
    found = re.search(r"\bkirinuki (\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(v) for v in found.groups()) if found else None  # type: ignore[return-value]


_CHECKED: dict[tuple[str, ...], tuple[int, int, int]] = {}


def check_version(command: Sequence[str]) -> tuple[int, int, int]:
    """kirinuki's version, or a CutError when the command does not run or is too old. A
    command found good is not asked again while Krita runs (each ask starts a Python)."""
    if tuple(command) in _CHECKED:
        return _CHECKED[tuple(command)]
    try:
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CutError(f"{command[0]} could not be run ({exc.__class__.__name__}: {exc})") from None
    version = parse_version(done.stdout + done.stderr)
    if done.returncode != 0 or version is None:
        raise CutError(f"{command[0]} is not a working kirinuki (its --version said: "
                       f"{(done.stdout + done.stderr).strip()[:120] or 'nothing'})")
    if version < MIN_VERSION:
        raise CutError(f"kirinuki {'.'.join(map(str, version))} is too old for this plug-in: "
                       f"{'.'.join(map(str, MIN_VERSION))} or later is needed (pip install -U kirinuki)")
    _CHECKED[tuple(command)] = version
    return version


def cutout_arguments(command: Sequence[str], picture: Path, out_dir: Path, *, keep_colours: bool = False,
                     edits: Sequence[tuple[str, int, int]] = ()) -> list[str]:
    """The command line that cuts out ``picture`` into ``out_dir``: the alpha always
    recomputed, clicks (``("keep" | "drop", x, y)``) in order."""
    if len(edits) > MAX_POINTS:
        raise CutError(f"{len(edits)} keep and drop points: at most {MAX_POINTS}; select a smaller region")
    argv = [*command, "cutout", str(picture), "-o", str(out_dir), "--force", "--overwrite", "-q"]
    if keep_colours:
        argv.append("--no-decontaminate")
    for mode, x, y in edits:
        argv += [f"--{mode}", f"{x},{y}"]
    return argv


def run(argv: Sequence[str], wait: Callable[[], bool] | None = None, poll: float = 0.05) -> None:
    """Run ``argv`` to the end. ``wait``, when given, is called every ``poll`` seconds while
    it runs (the UI keeps its events flowing there) and returns True to cancel: the process
    is then ended and a CutError says so. A failure is a CutError with kirinuki's own line."""
    try:
        process = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise CutError(f"{argv[0]} could not be run ({exc.strerror or exc})") from None
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()
    while process.poll() is None:
        if wait is not None and wait():
            process.kill()
            process.wait()
            raise CutError("cancelled: nothing was changed")
        time.sleep(poll)
    reader.join()
    if process.returncode != 0:
        lines = [line for line in "".join(errors).splitlines() if line.strip()]
        reason = next((line for line in lines if "error:" in line), lines[-1] if lines else "no message")
        raise CutError(reason.replace("kirinuki: error: ", "kirinuki: "))


def sample_points(mask: bytes, width: int, height: int, left: int = 0, top: int = 0,
                  most: int = 16) -> list[tuple[int, int]]:
    """Up to ``most`` points spread over the selected pixels (value >= 128) of an 8-bit
    ``mask`` of ``width`` x ``height`` whose top-left corner is at ``(left, top)``: the points
    a selection stands for in kirinuki's keep and drop. The pixel nearest the centre of the
    selected pixels comes first."""
    chosen = [i for i, v in enumerate(mask) if v >= 128]
    if not chosen:
        return []
    cx = sum(i % width for i in chosen) / len(chosen)
    cy = sum(i // width for i in chosen) / len(chosen)
    centre = min(chosen, key=lambda i: (i % width - cx) ** 2 + (i // width - cy) ** 2)
    step = max(1, len(chosen) // most)
    picked = [centre] + [i for i in chosen[step // 2::step] if i != centre]
    return [(left + i % width, top + i // width) for i in picked[:most]]
