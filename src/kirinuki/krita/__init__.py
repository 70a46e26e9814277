"""The Krita plug-in that ships with kirinuki (``plugin/``), and putting it where Krita looks.

``kirinuki krita install`` copies it into the user's ``pykrita`` folder and records which
``kirinuki`` command the plug-in should run; ``kirinuki krita zip OUT.zip`` writes the
archive Krita's "Import Python Plugin from File" takes. The plug-in itself runs inside Krita
and imports nothing of kirinuki (see ``plugin/kirinuki_krita/command.py``).
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path

from ..imaging import atomic_write

__all__ = ["PLUGIN", "NAME", "pykrita_folder", "install", "write_zip", "kirinuki_command"]

#: The plug-in's files inside the installed package.
PLUGIN = Path(__file__).resolve().parent / "plugin"
#: The plug-in's module name (and its .desktop file's).
NAME = "kirinuki_krita"
ENABLE_HINT = ("enable it in Krita: Settings > Configure Krita > Python Plugin Manager, tick "
               "'kirinuki: cut out characters', restart Krita; then Tools > Scripts > Cut out character (kirinuki)")


def pykrita_folder() -> Path:
    """Where Krita looks for the user's Python plug-ins on this system."""
    if sys.platform.startswith("win"):
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "krita" / "pykrita"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "krita" / "pykrita"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "krita" / "pykrita"


def kirinuki_command() -> str:
    """The ``kirinuki`` command of this installation (beside this Python, else on PATH)."""
    beside = Path(sys.executable).with_name("kirinuki.exe" if sys.platform.startswith("win") else "kirinuki")
    return str(beside) if beside.is_file() else (shutil.which("kirinuki") or "kirinuki")


def _plugin_files() -> list[tuple[Path, str]]:
    """(file, its name in the plug-in folder) for every file the plug-in needs."""
    files = [(PLUGIN / f"{NAME}.desktop", f"{NAME}.desktop")]
    files += [(p, f"{NAME}/{p.name}") for p in sorted((PLUGIN / NAME).iterdir())
              if p.is_file() and p.suffix in (".py", ".html")]
    return files


def install(folder: Path | None = None) -> Path:
    """Copy the plug-in into ``folder`` (default: :func:`pykrita_folder`), with the command
    of this installation recorded for it; returns the plug-in's folder. Files of an earlier
    install are replaced; nothing else in the folder is touched."""
    folder = Path(folder) if folder else pykrita_folder()
    (folder / NAME).mkdir(parents=True, exist_ok=True)
    for src, name in _plugin_files():
        data = src.read_bytes()
        atomic_write(folder / name, lambda fh, data=data: fh.write(data))
    command = kirinuki_command().encode("utf-8")
    atomic_write(folder / NAME / "command.txt", lambda fh: fh.write(command))
    return folder / NAME


def write_zip(out: Path) -> Path:
    """The archive for Krita's Tools > Scripts > Import Python Plugin from File."""
    def write(fh) -> None:
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as archive:
            for src, name in _plugin_files():
                archive.write(src, name)
    return atomic_write(Path(out), write)
