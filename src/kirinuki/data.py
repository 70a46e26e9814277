"""Training samples composited on the fly from RGBA cutouts and backgrounds.

This module is the sample maker: it draws placements and backgrounds and makes samples of
the cutouts that :class:`kirinuki.cutouts.CutoutLibrary` holds, with what
:mod:`kirinuki.styles` paints; :mod:`kirinuki.degradations` composites and degrades the
batches. The work is split in two so that a GPU is never starved:

1. **Per sample, on CPU** (DataLoader workers, numpy + Pillow): choose a cutout by group
   weight, apply flip / zoom / rotation / shift through *premultiplied* colour, optionally a
   second character or none, and draw a background. A sample is three uint8 arrays: the
   premultiplied colour ``Fp = alpha * F``, the alpha, and the background ``B``. With
   ``placement = "device"`` the worker draws the same placements but leaves the cutouts
   unplaced: a sample is then a layer table, an effects row and ``B``, and
   :mod:`kirinuki.placement` places the whole batch on the training device.
2. **Per batch, on the training device** (:func:`kirinuki.degradations.compose_batch`,
   torch): the composite
   ``I = Fp + (1 - alpha) * B`` (that is ``alpha * F + (1 - alpha) * B`` with straight
   colour), then blur, down-and-up rescaling, JPEG compression (simulated exactly as the
   codec's lossy steps do it: YCbCr, 4:2:0, 8x8 DCT, quantisation tables scaled by quality)
   and noise, all batched.

Every random choice comes from generators seeded by ``(seed, sample index)`` on the CPU side
and ``(seed, step, rank, micro-step)`` on the device side, so a run resumed from a checkpoint
sees exactly the samples it would have seen.

Background classes (the seed paper's mix is white 40 %, light 40 %, dark 10 %, black 10 %):

* ``white``, ``light``, ``dark``, ``black``: flat colours as defined in
  :mod:`kirinuki.backgrounds` (light: every channel in [192, 255]; dark: in [0, 63]);
* ``flat``: a flat colour with each channel uniform in [0, 255] (saturated ones included,
  as chroma-key green or magenta);
* ``scene``: a random crop of a background picture, flipped, colour-jittered;
* ``hard``: a flat colour, or a vertical gradient of two, taken from the character's own
  opaque pixels, so colour alone cannot tell character from background; with ``hard_push``
  the colour is moved up to that share towards white or black (BiRefNet's hard negatives:
  a white shirt on an off-white page);
* ``grey``: a flat grey level.

Switches aimed at the failures that remain (each off unless the recipe sets it): the
character redrawn as line art or in a few flat colours (``p_lineart``, ``p_flatcolour``),
several overlapping characters (``p_two`` with ``max_characters``), a soft drop shadow cast
on the background (``p_shadow``: the shadow is background, alpha excludes it), and drawn
shapes, outlines and text painted over the background (``p_drawn``: "drawn" must not mean
"foreground"), a tiled pattern of dots, stripes or checks over part of it (``p_pattern``:
the polka dots and stripes of illustrations' backdrops and games' menu screens), and another
character painted into the background art, a close-up the frame cuts or (``backdrop_cutoff``)
one placed as the composited characters are, with a light sticker outline half of the time
(``p_backdrop``: the drawn characters of games' title and menu screens are background to the
character cut out in front of them). Three more are aimed at what the scene rows still get
wrong: 1-3 closed regions of the cutout filled with a texture taken from a background or a
tiled pattern, its shading and line art kept (``p_clothing_texture``: a floral shirt is still
the character; ``placement = "cpu"`` only), and on scene backgrounds a piece of scenery in the
character's own colour right behind its lower body or hair (``p_own_colour_scenery``: dark
trousers before dark furniture) and a prop whose edge meets the outline of the head or
shoulders (``p_props``: a lamp, a pole or a board touching the head is background); see
:mod:`kirinuki.styles` and :mod:`kirinuki.scenery`. With device placement the last two are
drawn against the first character, placed by Pillow on the CPU for the samples that get one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageFilter

from .backgrounds import flat_colour
from .config import DataConfig
from .cutouts import CutoutLibrary
from .degradations import jitter_colours
from .errors import DataError
from .imaging import composite, composite_premultiplied
from .placement import atlas_styles
from .scenery import own_colour_scenery, prop_against_outline
from .styles import (cast_shadow, draw_jitter, draw_over, draw_shadow, paint_pattern, picture_crop, redraw_cutout,
                     texture_regions)

__all__ = ["SampleMaker", "CompositeDataset", "StepBatchSampler", "BG_CLASSES", "Placement", "draw_placement",
           "place_cutout", "mixed_seed"]

BG_CLASSES = ("white", "light", "dark", "black", "flat", "scene", "hard", "grey")
#: Switches that repaint each cutout, which the atlas of the batched placement on the device
#: does not hold.
CPU_ONLY_SWITCHES = ("p_clothing_texture",)


def mixed_seed(*values: int) -> int:
    """One 32-bit seed from several integers (a run's seed and what tags a stream or a step)."""
    return int(np.random.SeedSequence([v & 0xFFFFFFFF for v in values]).generate_state(1)[0])


@dataclass(frozen=True)
class Placement:
    """Where one cutout goes on the canvas: zoomed by ``scale`` (canvas pixels per cutout
    pixel), mirrored if ``flip``, turned ``angle`` degrees counter-clockwise about its
    centre, and that centre put at ``(cx, cy)`` in canvas pixels."""

    scale: float
    flip: bool
    angle: float
    cx: float
    cy: float


def draw_placement(rng: np.random.Generator, cfg: DataConfig, w: int, h: int, size: int) -> Placement:
    """A random placement of a ``w`` x ``h`` cutout on an S x S canvas (S = ``size``): zoom
    log-uniform in ``cfg.zoom`` (or ``cfg.cutoff_zoom`` for a close-up the frame cuts),
    flip, rotation, a shift about the centre or standing on the bottom edge. The one routine
    behind both placements, Pillow's per sample and the batched warp on the device."""
    cutoff = rng.random() < cfg.p_cutoff
    lo, hi = cfg.cutoff_zoom if cutoff else cfg.zoom
    zoom = math.exp(rng.uniform(math.log(lo), math.log(hi)))  # log-uniform: scale-fair
    scale = zoom * min(size / w, size / h)
    flip = bool(rng.random() < cfg.flip)
    angle = float(rng.uniform(-cfg.rotation, cfg.rotation)) if cfg.rotation > 0 else 0.0
    # The bounding box of the zoomed, turned cutout.
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    pw, ph = math.ceil(nw * c + nh * s - 1e-6), math.ceil(nw * s + nh * c - 1e-6)
    if cutoff:
        x = int(rng.integers(-pw // 2, max(size - pw // 2, -pw // 2 + 1)))
        y = int(rng.integers(-ph // 3, max(size - ph // 2, -ph // 3 + 1)))
    else:
        x = (size - pw) / 2 + rng.uniform(-cfg.shift, cfg.shift) * size
        y = (size - ph) / 2 + rng.uniform(-cfg.shift, cfg.shift) * size
        if rng.random() < cfg.p_stand:
            y = size - ph  # standing on the bottom edge, as sprites are drawn
        x, y = round(x), round(y)
    return Placement(scale, flip, angle, x + pw / 2, y + ph / 2)


def place_cutout(cut: np.ndarray, at: Placement, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One premultiplied cutout ``HxWx4 uint8`` placed by Pillow as ``at`` says on an empty
    S x S canvas: zoomed (Lanczos), flipped, turned (bilinear), pasted at the whole pixel
    nearest to its place. Returns float32 (fp SxSx3, alpha SxS) in [0, 1]."""
    h, w = cut.shape[:2]
    nw, nh = max(1, round(w * at.scale)), max(1, round(h * at.scale))
    im = Image.fromarray(cut, "RGBa").resize((nw, nh), Image.Resampling.LANCZOS)
    if at.flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if at.angle:
        # Premultiplied colour and a transparent fill: no dark fringe at the new border.
        im = im.rotate(at.angle, resample=Image.Resampling.BILINEAR, expand=True)
    canvas = Image.new("RGBa", (size, size), (0, 0, 0, 0))
    canvas.paste(im, (round(at.cx - im.size[0] / 2), round(at.cy - im.size[1] / 2)))
    arr = np.asarray(canvas).astype(np.float32) / 255.0
    alpha = arr[..., 3]
    # 8-bit premultiplied resampling can round colour a step above alpha; keep Fp <= alpha.
    fp = np.minimum(arr[..., :3], alpha[..., None])
    return fp, alpha


class SampleMaker:
    """Draws one training sample: premultiplied character layer and a background.

    ``make(rng, size)`` returns ``(fp, alpha, bg)``: uint8 arrays of shape SxSx3, SxS and
    SxSx3 (S = size). The target alpha and the image are exactly related by
    ``I = fp / 255 + (1 - alpha / 255) * bg / 255``.
    """

    def __init__(self, library: CutoutLibrary, cfg: DataConfig) -> None:
        self.lib = library
        self.cfg = cfg
        w = np.array([cfg.bg_white, cfg.bg_light, cfg.bg_dark, cfg.bg_black, cfg.bg_flat,
                      cfg.bg_scene if library.backgrounds else 0.0, cfg.bg_hard, cfg.bg_grey], dtype=np.float64)
        if w.sum() <= 0:
            raise ValueError("the background mix has no positive weight")
        if cfg.placement not in ("cpu", "device"):
            raise ValueError(f"data.placement {cfg.placement!r}: expected 'cpu' or 'device'")
        if cfg.placement == "device" and library.pairs:
            raise DataError("real pairs (data.pairs) are pictures, not cutouts: they need data.placement = 'cpu'")
        if cfg.placement == "device":
            for name in CPU_ONLY_SWITCHES:
                if getattr(cfg, name):
                    raise DataError(f"data.{name} repaints each cutout drawn: it needs data.placement = 'cpu'")
        self.bg_weights = w / w.sum()

    # -- the character layer -------------------------------------------------------------
    def _pick(self, rng: np.random.Generator) -> tuple[int, int, str]:
        """(group, item, style): a cutout by group weight, and how it is drawn ('original',
        or redrawn as 'lineart' or 'flat' with the recipe's probabilities)."""
        g = int(rng.choice(len(self.lib.groups), p=self.lib.weights))
        i = int(rng.integers(len(self.lib.cutouts[g])))
        if self.cfg.p_lineart and rng.random() < self.cfg.p_lineart:
            return g, i, "lineart"
        if self.cfg.p_flatcolour and rng.random() < self.cfg.p_flatcolour:
            return g, i, "flat"
        return g, i, "original"

    def _pick_cutout(self, rng: np.random.Generator) -> np.ndarray:
        g, i, style = self._pick(rng)
        cut = self.lib.cutouts[g][i]
        cut = cut if style == "original" else redraw_cutout(cut, style, rng)
        if self.cfg.p_clothing_texture and rng.random() < self.cfg.p_clothing_texture:
            cut = texture_regions(cut, self._other_picture(rng), rng)
        return cut

    def _other_picture(self, rng: np.random.Generator) -> np.ndarray | None:
        """A background picture to take a texture or a prop from (None without any)."""
        return self.lib.backgrounds[rng.integers(len(self.lib.backgrounds))] if self.lib.backgrounds else None

    def _place(self, rng: np.random.Generator, cut: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        h, w = cut.shape[:2]
        return place_cutout(cut, draw_placement(rng, self.cfg, w, h, size), size)

    def _layer(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        if rng.random() < cfg.p_empty:
            return np.zeros((size, size, 3), np.float32), np.zeros((size, size), np.float32)
        fp, alpha = self._place(rng, self._pick_cutout(rng), size)
        for _ in range(self._extra_characters(rng)):
            fp2, a2 = self._place(rng, self._pick_cutout(rng), size)
            # Each further character in front: premultiplied "over".
            fp = fp2 + (1.0 - a2[..., None]) * fp
            alpha = a2 + (1.0 - a2) * alpha
        return fp, alpha

    def _extra_characters(self, rng: np.random.Generator) -> int:
        """How many characters join the first: none, or with ``p_two`` 1 to
        ``max_characters - 1``."""
        if not rng.random() < self.cfg.p_two:
            return 0
        return int(rng.integers(1, self.cfg.max_characters)) if self.cfg.max_characters > 2 else 1

    # -- the background ------------------------------------------------------------------
    def _scene(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """A random square crop of a background picture, resized to S x S and maybe flipped
        (uint8), and the colour jitter drawn for it (None without ``scene_jitter``)."""
        src = self.lib.backgrounds[rng.integers(len(self.lib.backgrounds))]
        crop = picture_crop(src, size, size, (0.3, 1.0), rng).astype(np.uint8)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        jitter = draw_jitter(rng, self.cfg.scene_jitter) if self.cfg.scene_jitter > 0 else None
        return np.ascontiguousarray(crop), jitter

    def _hard(self, rng: np.random.Generator, fp: np.ndarray, alpha: np.ndarray, size: int) -> np.ndarray:
        opaque = np.flatnonzero(alpha.ravel() > 0.95)
        if opaque.size == 0:
            return np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
        pixels = fp.reshape(-1, 3)[opaque] * 255
        sub = pixels[:: max(1, len(pixels) // 2048)]
        # A character drawn in one flat colour on that same colour is invisible, not hard:
        # take colours that cover at most 60 % of the character, else a light background.
        candidates = pixels[rng.integers(len(pixels), size=6)]
        usable = [c for c in candidates if np.mean(np.abs(sub - c).max(axis=1) < 16) <= 0.6]
        if not usable:
            return self._background(rng, "light", fp, alpha, size)
        colours = np.array([usable[0], usable[-1]], np.float32)
        if self.cfg.hard_push > 0:
            target = 255.0 if rng.random() < 0.5 else 0.0
            colours = colours + (target - colours) * rng.uniform(0, self.cfg.hard_push)
        if rng.random() < 0.5:
            return np.broadcast_to(colours[0], (size, size, 3)).astype(np.uint8)
        t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
        return np.broadcast_to(colours[0] * (1 - t) + colours[1] * t, (size, size, 3)).astype(np.uint8)

    def _background(self, rng: np.random.Generator, kind: str, fp: np.ndarray, alpha: np.ndarray,
                    size: int) -> np.ndarray:
        if kind == "scene":
            bg, jitter = self._scene(rng, size)
            if jitter is None:
                return bg
            shifted = jitter_colours(torch.from_numpy(bg).permute(2, 0, 1)[None].float(), torch.from_numpy(jitter)[None])
            return shifted[0].permute(1, 2, 0).numpy().astype(np.uint8)
        if kind == "hard":
            return self._hard(rng, fp, alpha, size)
        if kind == "flat":
            return np.broadcast_to(rng.integers(0, 256, 3).astype(np.uint8), (size, size, 3)).copy()
        if kind == "grey":
            return np.full((size, size, 3), rng.integers(0, 256), np.uint8)
        return np.broadcast_to(flat_colour(kind, rng), (size, size, 3)).copy()

    def background_kind(self, rng: np.random.Generator) -> str:
        return BG_CLASSES[rng.choice(len(BG_CLASSES), p=self.bg_weights)]

    def _pair(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb, alpha = self.lib.pairs[rng.integers(len(self.lib.pairs))]
        h, w = alpha.shape
        side = min(h, w)
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = (x, y, x + side, y + side)
        im = Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS, box=crop)
        am = Image.fromarray(alpha).resize((size, size), Image.Resampling.LANCZOS, box=crop)
        # A real photo-like pair is already composited: carry it as Fp = I with B = 0, so that
        # the shared compositing step returns I unchanged.
        return np.asarray(im), np.asarray(am), np.zeros((size, size, 3), np.uint8)

    def make(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.lib.pairs and rng.random() < self.cfg.pairs_weight:
            return self._pair(rng, size)
        fp, alpha = self._layer(rng, size)
        kind = self.background_kind(rng)
        bg = self._background(rng, kind, fp, alpha, size)
        if kind == "scene":
            bg = self._scenery(rng, bg, lambda: (fp, alpha))
        bg = self._paint_over(rng, bg)
        if self.cfg.p_shadow and rng.random() < self.cfg.p_shadow:
            bg = cast_shadow(bg, alpha, draw_shadow(rng, size))
        return (np.rint(fp * 255).astype(np.uint8), np.rint(alpha * 255).astype(np.uint8), bg)

    def make_layers(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A sample as the device placement takes it (``data.placement = "device"``): the
        characters as a layer table ``K x 6`` float32 (see :mod:`kirinuki.placement`; unused
        slots have item -1), an effects row of 12 float32 (a shadow, then a scene's colour
        jitter, each with its ``on`` flag: ``EFFECT_FIELDS``) and the background ``SxSx3
        uint8`` before them. The same kinds of draws as :meth:`make`, with the cutouts left
        unplaced: a hard-negative background takes its colours from the first character,
        scenery and props on a scene are drawn against the first character (placed by Pillow
        here for them), and patterns and drawn shapes are painted before the jitter, not
        after."""
        cfg = self.cfg
        styles = atlas_styles(cfg)
        layers = np.zeros((self.slots, 6), np.float32)
        layers[:, 0], layers[:, 1] = -1.0, 1.0
        first, first_at = None, None
        if not rng.random() < cfg.p_empty:
            for k in range(1 + self._extra_characters(rng)):
                g, i, style = self._pick(rng)
                cut = self.lib.cutouts[g][i]
                at = draw_placement(rng, cfg, cut.shape[1], cut.shape[0], size)
                item = styles.index(style) * len(self.lib) + self.lib.index(g, i)
                layers[k] = (item, at.scale, float(at.flip), at.angle, at.cx, at.cy)
                if first is None:
                    first, first_at = cut, at
        if first is None:
            fp, alpha = np.zeros((1, 1, 3), np.float32), np.zeros((1, 1), np.float32)
        else:  # every other pixel is plenty to draw colours from
            fp, alpha = first[::2, ::2, :3].astype(np.float32) / 255.0, first[::2, ::2, 3].astype(np.float32) / 255.0
        effects = np.zeros(12, np.float32)
        kind = self.background_kind(rng)
        if kind == "scene":  # its colour jitter is left to the device
            bg, jitter = self._scene(rng, size)
            if jitter is not None:
                effects[5], effects[6:] = 1.0, jitter
            if first is not None:  # the first character placed here too, as Pillow places it
                placed = cache(lambda: place_cutout(first, first_at, size))
                bg = self._scenery(rng, bg, placed)
        else:
            bg = self._background(rng, kind, fp, alpha, size)
        bg = self._paint_over(rng, bg)
        if cfg.p_shadow and rng.random() < cfg.p_shadow:
            effects[:5] = (1.0, *draw_shadow(rng, size))
        return layers, effects, np.require(bg, requirements=["C", "W"])

    def _scenery(self, rng: np.random.Generator, bg: np.ndarray,
                 layer: Callable[[], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """A scene's pieces against the placed character, each with its probability: scenery
        in the character's own colour behind it, then a prop touching its outline. ``layer()``
        gives the placed character (fp, alpha), asked for only when a piece is drawn."""
        if self.cfg.p_own_colour_scenery and rng.random() < self.cfg.p_own_colour_scenery:
            bg = own_colour_scenery(bg, *layer(), rng)
        if self.cfg.p_props and rng.random() < self.cfg.p_props:
            bg = prop_against_outline(bg, layer()[1], self._other_picture(rng), rng)
        return bg

    def _paint_over(self, rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
        """The background art's additions, each with its probability: a tiled pattern, a
        character painted into it, then drawn shapes and text."""
        if self.cfg.p_pattern and rng.random() < self.cfg.p_pattern:
            bg = paint_pattern(bg, rng)
        if self.cfg.p_backdrop and rng.random() < self.cfg.p_backdrop:
            bg = self._backdrop(rng, bg)
        if self.cfg.p_drawn and rng.random() < self.cfg.p_drawn:
            bg = draw_over(bg, rng)
        return bg

    def _backdrop(self, rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
        """``bg`` with a character painted into it as title and menu screens show one: a
        close-up the frame cuts (``cutoff_zoom``) with the chance ``backdrop_cutoff``, else
        placed as the composited characters are (which then stand in front of it), half of
        the time on a light outline a few pixels wide (the sticker edge of such art)."""
        cut = self._pick_cutout(rng)
        size = bg.shape[0]
        placing = replace(self.cfg, p_cutoff=self.cfg.backdrop_cutoff)
        at = draw_placement(rng, placing, cut.shape[1], cut.shape[0], size)
        fp, alpha = place_cutout(cut, at, size)
        out = bg.astype(np.float32) / 255.0
        if rng.random() < 0.5:
            width = int(rng.integers(1, max(2, size // 64) + 1))
            mask = Image.fromarray(np.rint(alpha * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(2 * width + 1))
            edge = np.asarray(mask, np.float32) / 255.0
            light = rng.integers(200, 256, 3).astype(np.float32) / 255.0
            out = composite(light, edge, out)
        out = composite_premultiplied(fp, alpha, out)
        return np.rint(out * 255).astype(np.uint8)

    @property
    def slots(self) -> int:
        """Characters a sample can hold at most."""
        return self.cfg.max_characters if self.cfg.p_two > 0 else 1


class CompositeDataset(torch.utils.data.Dataset):
    """Map-style dataset whose item ``(index, size)`` is a deterministic function of
    ``(seed, index)``: tensors ``fp 3xSxS``, ``alpha 1xSxS``, ``bg 3xSxS``, all uint8; with
    device placement ``layers Kx6``, ``effects 12`` (float32) and ``bg 3xSxS`` uint8 (see
    :meth:`SampleMaker.make_layers`)."""

    def __init__(self, maker: SampleMaker, seed: int) -> None:
        self.maker = maker
        self.seed = seed

    def __len__(self) -> int:  # notional: samples are indexed by a global counter
        return 2 ** 62

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index, size = item
        rng = np.random.default_rng([self.seed, index])
        if self.maker.cfg.placement == "device":
            layers, effects, bg = self.maker.make_layers(rng, size)
            return torch.from_numpy(layers), torch.from_numpy(effects), torch.from_numpy(bg).permute(2, 0, 1)
        fp, alpha, bg = self.maker.make(rng, size)
        return (torch.from_numpy(fp).permute(2, 0, 1), torch.from_numpy(alpha)[None],
                torch.from_numpy(bg).permute(2, 0, 1))


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields, for each optimisation step from ``start_step`` on and each micro-batch of this
    process, the list of ``(global sample index, canvas size)`` to draw.

    Step s consumes global indices ``s * batch ... (s + 1) * batch - 1``; process ``rank`` of
    ``world`` takes micro-batches ``rank * accum + j`` (j < accum) of ``micro`` samples. The
    canvas size of a step is drawn from ``sizes`` with a generator seeded by (seed, s), so all
    processes agree on it.
    """

    def __init__(self, start_step: int, batch: int, micro: int, rank: int, world: int,
                 sizes: Sequence[int], seed: int) -> None:
        if batch % (micro * world):
            raise ValueError(f"batch {batch} is not a multiple of micro_batch {micro} x {world} processes")
        self.start_step, self.batch, self.micro = start_step, batch, micro
        self.rank, self.world = rank, world
        self.accum = batch // (micro * world)
        self.sizes, self.seed = list(sizes), seed

    def size_at(self, step: int) -> int:
        return self.sizes[np.random.default_rng([self.seed, 7, step]).integers(len(self.sizes))]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            size = self.size_at(step)
            for j in range(self.accum):
                first = step * self.batch + (self.rank * self.accum + j) * self.micro
                yield [(first + k, size) for k in range(self.micro)]
            step += 1


# -- batched compositing and degradations on the training device ------------------------


