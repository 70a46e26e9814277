"""The evaluation protocol and its report.

For each cutout of a folder (sorted, recursive), deterministic composites (seed fixed):

* the cutout is padded to a square with transparency, centred horizontally and standing on
  the bottom edge, then resized (premultiplied, Lanczos) to each size: an integer side, or
  ``native`` (the padded square as it is);
* conditions: ``paper`` (a background from the paper's mix, lossless), ``jpeg`` (that same
  composite saved as JPEG quality 85 and decoded), ``scene`` (a random square crop of a
  scene background, resized to the size);
* the model predicts the alpha through the same :class:`~kirinuki.inference.Matter` path the
  cutout tool uses, and every metric of :mod:`kirinuki.metrics` is computed against the
  exact composited alpha, then averaged per (size, condition).

Output: a Markdown table shaped like the paper's Table 1 (one row per size and condition),
a JSON file with every case, and a contact sheet of the worst cases
(input | truth | prediction | error).
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from .backgrounds import paper_colour
from .errors import DataError
from .imaging import (BACKGROUND_SUFFIXES, CUTOUT_SUFFIXES, atomic_save, composite_premultiplied, find_images,
                      pad_to_square_bottom, resize_premultiplied, to_uint8)
from .inference import SWITCHES, Matter
from .metrics import METRIC_NAMES, all_metrics

__all__ = ["CONDITIONS", "Case", "make_cases", "score_cases", "summarise", "markdown_table",
           "contact_sheet", "run_evaluation"]

CONDITIONS = ("paper", "jpeg", "scene")
JPEG_QUALITY = 85


@dataclass
class Case:
    """One composite to score: ``image`` HxWx3 uint8, ``alpha`` HxW float32 in [0, 1];
    ``background``: the scene picture's file name (``scene`` condition only)."""

    name: str
    size: str
    condition: str
    image: np.ndarray
    alpha: np.ndarray
    background: str | None = None


def _scene_background(path: Path, rng: np.random.Generator, side: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
    w, h = im.size
    crop = max(8, round(min(w, h) * rng.uniform(0.5, 1.0)))
    x, y = int(rng.integers(0, w - crop + 1)), int(rng.integers(0, h - crop + 1))
    return np.asarray(im.resize((side, side), Image.Resampling.BILINEAR, box=(x, y, x + crop, y + crop)))


def make_cases(cutouts: str | Path, backgrounds: str | Path | None, sizes: Sequence[int | str],
               conditions: Sequence[str] = CONDITIONS, seed: int = 0,
               limit: int | None = None) -> Iterator[Case]:
    """Generate the protocol's composites, deterministically, one cutout at a time."""
    for c in conditions:
        if c not in CONDITIONS:
            raise ValueError(f"unknown condition {c!r}; choose from {', '.join(CONDITIONS)}")
    files = find_images(cutouts, CUTOUT_SUFFIXES)
    if not files:
        raise DataError(f"{cutouts}: no cutouts (*.png, *.webp) found")
    if limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, min(limit, len(files))).round().astype(int)]
    bg_files = find_images(backgrounds, BACKGROUND_SUFFIXES) if backgrounds else []
    if "scene" in conditions and not bg_files:
        raise DataError(f"{backgrounds}: the scene condition needs background pictures")
    for i, path in enumerate(files):
        with Image.open(path) as im:
            square = pad_to_square_bottom(im.convert("RGBA"))
        rng = np.random.default_rng([seed, i])
        _, colour = paper_colour(rng)
        scene_path = bg_files[rng.integers(len(bg_files))] if bg_files else None
        scene_seed = int(rng.integers(2 ** 31))
        for size in sizes:
            side = square.width if size == "native" else int(size)
            pm = np.asarray(resize_premultiplied(square, (side, side))).astype(np.float32) / 255.0
            fp, alpha = np.minimum(pm[..., :3], pm[..., 3:]), pm[..., 3]
            for cond in conditions:
                if cond == "scene":
                    bg = _scene_background(scene_path, np.random.default_rng(scene_seed), side)
                else:
                    bg = np.broadcast_to(colour, (side, side, 3))
                image = to_uint8(composite_premultiplied(fp, alpha, bg.astype(np.float32) / 255.0))
                if cond == "jpeg":
                    buf = io.BytesIO()
                    Image.fromarray(image).save(buf, "JPEG", quality=JPEG_QUALITY)
                    image = np.asarray(Image.open(buf).convert("RGB"))
                yield Case(path.stem, str(size), cond, image, alpha, scene_path.name if cond == "scene" else None)


def score_cases(matter: Matter, cases: Iterable[Case], keep_predictions: int = 0) -> tuple[list[dict], list[tuple[float, Case, np.ndarray]]]:
    """Predict and score every case. Returns (per-case records, the ``keep_predictions``
    worst cases by PSNR as (psnr, case, prediction))."""
    records: list[dict] = []
    worst: list[tuple[float, Case, np.ndarray]] = []
    for case in cases:
        t0 = time.perf_counter()
        pred = matter.predict_alpha(case.image)
        seconds = time.perf_counter() - t0
        m = all_metrics(pred, case.alpha)
        records.append({"name": case.name, "size": case.size, "condition": case.condition,
                        "height": case.alpha.shape[0], "seconds": seconds, **m})
        if keep_predictions:
            worst.append((m["psnr"], case, pred))
            worst.sort(key=lambda t: t[0])
            del worst[keep_predictions:]
    return records, worst


def summarise(records: list[dict]) -> list[dict]:
    """Mean of every metric per (size, condition), in first-seen order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["size"], r["condition"]), []).append(r)
    rows = []
    for (size, cond), rs in groups.items():
        row = {"size": size, "condition": cond, "n": len(rs)}
        for k in METRIC_NAMES + ("seconds",):
            row[k] = float(np.mean([r[k] for r in rs]))
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The paper's Table 1 shape plus kirinuki's extra columns."""
    head = ("| size | condition | PSNR | pixel accuracy | IoU | MAE | gradient error | edge IoU | images |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['size']} | {r['condition']} | {r['psnr']:.2f} | {r['pixel_accuracy']:.4f} | {r['iou']:.4f} "
        f"| {r['mae']:.4f} | {r['gradient_error']:.4f} | {r['edge_iou']:.4f} | {r['n']} |\n" for r in rows)
    return head + body


def contact_sheet(worst: list[tuple[float, Case, np.ndarray]], tile: int = 192) -> Image.Image:
    """Rows of input | truth | prediction | |error| (red), worst first, each tile ``tile`` high."""
    rows = []
    for _, case, pred in worst:
        err = np.abs(pred - case.alpha)
        heat = np.stack([err, np.zeros_like(err), np.zeros_like(err)], -1)
        parts = [case.image, np.repeat(case.alpha[..., None], 3, -1), np.repeat(pred[..., None], 3, -1), heat]
        imgs = [Image.fromarray(p if p.dtype == np.uint8 else to_uint8(p)) for p in parts]
        w = max(1, round(tile * imgs[0].width / imgs[0].height))
        row = Image.new("RGB", (4 * w, tile))
        for k, im in enumerate(imgs):
            row.paste(im.resize((w, tile), Image.Resampling.BILINEAR), (k * w, 0))
        rows.append(row)
    if not rows:
        return Image.new("RGB", (tile, tile))
    sheet = Image.new("RGB", (max(r.width for r in rows), tile * len(rows)), (40, 40, 40))
    for k, r in enumerate(rows):
        sheet.paste(r, (0, k * tile))
    return sheet


def run_evaluation(matter: Matter, cutouts: str | Path, backgrounds: str | Path | None,
                   out_dir: str | Path | None, sizes: Sequence[int | str] = (256, 512, "native"),
                   conditions: Sequence[str] = CONDITIONS, seed: int = 0, limit: int | None = None,
                   worst: int = 8) -> dict:
    """Run the whole protocol; write ``report.md``, ``report.json`` and ``worst.png`` to
    ``out_dir`` when given. Returns the report dict (``rows``, ``cases``, ``model``)."""
    cases = make_cases(cutouts, backgrounds, sizes, conditions, seed, limit)
    records, worst_cases = score_cases(matter, cases, keep_predictions=worst)
    rows = summarise(records)
    report = {"model": {"name": matter.info.name, "arch": matter.info.arch,
                        "work_size": matter.info.work_size, "source": matter.info.source,
                        **{k: bool(getattr(matter, k, False)) for k in SWITCHES}},
              "protocol": {"cutouts": str(cutouts), "backgrounds": str(backgrounds), "sizes": [str(s) for s in sizes],
                           "conditions": list(conditions), "seed": seed, "limit": limit,
                           "jpeg_quality": JPEG_QUALITY},
              "rows": rows, "cases": records}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        options = ", ".join(f"{k} {'on' if report['model'][k] else 'off'}" for k in SWITCHES)
        (out / "report.md").write_text(
            f"Model: {matter.info.describe()}; {options}\n\n" + markdown_table(rows), encoding="utf-8")
        (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        atomic_save(contact_sheet(worst_cases), out / "worst.png")
    return report
