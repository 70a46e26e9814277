"""Flat backgrounds: the page's own pixels are transparent, the edge beside it follows its colour.

A character on a plain page (white, black, a flat colour; a PNG or a good JPEG) has a
background that can be read exactly: a pixel of the page's colour that connects to the
border through pixels of that colour is page. The network alone sometimes keeps small pieces
of it as foreground: the inside of a loop of hair, a blot beside the neck on black, the
strip between arm and body where it opens to the page (docs/ablation.md measures what this
costs). :func:`clear_flat_background` makes those pieces transparent:

1. the page's colour: the median of the border pixels, when at least ``BORDER_SHARE`` of
   them lie within ``TOLERANCE`` of it (per channel, out of 255); otherwise the picture has
   no flat background and its alpha is returned unchanged (scenes, scans, gradients);
2. the page: the 4-connected pieces of pixels within ``TOLERANCE`` of that colour that hold
   a border pixel the network calls background (alpha < 0.5). A piece of the page's colour
   that touches the border only where the network calls it foreground (a white shirt cut by
   the bottom edge) is not page;
3. the page becomes transparent, except for a connected part the network calls foreground
   that is larger than ``MAX_PIECE`` of the figure: a garment of the page's colour whose
   outline is open at one point is kept as the network has it, never erased;
4. on a tinted page (not white or black), a piece of the page's colour that step 2 did not
   reach (closed off from the border, like the gap between an arm and the body, or touching
   it only where the network calls it foreground) is page too when its mean colour is the
   page's within ``MATCH`` on every channel, unless the network calls more than
   ``HIDDEN_MAX_PIECE`` of the figure in it foreground. A figure's own white and black match
   a white or black page exactly, so on those the network alone decides; a part of a figure
   of exactly a tinted page's colour is rare, and a large one is kept by the size guard.

Anti-aliased edge pixels are mixtures of the page and the figure and lie outside the
tolerance, so they are not cleared. Their colour still says how much of the figure they
hold: a pixel beside the page that is a quarter of the way from the page's colour to the
figure's is a quarter opaque. The network tends to make them too opaque (a faint halo of the
old page round the figure), so

5. the ring of pixels beside the page (4-neighbours) that are not of the page's colour has
   its alpha lowered ``SOFTEN`` of the way towards its colour's share (its distance from the
   page's colour over the largest such distance within ``REACH`` pixels, the nearest solid
   figure colour), never raised.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["TOLERANCE", "BORDER_SHARE", "MAX_PIECE", "MATCH", "HIDDEN_MAX_PIECE", "REACH", "SOFTEN",
           "page_colour", "clear_flat_background"]

#: How far (largest channel difference, 0-255) a pixel may be from the page's colour and still
#: count as page: enough for the noise of a JPEG of quality 85 on a flat area.
TOLERANCE = 8
#: The least share of the border that must be the page's colour for the background to be flat.
BORDER_SHARE = 0.5
#: The largest part of the figure (a share of its foreground pixels) that may be cleared as
#: page where the network calls it foreground.
MAX_PIECE = 0.02
#: How far (0-255, each channel) a hidden piece's mean colour may be from a tinted page's
#: colour and still be page: JPEG noise averages out over a piece, a drawn colour does not.
MATCH = 1.0
#: The largest part of the figure (a share of its foreground pixels) that a hidden piece
#: of the page's colour may hold (where the network calls it foreground) and still be cleared.
HIDDEN_MAX_PIECE = 0.1
#: How far (pixels) from a pixel beside the page the figure's own colour is looked for.
REACH = 2
#: How much of the way from the network's alpha to the colour's share a pixel beside the
#: page is moved (docs/ablation.md: all the way loses on figures whose inside is brighter
#: than their edge; after the edge matting, three quarters gains on every row over half).
SOFTEN = 0.75


def _border(a: np.ndarray) -> np.ndarray:
    """The values of ``a``'s border pixels (each once), in a fixed order: the same order for
    every array of the picture's size."""
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def page_colour(rgb: np.ndarray) -> np.ndarray | None:
    """The flat background's colour of an HxWx3 uint8 picture (3 int16, 0-255: the border's
    median), or None when fewer than ``BORDER_SHARE`` of the border pixels are within
    ``TOLERANCE`` of it."""
    edge = _border(rgb).astype(np.int16)
    colour = np.round(np.median(edge, axis=0)).astype(np.int16)
    near = np.abs(edge - colour).max(axis=1) <= TOLERANCE
    return colour if near.mean() >= BORDER_SHARE else None


def _near(rgb: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """HxW bool: the pixels within ``TOLERANCE`` of ``colour`` on every channel."""
    near = np.ones(rgb.shape[:2], bool)
    for c in range(3):  # on the uint8 planes, without wider copies
        channel = rgb[..., c]
        near &= (channel >= max(int(colour[c]) - TOLERANCE, 0)) & (channel <= min(int(colour[c]) + TOLERANCE, 255))
    return near


def _white_or_black(colour: np.ndarray) -> bool:
    """True for a page within ``TOLERANCE`` of white or of black."""
    return bool((colour >= 255 - TOLERANCE).all() or (colour <= TOLERANCE).all())


def _hidden_page(rgb: np.ndarray, colour: np.ndarray, pieces: np.ndarray, count: int,
                 is_page: np.ndarray, figure: np.ndarray, figure_size: int) -> np.ndarray:
    """Per label of ``pieces`` (the page-coloured pieces): True for a piece that is not page
    (``is_page``) whose mean colour is within ``MATCH`` of ``colour`` and whose part the
    network calls foreground (``figure``) is at most ``HIDDEN_MAX_PIECE`` of the figure."""
    candidates = ~is_page[pieces]
    candidates &= pieces > 0
    labels = pieces[candidates]  # only the pixels of pieces that are not page: few, as a rule
    sizes = np.maximum(np.bincount(labels, minlength=count + 1), 1)
    means = np.stack([np.bincount(labels, weights=rgb[..., c][candidates], minlength=count + 1)
                      for c in range(3)], axis=1) / sizes[:, None]
    claimed = np.bincount(labels, weights=figure[candidates], minlength=count + 1)
    is_hidden = (np.abs(means - colour).max(axis=1) <= MATCH) & (claimed <= HIDDEN_MAX_PIECE * figure_size)
    is_hidden[0] = False
    return is_hidden & ~is_page


def _distance(pixels: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Largest channel difference (float32) of Nx3 ``pixels`` from ``colour``."""
    return np.abs(pixels.astype(np.int16) - colour).max(axis=1).astype(np.float32)


def _beside(mask: np.ndarray) -> np.ndarray:
    """The pixels outside ``mask`` with a 4-neighbour inside it."""
    out = np.zeros_like(mask)
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out & ~mask


def _soften_ring(rgb: np.ndarray, colour: np.ndarray, page: np.ndarray, alpha: np.ndarray) -> None:
    """Step 5 of the module, on ``alpha`` in place: the pixels beside ``page`` moved
    ``SOFTEN`` of the way down to the share of the figure their colour shows."""
    ys, xs = np.nonzero(_beside(page))
    if not ys.size:
        return
    h, w = page.shape
    farthest = np.zeros(ys.size, np.float32)
    for dy in range(-REACH, REACH + 1):
        rows = np.clip(ys + dy, 0, h - 1)
        for dx in range(-REACH, REACH + 1):
            farthest = np.maximum(farthest, _distance(rgb[rows, np.clip(xs + dx, 0, w - 1)], colour))
    own = _distance(rgb[ys, xs], colour)
    # A pixel of the page's own colour that is not page was kept on purpose (steps 2-4).
    share = np.where(own > TOLERANCE, own / np.maximum(farthest, 1.0), 1.0)
    current = alpha[ys, xs]
    alpha[ys, xs] = current - SOFTEN * np.maximum(current - share, 0.0)


def clear_flat_background(rgb: np.ndarray, alpha: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """``alpha`` (HxW float32 in [0, 1]) with the flat page of ``rgb`` (HxWx3 uint8, the same
    size) made transparent, as the module describes; the input alpha itself when the picture
    has no flat background. keep: HxW bool, pixels that are never page (the regions a person
    kept by a click), nor reached through. Never changes ``alpha`` in place."""
    if rgb.shape[:2] != alpha.shape:
        raise ValueError(f"picture {rgb.shape[:2]} and alpha {alpha.shape} differ in size")
    colour = page_colour(rgb)
    if colour is None:
        return alpha
    near = _near(rgb, colour)
    if keep is not None:
        near &= ~keep
    pieces, count = ndimage.label(near)
    edge_pieces = _border(pieces)
    is_page = np.zeros(count + 1, bool)
    is_page[edge_pieces[_border(alpha) < 0.5]] = True
    is_page[0] = False  # label 0: the pixels not of the page's colour
    page = is_page[pieces]
    if not page.any():
        return alpha
    # Parts of the page the network calls foreground: small ones are cleared, large ones kept.
    figure = alpha >= 0.5
    figure_size = max(int(np.count_nonzero(figure)), 1)
    claimed = page & figure
    parts, n_parts = ndimage.label(claimed)
    if n_parts:
        sizes = np.bincount(parts[claimed], minlength=n_parts + 1)
        too_large = sizes > MAX_PIECE * figure_size
        too_large[0] = False
        page &= ~too_large[parts]
    if not _white_or_black(colour):
        is_hidden = _hidden_page(rgb, colour, pieces, count, is_page, figure, figure_size)
        if is_hidden.any():
            page |= is_hidden[pieces]
    out = alpha.copy()
    out[page] = 0.0
    _soften_ring(rgb, colour, page, out)
    return out
