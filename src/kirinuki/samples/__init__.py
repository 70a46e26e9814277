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


def moving_figure(size: tuple[int, int], height: int, frames: int, x0: int = 10, step: int = 6):
    """A moving clip made of the samples, for tests and benchmarks: the white sample's
    character (cut out with its true alpha, ``height`` pixels high, standing on the bottom
    edge) sliding ``step`` pixels a frame from ``x0`` (wrapping round) over the meadow
    sample's sky and trees (a crop with no character in it). Yields, per frame, the picture
    (HxWx3 uint8) and its true alpha (HxW float32 in [0, 1])."""
    import numpy as np
    from PIL import Image

    white = next(p for p in sample_paths() if "white" in p.name)
    meadow = next(p for p in sample_paths() if "meadow" in p.name)
    figure = Image.open(white).convert("RGBA")
    figure.putalpha(Image.open(true_alpha_path(white)).convert("L"))
    figure = figure.resize((figure.width * height // figure.height, height), Image.Resampling.LANCZOS)
    background = Image.open(meadow).convert("RGBA").crop((380, 0, 456, 330)).resize(size, Image.Resampling.BICUBIC)
    span = max(1, size[0] - figure.width)
    for k in range(frames):
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        layer.paste(figure, ((x0 + step * k) % span, size[1] - height))
        frame = background.copy()
        frame.alpha_composite(layer)
        yield np.asarray(frame.convert("RGB")), np.asarray(layer.getchannel("A")).astype(np.float32) / 255
