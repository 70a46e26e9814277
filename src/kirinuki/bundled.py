"""The models that ship inside the package: where they are, their manifests and checksums.

A bundled model is a *slot* (``default``, and ``quality`` where it is bundled) of three files
in ``kirinuki/weights/``: ``SLOT.onnx`` (what the cutout tool runs), ``SLOT.pt`` (weights and
config, for fine-tuning) and ``SLOT.json`` (name, version, training facts, evaluation, and the
SHA-256 of the other two, checked before any file is used).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ModelError

__all__ = ["DEFAULT_MODEL", "weights_folder", "sha256_file", "bundled_file",
           "bundled_model_info", "bundled_slots"]

#: The slot of the model used when none is named.
DEFAULT_MODEL = "default"


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
    """A file of a bundled model (``default.onnx``, ``quality.pt``...), after checking its
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
    """The names of the bundled models (``default``, and ``quality`` when it is bundled)."""
    return sorted(p.stem for p in weights_folder().glob("*.json") if (p.with_suffix(".onnx")).exists())
