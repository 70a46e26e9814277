"""Training samples composited on the fly from RGBA cutouts and backgrounds.

The work is split in two so that a GPU is never starved:

1. **Per sample, on CPU** (DataLoader workers, numpy + Pillow): choose a cutout by group
   weight, apply flip / zoom / rotation / shift through *premultiplied* colour, optionally a
   second character or none, and draw a background. A sample is three uint8 arrays: the
   premultiplied colour ``Fp = alpha * F``, the alpha, and the background ``B``. With
   ``placement = "device"`` the worker draws the same placements but leaves the cutouts
   unplaced: a sample is then a layer table, an effects row and ``B``, and
   :mod:`kirinuki.placement` places the whole batch on the training device.
2. **Per batch, on the training device** (:func:`compose_batch`, torch): the composite
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
character cut out in front of them).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .backgrounds import flat_colour
from .config import DataConfig
from .errors import DataError
from .imaging import (BACKGROUND_SUFFIXES, CUTOUT_SUFFIXES, composite, composite_premultiplied, find_images,
                      longest_side)

__all__ = ["CutoutLibrary", "SampleMaker", "CompositeDataset", "StepBatchSampler", "compose_batch",
           "jpeg_simulate", "gaussian_blur", "BG_CLASSES", "redraw_cutout", "cast_shadow", "cast_shadows", "draw_shadow", "draw_over", "paint_pattern",
           "Placement", "draw_placement", "place_cutout", "draw_jitter", "jitter_colours", "mixed_seed"]

BG_CLASSES = ("white", "light", "dark", "black", "flat", "scene", "hard", "grey")


def mixed_seed(*values: int) -> int:
    """One 32-bit seed from several integers (a run's seed and what tags a stream or a step)."""
    return int(np.random.SeedSequence([v & 0xFFFFFFFF for v in values]).generate_state(1)[0])


def _load_cutout(path: Path, max_side: int) -> np.ndarray:
    """RGBA file -> premultiplied ``HxWx4 uint8`` (mode RGBa), longest side <= max_side."""
    with Image.open(path) as im:
        im = im.convert("RGBA").convert("RGBa")
    if max(im.size) > max_side:
        im = im.resize(longest_side(im.size, max_side), Image.Resampling.LANCZOS)
    return np.asarray(im)


def _load_rgb(path: Path, max_side: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
    if max(im.size) > max_side:
        im = im.resize(longest_side(im.size, max_side), Image.Resampling.BILINEAR)
    return np.asarray(im)


@dataclass
class CutoutLibrary:
    """All the pictures a run draws from, decoded once and kept in memory.

    cutouts[g]: premultiplied ``HxWx4 uint8`` arrays of group g; backgrounds: ``HxWx3 uint8``;
    pairs: ``(rgb HxWx3 uint8, alpha HxW uint8)``.
    """

    groups: list[str]
    weights: np.ndarray
    cutouts: list[list[np.ndarray]]
    backgrounds: list[np.ndarray]
    pairs: list[tuple[np.ndarray, np.ndarray]]

    @classmethod
    def load(cls, root: str | Path, cfg: DataConfig, threads: int = 4) -> "CutoutLibrary":
        root = Path(root)
        groups, weights, cutouts = [], [], []
        with ThreadPoolExecutor(threads) as pool:  # Pillow decodes without the GIL
            for group, weight in cfg.groups.items():
                files = find_images(root / group, CUTOUT_SUFFIXES)
                if not files:
                    raise DataError(f"{root / group}: no cutouts (*.png, *.webp) found")
                groups.append(group)
                weights.append(float(weight))
                cutouts.append(list(pool.map(lambda p: _load_cutout(p, cfg.cache_side), files)))
            bg_dir = root / cfg.backgrounds
            bg_files = find_images(bg_dir, BACKGROUND_SUFFIXES) if bg_dir.is_dir() else []
            if not bg_files and cfg.bg_scene > 0:
                raise DataError(f"{bg_dir}: no backgrounds found, but bg_scene > 0")
            backgrounds = list(pool.map(lambda p: _load_rgb(p, 2 * cfg.cache_side), bg_files))
            pairs = []
            if cfg.pairs and cfg.pairs_weight > 0:
                pairs = list(pool.map(lambda p: _load_pair(p, cfg.cache_side), _find_pairs(root / cfg.pairs)))
        w = np.asarray(weights, dtype=np.float64)
        return cls(groups, w / w.sum(), cutouts, backgrounds, pairs)

    def __len__(self) -> int:
        return sum(len(c) for c in self.cutouts)

    def index(self, group: int, item: int) -> int:
        """Cutout ``item`` of group ``group`` counted over all groups in order (the order of
        :meth:`all_cutouts`)."""
        return sum(len(c) for c in self.cutouts[:group]) + item

    def all_cutouts(self) -> list[np.ndarray]:
        return [cut for group in self.cutouts for cut in group]


def _find_pairs(folder: Path) -> list[Path]:
    out = []
    for alpha in sorted(folder.rglob("*.alpha.png")):
        stem = alpha.name[: -len(".alpha.png")]
        for ext in (".png", ".jpg", ".jpeg", ".webp"):
            rgb = alpha.with_name(stem + ext)
            if rgb.exists():
                out.append(rgb)
                break
    if not out:
        raise DataError(f"{folder}: no NAME.jpg / NAME.alpha.png pairs found")
    return out


def _load_pair(rgb_path: Path, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    alpha_path = rgb_path.with_name(rgb_path.stem + ".alpha.png")
    with Image.open(rgb_path) as im, Image.open(alpha_path) as am:
        rgb, alpha = im.convert("RGB"), am.convert("L")
    if alpha.size != rgb.size:
        raise ValueError(f"{alpha_path}: size {alpha.size} differs from {rgb_path}'s {rgb.size}")
    if max(rgb.size) > max_side:
        size = longest_side(rgb.size, max_side)
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
        alpha = alpha.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(rgb), np.asarray(alpha)


def draw_jitter(rng: np.random.Generator, strength: float) -> np.ndarray:
    """A scene's colour jitter of ``strength`` (0..1): saturation, contrast and brightness
    factors and a colour cast (r, g, b levels), float32."""
    j = strength
    return np.array([rng.uniform(1 - j, 1 + j), rng.uniform(1 - j / 2, 1 + j / 2), rng.uniform(1 - j / 2, 1 + j / 2),
                     *rng.uniform(-20 * j, 20 * j, size=3)], np.float32)


def jitter_colours(bg: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """Backgrounds ``N x 3 x H x W`` (float, levels 0-255) with their jitter rows ``N x 6``
    (:func:`draw_jitter`) applied: saturation about the pixel's grey, contrast about mid-grey,
    brightness, cast; clipped to 0-255. Workers and the training device both use it."""
    j = jitter.to(bg.device, bg.dtype)[:, :, None, None]
    grey = bg.mean(1, keepdim=True)
    bg = grey + (bg - grey) * j[:, 0:1]
    bg = (bg - 128) * j[:, 1:2] + 128
    bg = bg * j[:, 2:3] + j[:, 3:6]
    return bg.clamp(0, 255)


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
        return cut if style == "original" else redraw_cutout(cut, style, rng)

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
        h, w = src.shape[:2]
        side = max(8, round(min(h, w) * rng.uniform(0.3, 1.0)))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        im = Image.fromarray(src[y:y + side, x:x + side]).resize((size, size), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        jitter = draw_jitter(rng, self.cfg.scene_jitter) if self.cfg.scene_jitter > 0 else None
        return np.array(im), jitter

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
        bg = self._paint_over(rng, self._background(rng, self.background_kind(rng), fp, alpha, size))
        if self.cfg.p_shadow and rng.random() < self.cfg.p_shadow:
            bg = cast_shadow(bg, alpha, draw_shadow(rng, size))
        return (np.rint(fp * 255).astype(np.uint8), np.rint(alpha * 255).astype(np.uint8), bg)

    def make_layers(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A sample as the device placement takes it (``data.placement = "device"``): the
        characters as a layer table ``K x 6`` float32 (see :mod:`kirinuki.placement`; unused
        slots have item -1), an effects row of 12 float32 (a shadow, then a scene's colour
        jitter, each with its ``on`` flag: ``EFFECT_FIELDS``) and the background ``SxSx3
        uint8`` before them. The same kinds of draws as :meth:`make`, with the cutouts left
        unplaced: a hard-negative background takes its colours from the first character, and
        patterns and drawn shapes are painted before the jitter, not after."""
        from .placement import atlas_styles

        cfg = self.cfg
        styles = atlas_styles(cfg)
        layers = np.zeros((self.slots, 6), np.float32)
        layers[:, 0], layers[:, 1] = -1.0, 1.0
        first = None
        if not rng.random() < cfg.p_empty:
            for k in range(1 + self._extra_characters(rng)):
                g, i, style = self._pick(rng)
                cut = self.lib.cutouts[g][i]
                at = draw_placement(rng, cfg, cut.shape[1], cut.shape[0], size)
                item = styles.index(style) * len(self.lib) + self.lib.index(g, i)
                layers[k] = (item, at.scale, float(at.flip), at.angle, at.cx, at.cy)
                first = cut if first is None else first
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
        else:
            bg = self._background(rng, kind, fp, alpha, size)
        bg = self._paint_over(rng, bg)
        if cfg.p_shadow and rng.random() < cfg.p_shadow:
            effects[:5] = (1.0, *draw_shadow(rng, size))
        return layers, effects, np.require(bg, requirements=["C", "W"])

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


def cast_shadows(bg: torch.Tensor, alpha: torch.Tensor, shadows: torch.Tensor) -> torch.Tensor:
    """Soft drop shadows of the placed characters on the backgrounds: ``bg`` N x 3 x S x S
    float in [0, 1], ``alpha`` N x 1 x S x S, ``shadows`` N x 5 (on 0/1, then
    :func:`draw_shadow`'s dx, dy, sigma, strength). The alpha shifted by (dx, dy) with
    wrap-around, blurred, times the strength, darkens the background; rows with ``on`` = 0
    are left as they are."""
    on = torch.nonzero(shadows[:, 0] > 0.5).flatten()
    if on.numel() == 0:
        return bg
    bg = bg.clone()
    rows = shadows[on].cpu()
    shifted = torch.stack([torch.roll(alpha[i], (int(r[2]), int(r[1])), dims=(1, 2))
                           for i, r in zip(on.tolist(), rows)])
    shade = gaussian_blur(shifted, shadows[on, 3].to(bg.device)) * shadows[on, 4].to(bg.device)[:, None, None, None]
    bg[on] = bg[on] * (1.0 - shade)
    return bg


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

def _rand(n: int, g: torch.Generator, device: torch.device, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample Gaussian blur; x NxCxHxW, sigma N."""
    n, c, h, w = x.shape
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, K)
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)
    y = F.conv2d(y, k[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


# Annex K tables of the JPEG standard (luminance, chrominance), row-major 8x8.
_JPEG_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
              14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
              18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_JPEG_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32


def _jpeg_tables(quality: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """libjpeg's quality scaling of the standard tables; quality N in [1, 100] -> N x 8 x 8."""
    q = quality.clamp(1, 100).to(torch.float64)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)[:, None]
    out = []
    for base in (_JPEG_LUMA, _JPEG_CHROMA):
        t = torch.tensor(base, dtype=torch.float64, device=device)[None]
        out.append(torch.floor((t * scale + 50) / 100).clamp(1, 255).reshape(-1, 8, 8).float())
    return out[0], out[1]


def _dct_matrix(device: torch.device) -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.float().to(device)


def _dct_quantise(plane: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """plane N x 1 x H x W (H, W multiples of 8, values centred on 0); table N x 8 x 8."""
    n, _, h, w = plane.shape
    blocks = plane.reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)  # n, by, bx, 8, 8
    coef = d @ blocks @ d.T
    t = table[:, None, None]
    coef = torch.round(coef / t) * t
    blocks = d.T @ coef @ d
    return blocks.permute(0, 1, 3, 2, 4).reshape(n, 1, h, w)


def jpeg_simulate(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """What JPEG at ``quality`` does to an image, batched and on any device.

    x: Nx3xHxW float in [0, 1]; quality: N values in [1, 100]. The lossy steps of a baseline
    encoder and decoder: full-range YCbCr, 4:2:0 chroma averaging, 8x8 DCT, quantisation with
    the standard tables scaled as libjpeg scales them, and the inverse (chroma upsampled
    bilinearly, as libjpeg's "fancy upsampling" does). Only the lossless entropy coding is
    left out. Returns Nx3xHxW float in [0, 1] on the 1/255 grid.
    """
    n, _, h, w = x.shape
    ph, pw = (-h) % 16, (-w) % 16
    x = F.pad(x.float() * 255.0, (0, pw, 0, ph), mode="replicate")
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    qy, qc = _jpeg_tables(quality, x.device)
    d = _dct_matrix(x.device)
    y = _dct_quantise(y - 128, qy, d) + 128
    chroma = []
    for c in (cb, cr):
        small = F.avg_pool2d(c, 2)
        ph2, pw2 = (-small.shape[-2]) % 8, (-small.shape[-1]) % 8
        small = F.pad(small, (0, pw2, 0, ph2), mode="replicate")
        small = _dct_quantise(small - 128, qc, d)[..., : c.shape[-2] // 2, : c.shape[-1] // 2] + 128
        chroma.append(F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False))
    cb, cr = chroma
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    out = torch.cat([r, g, b], 1)[..., :h, :w]
    return torch.round(out.clamp(0, 255)) / 255.0


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()


def compose_batch(fp: torch.Tensor, alpha: torch.Tensor, bg: torch.Tensor, cfg: DataConfig,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite and degrade a batch on its device.

    fp, bg: Nx3xSxS; alpha: Nx1xSxS (on the training device), each uint8 (0-255) or float
    (0-1). Returns (image Nx3xSxS float32 in [0, 1], alpha Nx1xSxS float32 in [0, 1]). The
    alpha target is never degraded: the network must recover the exact matte from a
    degraded picture.
    """
    dev = fp.device
    a = _unit(alpha)
    x = _unit(fp) + (1.0 - a) * _unit(bg)
    n = x.shape[0]

    def chosen(p: float) -> torch.Tensor:
        return torch.nonzero(_rand(n, generator, dev) < p).flatten() if p > 0 else torch.empty(0, dtype=torch.long)

    idx = chosen(cfg.p_blur)
    if idx.numel():
        x[idx] = gaussian_blur(x[idx], _rand(idx.numel(), generator, dev, *cfg.blur_sigma))
    idx = chosen(cfg.p_rescale)
    if idx.numel():
        factors = _rand(idx.numel(), generator, dev, *cfg.rescale_factor).tolist()
        s = x.shape[-1]
        for i, f in zip(idx.tolist(), factors):
            small = F.interpolate(x[i:i + 1], size=(max(8, round(s * f)),) * 2, mode="area")
            x[i:i + 1] = F.interpolate(small, size=(s, s), mode="bilinear", align_corners=False)
    idx = chosen(cfg.p_noise)
    if idx.numel():
        std = _rand(idx.numel(), generator, dev, 0.0, cfg.noise_std)[:, None, None, None]
        x[idx] = x[idx] + torch.randn(x[idx].shape, generator=generator, device=dev) * std
    x = x.clamp(0, 1)
    idx = chosen(cfg.p_jpeg)  # last, as a saved file would be
    if idx.numel():
        q = torch.floor(_rand(idx.numel(), generator, dev, cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        x[idx] = jpeg_simulate(x[idx], q)
    return x, a
