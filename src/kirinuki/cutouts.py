"""The training cutouts and backgrounds in memory: :class:`CutoutLibrary` loads a data
folder's groups of RGBA cutouts (premultiplied, longest side capped), its opaque backgrounds
and, when the config names them, real picture and alpha pairs. numpy + Pillow only."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .config import DataConfig
from .errors import DataError
from .imaging import BACKGROUND_SUFFIXES, CUTOUT_SUFFIXES, find_images, longest_side

__all__ = ["CutoutLibrary"]


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
