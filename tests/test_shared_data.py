"""Checks on the real training data in ../shared/data (skipped when it is not there)."""

import numpy as np
import pytest

from conftest import SHARED_DATA
from kirinuki.config import load_config
from kirinuki.data import CutoutLibrary, SampleMaker
from kirinuki.evaluate import run_evaluation
from kirinuki.inference import Matter

pytestmark = [pytest.mark.shared,
              pytest.mark.skipif(not (SHARED_DATA / "val").is_dir(), reason=f"{SHARED_DATA} is not available")]


def test_default_recipe_loads_the_real_groups():
    cfg = load_config("default")
    lib = CutoutLibrary.load(SHARED_DATA, cfg.data)
    assert lib.groups == ["train/anime", "train/painted", "train/clipart"]
    assert [len(c) for c in lib.cutouts] == [170, 274, 1384] and len(lib.backgrounds) == 177
    maker = SampleMaker(lib, cfg.data)
    fp, alpha, bg = maker.make(np.random.default_rng(0), 256)
    assert fp.shape == (256, 256, 3) and alpha.dtype == np.uint8


# Measured on the shipped model with `kirinuki evaluate` (MODEL_CARD.md), with a margin.
VAL_FLOOR = {"paper": (0.955, 21.0), "scene": (0.78, 15.0)}


def test_bundled_model_on_unseen_validation_characters(tmp_path):
    report = run_evaluation(Matter(), SHARED_DATA / "val", SHARED_DATA / "backgrounds", tmp_path,
                            sizes=[256], conditions=["paper", "scene"], limit=8, worst=2)
    for row in report["rows"]:
        min_iou, min_psnr = VAL_FLOOR[row["condition"]]
        assert row["iou"] >= min_iou and row["psnr"] >= min_psnr, row
