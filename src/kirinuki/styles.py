"""What the sample maker paints, per sample on the CPU (numpy + Pillow): a cutout redrawn as
line art or in a few flat colours, a drop shadow on the background, tiled patterns and drawn
shapes and text over the background, and the draw of a scene's colour jitter."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .degradations import cast_shadows

__all__ = ["redraw_cutout", "draw_shadow", "cast_shadow", "paint_pattern", "draw_over", "draw_jitter"]


def draw_jitter(rng: np.random.Generator, strength: float) -> np.ndarray:
    """A scene's colour jitter of ``strength`` (0..1): saturation, contrast and brightness
    factors and a colour cast (r, g, b levels), float32."""
    j = strength
    return np.array([rng.uniform(1 - j, 1 + j), rng.uniform(1 - j / 2, 1 + j / 2), rng.uniform(1 - j / 2, 1 + j / 2),
                     *rng.uniform(-20 * j, 20 * j, size=3)], np.float32)


def redraw_cutout(cut: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    """The premultiplied cutout ``HxWx4 uint8`` redrawn with the same alpha.

    ``lineart``: dark lines where the colour changes (and along the silhouette) on white,
    as a sketch or an uncoloured page looks. ``flat``: the colours reduced to 3-8 flat ones.
    """
    alpha = cut[..., 3:4].astype(np.float32)
    straight = np.where(alpha > 0, cut[..., :3] * (255.0 / np.maximum(alpha, 1.0)), 0.0)
    rgb = Image.fromarray(np.clip(straight, 0, 255).astype(np.uint8), "RGB")
    if style == "lineart":
        grey = rgb.convert("L")
        edges = np.asarray(grey.filter(ImageFilter.MaxFilter(3))).astype(np.int16) - \
            np.asarray(grey.filter(ImageFilter.MinFilter(3)))
        a8 = Image.fromarray(cut[..., 3])
        outline = np.asarray(a8.filter(ImageFilter.MaxFilter(3))).astype(np.int16) - \
            np.asarray(a8.filter(ImageFilter.MinFilter(3)))
        lines = (edges > rng.uniform(24, 72)) | (outline > 128)
        ink = rng.uniform(0, 60)
        out = np.where(lines[..., None], ink, 255.0).repeat(3, axis=2)
    elif style == "flat":
        out = np.asarray(rgb.quantize(colors=int(rng.integers(3, 9))).convert("RGB")).astype(np.float32)
    else:
        raise ValueError(f"unknown style {style!r}")
    fp = np.rint(out * alpha / 255.0).astype(np.uint8)
    return np.concatenate([fp, cut[..., 3:4]], axis=2)


def draw_shadow(rng: np.random.Generator, size: int) -> tuple[int, int, float, float]:
    """A drop shadow's shift (dx, dy, pixels), blur sigma and strength on an S x S canvas."""
    dx, dy = (int(v) for v in rng.integers(-size // 12, size // 12 + 1, 2))
    return dx, dy, float(rng.uniform(1.0, size / 40 + 1.5)), float(rng.uniform(0.25, 0.6))


def cast_shadow(bg: np.ndarray, alpha: np.ndarray, shadow: tuple[int, int, float, float]) -> np.ndarray:
    """A soft drop shadow of the character layer (alpha SxS float) darkening the background
    (SxSx3 uint8); ``shadow`` as :func:`draw_shadow` gives it. One sample of
    :func:`cast_shadows`."""
    out = cast_shadows(torch.from_numpy(bg).permute(2, 0, 1)[None].float() / 255.0,
                       torch.from_numpy(np.asarray(alpha, np.float32))[None, None],
                       torch.tensor([[1.0, *shadow]]))
    return np.rint(out[0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)


_GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!?&#"


def paint_pattern(bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tiled pattern painted over ``bg`` (``SxSx3 uint8``): dots (in a square or staggered
    grid), stripes or checks, turned by a random angle, in one colour at a random opacity,
    anti-aliased, over the whole picture or a band of it."""
    size = bg.shape[0]
    period = rng.uniform(size / 24, size / 4)
    theta = rng.uniform(0, math.pi)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    u = x * math.cos(theta) + y * math.sin(theta) + rng.uniform(0, period)
    v = -x * math.sin(theta) + y * math.cos(theta) + rng.uniform(0, period)
    kind = rng.integers(3)
    if kind == 0:  # dots; every other row shifted by half a period when staggered
        row = np.floor(v / period)
        u = u + (row % 2) * period / 2 * float(rng.random() < 0.5)
        du, dv = (u % period) - period / 2, (v % period) - period / 2
        edge = period * rng.uniform(0.15, 0.4) - np.sqrt(du * du + dv * dv)
    elif kind == 1:  # stripes
        edge = period * rng.uniform(0.15, 0.45) - np.abs((u % period) - period / 2)
    else:  # checks
        cu, cv = (u % period) - period / 2, (v % period) - period / 2
        au, av = np.abs(cu), np.abs(cv)
        near = np.minimum(np.minimum(au, period / 2 - au), np.minimum(av, period / 2 - av))
        edge = near * np.where(cu * cv > 0, 1.0, -1.0)
    cover = np.clip(edge + 0.5, 0.0, 1.0) * np.float32(rng.uniform(0.4, 1.0))
    if rng.random() < 0.5:  # a band of the picture only
        lo, hi = np.sort(rng.integers(0, size + 1, 2))
        band = np.zeros(size, np.float32)
        band[lo:max(hi, lo + size // 4)] = 1.0
        cover = cover * (band[:, None] if rng.random() < 0.5 else band[None, :])
    colour = rng.integers(0, 256, 3).astype(np.float32)
    if rng.random() < 0.6:  # pastel: towards white
        colour = 255 - (255 - colour) * np.float32(rng.uniform(0.2, 0.6))
    out = bg.astype(np.float32) * (1 - cover[..., None]) + colour * cover[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def draw_over(bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drawn shapes (filled, outlined in dark ink), strokes and a line of text over ``bg``."""
    size = bg.shape[0]
    im = Image.fromarray(bg)
    d = ImageDraw.Draw(im)
    colour = lambda: tuple(int(c) for c in rng.integers(0, 256, 3))
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(size // 16, size // 3, 2))
        box = (x0 - w // 2, y0 - h // 2, x0 + w // 2, y0 + h // 2)
        ink = tuple(int(c) for c in rng.integers(0, 60, 3))
        width = int(rng.integers(1, 4))
        kind = rng.integers(4)
        if kind == 0:
            d.ellipse(box, fill=colour(), outline=ink, width=width)
        elif kind == 1:
            d.rectangle(box, fill=colour(), outline=ink, width=width)
        elif kind == 2:
            pts = [(int(x0 + rng.uniform(-w, w)), int(y0 + rng.uniform(-h, h))) for _ in range(int(rng.integers(3, 6)))]
            d.polygon(pts, fill=colour(), outline=ink, width=width)
        else:
            pts = [(int(x0 + rng.uniform(-w, w)), int(y0 + rng.uniform(-h, h))) for _ in range(4)]
            d.line(pts, fill=ink if rng.random() < 0.5 else colour(), width=int(rng.integers(1, 6)), joint="curve")
    if rng.random() < 0.7:
        text = "".join(_GLYPHS[i] for i in rng.integers(len(_GLYPHS), size=int(rng.integers(3, 12))))
        font = ImageFont.load_default(size=int(rng.integers(max(8, size // 20), max(9, size // 6))))
        d.text((int(rng.integers(0, size * 3 // 4)), int(rng.integers(0, size * 7 // 8))), text,
               fill=colour(), font=font, stroke_width=int(rng.integers(0, 3)), stroke_fill=colour())
    return np.asarray(im).copy()
