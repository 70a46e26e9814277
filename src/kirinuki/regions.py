"""Regions of a picture, and keeping or dropping whole ones by a click.

The model's remaining mistakes are whole regions: a white shirt lost on a white page, a patch
of trees kept beside the hair. Anime pictures are made of flat-coloured areas closed by line
art, so a region is the natural unit to fix. :func:`region_map` splits a picture along its
colour edges (a watershed of the colour gradient, seeded in the flat areas, from
scikit-image); :func:`select_region` takes the region under a point and grows it over
neighbouring regions of nearly the same mean colour (a shaded shirt, a textured patch of
leaves), never further than ``tolerance`` from the clicked region's own colour and never
across an edge as strong as an outline.

The predictor applies the edits at its working size (at most 512 pixels a side for the
bundled model, which bounds the cost) before the guided refinement, so an edited region's
border is refined against the full-size picture like every other edge.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["region_map", "select_region", "apply_edits", "hold_edits", "kept_regions", "region_consensus",
           "parse_points", "parse_edits", "ordered_edits", "Edit", "MAX_POINTS", "DEFAULT_TOLERANCE"]

#: One click of the click fix: ``("keep" | "drop", x, y)``, in a picture's pixels. A list of
#: them is applied in order, so the last click on a region decides it.
Edit = tuple[str, int, int]
EDIT_MODES = ("keep", "drop")

#: The most keep and drop points one request may carry.
MAX_POINTS = 32
#: How far (Euclidean, RGB in [0, 1]) a neighbour's mean colour may be from the clicked region's.
DEFAULT_TOLERANCE = 0.12
#: The strongest edge (mean colour gradient along a border) that growth may cross: shading
#: inside a shirt is weaker, an outline stronger.
EDGE = 0.1
# Seeds of the watershed: the flattest share of the picture.
_FLAT_SHARE = 30


def parse_points(text: str) -> list[tuple[int, int]]:
    """``"410,620;90,300"`` (or one ``"x,y"``) -> [(410, 620), (90, 300)]; a ValueError with
    a one-line reason for anything else."""
    points = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        xy = part.split(",")
        try:
            if len(xy) != 2:
                raise ValueError
            points.append((int(xy[0]), int(xy[1])))
        except ValueError:
            raise ValueError(f"{part!r} is not a point: write x,y in pixels, e.g. 410,620") from None
    if len(points) > MAX_POINTS:
        raise ValueError(f"{len(points)} points: at most {MAX_POINTS}")
    return points


def parse_edits(text: str) -> list[Edit]:
    """``"keep:410,620;drop:90,300"`` -> [("keep", 410, 620), ("drop", 90, 300)], in order; a
    ValueError with a one-line reason for anything else."""
    edits = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        mode, sep, point = part.partition(":")
        if not sep or mode.strip() not in EDIT_MODES:
            raise ValueError(f"{part!r} is not an edit: write keep:x,y or drop:x,y")
        (x, y), = parse_points(point)
        edits.append((mode.strip(), x, y))
    if len(edits) > MAX_POINTS:
        raise ValueError(f"{len(edits)} edits: at most {MAX_POINTS}")
    return edits


def ordered_edits(keep: Sequence[tuple[int, int]] = (), drop: Sequence[tuple[int, int]] = (),
                  edits: Sequence[Edit] = ()) -> list[Edit]:
    """Keep points, then drop points, then ``edits`` in their own order: one ordered list."""
    out = [("keep", int(x), int(y)) for x, y in keep] + [("drop", int(x), int(y)) for x, y in drop]
    for mode, x, y in edits:
        if mode not in EDIT_MODES:
            raise ValueError(f"{mode!r} is not an edit: keep or drop")
        out.append((mode, int(x), int(y)))
    return out


def region_map(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split ``image`` (HxWx3 float32 in [0, 1]) along its colour edges, line art included.

    Returns (labels HxW int32 from 1, the colour gradient HxW float) for :func:`select_region`.
    """
    from skimage import filters, measure, segmentation

    grad = np.max([filters.sobel(image[..., c]) for c in range(3)], axis=0)
    seeds = measure.label(grad <= np.percentile(grad, _FLAT_SHARE), connectivity=1)
    return segmentation.watershed(grad, seeds, connectivity=1).astype(np.int32), grad


def _region_graph(labels: np.ndarray, image: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, dict[int, list]]:
    """Mean colour of each label, and each label's neighbours with the strength of the edge
    between them (the mean gradient along their shared border)."""
    n = int(labels.max()) + 1
    flat = labels.ravel()
    count = np.maximum(np.bincount(flat, minlength=n), 1)
    mean = np.stack([np.bincount(flat, image[..., c].ravel(), minlength=n) / count for c in range(3)], axis=1)
    a = np.concatenate([labels[:, 1:].ravel(), labels[1:].ravel()])
    b = np.concatenate([labels[:, :-1].ravel(), labels[:-1].ravel()])
    g = np.concatenate([np.maximum(grad[:, 1:], grad[:, :-1]).ravel(), np.maximum(grad[1:], grad[:-1]).ravel()])
    border = a != b
    a, b, g = a[border], b[border], g[border]
    pairs, inverse = np.unique(np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b), return_inverse=True)
    strength = np.bincount(inverse, g) / np.bincount(inverse)
    neighbours: dict[int, list] = {}
    for key, edge in zip(pairs.tolist(), strength.tolist()):
        p, q = divmod(key, n)
        neighbours.setdefault(p, []).append((q, edge))
        neighbours.setdefault(q, []).append((p, edge))
    return mean, neighbours


def select_region(labels: np.ndarray, grad: np.ndarray, image: np.ndarray, x: int, y: int,
                  tolerance: float = DEFAULT_TOLERANCE, edge: float = EDGE,
                  graph: tuple[np.ndarray, dict[int, list]] | None = None) -> np.ndarray:
    """The region under ``(x, y)`` grown over neighbours whose mean colour lies within
    ``tolerance`` of its own and that no edge stronger than ``edge`` separates (an outline
    stops the growth even between two whites): an HxW bool mask. ``graph``: the region graph
    of ``labels`` when the caller selects several regions of one map."""
    mean, neighbours = graph or _region_graph(labels, image, grad)
    seed = int(labels[y, x])
    chosen, todo = {seed}, [seed]
    while todo:
        for q, strength in neighbours.get(todo.pop(), ()):
            if q not in chosen and strength <= edge and np.linalg.norm(mean[q] - mean[seed]) <= tolerance:
                chosen.add(q)
                todo.append(q)
    return np.isin(labels, list(chosen))


def apply_edits(alpha: np.ndarray, image: np.ndarray, edits: Sequence[Edit],
                tolerance: float = DEFAULT_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """``alpha`` (HxW float32) with the region under each edit's point made opaque (keep) or
    transparent (drop), in order, so that a later click on a region overrides an earlier one
    (points as (x, y) in ``image``'s pixels; ``image`` HxWx3 float32 in [0, 1], the picture
    ``alpha`` belongs to).

    Returns (the edited alpha, the edits: HxW float32, 1 kept, 0 dropped, NaN untouched), so
    that the caller can hold the edited regions' insides exactly after refinement."""
    marks = np.full(alpha.shape, np.nan, np.float32)
    if not edits:
        return alpha, marks
    labels, grad = region_map(image)
    graph = _region_graph(labels, image, grad)  # once for all the points
    for mode, x, y in edits:
        marks[select_region(labels, grad, image, int(x), int(y), tolerance, graph=graph)] = 1.0 if mode == "keep" else 0.0
    return np.where(np.isnan(marks), alpha, marks).astype(np.float32), marks


def hold_edits(alpha: np.ndarray, edits: np.ndarray) -> np.ndarray:
    """Hold the insides of edited regions (``edits`` at any smaller size, from
    :func:`apply_edits`) at exactly 0 or 1 in the full-size ``alpha``; the border pixels of
    each region are left to the refinement, so edges stay soft."""
    from .imaging import binary_dilate

    out = alpha.copy()
    for value in (1.0, 0.0):
        region = edits == value
        if not region.any():
            continue
        inside = ~binary_dilate(~region, 1)  # one working-size pixel in from the border
        out[_at_size(inside, alpha.shape)] = value
    return out


def kept_regions(edits: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The kept regions of ``edits`` (from :func:`apply_edits`), borders included, as an HxW
    bool mask of ``shape``: what the flat-background clearing must not take as page."""
    return _at_size(edits == 1.0, shape)


def _at_size(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A bool mask resized (nearest) to ``shape`` (h, w)."""
    from PIL import Image

    h, w = shape
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)) > 0


def region_consensus(alpha: np.ndarray, image: np.ndarray, share: float = 0.8) -> np.ndarray:
    """Make each region agree with itself: where at least ``share`` of a region's pixels are
    confidently foreground (alpha above 0.9) the whole region becomes opaque, and where as
    many are confidently background (below 0.1) transparent. ``alpha`` HxW float32 and
    ``image`` HxWx3 float32 in [0, 1], the same size (the predictor's working size)."""
    labels, _ = region_map(image)
    n = int(labels.max()) + 1
    flat = labels.ravel()
    count = np.maximum(np.bincount(flat, minlength=n), 1)
    fg = np.bincount(flat, (alpha.ravel() > 0.9).astype(np.float64), minlength=n) / count
    bg = np.bincount(flat, (alpha.ravel() < 0.1).astype(np.float64), minlength=n) / count
    out = alpha.copy()
    out[(fg >= share)[labels]] = 1.0
    out[(bg >= share)[labels]] = 0.0
    return out
