"""The models that ship inside the package: where they are, their manifests and checksums.

A bundled model is a *slot* (``default``) of three files in ``kirinuki/weights/``:
``SLOT.onnx`` (what the cutout tool runs), ``SLOT.pt`` (weights and config, for fine-tuning)
and ``SLOT.json`` (name, version, training facts, evaluation, and the SHA-256 of the other
two, checked before any file is used). A former slot's name still finds the model that took
its place, with a note (``FORMER_NAMES``), for one release.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ModelError

__all__ = ["DEFAULT_MODEL", "FORMER_NAMES", "weights_folder", "sha256_file", "bundled_file",
           "bundled_model_info", "bundled_slots", "bundled_slot", "former_name_note"]

#: The slot of the model used when none is named.
DEFAULT_MODEL = "default"

#: Names of bundled models that are gone, and the slot that now holds their network. Kept for
#: one release, so that scripts written for the former name keep working (with a note).
FORMER_NAMES = {"quality": "default"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_folder() -> Path:
    """Where the bundled model lives inside the installed package."""
    return Path(str(resources.files("kirinuki").joinpath("weights")))


def bundled_file(filename: str, folder: Path | None = None) -> Path:
    """A file of a bundled model (``default.onnx``, ``default.pt``), after checking its
    checksum against that model's manifest beside it (``default.json``...)."""
    folder = folder or weights_folder()
    manifest = folder / f"{Path(filename).stem}.json"
    path = folder / filename
    if not manifest.exists() or not path.exists():
        raise ModelError(f"{path}: the bundled model is missing from this installation")
    expected = json.loads(manifest.read_text("utf-8"))["files"][filename]["sha256"]
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(f"{path}: checksum mismatch (expected {expected[:12]}..., got {actual[:12]}...); "
                         "reinstall kirinuki")
    return path


def bundled_model_info(slot: str = DEFAULT_MODEL) -> dict[str, Any]:
    """A bundled model's manifest (name, version, metrics, checksums), without loading it."""
    path = weights_folder() / f"{slot}.json"
    return json.loads(path.read_text("utf-8")) if path.exists() else {}


def bundled_slots() -> list[str]:
    """The slots of the bundled models (``default``)."""
    return sorted(p.stem for p in weights_folder().glob("*.json") if (p.with_suffix(".onnx")).exists())


def bundled_slot(name: str | None) -> str | None:
    """The slot that ``name`` stands for (a bundled model's name, a former name of one in
    ``FORMER_NAMES``, or None for the default model), or None when it names no bundled
    model: it is then a file's path."""
    if name is None:
        return DEFAULT_MODEL
    name = str(name)
    if Path(name).exists():
        return None  # a file of that name, given by its path, wins
    slot = FORMER_NAMES.get(name, name)
    return slot if slot in bundled_slots() else None


def former_name_note(name: str | None) -> str | None:
    """One line for a model asked for by a former name (``--model quality``), else None."""
    if name is None or str(name) not in FORMER_NAMES or Path(str(name)).exists():
        return None
    slot = FORMER_NAMES[str(name)]
    info = bundled_model_info(slot)
    return (f"--model {name}: that network is now the default ({info.get('name', slot)} "
            f"{info.get('version', '')}".rstrip() + f"); the name '{name}' goes in the next release, "
            "leave --model out")
