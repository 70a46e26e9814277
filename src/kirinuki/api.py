"""The public functions: ``kirinuki.cutout`` and ``kirinuki.predict_alpha``.

Both use one default :class:`~kirinuki.inference.Matter`, created on first use and reused
(loading a model per call is what makes some tools slow in a loop). Pass ``matter=`` to use
another model, or create a ``Matter`` and call it directly.
"""

from __future__ import annotations

import os
import threading
from typing import Sequence

import numpy as np
from PIL import Image

from .imaging import image_to_rgba_or_rgb, open_image
from .inference import Matter
from .pipeline import CutoutOptions, render
from .regions import Edit, ordered_edits

_default: Matter | None = None
_lock = threading.Lock()


def default_matter() -> Matter:
    """The shared session on the bundled model (created once, thread-safe)."""
    global _default
    with _lock:
        if _default is None:
            _default = Matter()
        return _default


def _as_image(image: "str | os.PathLike | Image.Image | np.ndarray") -> Image.Image:
    if isinstance(image, np.ndarray):
        from .imaging import as_rgb_array
        return Image.fromarray(as_rgb_array(image), "RGB")
    if isinstance(image, Image.Image):
        return image_to_rgba_or_rgb(image)
    return open_image(image)


def predict_alpha(image: "str | os.PathLike | Image.Image | np.ndarray", matter: Matter | None = None, *,
                  keep: Sequence[tuple[int, int]] = (), drop: Sequence[tuple[int, int]] = (),
                  edits: Sequence[Edit] = ()) -> np.ndarray:
    """The alpha matte of ``image`` (a path, a Pillow image, or an HxWx3 uint8 array).

    keep, drop: points ``(x, y)`` in the picture's pixels whose whole region is made opaque
    or transparent (a lost shirt brought back, a patch of background taken out); edits:
    clicks ``("keep" | "drop", x, y)`` applied after those in their order, so that the last
    click on a region decides it. Returns an HxW float32 array in [0, 1], the size of the image.
    """
    return (matter or default_matter()).predict_alpha(_as_image(image).convert("RGB"), keep, drop, edits)


def cutout(image: "str | os.PathLike | Image.Image | np.ndarray", matter: Matter | None = None, *,
           decontaminate: bool = True, keep: Sequence[tuple[int, int]] = (),
           drop: Sequence[tuple[int, int]] = (), edits: Sequence[Edit] = ()) -> Image.Image:
    """The RGBA cutout of ``image`` (a path, a Pillow image, or an HxWx3 uint8 array).

    Returns a Pillow ``RGBA`` image the size of the input, straight alpha, with the colour of
    soft edges freed from the old background (``decontaminate``). The alpha is always
    predicted from the RGB picture, even if the input has an alpha channel; ``keep``,
    ``drop`` and ``edits`` fix whole regions as in :func:`predict_alpha`.
    """
    opts = CutoutOptions(force=True, decontaminate=decontaminate, edits=tuple(ordered_edits(keep, drop, edits)))
    out, _ = render(matter or default_matter(), _as_image(image), opts)
    return out
