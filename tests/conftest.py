"""Shared fixtures: small generated pictures, so the tests need nothing outside the project."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

SHARED_DATA = Path(os.environ.get("KIRINUKI_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# Small networks keep training tests to seconds.
TINY_KIRINET = {"widths": [8, 16], "blocks": [1, 1], "head": 4}


def synthetic_cutout(rng: np.random.Generator, width: int = 96, height: int = 128) -> Image.Image:
    """A 'character': body, head and thin strands in random colours, drawn at 4x and
    reduced so its edges are anti-aliased (soft alpha), straight RGBA."""
    big = Image.new("RGBA", (width * 4, height * 4), (0, 0, 0, 0))
    d = ImageDraw.Draw(big)
    colour = lambda: tuple(int(c) for c in rng.integers(0, 256, 3)) + (255,)
    w, h = width * 4, height * 4
    d.ellipse((w * 0.2, h * 0.35, w * 0.8, h * 0.98), fill=colour())
    d.ellipse((w * 0.3, h * 0.05, w * 0.7, h * 0.4), fill=colour())
    for _ in range(5):
        x0 = rng.uniform(w * 0.3, w * 0.7)
        d.line((x0, h * 0.1, x0 + rng.uniform(-w * 0.3, w * 0.3), h * 0.6), fill=colour(), width=3)
    # Reduce through premultiplied colour, as real anti-aliasing would.
    return big.convert("RGBa").resize((width, height), Image.Resampling.LANCZOS).convert("RGBA")


def synthetic_background(rng: np.random.Generator, size: int = 160) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0, 255, 3)
    img = base + 80 * np.sin(6 * x[..., None] + rng.uniform(0, 6, 3)) * np.cos(4 * y[..., None])
    img += rng.normal(0, 10, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root like ../shared/data: train/a, train/b (cutouts), val (cutouts), backgrounds."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for group, n in (("train/a", 6), ("train/b", 3), ("val", 4)):
        (root / group).mkdir(parents=True)
        for i in range(n):
            synthetic_cutout(rng, int(rng.integers(48, 120)), int(rng.integers(64, 140))).save(root / group / f"c{i}.png")
    (root / "backgrounds").mkdir()
    for i in range(3):
        synthetic_background(rng).save(root / "backgrounds" / f"bg{i}.jpg", quality=90)
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def tiny_overrides(**extra) -> list[dict]:
    """Config overrides for a seconds-long run on ``tiny_data``."""
    base = {"sizes": [64], "batch": 4, "workers": 0, "val_every": 0, "ckpt_every": 0, "log_every": 1, "val_sizes": [64],
            "model": {"args": TINY_KIRINET, "work_size": 64},
            "data": {"groups": {"train/a": 2.0, "train/b": 1.0}, "cache_side": 128}}
    base.update(extra)
    return [base]


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny, untrained kirinet exported to ONNX (working size 64): real inference, fast."""
    import torch

    from kirinuki.export import export_onnx
    from kirinuki.models import create_model

    torch.manual_seed(0)
    model = create_model("kirinet", **TINY_KIRINET).eval()
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_onnx(model, path, {"name": "tiny", "arch": "kirinet", "arch_args": model.config,
                              "work_size": 64, "pad_multiple": model.pad_multiple})
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny kirinet training checkpoint (working size 96) with non-trivial BatchNorm
    statistics, so an export must carry them."""
    import torch

    from kirinuki.checkpoint import save_checkpoint
    from kirinuki.models import create_model

    torch.manual_seed(0)
    model = create_model("kirinet", **TINY_KIRINET)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(2, 3, 64, 64))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint({"name": "tiny", "arch": "kirinet", "arch_args": model.config, "work_size": 96,
                     "step": 0, "model": model.state_dict()}, path)
    return path


def sample_over_magenta() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The white-background sample recomposited over pure magenta with its true alpha.

    Returns (alpha HxW float in [0, 1], the character's colours HxWx3 float in [0, 1]
    recovered from the white composite where alpha is usable, the magenta composite HxWx3
    uint8)."""
    from kirinuki.samples import sample_paths, true_alpha_path
    sample = next(p for p in sample_paths() if "white" in p.name)
    on_white = np.asarray(Image.open(sample).convert("RGB")).astype(np.float32) / 255
    alpha = np.asarray(Image.open(true_alpha_path(sample)).convert("L")).astype(np.float32) / 255
    a = alpha[..., None]
    fg = np.where(a > 0.05, np.clip((on_white - (1 - a)) / np.maximum(a, 1e-3), 0, 1), on_white)
    on_magenta = np.rint(np.clip(a * fg + (1 - a) * np.array([1.0, 0.0, 1.0]), 0, 1) * 255).astype(np.uint8)
    return alpha, fg, on_magenta


#: The signboard of :func:`meadow_with_a_signboard`: its box (left, top, right, bottom) and a
#: point inside it, in the meadow sample's pixels.
SIGNBOARD = (330, 100, 450, 190)
SIGNBOARD_POINT = (400, 150)


def meadow_with_a_signboard() -> np.ndarray:
    """The meadow sample with a yellow, black-framed signboard drawn into the sky beside the
    hair: a drawn prop the bundled model keeps as character (about 94 % opaque), the kind of
    mistake the click fix is for. HxWx3 uint8; the sample's true alpha still holds."""
    from kirinuki.samples import sample_paths

    sample = next(p for p in sample_paths() if "meadow" in p.name)
    im = Image.open(sample).convert("RGB")
    ImageDraw.Draw(im).rectangle(SIGNBOARD, fill=(230, 200, 40), outline=(0, 0, 0), width=3)
    return np.asarray(im)


#: A page of the meadow character's back-hair colour, and a point on that hair.
HAIR_PAGE = (180, 60, 108)
HAIR_POINT = (281, 178)


def character_on_her_hair_colour() -> tuple[np.ndarray, np.ndarray]:
    """The meadow sample's character composited with its true alpha on a flat page of her back
    hair's colour: the bundled model loses that hair (IoU 0.958), the seed paper's lost-skirt
    failure. Returns (HxWx3 uint8, the true alpha HxW float32 in [0, 1])."""
    from kirinuki.samples import sample_paths, true_alpha_path

    sample = next(p for p in sample_paths() if "meadow" in p.name)
    rgb = np.asarray(Image.open(sample).convert("RGB")).astype(np.float32)
    alpha = np.asarray(Image.open(true_alpha_path(sample)).convert("L")).astype(np.float32) / 255
    a = alpha[..., None]
    return np.round(a * rgb + (1 - a) * np.float32(HAIR_PAGE)).astype(np.uint8), alpha


def written(folder: Path) -> list[str]:
    """The files kirinuki wrote in an output folder, sorted, without its output mark (the
    ``.kirinuki-output`` file that keeps a later run from cutting them out again)."""
    from kirinuki.batch import OUTPUT_MARK

    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.name != OUTPUT_MARK)
