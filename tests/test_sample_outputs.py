"""The cutouts of the bundled samples against recorded ones: a change to the code that is meant
to change nothing (a refactor) must leave them as they were.

Not byte for byte: the network's floats round differently on another CPU (onnxruntime picks
its kernels by the instruction set), which moves a few alpha values by one level out of 255
(the meadow sample's bytes differ between two machines of this project). So
the test holds each cutout's alpha to the recorded one within ``ALPHA_LEVELS`` on every pixel
and lets at most ``ALPHA_SHARE`` of the pixels differ at all, and its colour (premultiplied,
averaged over 4x4 blocks) to the recorded within ``COLOUR_LEVELS``. Noise of 3e-6 added to
the network's output moves 0.001-0.006 % of the alpha values by one level; changing the
flat-background clearing's ring from half to 0.45 of the way moves far more.

The recorded files (``tests/recorded/``) belong to one bundled model. Bundling a new model,
or a change to the pipeline meant to change its output, changes them on purpose: record them
again with ``python tests/test_sample_outputs.py --record``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from kirinuki.bundled import bundled_model_info
from kirinuki.samples import sample_paths

RECORDED = Path(__file__).resolve().parent / "recorded"
#: The largest difference (levels of 255) of an alpha value from the recorded one.
ALPHA_LEVELS = 2
#: The largest share of alpha values that may differ from the recorded ones at all.
ALPHA_SHARE = 0.002
#: The largest difference (levels of 255) of a 4x4 block's premultiplied colour.
COLOUR_LEVELS = 2


def cut_samples(out: Path) -> dict[str, np.ndarray]:
    """The samples cut out by the command line with the bundled default model (one thread):
    {sample name: HxWx4 uint8}."""
    r = subprocess.run([sys.executable, "-m", "kirinuki", "cutout", *map(str, sample_paths()), "-o", str(out),
                        "--threads", "1", "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return {p.stem: np.asarray(Image.open(p).convert("RGBA")) for p in sorted(out.glob("*.png"))}


def fingerprint(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the alpha HxW uint8, the premultiplied colour averaged over 4x4 blocks, uint8)."""
    pixels = rgba.astype(np.float32)
    colour = pixels[..., :3] * pixels[..., 3:] / 255
    h, w = colour.shape[0] // 4 * 4, colour.shape[1] // 4 * 4
    blocks = colour[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))
    return rgba[..., 3].copy(), np.round(blocks).astype(np.uint8)


def default_model_sha() -> str:
    return bundled_model_info()["files"]["default.onnx"]["sha256"]


def test_sample_cutouts_match_the_recorded_ones(tmp_path):
    assert (RECORDED / "model.sha256").read_text().strip() == default_model_sha(), \
        "the bundled model changed: record its sample outputs (see this file's docstring)"
    cutouts = cut_samples(tmp_path)
    assert sorted(cutouts) == sorted(p.stem for p in sample_paths())
    for name, rgba in cutouts.items():
        alpha, colour = fingerprint(rgba)
        recorded_alpha = np.asarray(Image.open(RECORDED / f"{name}.alpha.png"))
        recorded_colour = np.asarray(Image.open(RECORDED / f"{name}.colour.png"))
        assert alpha.shape == recorded_alpha.shape, name
        off = np.abs(alpha.astype(np.int16) - recorded_alpha)
        assert off.max() <= ALPHA_LEVELS, f"{name}: an alpha value {off.max()} levels off"
        assert np.count_nonzero(off) <= ALPHA_SHARE * off.size, f"{name}: {np.count_nonzero(off)} alpha values differ"
        colour_off = np.abs(colour.astype(np.int16) - recorded_colour).max()
        assert colour_off <= COLOUR_LEVELS, f"{name}: a colour block {colour_off} levels off"


def record() -> None:
    """Write the samples' fingerprints and the model's SHA-256 to ``tests/recorded/``."""
    import tempfile

    RECORDED.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, rgba in cut_samples(Path(tmp)).items():
            alpha, colour = fingerprint(rgba)
            Image.fromarray(alpha).save(RECORDED / f"{name}.alpha.png", optimize=True)
            Image.fromarray(colour).save(RECORDED / f"{name}.colour.png", optimize=True)
    (RECORDED / "model.sha256").write_text(default_model_sha() + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_sample_outputs.py --record")
    record()
