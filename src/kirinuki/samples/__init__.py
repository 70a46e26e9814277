"""Two sample inputs with their true alpha (Ren'Py "The Question" Sylvie, MIT licence)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_paths() -> list[Path]:
    """The bundled sample pictures (JPEG), sorted."""
    folder = Path(str(resources.files(__name__)))
    return sorted(folder.glob("*.jpg"))


def true_alpha_path(sample: Path) -> Path:
    """The true alpha of a bundled sample (``NAME.alpha.png`` beside ``NAME.jpg``)."""
    return sample.with_name(sample.stem + ".alpha.png")
