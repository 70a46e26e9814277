"""Moving pictures: animated GIF, APNG and animated WebP in, animated cutouts out.

Each frame is cut out as a still would be, and the output keeps the frame count, each
frame's duration and the loop count. Output formats: APNG (``png``) or animated WebP
(``webp``, lossless), both with full 8-bit alpha; GIF on request (``gif``: one bit of
transparency, so soft edges are flattened onto a matte colour first).

Frame-by-frame prediction flickers where the picture does not move. :func:`steady_alpha`
keeps the previous frame's alpha wherever a pixel's colour did not change (up to a small
tolerance for compression noise), so still parts hold still and moving parts follow their
own frame; :func:`flicker` measures what is left (mean absolute alpha change between
consecutive frames on the pixels whose colour did not change).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageSequence

from .errors import InputError, InputKind
from .imaging import DECODE_ERRORS, atomic_write, binary_dilate, image_to_rgba_or_rgb, pillow_open
from .limits import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS, MEGAPIXEL

__all__ = ["Animation", "is_animation", "read_animation", "steady_alpha", "steady_sequence", "flicker", "encode_animation",
           "UNCHANGED", "NEAR_MOTION"]

#: A pixel whose colour moved by at most this much (8-bit levels, every channel) is unchanged.
UNCHANGED = 3
#: ... and it keeps the previous frame's alpha only where no pixel within this many pixels
#: changed: a part of the figure the colour of the page that moves away uncovers page of the
#: same colour, and the changed pixels of its moving outline lie this close to that page;
NEAR_MOTION = 8
#: ... and where this frame's own prediction is within this much of the previous alpha: a
#: swing of half the range is the content changing, not flicker.
STEADY_DELTA = 0.5


@dataclass
class Animation:
    """Decoded frames (RGB or RGBA Pillow images, one size), their durations (ms) and the
    loop count (0: for ever)."""

    frames: list[Image.Image]
    durations: list[int]
    loop: int = 0
    info: dict = field(default_factory=dict)


def is_animation(path: "str | os.PathLike") -> bool:
    """Whether the file is an animated GIF, APNG or WebP of two frames or more, from its
    header (no frame decoded); False for anything Pillow cannot open."""
    try:
        with pillow_open(path, DEFAULT_MAX_PIXELS) as im:
            return bool(getattr(im, "is_animated", False)) and getattr(im, "n_frames", 1) >= 2
    except Exception:
        return False


def read_animation(source: "str | os.PathLike | bytes", max_frames: int = DEFAULT_MAX_FRAMES,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> Animation | None:
    """The frames of an animated GIF, APNG or WebP, or None for a still picture (open those
    with :func:`kirinuki.imaging.open_image`). The frame count is checked against
    ``max_frames`` and the pixels of all frames together against ``max_pixels``, from the
    header, before any frame is decoded."""
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        im = pillow_open(stream, max_pixels)
    except Exception:
        return None  # not a picture, or not one this reader knows: the still-picture path says why
    with im:
        try:
            n = getattr(im, "n_frames", 1)
            animated = getattr(im, "is_animated", False)
        except (Image.DecompressionBombError, *DECODE_ERRORS) as exc:  # counting reads every frame's header
            raise _unreadable(exc, max_pixels, exc.__class__.__name__) from None
        if not animated or n < 2:
            return None
        w, h = im.size
        if n > max_frames:
            raise InputError(f"{n} frames, over the limit of {max_frames} (--max-frames)", InputKind.TOO_LARGE)
        if n * w * h > max_pixels:
            raise InputError(f"{n} frames of {w}x{h} are {n * w * h / MEGAPIXEL:.3g} MP in all, over the limit "
                             f"of {max_pixels / MEGAPIXEL:g} MP (--max-pixels)", InputKind.TOO_LARGE)
        frames, durations = [], []
        try:
            for frame in ImageSequence.Iterator(im):
                frame.load()
                durations.append(int(round(float(frame.info.get("duration", 100) or 100))))
                frames.append(image_to_rgba_or_rgb(frame.copy()))
        except (Image.DecompressionBombError, *DECODE_ERRORS) as exc:
            raise _unreadable(exc, max_pixels, str(exc)) from None
        loop = int(im.info.get("loop", 0) or 0)
    return Animation(frames, durations, loop)


def _unreadable(exc: Exception, max_pixels: int, detail: str) -> InputError:
    """The one-line reason an animation's frames cannot be read: a frame declaring a size far
    over the limit (Pillow's own guard), or a cut-short or damaged file."""
    if isinstance(exc, Image.DecompressionBombError):
        return InputError(f"a frame over the limit of {max_pixels / MEGAPIXEL:g} MP (--max-pixels)",
                          InputKind.TOO_LARGE)
    return InputError(f"truncated or corrupt animation ({detail})", InputKind.CORRUPT)


def _changed(rgb: np.ndarray, previous_rgb: np.ndarray, tolerance: int) -> np.ndarray:
    """HxW bool: the pixels whose colour moved by more than ``tolerance`` levels in a channel."""
    return np.abs(rgb.astype(np.int16) - previous_rgb.astype(np.int16)).max(axis=2) > tolerance


def steady_alpha(previous_rgb: np.ndarray | None, previous_alpha: np.ndarray | None, rgb: np.ndarray,
                 alpha: np.ndarray, tolerance: int = UNCHANGED) -> np.ndarray:
    """``alpha`` (this frame's prediction, HxW float) with the previous frame's alpha kept
    where the content stays: pixels whose colour (HxWx3 uint8), and that of every pixel
    within ``NEAR_MOTION``, moved by at most ``tolerance`` levels, and whose prediction is
    within ``STEADY_DELTA`` of the previous alpha. Everywhere else a pixel follows its own
    frame, so a moving part never leaves its alpha behind on the page it uncovers."""
    if previous_rgb is None or previous_alpha is None or previous_rgb.shape != rgb.shape:
        return alpha
    changed = _changed(rgb, previous_rgb, tolerance)
    still = ~binary_dilate(changed, NEAR_MOTION) & (np.abs(alpha - previous_alpha) < STEADY_DELTA)
    return np.where(still, previous_alpha, alpha).astype(np.float32)


def steady_sequence(rgbs: list[np.ndarray], alphas: list[np.ndarray],
                    tolerance: int = UNCHANGED) -> list[np.ndarray]:
    """:func:`steady_alpha` along a sequence of frames (HxWx3 uint8) and their predictions."""
    out: list[np.ndarray] = []
    for k, (rgb, alpha) in enumerate(zip(rgbs, alphas)):
        out.append(steady_alpha(rgbs[k - 1] if k else None, out[-1] if k else None, rgb, alpha, tolerance))
    return out


def flicker(rgbs: list[np.ndarray], alphas: list[np.ndarray], tolerance: int = UNCHANGED,
            margin: int = 0) -> float:
    """Mean absolute alpha change between consecutive frames, on the pixels whose colour did
    not change, nor that of any pixel within ``margin`` (0 when no pixel stays the same)."""
    total, count = 0.0, 0
    for (r0, a0), (r1, a1) in zip(zip(rgbs, alphas), zip(rgbs[1:], alphas[1:])):
        changed = _changed(r1, r0, tolerance)
        same = ~binary_dilate(changed, margin) if margin else ~changed
        total += float(np.abs(a1 - a0)[same].sum())
        count += int(same.sum())
    return total / count if count else 0.0


def _gif_frame(rgba: Image.Image, matte: tuple[int, int, int]) -> Image.Image:
    """One GIF frame: soft edges flattened onto ``matte``, then one bit of transparency."""
    arr = np.asarray(rgba.convert("RGBA")).astype(np.float32)
    a = arr[..., 3:] / 255
    flat = np.rint(arr[..., :3] * a + np.asarray(matte, np.float32) * (1 - a)).astype(np.uint8)
    keep = arr[..., 3] >= 128
    out = np.dstack([flat, np.where(keep, 255, 0).astype(np.uint8)])
    return Image.fromarray(out, "RGBA")


def encode_animation(frames: list[Image.Image], durations: list[int], loop: int, fmt: str,
                     matte: tuple[int, int, int] = (255, 255, 255)) -> Callable[[io.BufferedIOBase], None]:
    """A writer of the animated file in ``fmt`` (png: APNG, webp: lossless animated WebP,
    gif), for :func:`kirinuki.imaging.atomic_write`. Frames may be RGBA, RGB or L (a mask)."""
    if fmt == "gif":
        frames = [_gif_frame(f, matte) if f.mode == "RGBA" else f for f in frames]
        params = {"format": "GIF", "disposal": 2, "optimize": False}
    elif fmt == "webp":
        params = {"format": "WEBP", "lossless": True, "quality": 50, "method": 1, "exact": True}
    elif fmt == "png":
        # Each frame replaces the last whole (blend: source), transparent pixels included.
        params = {"format": "PNG", "compress_level": 1, "disposal": 0, "blend": 0}
    else:
        raise ValueError(f"unknown output format {fmt!r}; choose png, webp or gif")
    first, rest = frames[0], frames[1:]

    def write(fh: io.BufferedIOBase) -> None:
        first.save(fh, save_all=True, append_images=rest, duration=list(durations), loop=loop, **params)
    return write


def save_animation(frames: list[Image.Image], durations: list[int], loop: int, path: Path, fmt: str,
                   matte: tuple[int, int, int] = (255, 255, 255)) -> None:
    """Write the animation atomically (a complete file or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, encode_animation(frames, durations, loop, fmt, matte))
