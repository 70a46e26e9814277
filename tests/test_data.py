import io

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import synthetic_background
from kirinuki.errors import DataError
from kirinuki.imaging import binary_dilate
from kirinuki.backgrounds import PAPER_MIX, flat_colour, paper_colour
from kirinuki.config import DataConfig, load_config
from kirinuki.cutouts import CutoutLibrary
from kirinuki.data import CompositeDataset, SampleMaker, StepBatchSampler
from kirinuki.degradations import compose_batch, jpeg_simulate
from kirinuki.styles import redraw_cutout


@pytest.fixture(scope="module")
def library(tiny_data):
    cfg = DataConfig(groups={"train/a": 3.0, "train/b": 1.0}, cache_side=128)
    return CutoutLibrary.load(tiny_data, cfg)


def rich_config(**kw) -> DataConfig:
    base = load_config("default").data
    return DataConfig(**{**base.__dict__, "groups": {"train/a": 3.0, "train/b": 1.0}, "cache_side": 128, **kw})


def test_library_loads_groups_and_backgrounds(library):
    assert library.groups == ["train/a", "train/b"]
    assert [len(c) for c in library.cutouts] == [6, 3]
    assert len(library.backgrounds) == 3
    np.testing.assert_allclose(library.weights, [0.75, 0.25])


def test_missing_group_is_a_clear_error(tiny_data):
    with pytest.raises(DataError, match="nope"):
        CutoutLibrary.load(tiny_data, DataConfig(groups={"nope": 1.0}))


def test_samples_are_deterministic_per_index(library):
    ds = CompositeDataset(SampleMaker(library, rich_config()), seed=3)
    a, b, c = ds[(5, 64)], ds[(5, 64)], ds[(6, 64)]
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_sample_layer_is_premultiplied_and_consistent(library):
    maker = SampleMaker(library, rich_config(p_empty=0.0))
    for i in range(20):
        fp, alpha, bg = maker.make(np.random.default_rng([0, i]), 72)
        assert fp.shape == (72, 72, 3) and alpha.shape == (72, 72) and bg.shape == (72, 72, 3)
        # premultiplied colour never exceeds alpha (up to 8-bit rounding)
        assert np.all(fp.astype(int) <= alpha.astype(int)[..., None] + 1)


def test_empty_images_have_zero_alpha(library):
    maker = SampleMaker(library, rich_config(p_empty=1.0))
    fp, alpha, _ = maker.make(np.random.default_rng(0), 64)
    assert alpha.max() == 0 and fp.max() == 0


def test_paper_mix_proportions():
    rng = np.random.default_rng(0)
    kinds = [paper_colour(rng)[0] for _ in range(4000)]
    for kind, p in PAPER_MIX.items():
        assert abs(kinds.count(kind) / 4000 - p) < 0.03
    light = np.array([flat_colour("light", rng) for _ in range(200)])
    dark = np.array([flat_colour("dark", rng) for _ in range(200)])
    assert light.min() >= 192 and dark.max() <= 63


def test_hard_negative_background_uses_the_characters_colours(library):
    cfg = rich_config(bg_white=0, bg_light=0, bg_dark=0, bg_black=0, bg_scene=0, bg_hard=1.0,
                      p_empty=0.0, p_two=0.0)
    maker = SampleMaker(library, cfg)
    hits = 0
    for i in range(10):
        fp, alpha, bg = maker.make(np.random.default_rng([1, i]), 64)
        opaque = fp[alpha > 250].astype(int)
        corner = bg[0, 0].astype(int)
        if len(opaque) and np.abs(opaque - corner).max(axis=1).min() <= 2:
            hits += 1
    assert hits >= 5


def test_compose_batch_is_the_compositing_equation(library):
    cfg = DataConfig()  # no degradations
    maker = SampleMaker(library, rich_config())
    items = [CompositeDataset(maker, 0)[(i, 48)] for i in range(4)]
    fp, alpha, bg = (torch.stack(t) for t in zip(*items))
    x, a = compose_batch(fp, alpha, bg, cfg, torch.Generator().manual_seed(0))
    expected = fp.float() / 255 + (1 - alpha.float() / 255) * bg.float() / 255
    torch.testing.assert_close(x, expected.clamp(0, 1))
    torch.testing.assert_close(a, alpha.float() / 255)


def test_degradations_change_the_image_not_the_target(library):
    cfg = rich_config(p_jpeg=1.0, p_blur=1.0, p_rescale=1.0, p_noise=1.0)
    maker = SampleMaker(library, cfg)
    items = [CompositeDataset(maker, 0)[(i, 48)] for i in range(4)]
    fp, alpha, bg = (torch.stack(t) for t in zip(*items))
    clean, _ = compose_batch(fp, alpha, bg, DataConfig(), torch.Generator().manual_seed(0))
    x, a = compose_batch(fp, alpha, bg, cfg, torch.Generator().manual_seed(0))
    assert (x - clean).abs().mean() > 0.005
    torch.testing.assert_close(a, alpha.float() / 255)


@pytest.mark.parametrize("quality", [30, 85, 95])
def test_jpeg_simulation_matches_a_real_codec(quality, rng):
    img = np.array(Image.open(io.BytesIO(_smooth_picture(rng))).convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    real = np.asarray(Image.open(buf).convert("RGB")).astype(np.float32) / 255
    sim = jpeg_simulate(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255,
                        torch.tensor([float(quality)]))[0].permute(1, 2, 0).numpy()
    orig = img.astype(np.float32) / 255
    psnr = lambda a, b: 10 * np.log10(1 / np.mean((a - b) ** 2))
    assert psnr(sim, real) > 38  # close to the real codec's output ...
    assert psnr(sim, real) > psnr(orig, real) + 3  # ... much closer than the uncompressed picture


def _smooth_picture(rng) -> bytes:
    y, x = np.mgrid[0:75, 0:101] / 50
    img = 127 + 100 * np.sin(3 * x[..., None] + rng.uniform(0, 6, 3)) * np.cos(2 * y[..., None])
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def test_step_sampler_splits_a_global_batch_across_processes():
    def first_steps(rank, world, micro, n):
        it = iter(StepBatchSampler(0, batch=8, micro=micro, rank=rank, world=world, sizes=[64, 96], seed=1))
        return [next(it) for _ in range(n)]
    single = first_steps(0, 1, 8, 2)  # two steps, one micro-batch each
    two = [first_steps(r, 2, 4, 2) for r in range(2)]  # per rank: two steps of one micro-batch
    accum = first_steps(0, 1, 2, 8)  # gradient accumulation: four micro-batches a step
    idx = lambda batches: sorted(i for b in batches for i, _ in b)
    assert idx(single) == list(range(16))
    assert idx(two[0] + two[1]) == list(range(16))
    assert idx(accum) == list(range(16))
    assert not set(idx(two[0])) & set(idx(two[1]))
    # every process agrees on the canvas size of a step
    assert {s for _, s in two[0][0]} == {s for _, s in two[1][0]} == {s for _, s in single[0]}
    with pytest.raises(ValueError):
        StepBatchSampler(0, batch=8, micro=3, rank=0, world=1, sizes=[64], seed=0)


# -- synthesis aimed at the failures -------------------------------------------------------

def _opaque_straight_colours(cut: np.ndarray) -> np.ndarray:
    a = cut[..., 3]
    return (cut[a == 255][:, :3]).astype(int)


def test_line_art_and_flat_colour_keep_the_alpha(library):
    cut = library.cutouts[0][0]
    rng = np.random.default_rng(0)
    line = redraw_cutout(cut, "lineart", rng)
    flat = redraw_cutout(cut, "flat", rng)
    np.testing.assert_array_equal(line[..., 3], cut[..., 3])
    np.testing.assert_array_equal(flat[..., 3], cut[..., 3])
    ink = _opaque_straight_colours(line)
    greys = np.unique(ink, axis=0)
    assert len(greys) == 2 and (greys[-1] == 255).all() and greys[0].max() < 60  # ink and paper
    assert 0.02 < np.mean(ink[:, 0] < 128) < 0.6  # lines, not a filled silhouette
    assert len(np.unique(_opaque_straight_colours(flat), axis=0)) <= 8
    assert len(np.unique(_opaque_straight_colours(cut), axis=0)) > 8


def backgrounds_with_and_without(library, base: DataConfig, switch: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(background without, background with) of six samples drawn alike by a maker of
    ``base`` and one with ``switch`` on; their alpha and colour layer must be the same."""
    plain, added = SampleMaker(library, base), SampleMaker(library, DataConfig(**{**base.__dict__, switch: 1.0}))
    pairs = []
    for i in range(6):
        fp0, a0, bg0 = plain.make(np.random.default_rng([2, i]), 96)
        fp1, a1, bg1 = added.make(np.random.default_rng([2, i]), 96)
        np.testing.assert_array_equal(a0, a1)
        np.testing.assert_array_equal(fp0, fp1)
        pairs.append((bg0, bg1))
    return pairs


@pytest.mark.parametrize("switch", ["p_shadow", "p_drawn", "p_pattern", "p_backdrop"])
def test_background_additions_never_touch_the_target(library, switch):
    """A shadow, drawn shapes, a pattern or a painted-in character change the background
    only: alpha and colour layer stay."""
    base = rich_config(p_empty=0.0, p_two=0.0, bg_white=1, bg_light=0, bg_dark=0, bg_black=0,
                       bg_flat=0, bg_scene=0, bg_hard=0)
    pairs = backgrounds_with_and_without(library, base, switch)
    assert all(np.mean(np.any(bg0 != bg1, axis=2)) > 0.01 for bg0, bg1 in pairs)
    if switch == "p_shadow":
        assert all((bg1 <= bg0).all() for bg0, bg1 in pairs)  # a shadow only darkens


def test_a_backdrop_character_is_a_close_up_the_frame_cuts(library):
    """The painted-in character covers a good part of the background and runs off its edge,
    as title screens' characters do."""
    cfg = rich_config(p_backdrop=1.0)
    maker = SampleMaker(library, cfg)
    white = np.full((96, 96, 3), 255, np.uint8)
    for i in range(8):
        painted = np.any(maker._paint_over(np.random.default_rng([9, i]), white) != white, axis=2)
        assert painted.mean() > 0.05
        assert painted[0].any() or painted[-1].any() or painted[:, 0].any() or painted[:, -1].any()
    again = lambda: maker._paint_over(np.random.default_rng([9, 0]), white)
    np.testing.assert_array_equal(again(), again())


def test_a_backdrop_character_can_be_placed_as_the_composited_ones(library):
    """With ``backdrop_cutoff`` 0 the painted-in character is drawn where the same draw would
    put a composited one: no close-up, so at zoom <= 1 near the centre the frame does not cut
    it, and it covers about as much as a composited character does."""
    cfg = rich_config(p_backdrop=1.0, backdrop_cutoff=0.0, p_cutoff=0.5, zoom=(0.5, 0.7), shift=0.05,
                      rotation=0.0, p_stand=0.0)
    maker = SampleMaker(library, cfg)
    white = np.full((96, 96, 3), 255, np.uint8)
    for i in range(8):
        painted = np.any(maker._paint_over(np.random.default_rng([9, i]), white) != white, axis=2)
        assert 0.02 < painted.mean() < 0.6
        assert not (painted[0].any() or painted[-1].any() or painted[:, 0].any() or painted[:, -1].any())


def test_patterns_repeat_across_the_picture():
    from kirinuki.styles import paint_pattern

    flat = np.full((128, 128, 3), 200, np.uint8)
    for i in range(12):
        out = paint_pattern(flat, np.random.default_rng([6, i]))
        painted = np.any(out != flat, axis=2)
        assert 0.03 < painted.mean() < 0.95
        inside = painted.astype(np.int8)
        crossings = max(np.abs(np.diff(inside, axis=0)).sum(axis=0).max(), np.abs(np.diff(inside, axis=1)).sum(axis=1).max())
        assert crossings >= 4  # dots, stripes or checks repeat: one shape is crossed twice at most
    again = paint_pattern(flat, np.random.default_rng([6, 0]))
    np.testing.assert_array_equal(again, paint_pattern(flat, np.random.default_rng([6, 0])))


def test_grey_backgrounds_and_hard_negatives_pushed_to_white_or_black(library):
    grey = SampleMaker(library, rich_config(bg_white=0, bg_light=0, bg_dark=0, bg_black=0, bg_flat=0,
                                            bg_scene=0, bg_hard=0, bg_grey=1.0))
    for i in range(5):
        _, _, bg = grey.make(np.random.default_rng([3, i]), 32)
        assert len(np.unique(bg)) == 1
    hard = dict(bg_white=0, bg_light=0, bg_dark=0, bg_black=0, bg_flat=0, bg_scene=0, bg_hard=1.0,
                p_empty=0.0, p_two=0.0)
    plain = SampleMaker(library, rich_config(**hard))
    pushed = SampleMaker(library, rich_config(**hard, hard_push=0.9))
    moved = 0
    for i in range(12):
        bg0 = plain.make(np.random.default_rng([4, i]), 32)[2][0, 0].astype(int)
        bg1 = pushed.make(np.random.default_rng([4, i]), 32)[2][0, 0].astype(int)
        d = bg1 - bg0
        assert (d >= -1).all() or (d <= 1).all()  # towards white, or towards black
        moved += np.abs(d).max() > 2
    assert moved >= 6


def test_up_to_four_characters(library):
    def coverage(max_characters: int) -> float:
        maker = SampleMaker(library, rich_config(p_empty=0.0, p_two=1.0, max_characters=max_characters,
                                                 zoom=(0.3, 0.5), p_cutoff=0.0))
        return float(np.mean([maker.make(np.random.default_rng([5, i]), 64)[1].mean() for i in range(30)]))
    assert coverage(4) > 1.3 * coverage(2)


# -- synthesis aimed at the scene failures ---------------------------------------------------

def _figure_on(size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A placed figure (fp SxSx3, alpha SxS, float): yellow hair on top, a pale shirt, dark
    navy trousers below."""
    alpha = np.zeros((size, size), np.float32)
    colour = np.zeros((size, size, 3), np.float32)
    alpha[20:90, 36:60] = 1.0
    colour[20:40, 36:60] = (0.95, 0.85, 0.2)
    colour[40:60, 36:60] = (0.9, 0.9, 0.95)
    colour[60:90, 36:60] = (0.1, 0.1, 0.25)
    return colour * alpha[..., None], alpha


def _shirt_cutout() -> np.ndarray:
    """A premultiplied cutout: a skin-coloured head over a light-blue shirt crossed by an ink
    line and outlined in ink, the shirt 60 x 50 pixels."""
    rgba = np.zeros((120, 80, 4), np.uint8)
    rgba[5:35, 25:55] = (240, 200, 180, 255)
    rgba[40:110, 10:70] = (20, 20, 20, 255)           # the outline ...
    rgba[43:107, 13:67] = (150, 190, 240, 255)        # ... round the shirt
    rgba[74:76, 13:67] = (20, 20, 20, 255)            # and a seam across it
    return rgba  # opaque everywhere it is drawn: premultiplied equals straight


def test_clothing_texture_fills_regions_inside_the_outline_and_keeps_the_line_art():
    from kirinuki.styles import texture_regions

    cut = _shirt_cutout()
    source = np.asarray(synthetic_background(np.random.default_rng(1)))
    ink = (cut[..., 3] == 255) & (cut[..., 0] == 20)
    shirt = (cut[..., 3] == 255) & (cut[..., 2] == 240)
    filled = 0
    for i in range(8):
        out = texture_regions(cut, source, np.random.default_rng([3, i]))
        np.testing.assert_array_equal(out[..., 3], cut[..., 3])
        changed = np.any(out != cut, axis=2)
        assert not changed[cut[..., 3] == 0].any()        # nothing outside the figure
        np.testing.assert_array_equal(out[ink], cut[ink])  # the line art stays
        assert not changed[:40].any()                      # the head is not clothing
        filled += changed[shirt].mean() > 0.3
        if changed.any():
            assert len(np.unique(out[changed], axis=0)) > 8  # a texture, not a flat fill
    assert filled >= 6
    again = lambda: texture_regions(cut, source, np.random.default_rng([3, 0]))
    np.testing.assert_array_equal(again(), again())


def test_own_colour_scenery_sits_behind_the_figure_in_its_colours():
    from kirinuki.scenery import own_colour_scenery

    fp, alpha = _figure_on()
    figure = alpha > 0
    beside = binary_dilate(figure, 2) & ~figure
    grey = np.full((96, 96, 3), 128, np.uint8)
    own = [(242, 217, 51), (230, 230, 242), (26, 26, 64)]
    for i in range(10):
        out = own_colour_scenery(grey, fp, alpha, np.random.default_rng([4, i]))
        shown = (np.abs(out.astype(int) - grey).max(axis=2) > 40) & ~figure
        assert shown.mean() > 0.01
        assert (shown & beside).any()  # it reaches the outline
        colour = np.median(out[shown], axis=0)
        assert min(np.abs(colour - np.array(c)).max() for c in own) < 25


def test_props_touch_the_outline_of_the_head_or_shoulders():
    from kirinuki.scenery import prop_against_outline

    _, alpha = _figure_on()
    grey = np.full((96, 96, 3), 128, np.uint8)
    figure = alpha > 0.5
    grown = binary_dilate(figure, 4)
    for i in range(12):
        out = prop_against_outline(grey, alpha, None, np.random.default_rng([5, i]))
        prop = np.any(out != grey, axis=2) & ~figure
        assert prop.mean() > 0.002
        touching = prop & grown
        assert touching.any()  # within 4 pixels of the outline ...
        assert np.nonzero(touching)[0].min() < 20 + 0.4 * 70  # ... at the head or the shoulders


@pytest.mark.parametrize("switch", ["p_own_colour_scenery", "p_props"])
def test_scenery_and_props_change_scene_backgrounds_only(library, switch):
    base = rich_config(p_empty=0.0, p_two=0.0, bg_white=0, bg_light=0, bg_dark=0, bg_black=0, bg_flat=0,
                       bg_scene=1.0, bg_hard=0, p_cutoff=0.0, zoom=(0.6, 0.9))
    pairs = backgrounds_with_and_without(library, base, switch)
    assert sum(np.mean(np.any(bg0 != bg1, axis=2)) > 0.002 for bg0, bg1 in pairs) >= 4
    white = SampleMaker(library, DataConfig(**{**base.__dict__, switch: 1.0, "bg_scene": 0.0, "bg_white": 1.0}))
    for i in range(3):
        assert (white.make(np.random.default_rng([2, i]), 96)[2] == 255).all()  # plain pages stay plain


def test_the_sample_maker_textures_the_clothes_it_draws(library):
    shirts = CutoutLibrary(groups=["g"], weights=np.array([1.0]), cutouts=[[_shirt_cutout()]],
                           backgrounds=library.backgrounds, pairs=[])
    maker = SampleMaker(shirts, rich_config(p_clothing_texture=1.0, p_lineart=0.0, p_flatcolour=0.0))
    textured = 0
    for i in range(8):
        cut = maker._pick_cutout(np.random.default_rng([7, i]))
        np.testing.assert_array_equal(cut[..., 3], _shirt_cutout()[..., 3])
        textured += np.any(cut != _shirt_cutout())
    assert textured >= 6


def test_clothing_texture_needs_the_placement_on_the_cpu(library):
    with pytest.raises(DataError, match="p_clothing_texture.*placement"):
        SampleMaker(library, rich_config(p_clothing_texture=0.5, placement="device"))


@pytest.mark.parametrize("switch", ["p_own_colour_scenery", "p_props"])
def test_scenery_and_props_with_the_placement_on_the_device(library, switch):
    """With device placement the pieces are drawn against the first character, placed here
    for them: the characters stay where they were, and the background changes right beside
    the place the layer table gives the character."""
    from kirinuki.data import Placement, place_cutout

    base = rich_config(p_empty=0.0, p_two=0.0, bg_white=0, bg_light=0, bg_dark=0, bg_black=0, bg_flat=0,
                       bg_scene=1.0, bg_hard=0, p_cutoff=0.0, zoom=(0.6, 0.9), placement="device")
    plain, added = SampleMaker(library, base), SampleMaker(library, DataConfig(**{**base.__dict__, switch: 1.0}))
    cutouts = library.all_cutouts()
    changed = 0
    for i in range(6):
        layers0, _, bg0 = plain.make_layers(np.random.default_rng([2, i]), 96)
        layers1, _, bg1 = added.make_layers(np.random.default_rng([2, i]), 96)
        np.testing.assert_array_equal(layers0, layers1)
        painted = np.any(bg0 != bg1, axis=2)
        if painted.mean() <= 0.002:
            continue
        changed += 1
        item, scale, flip, angle, cx, cy = layers1[0]
        _, alpha = place_cutout(cutouts[int(item) % len(cutouts)], Placement(scale, bool(flip), angle, cx, cy), 96)
        assert (painted & binary_dilate(alpha > 0.5, 4) & ~(alpha > 0.5)).any()  # it meets the figure's outline
    assert changed >= 4


def test_clothing_texture_without_backgrounds_uses_patterns():
    from kirinuki.styles import texture_regions

    cut = _shirt_cutout()
    out = [texture_regions(cut, None, np.random.default_rng([8, i])) for i in range(4)]
    assert sum(np.any(o != cut) for o in out) >= 3
