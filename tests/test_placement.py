"""Cutout placement on the training device against Pillow's per-sample placement."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from kirinuki.config import DataConfig, load_config
from kirinuki.cutouts import CutoutLibrary
from kirinuki.data import CompositeDataset, Placement, SampleMaker, draw_placement, place_cutout
from kirinuki.degradations import cast_shadows
from kirinuki.styles import cast_shadow, draw_shadow
from kirinuki.errors import DataError
from kirinuki.placement import CutoutAtlas, finish_batch

from conftest import synthetic_cutout


def _config(**kw) -> DataConfig:
    base = load_config("lite").data
    return dataclasses.replace(base, groups={"train/a": 3.0, "train/b": 1.0}, cache_side=128, **kw)


@pytest.fixture(scope="module")
def library(tiny_data):
    return CutoutLibrary.load(tiny_data, _config())


@pytest.fixture(scope="module")
def big_cutout():
    """A character with an opaque block on its left: no mirror symmetry to hide a wrong flip."""
    straight = np.array(synthetic_cutout(np.random.default_rng(0), 300, 400))
    straight[60:160, 10:90] = (30, 200, 90, 255)
    return np.asarray(Image.fromarray(straight, "RGBA").convert("RGBa"))


def _pillow(cut: np.ndarray, at: Placement, size: int) -> tuple[np.ndarray, Placement]:
    """Pillow's alpha for ``at``, and the placement as Pillow made it: its paste position is
    rounded to whole pixels, so the centre it gives the cutout moves by up to half a pixel."""
    alpha = place_cutout(cut, at, size)[1]
    h, w = cut.shape[:2]
    im = Image.fromarray(cut, "RGBa").resize((max(1, round(w * at.scale)), max(1, round(h * at.scale))))
    pw, ph = im.rotate(at.angle, expand=True).size if at.angle else im.size
    return alpha, dataclasses.replace(at, cx=round(at.cx - pw / 2) + pw / 2, cy=round(at.cy - ph / 2) + ph / 2)


def _centroid(a: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0:a.shape[0], 0:a.shape[1]]
    return np.array([(a * xs).sum(), (a * ys).sum()]) / a.sum()


def test_device_placement_matches_pillow(big_cutout):
    """Zoom (at every atlas level), flip, rotation and shift give Pillow's layer."""
    atlas = CutoutAtlas([big_cutout], "cpu")
    cfg = DataConfig(rotation=15.0, zoom=(0.12, 1.0), flip=0.5, shift=0.2)
    levels, flips = set(), set()
    for i in range(10):
        want, at = _pillow(big_cutout, draw_placement(np.random.default_rng([9, i]), cfg, 300, 400, 512), 512)
        levels.add(int(CutoutAtlas.level_for(torch.tensor([at.scale]))))
        flips.add(at.flip)
        row = torch.tensor([[[0, at.scale, float(at.flip), at.angle, at.cx, at.cy]]])
        fp, alpha = atlas.place(row, 512)
        got = alpha[0, 0].numpy()
        assert (fp <= alpha + 1e-6).all()
        iou = ((got > 0.5) & (want > 0.5)).sum() / ((got > 0.5) | (want > 0.5)).sum()
        assert iou > 0.98, (at, iou)
        assert abs(got.sum() / want.sum() - 1) < 0.015, at
        assert np.abs(_centroid(got) - _centroid(want)).max() < 0.2, at
    assert levels == {0, 1, 2} and flips == {False, True}


def test_layers_are_stacked_front_over_back(big_cutout):
    flat = np.zeros((40, 40, 4), np.uint8)
    flat[..., 0], flat[..., 3] = 255, 255  # an opaque red square
    atlas = CutoutAtlas([big_cutout, flat], "cpu")
    rows = torch.tensor([[[0, 0.5, 0, 0, 64, 64], [1, 1.0, 0, 0, 64, 64], [-1, 1, 0, 0, 0, 0]]])
    fp, alpha = atlas.place(rows, 128)
    centre = fp[0, :, 64, 64]
    assert torch.allclose(centre, torch.tensor([1.0, 0.0, 0.0]), atol=1e-5)  # the square in front
    assert alpha[0, 0, 64, 64] == pytest.approx(1.0)
    nothing = torch.tensor([[[-1, 1, 0, 0, 0, 0]]], dtype=torch.float32)
    assert atlas.place(nothing, 32)[1].max() == 0


def test_atlas_levels_keep_the_cutouts_coverage(big_cutout):
    atlas = CutoutAtlas([big_cutout], "cpu")
    cover = [lvl[0, 3].float().sum().item() * 4 ** k for k, lvl in enumerate(atlas.levels)]
    assert cover[1] == pytest.approx(cover[0], rel=0.01) and cover[2] == pytest.approx(cover[0], rel=0.01)
    with pytest.raises(ValueError, match="larger than the atlas side"):
        CutoutAtlas([big_cutout], "cpu", side=256)


def test_worker_tables_index_the_atlas(library):
    cfg = _config(placement="device", p_two=1.0, max_characters=3, p_lineart=0.5, p_empty=0.0)
    maker = SampleMaker(library, cfg)
    atlas = CutoutAtlas.for_library(library, cfg, "cpu")
    assert atlas.styles == ("original", "lineart") and len(atlas) == 2 * len(library)
    ds = CompositeDataset(maker, seed=1)
    seen_lineart = 0
    for i in range(12):
        layers, effects, bg = ds[(i, 64)]
        assert layers.shape == (3, 6) and effects.shape == (12,) and bg.shape == (3, 64, 64)
        items = layers[:, 0][layers[:, 0] >= 0].long()
        assert 2 <= len(items) <= 3 and int(items.max()) < len(atlas)
        seen_lineart += int((items >= len(library)).sum())
        placed = atlas.place(layers[None], 64)[1]
        assert placed.sum() > 0
    assert seen_lineart > 0
    again = ds[(5, 64)]
    assert all(torch.equal(a, b) for a, b in zip(again, ds[(5, 64)]))
    empty = SampleMaker(library, _config(placement="device", p_empty=1.0))
    layers, _, _ = empty.make_layers(np.random.default_rng(0), 32)
    assert (layers[:, 0] == -1).all()


def test_shadows_fall_where_drawn_for_one_sample_and_for_a_batch():
    """The per-sample shadow is the batched one; it darkens the background around the
    character's silhouette moved by (dx, dy), and a row without a shadow stays as it was."""
    alpha = np.zeros((96, 96), np.float32)
    alpha[30:70, 40:60] = 1.0
    bg = np.full((96, 96, 3), 200, np.uint8)
    shadow = draw_shadow(np.random.default_rng(3), 96)
    want = cast_shadow(bg, alpha, shadow).astype(np.float32) / 255
    rows = torch.tensor([[1.0, *shadow], [0.0, *shadow]])
    got = cast_shadows(torch.full((2, 3, 96, 96), 200 / 255), torch.from_numpy(alpha)[None, None].repeat(2, 1, 1, 1),
                       rows)
    assert np.abs(got[0].permute(1, 2, 0).numpy() - want).max() < 0.03
    assert (want < 200 / 255 - 0.05).any()
    assert torch.all(got[1] == 200 / 255)  # no shadow where the row says none
    shade = 1.0 - want[..., 0] / (200 / 255)
    dx, dy = shadow[0], shadow[1]
    np.testing.assert_allclose(_centroid(shade), _centroid(alpha) + (dx, dy), atol=0.6)


def test_placement_setting_is_checked(library):
    with pytest.raises(ValueError, match="placement"):
        SampleMaker(library, _config(placement="gpu"))
    with_pairs = CutoutLibrary(library.groups, library.weights, library.cutouts, library.backgrounds,
                               [(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8))])
    with pytest.raises(DataError, match="pairs"):
        SampleMaker(with_pairs, _config(placement="device"))


def test_scenes_get_the_same_colour_jitter_on_the_device(library):
    """A scene background jittered by the worker (Pillow's placement) and by the device
    (device placement) from the same draws: the same picture, up to 8-bit rounding."""
    scenes = dict(bg_white=0, bg_light=0, bg_dark=0, bg_black=0, bg_flat=0, bg_scene=1.0, bg_hard=0,
                  scene_jitter=0.5, p_drawn=0.0, p_shadow=0.0)
    maker = SampleMaker(library, _config(**scenes))
    atlas = CutoutAtlas.for_library(library, maker.cfg, "cpu")
    for i in range(4):
        want = maker._background(np.random.default_rng([6, i]), "scene", None, None, 48).astype(np.float32)
        crop, jitter = maker._scene(np.random.default_rng([6, i]), 48)
        effects = torch.zeros(1, 12)
        effects[0, 5], effects[0, 6:] = 1.0, torch.from_numpy(jitter)
        nobody = torch.tensor([[[-1.0, 1, 0, 0, 0, 0]]])
        _, _, got = finish_batch(atlas, nobody, effects, torch.from_numpy(crop).permute(2, 0, 1)[None])
        got = got[0].permute(1, 2, 0).numpy() * 255
        assert np.abs(got - want).max() <= 1.0 + 1e-3
        assert np.abs(crop.astype(np.float32) - want).mean() > 2  # the jitter did something
