"""What the sample maker paints, per sample on the CPU (numpy + Pillow): a cutout redrawn as
line art or in a few flat colours or with its clothes in a texture, a drop shadow on the
background, tiled patterns and drawn shapes and text over the background, and the draw of a
scene's colour jitter."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .degradations import cast_shadows

__all__ = ["redraw_cutout", "texture_regions", "picture_crop", "LIGHTNESS", "draw_shadow", "cast_shadow",
           "paint_pattern", "draw_over", "draw_jitter"]


def draw_jitter(rng: np.random.Generator, strength: float) -> np.ndarray:
    """A scene's colour jitter of ``strength`` (0..1): saturation, contrast and brightness
    factors and a colour cast (r, g, b levels), float32."""
    j = strength
    return np.array([rng.uniform(1 - j, 1 + j), rng.uniform(1 - j / 2, 1 + j / 2), rng.uniform(1 - j / 2, 1 + j / 2),
                     *rng.uniform(-20 * j, 20 * j, size=3)], np.float32)


#: Lightness from RGB (Rec. 601 weights), for a colour's shading.
LIGHTNESS = np.array([0.299, 0.587, 0.114], np.float32)


def _straight(cut: np.ndarray) -> np.ndarray:
    """A premultiplied cutout ``HxWx4 uint8``'s straight colour, HxWx3 float32 levels in
    [0, 255]; 0 where alpha is 0."""
    alpha = cut[..., 3:4].astype(np.float32)
    return np.clip(np.where(alpha > 0, cut[..., :3] * (255.0 / np.maximum(alpha, 1.0)), 0.0), 0, 255)


def picture_crop(source: np.ndarray, h: int, w: int, share: tuple[float, float],
                 rng: np.random.Generator) -> np.ndarray:
    """A random square crop of ``source`` (a background picture, ``HxWx3 uint8``), its side a
    share in ``share`` of the picture's shorter side (at least 8 pixels), resized to ``h`` x
    ``w``: float32 RGB levels in [0, 255]."""
    sh, sw = source.shape[:2]
    side = max(8, round(min(sh, sw) * rng.uniform(*share)))
    y, x = int(rng.integers(0, sh - side + 1)), int(rng.integers(0, sw - side + 1))
    return np.asarray(Image.fromarray(source[y:y + side, x:x + side]).resize((w, h), Image.Resampling.BILINEAR),
                      np.float32)


def redraw_cutout(cut: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    """The premultiplied cutout ``HxWx4 uint8`` redrawn with the same alpha.

    ``lineart``: dark lines where the colour changes (and along the silhouette) on white,
    as a sketch or an uncoloured page looks. ``flat``: the colours reduced to 3-8 flat ones.
    """
    alpha = cut[..., 3:4].astype(np.float32)
    rgb = Image.fromarray(_straight(cut).astype(np.uint8), "RGB")
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


#: The region map of :func:`texture_regions` is made at most this many pixels a side.
_REGION_SIDE = 256


def _closed_regions(cut: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """1-3 closed regions of the clothes of a premultiplied cutout ``HxWx4 uint8`` (at most
    ``_REGION_SIDE`` a side): regions of the click fix's region map that lie inside the opaque
    figure (80 % of their pixels or more: a figure painted without an outline has regions
    that reach its soft edge) with their centre below its top quarter (the head), drawn by
    size, each grown over its shading as a click would grow it, covering 1-50 % of the
    figure and not thin as line art is (HxW bool masks; none when the figure has no such
    region)."""
    from .regions import region_map, select_region

    rgb = _straight(cut) / 255.0
    inside = cut[..., 3] > 0.98 * 255
    area = int(inside.sum())
    if area < 64:
        return []
    rows = np.nonzero(inside)[0]
    below_head = rows.min() + 0.25 * (rows.max() - rows.min())
    labels, grad = region_map(rgb)
    n = int(labels.max()) + 1
    flat = labels.ravel()
    count = np.bincount(flat, minlength=n)
    held = np.bincount(flat, inside.ravel().astype(np.float64), minlength=n)
    centre = np.bincount(flat, np.repeat(np.arange(labels.shape[0], dtype=np.float64), labels.shape[1]),
                         minlength=n) / np.maximum(count, 1)
    candidates = np.flatnonzero((held >= 0.8 * count) & (count >= 0.01 * area) & (centre > below_head))
    if candidates.size == 0:
        return []
    take = min(int(rng.integers(1, 4)), candidates.size)
    regions = []
    for label in rng.choice(candidates, take, replace=False, p=count[candidates] / count[candidates].sum()):
        ys, xs = np.nonzero(labels == label)
        region = select_region(labels, grad, rgb, int(xs[0]), int(ys[0])) & inside
        # Line art is a thin region: little of it is left two pixels in from its border.
        core = np.asarray(Image.fromarray(region.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(5))) > 0
        if region.sum() <= 0.5 * area and core.sum() >= 0.3 * region.sum():
            regions.append(region)
    return regions


def _texture(source: np.ndarray | None, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An ``h`` x ``w`` texture, float32 RGB in [0, 1]: a crop of ``source`` (a background
    picture, ``HxWx3 uint8``) of 15-50 % of its shorter side, resized, or a tiled pattern of
    two colours (:func:`paint_pattern`), half of the time each (always the pattern without a
    ``source``)."""
    if source is not None and rng.random() < 0.5:
        return picture_crop(source, h, w, (0.15, 0.5), rng) / 255.0
    side = max(h, w)
    ground = np.broadcast_to(rng.integers(0, 256, 3).astype(np.uint8), (side, side, 3))
    return paint_pattern(np.ascontiguousarray(ground), rng)[:h, :w].astype(np.float32) / 255.0


def texture_regions(cut: np.ndarray, source: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """The premultiplied cutout ``HxWx4 uint8`` with 1-3 of its closed regions (a shirt, a
    skirt: regions of the click fix's region map inside the outline, grown over their
    shading) filled with a texture (:func:`_texture`, from the background picture ``source``
    or a tiled pattern), so that the inside of an outline is character whatever its pattern.
    The region's shading is kept (the texture scaled by each pixel's lightness over the
    region's median) and so is its line art (pixels darker than half the median stay as they
    are); the alpha is unchanged. A cutout without such a region comes back as it is."""
    h, w = cut.shape[:2]
    scale = min(1.0, _REGION_SIDE / max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = np.asarray(Image.fromarray(cut, "RGBa").resize((sw, sh), Image.Resampling.BILINEAR))
    regions = _closed_regions(small, rng)
    if not regions:
        return cut
    rgb, alpha = _straight(cut) / 255.0, cut[..., 3].astype(np.float32) / 255.0
    out = cut.copy()
    light = rgb @ LIGHTNESS
    reach = 2 * math.ceil(1 / scale) + 1
    for small_region in regions:
        # Up to full size, then snapped to the region's colours: a few pixels round the
        # upscaled mask whose colour is near the region's own.
        up = Image.fromarray(small_region.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BILINEAR)
        region = np.asarray(up) >= 128
        near = np.asarray(up.filter(ImageFilter.MaxFilter(reach))) >= 128
        if not region.any():
            continue
        colour = np.median(rgb[region], axis=0)
        region = near & (alpha > 0.98) & (np.abs(rgb - colour).max(axis=2) < 0.25)
        if not region.any():
            continue
        median = max(float(np.median(light[region])), 1e-3)
        lines = light < 0.5 * median
        ys, xs = np.nonzero(region)
        y0, x0 = ys.min(), xs.min()
        texture = _texture(source, ys.max() - y0 + 1, xs.max() - x0 + 1, rng)
        shade = np.clip(light[ys, xs] / median, 0.4, 1.4)[:, None]
        painted = np.clip(texture[ys - y0, xs - x0] * shade, 0, 1)
        paint = ~lines[ys, xs]
        ys, xs, painted = ys[paint], xs[paint], painted[paint]
        a = cut[ys, xs, 3:4].astype(np.float32)
        out[ys, xs, :3] = np.minimum(np.rint(painted * a), a).astype(np.uint8)
    return out


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
