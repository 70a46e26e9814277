"""Cutout placement on the training device: one batched affine warp instead of Pillow.

With ``data.placement = "device"`` the DataLoader workers no longer resize, turn and paste
cutouts (the part of a sample that costs most on the CPU). A worker draws the placements
(:func:`kirinuki.data.draw_placement`, the same routine as Pillow's path) and the
background crop, and sends a few numbers per character. On the training device:

* :class:`CutoutAtlas` holds every cutout of the run (and, when the recipe redraws
  characters, their line-art and flat-colour versions) as premultiplied squares, with two
  smaller levels (halved, then quartered, by area averaging);
* :meth:`CutoutAtlas.place` turns a batch of placements into the character layers with one
  ``grid_sample`` per level: each output pixel is mapped back through the inverse of
  zoom, flip, rotation and shift to the level whose pixels are at most twice the output's
  (so bilinear sampling never skips more than one source pixel), and layers are stacked
  front over back in premultiplied colour;
* :func:`finish_batch` also applies the scenes' colour jitter and the drop shadows
  (``p_shadow``), both drawn by the workers, with the routines the workers' own path uses
  (:func:`kirinuki.degradations.jitter_colours`, :func:`kirinuki.degradations.cast_shadows`).

A character's row in the layer table is ``(item, scale, flip, angle, cx, cy)``: item is the
atlas index (-1: no character in that slot), the rest a :class:`kirinuki.data.Placement`.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import DataConfig
from .cutouts import CutoutLibrary
from .degradations import cast_shadows, jitter_colours
from .styles import redraw_cutout

__all__ = ["CutoutAtlas", "atlas_styles", "finish_batch", "LAYER_FIELDS", "EFFECT_FIELDS", "STYLES"]

#: Columns of a layer table row.
LAYER_FIELDS = ("item", "scale", "flip", "angle", "cx", "cy")
#: Columns of an effects row: a drop shadow (on 0/1, shift x and y in pixels, blur sigma,
#: strength), then a scene's colour jitter (on 0/1, then kirinuki.styles.draw_jitter's six).
EFFECT_FIELDS = ("shadow", "dx", "dy", "sigma", "strength",
                 "jitter", "saturation", "contrast", "brightness", "cast_r", "cast_g", "cast_b")
#: The versions of a cutout an atlas can hold, in the order of their index blocks.
STYLES = ("original", "lineart", "flat")

LEVELS = 3


def atlas_styles(cfg: DataConfig) -> tuple[str, ...]:
    """The versions of each cutout a recipe draws, in atlas order."""
    return ("original",) + (("lineart",) if cfg.p_lineart else ()) + (("flat",) if cfg.p_flatcolour else ())


class CutoutAtlas:
    """Premultiplied RGBA cutouts as uint8 squares on one device, at ``LEVELS`` sizes.

    ``items``: HxWx4 uint8 premultiplied arrays, each side at most ``side`` (default: the
    longest side among them); item ``i`` of style ``k`` (see ``STYLES``) is at index
    ``k * count + i``. A redrawn style is drawn once per cutout here (Pillow's path redraws
    at every use, with its own line threshold or colour count). Each square holds its
    cutout in the top-left corner; ``extent[j]`` is that cutout's (width, height) at the
    largest level.
    """

    def __init__(self, items: Sequence[np.ndarray], device: torch.device | str,
                 styles: Sequence[str] = ("original",), side: int | None = None) -> None:
        if not items:
            raise ValueError("an atlas needs at least one cutout")
        self.count = len(items)
        self.styles = tuple(styles)
        self.device = torch.device(device)
        side = int(math.ceil((side or max(max(c.shape[:2]) for c in items)) / 4) * 4)
        total = self.count * len(self.styles)
        self.levels = [torch.zeros((total, 4, side >> k, side >> k), dtype=torch.uint8, device=self.device)
                       for k in range(LEVELS)]
        extent = []
        for k, style in enumerate(self.styles):
            if style not in STYLES:
                raise ValueError(f"unknown style {style!r}")
            if style == "original":
                versions: Sequence[np.ndarray] = items
            else:  # Pillow's filters run without the GIL: redraw on every core
                with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                    versions = list(pool.map(lambda pair: redraw_cutout(pair[1], style, np.random.default_rng([k, pair[0]])),
                                             enumerate(items)))
            for i, cut in enumerate(versions):
                h, w = cut.shape[:2]
                if max(h, w) > side:
                    raise ValueError(f"cutout {i} is {w}x{h}, larger than the atlas side {side}")
                j = k * self.count + i
                h4, w4 = -(-h // 4) * 4, -(-w // 4) * 4  # whole pixels at every level
                square = torch.zeros((4, h4, w4), dtype=torch.uint8, device=self.device)
                square[:, :h, :w] = torch.from_numpy(np.array(cut)).permute(2, 0, 1).to(self.device)
                self.levels[0][j, :, :h4, :w4] = square
                smaller = square.float()
                for lvl in range(1, LEVELS):  # area averaging of premultiplied colour
                    smaller = F.avg_pool2d(smaller[None], 2)[0]
                    self.levels[lvl][j, :, :h4 >> lvl, :w4 >> lvl] = smaller.round().to(torch.uint8)
                extent.append((w, h))
        self.extent = torch.tensor(extent, dtype=torch.float32, device=self.device)
        self.side = side

    @classmethod
    def for_library(cls, library: "CutoutLibrary", cfg: DataConfig, device: torch.device | str) -> "CutoutAtlas":
        """Every cutout of ``library`` in the styles the recipe ``cfg`` draws, indexed as
        :meth:`kirinuki.data.SampleMaker.make_layers` counts them."""
        return cls(library.all_cutouts(), device, atlas_styles(cfg))

    def __len__(self) -> int:
        return self.count * len(self.styles)

    @staticmethod
    def level_for(scale: torch.Tensor) -> torch.Tensor:
        """The level whose pixels are at most twice the canvas's: 0 when the cutout is
        shown at half its size or larger, then one level per halving."""
        return torch.floor(torch.log2(1.0 / scale.clamp(min=1e-6))).clamp(0, LEVELS - 1).long()

    def _theta(self, rows: torch.Tensor, size: int) -> torch.Tensor:
        """Affine matrices (n x 2 x 3) from canvas to atlas coordinates, both normalised as
        ``grid_sample`` reads them (align_corners=False), the same at every level."""
        item, scale, flip, angle, cx, cy = rows.unbind(1)
        half = self.extent[item.long()] / 2.0      # the cutout's centre, largest-level pixels
        a = torch.deg2rad(angle)
        c, s = torch.cos(a), torch.sin(a)
        mirror = torch.where(flip > 0.5, -1.0, 1.0)
        # Canvas pixel p -> cutout pixel q = centre + F R^-1 (p - C) / scale, where R turns
        # counter-clockwise on screen (y down): R^-1 = [[c, -s], [s, c]], F mirrors x.
        m00, m01 = mirror * c / scale, -mirror * s / scale
        m10, m11 = s / scale, c / scale
        # Normalised canvas u = 2 p / S - 1, so p = (u + 1) k with k = S / 2; normalised
        # atlas v = 2 q / side - 1 (pixels of the largest level).
        k = size / 2.0
        to_v = 2.0 / self.side
        ox = half[:, 0] + m00 * (k - cx) + m01 * (k - cy)
        oy = half[:, 1] + m10 * (k - cx) + m11 * (k - cy)
        return torch.stack([
            torch.stack([m00 * k * to_v, m01 * k * to_v, ox * to_v - 1.0], 1),
            torch.stack([m10 * k * to_v, m11 * k * to_v, oy * to_v - 1.0], 1)], 1)

    def place(self, layers: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The character layers of a batch: ``layers`` N x K x 6 (``LAYER_FIELDS``, slot 0 at
        the back) -> (fp N x 3 x S x S, alpha N x 1 x S x S), float32 in [0, 1] on the
        atlas's device, fp premultiplied (never above alpha)."""
        layers = layers.to(self.device, torch.float32)
        n, slots = layers.shape[:2]
        fp = torch.zeros((n, 3, size, size), device=self.device)
        alpha = torch.zeros((n, 1, size, size), device=self.device)
        for slot in range(slots):
            rows = layers[:, slot]
            used = torch.nonzero(rows[:, 0] >= 0).flatten()
            if used.numel() == 0:
                continue
            level = self.level_for(rows[used, 1])
            out = torch.zeros((used.numel(), 4, size, size), device=self.device)
            for k in level.unique().tolist():
                pick = torch.nonzero(level == k).flatten()
                sel = rows[used[pick]]
                src = self.levels[k][sel[:, 0].long()].float() / 255.0
                grid = F.affine_grid(self._theta(sel, size), [pick.numel(), 4, size, size], align_corners=False)
                out[pick] = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            a = out[:, 3:4].clamp(0, 1)
            c = torch.minimum(out[:, :3].clamp(min=0), a)
            # This character in front of those already placed: premultiplied "over".
            fp[used] = c + (1.0 - a) * fp[used]
            alpha[used] = a + (1.0 - a) * alpha[used]
        return fp, alpha


def finish_batch(atlas: CutoutAtlas, layers: torch.Tensor, effects: torch.Tensor,
                 bg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch as the workers describe it, made on the atlas's device: layer tables N x K x 6,
    effects rows N x 12 (``EFFECT_FIELDS``), backgrounds N x 3 x S x S uint8 -> (fp, alpha,
    bg), float32 in [0, 1]: the scenes' colour jitter, the characters placed, their shadows."""
    bg = bg.to(atlas.device).float()
    effects = effects.to(atlas.device, torch.float32)
    jittered = torch.nonzero(effects[:, 5] > 0.5).flatten()
    if jittered.numel():
        bg[jittered] = jitter_colours(bg[jittered], effects[jittered, 6:])
    fp, alpha = atlas.place(layers, bg.shape[-1])
    return fp, alpha, cast_shadows(bg / 255.0, alpha, effects[:, :5])
