"""Pieces of scenery the sample maker paints into a background right against the placed
character (numpy + Pillow, per sample on the CPU); the target alpha never includes them.

Two failures on scene backgrounds are where they come from: dark trousers lost against dark
furniture, hair lost against a wall of its colour (:func:`own_colour_scenery`: a piece of
scenery in the character's own colour right behind its lower body or its hair), and a
ceiling lamp, a pole or a blackboard touching the head kept as character
(:func:`prop_against_outline`: a prop whose edge meets the outline of the head or the
shoulders).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .styles import LIGHTNESS, picture_crop

__all__ = ["own_colour_scenery", "prop_against_outline"]


def _figure(alpha: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(mask of ``alpha > level``, its rows, its columns), or None for too small a figure."""
    mask = alpha > level
    ys, xs = np.nonzero(mask)
    return None if ys.size < 32 else (mask, ys, xs)


def _shaded(bg: np.ndarray, piece: np.ndarray, colour: np.ndarray, strength: float) -> np.ndarray:
    """``colour`` (RGB, 0-255) shaded by the background's own lightness under ``piece`` (an
    SxS float mask): lightness over its mean under the piece, to the power ``strength``, so
    the piece keeps the scene's light and texture."""
    light = bg.astype(np.float32) @ LIGHTNESS + 1.0
    mean = float((light * piece).sum() / max(piece.sum(), 1e-6))
    return np.clip(colour * np.clip(light / mean, 0.6, 1.4)[..., None] ** strength, 0, 255)


def _paint(bg: np.ndarray, cover: np.ndarray, colour: np.ndarray) -> np.ndarray:
    out = bg.astype(np.float32) * (1 - cover[..., None]) + colour * cover[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def own_colour_scenery(bg: np.ndarray, fp: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``bg`` (``SxSx3 uint8``) with a piece of scenery (a box, a slab or a rounded shape:
    furniture, a wall, a bush) painted right behind the character's lower body (60 %) or its
    hair (the top 30 % of its height), in the character's own colour there (the median
    straight colour around a point of the figure, a little off), shaded by the scene under
    it, and reaching from that point out past the figure's side. ``fp`` (SxSx3) and
    ``alpha`` (SxS) are the placed character, float in [0, 1]."""
    figure = _figure(alpha, 0.95)
    if figure is None:
        return bg
    solid, ys, xs = figure
    size = bg.shape[0]
    top, height = ys.min(), ys.max() - ys.min() + 1
    band = ys >= top + 0.55 * height if rng.random() < 0.6 else ys <= top + 0.3 * height
    k = int(rng.choice(np.flatnonzero(band)))
    cy, cx = int(ys[k]), int(xs[k])
    r = max(2, size // 32)
    window = (slice(max(0, cy - r), cy + r + 1), slice(max(0, cx - r), cx + r + 1))
    near = solid[window]
    straight = fp[window][near] / alpha[window][near][:, None]
    colour = np.median(straight, axis=0) * 255.0 + rng.normal(0, 6, 3)
    # From the point out past the figure's side on that row, so that it shows beside it.
    pw, ph = size * rng.uniform(0.15, 0.6), size * rng.uniform(0.1, 0.45)
    sign, edge = _side_edge(solid, cy, rng)
    far = edge + sign * size * rng.uniform(0.05, 0.3)
    start = cx - sign * pw * rng.uniform(0.0, 0.5)
    x0, x1 = sorted((start, far if abs(far - start) > pw else start + sign * pw))
    y0 = cy - ph * rng.uniform(0.1, 0.9)
    box = (x0, y0, x1, y0 + ph)
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    shape = rng.integers(3)
    if shape == 0:
        draw.rectangle(box, fill=255)
    elif shape == 1:
        draw.rounded_rectangle(box, radius=min(pw, ph) * rng.uniform(0.1, 0.5), fill=255)
    else:
        draw.ellipse(box, fill=255)
    cover = np.asarray(mask.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0))), np.float32) / 255.0
    return _paint(bg, cover, _shaded(bg, cover, colour, rng.uniform(0.3, 1.0)))


def _side_edge(solid: np.ndarray, row: int, rng: np.random.Generator) -> tuple[int, int] | None:
    """A side of the figure on ``row``: (-1, its leftmost column) or (1, its rightmost)."""
    cols = np.flatnonzero(solid[min(max(row, 0), solid.shape[0] - 1)])
    if cols.size == 0:
        return None
    return (-1, int(cols.min())) if rng.random() < 0.5 else (1, int(cols.max()))


def prop_against_outline(bg: np.ndarray, alpha: np.ndarray, source: np.ndarray | None,
                         rng: np.random.Generator) -> np.ndarray:
    """``bg`` (``SxSx3 uint8``) with a prop whose edge meets the outline of the placed
    character's head or shoulders (``alpha`` SxS float in [0, 1]): a pole beside the head or
    a shoulder, a lamp hanging onto the top of the head, a board (a blackboard, a sign, a
    window) behind the head, or a shelf or table edge reaching the figure at shoulder height.
    It overlaps the outline by a few pixels at most, so the character in front hides that
    part and the two touch. Filled with a crop of ``source`` (another background picture;
    None: a flat colour) or a flat colour with the scene's shading, half of the time drawn
    round in dark ink as anime props are."""
    figure = _figure(alpha, 0.5)
    if figure is None:
        return bg
    solid, ys, xs = figure
    size = bg.shape[0]
    top, height = int(ys.min()), int(ys.max() - ys.min() + 1)
    head, shoulders = top + int(0.12 * height), top + int(0.28 * height)
    shapes: list[tuple[str, list[float]]] = []
    kind = rng.integers(4)
    if kind == 0:  # a pole beside the head or a shoulder
        side = _side_edge(solid, head if rng.random() < 0.5 else shoulders, rng)
        if side is None:
            return bg
        sign, edge = side
        width, overlap = rng.uniform(size / 48, size / 10), rng.uniform(0, 3)
        inner = edge - sign * overlap
        x0, x1 = sorted((inner, inner + sign * width))
        y0 = 0.0 if rng.random() < 0.5 else rng.uniform(0, head)
        shapes.append(("rectangle", [x0, y0, x1, size if rng.random() < 0.5 else rng.uniform(shoulders, size)]))
    elif kind == 1:  # a lamp hanging onto the top of the head
        cols = np.flatnonzero(solid[top])
        cx = float(rng.choice(cols))
        sw = rng.uniform(size / 10, size / 4)
        sh = sw * rng.uniform(0.4, 0.9)
        bottom = top + rng.uniform(0, 3)
        taper = rng.uniform(0.2, 0.8)
        shapes.append(("polygon", [cx - sw * taper / 2, bottom - sh, cx + sw * taper / 2, bottom - sh,
                                   cx + sw / 2, bottom, cx - sw / 2, bottom]))
        cord = rng.uniform(1, 3)
        shapes.append(("rectangle", [cx - cord / 2, 0, cx + cord / 2, max(0.0, bottom - sh)]))
    elif kind == 2:  # a board behind the head: its lower edge inside the head
        head_cols = np.flatnonzero(solid[head])
        cx = float(head_cols.mean()) + rng.normal(0, size / 10) if head_cols.size else float(xs.mean())
        bw, bh = rng.uniform(0.3, 0.9) * size, rng.uniform(0.15, 0.4) * size
        low = top + rng.uniform(0.03, 0.25) * height
        shapes.append(("rectangle", [cx - bw / 2, low - bh, cx + bw / 2, low]))
    else:  # a shelf or table edge reaching the figure at shoulder height
        row = int(shoulders + rng.uniform(-0.1, 0.2) * height)
        side = _side_edge(solid, row, rng)
        if side is None:
            return bg
        sign, edge = side
        thick = rng.uniform(size / 40, size / 8)
        inner = edge - sign * rng.uniform(0, 3)
        x0, x1 = sorted((inner, 0.0 if sign < 0 else float(size)))
        shapes.append(("rectangle", [x0, row - thick / 2, x1, row + thick / 2]))
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for shape, xy in shapes:
        getattr(draw, shape)(xy, fill=255)
    cover = np.asarray(mask.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8))), np.float32) / 255.0
    if source is not None and rng.random() < 0.6:
        fill = picture_crop(source, size, size, (0.2, 0.8), rng)
    else:
        fill = _shaded(bg, cover, rng.integers(0, 256, 3).astype(np.float32), rng.uniform(0.2, 0.8))
    out = _paint(bg, cover, fill)
    if rng.random() < 0.5:
        ink_mask = Image.new("L", (size, size), 0)
        ink_draw = ImageDraw.Draw(ink_mask)
        width = int(rng.integers(1, max(2, size // 128) + 1))
        for shape, xy in shapes:
            getattr(ink_draw, shape)(xy, outline=255, width=width)
        out = _paint(out, np.asarray(ink_mask, np.float32) / 255.0, rng.integers(0, 60, 3).astype(np.float32))
    return out
