"""One picture: open it as users have it, cut it out, and encode the result.

Used by the command line, the Python API and the web app alike. Bad input becomes an
:class:`InputError` whose message is a one-line reason; outputs are written atomically, so a
file at an output path is always complete.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor

from .errors import InputError, InputKind
from .foreground import estimate_foreground
from .imaging import DEFAULT_MAX_PIXELS, atomic_save, composite
from .inference import Matter

__all__ = ["CutoutOptions", "parse_colour", "has_real_alpha", "render",
           "check_encodable", "encode_params", "encode", "save_output", "WEBP_MAX_SIDE"]

#: The longest side a WebP file can hold (the format stores 14-bit sizes).
WEBP_MAX_SIDE = 16383


def parse_colour(text: str) -> tuple[int, int, int]:
    """``#rrggbb``, ``#rgb`` or a CSS colour name -> (r, g, b)."""
    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a colour (use #rrggbb or a name such as white)") from None
    return tuple(rgb[:3])  # type: ignore[return-value]


@dataclass(frozen=True)
class CutoutOptions:
    """What to write. mask: the alpha alone (8-bit grayscale); background: flatten onto this
    colour (RGB output); fmt: ``png`` or ``webp`` (lossless); trim: crop to the content plus
    this margin (None: no crop); force: recompute alpha even when the input has one;
    decontaminate: estimate the foreground colour on soft edges (no halo); keep, drop:
    points whose regions are made opaque or transparent (the alpha is then always
    computed)."""

    mask: bool = False
    background: tuple[int, int, int] | None = None
    fmt: str = "png"
    trim: int | None = None
    overwrite: bool = False
    force: bool = False
    decontaminate: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Points (x, y) whose whole region is kept (opaque) or dropped (transparent).
    keep: tuple[tuple[int, int], ...] = ()
    drop: tuple[tuple[int, int], ...] = ()

    @property
    def suffix(self) -> str:
        return "." + self.fmt


def has_real_alpha(image: Image.Image) -> bool:
    """True when an RGBA picture's alpha carries a cutout already: some pixels fully
    transparent (an all-opaque alpha channel says nothing)."""
    if image.mode != "RGBA":
        return False
    lo, hi = image.getchannel("A").getextrema()
    return lo == 0 and hi > 0


def render(matter: Matter, image: Image.Image, opts: CutoutOptions) -> tuple[Image.Image, str | None]:
    """Cut out one picture (RGB or RGBA). Returns (output image, note or None).

    The output is RGBA with straight alpha, or L (``mask``), or RGB (``background``).
    """
    note = None
    if has_real_alpha(image) and not opts.force and not (opts.keep or opts.drop):
        arr = np.asarray(image)
        rgb, alpha8 = arr[..., :3], arr[..., 3]
        note = "already has transparency: alpha kept as it is (--force recomputes it)"
        fg = rgb
    else:
        rgb = np.asarray(image.convert("RGB"))
        alpha = matter.predict_alpha(rgb, opts.keep, opts.drop)
        fg = estimate_foreground(rgb, alpha) if opts.decontaminate else rgb
        alpha8 = np.clip(np.rint(alpha * 255), 0, 255).astype(np.uint8)
    if opts.trim is not None:
        ys, xs = np.nonzero(alpha8)
        if ys.size:
            m = opts.trim
            y0, y1 = max(0, ys.min() - m), min(alpha8.shape[0], ys.max() + 1 + m)
            x0, x1 = max(0, xs.min() - m), min(alpha8.shape[1], xs.max() + 1 + m)
            fg, alpha8 = fg[y0:y1, x0:x1], alpha8[y0:y1, x0:x1]
    if opts.mask:
        return Image.fromarray(np.ascontiguousarray(alpha8), "L"), note
    if opts.background is not None:
        flat = composite(fg.astype(np.float32), alpha8.astype(np.float32) / 255,
                         np.asarray(opts.background, np.float32))
        return Image.fromarray(np.clip(np.rint(flat), 0, 255).astype(np.uint8), "RGB"), note
    return Image.fromarray(np.dstack([fg, alpha8]), "RGBA"), note


def check_encodable(size: tuple[int, int], fmt: str) -> None:
    """Refuse, before any work, an output the format cannot hold (WebP: 16383 px a side)."""
    if fmt == "webp" and max(size) > WEBP_MAX_SIDE:
        raise InputError(f"{size[0]}x{size[1]} is too large for WebP (at most {WEBP_MAX_SIDE} pixels a side); "
                         "use --format png", InputKind.TOO_LARGE)


def encode_params(fmt: str) -> dict:
    """Pillow save parameters: PNG at a fast compression level, WebP lossless (exact alpha)."""
    if fmt == "webp":
        return {"format": "WEBP", "lossless": True, "quality": 50, "method": 1}
    if fmt == "png":
        return {"format": "PNG", "compress_level": 1}
    raise ValueError(f"unknown output format {fmt!r}; choose png or webp")


def encode(image: Image.Image, fmt: str) -> bytes:
    """The output file's bytes (for the web app)."""
    check_encodable(image.size, fmt)
    buf = io.BytesIO()
    image.save(buf, **encode_params(fmt))
    return buf.getvalue()


def save_output(image: Image.Image, path: Path, fmt: str) -> None:
    """Write atomically (a complete file or none)."""
    check_encodable(image.size, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(image, path, **encode_params(fmt))


