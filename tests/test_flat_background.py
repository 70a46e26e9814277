"""Flat-background clearing, on drawn figures whose true alpha is known."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from kirinuki.flat_background import (HIDDEN_MAX_PIECE, MATCH, MAX_PIECE, TOLERANCE, clear_flat_background,
                                      page_colour)
from kirinuki.inference import Matter
from kirinuki.samples import sample_paths

WHITE = (255, 255, 255)
SKIN = (240, 200, 170)
INK = (30, 20, 20)


def drawn_figure(page=WHITE, gap: bool = False, side: int = 200):
    """A figure on a flat page: a skin-coloured body with a white shirt, both closed by a
    dark outline (with a gap in the shirt's outline when ``gap``), standing on the bottom
    edge. Returns (HxWx3 uint8 picture, HxW float32 true alpha, HxW bool shirt)."""
    im = Image.new("RGB", (side, side), page)
    d = ImageDraw.Draw(im)
    d.rectangle((60, 40, 140, side - 1), fill=SKIN, outline=INK, width=3)
    d.rectangle((70, 90, 130, 170), fill=WHITE, outline=INK, width=3)  # the shirt, page-coloured
    if gap:  # open the figure's and the shirt's outlines on the left, at the same height
        d.rectangle((60, 120, 72, 126), fill=WHITE)
    rgb = np.asarray(im).copy()
    alpha = np.zeros((side, side), np.float32)
    alpha[40:, 60:141] = 1.0
    if gap:
        alpha[120:127, 60:73] = 1.0  # the opening belongs to the figure
    shirt = np.zeros((side, side), bool)
    shirt[93:168, 73:128] = True
    return rgb, alpha, shirt


def test_a_blot_on_the_page_is_cleared_and_the_page_coloured_shirt_kept():
    rgb, truth, shirt = drawn_figure()
    predicted = truth.copy()
    predicted[60:72, 30:44] = 1.0   # a blot of page kept as foreground beside the figure
    predicted[100:104, 40:58] = 0.3  # a faint haze of page
    cleared = clear_flat_background(rgb, predicted)
    np.testing.assert_array_equal(cleared, truth)
    assert (cleared[shirt] == 1.0).all()
    assert predicted[60, 30] == 1.0  # the input is not changed in place


def test_a_page_coloured_garment_open_to_the_page_is_kept():
    """The shirt's outline is open, so the page flows into it; the network calls the shirt
    foreground, and a piece that large is never cleared."""
    rgb, truth, shirt = drawn_figure(gap=True)
    assert shirt.sum() > MAX_PIECE * truth.sum()
    predicted = truth.copy()
    predicted[60:72, 30:44] = 1.0
    cleared = clear_flat_background(rgb, predicted)
    assert (cleared[shirt] == 1.0).all()
    assert (cleared[60:72, 30:44] == 0.0).all()


def test_a_page_coloured_part_cut_by_the_border_is_not_page():
    """A small white sock reaches the bottom edge inside its outline: its border pixels are of
    the page's colour, but the network calls them foreground, so they seed nothing (it is
    too small for the size guard to save it)."""
    rgb, truth, _ = drawn_figure()
    d = ImageDraw.Draw(im := Image.fromarray(rgb))
    d.rectangle((90, 186, 104, 210), fill=WHITE, outline=INK, width=2)  # open at the bottom edge
    rgb = np.asarray(im)
    sock = np.zeros_like(truth, bool)
    sock[188:, 92:103] = True
    assert sock.sum() < MAX_PIECE * truth.sum()
    predicted = truth.copy()
    predicted[sock] = 0.8
    assert (clear_flat_background(rgb, predicted)[sock] == 0.8).all()


TINT = (205, 225, 240)


def figure_with_gap(page, gap_colour=None, side: int = 200):
    """A skin-coloured figure on a flat page with a closed gap (an arm against the body)
    showing ``gap_colour`` (the page's own by default) inside a dark outline. Returns
    (picture, true alpha, HxW bool gap); the gap is background only when it shows the page."""
    im = Image.new("RGB", (side, side), page)
    d = ImageDraw.Draw(im)
    d.rectangle((60, 40, 140, side - 1), fill=SKIN, outline=INK, width=3)
    d.rectangle((85, 100, 115, 140), fill=gap_colour or page, outline=INK, width=2)
    rgb = np.asarray(im).copy()
    alpha = np.zeros((side, side), np.float32)
    alpha[40:, 60:141] = 1.0
    gap = np.zeros((side, side), bool)
    gap[102:139, 87:114] = True
    if gap_colour is None:
        alpha[gap] = 0.0
    return rgb, alpha, gap


def test_a_closed_gap_showing_a_tinted_page_is_cleared():
    """The network fills the gap between arm and body; on a tinted page its colour is the
    page's exactly, so it is page, in a lossless picture and in a JPEG."""
    rgb, truth, gap = figure_with_gap(TINT)
    predicted = truth.copy()
    predicted[gap] = 1.0
    assert gap.sum() < HIDDEN_MAX_PIECE * predicted.sum()
    np.testing.assert_array_equal(clear_flat_background(rgb, predicted), truth)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=85)
    jpeg = np.asarray(Image.open(buf).convert("RGB"))
    inside = ndimage.binary_erosion(gap, iterations=3)  # the JPEG's ringing beside the outline aside
    assert (clear_flat_background(jpeg, predicted)[inside] == 0).all()


@pytest.mark.parametrize("page", [WHITE, (0, 0, 0)])
def test_a_closed_page_coloured_piece_on_white_or_black_is_left_to_the_network(page):
    """A white or black piece inside the figure may be its shirt or its hair: kept as the
    network has it."""
    rgb, truth, gap = figure_with_gap(page)
    predicted = truth.copy()
    predicted[gap] = 1.0
    np.testing.assert_array_equal(clear_flat_background(rgb, predicted), predicted)


def test_a_drawn_colour_near_the_tinted_page_is_kept():
    """A patch within the tolerance of the page but drawn a few levels off it is the
    figure's own colour (its mean is beyond MATCH)."""
    near_tint = tuple(c - 3 for c in TINT)
    assert 3 > MATCH
    rgb, truth, gap = figure_with_gap(TINT, gap_colour=near_tint)
    np.testing.assert_array_equal(clear_flat_background(rgb, truth), truth)


def test_a_tinted_garment_open_to_the_page_is_kept_whatever_its_size():
    """A garment of the tinted page's colour, open to the page by a strip: the page reaches it,
    and a part the network calls foreground that is larger than MAX_PIECE is never cleared,
    even one smaller than HIDDEN_MAX_PIECE."""
    rgb, truth, garment = figure_with_gap(TINT, gap_colour=TINT)
    im = Image.fromarray(rgb)
    ImageDraw.Draw(im).rectangle((60, 116, 87, 121), fill=TINT)  # the strip through the outline
    rgb = np.asarray(im)
    assert MAX_PIECE * truth.sum() < garment.sum() < HIDDEN_MAX_PIECE * truth.sum()
    np.testing.assert_array_equal(clear_flat_background(rgb, truth), truth)


def test_a_large_part_of_the_tinted_page_s_colour_is_kept():
    """The shirt has the page's exact colour and is closed by its outline; it is more than
    HIDDEN_MAX_PIECE of the figure, so the size guard keeps it."""
    rgb, truth, shirt = drawn_figure(page=TINT)
    rgb = rgb.copy()
    rgb[shirt] = TINT
    assert shirt.sum() > HIDDEN_MAX_PIECE * truth.sum()
    np.testing.assert_array_equal(clear_flat_background(rgb, truth), truth)


def test_the_pixels_beside_the_page_move_towards_the_share_their_colour_shows():
    """A solid block with a one-pixel anti-aliased edge a quarter of the way from the page's
    colour to the block's: where the network calls that edge too opaque (0.8), its alpha
    moves three quarters of the way down to a quarter (0.3875); where the network calls it
    fainter, it stays; the block's inside is untouched."""
    page, solid = np.array(TINT, np.float32), np.array(INK, np.float32)
    rgb = np.empty((120, 200, 3), np.uint8)
    rgb[:] = TINT
    rgb[:, 100:160] = INK
    rgb[:, 99] = np.rint(page + 0.25 * (solid - page)).astype(np.uint8)
    predicted = np.zeros((120, 200), np.float32)
    predicted[:, 100:160] = 1.0
    predicted[:60, 99] = 0.8   # too opaque
    predicted[60:, 99] = 0.1   # fainter than the colour says
    cleared = clear_flat_background(rgb, predicted)
    np.testing.assert_allclose(cleared[:60, 99], 0.3875, atol=0.01)
    np.testing.assert_array_equal(cleared[60:, 99], np.float32(0.1))
    np.testing.assert_array_equal(cleared[:, 100:160], 1.0)
    np.testing.assert_array_equal(cleared[:, :99], 0.0)


@pytest.mark.parametrize("page", [WHITE, (0, 0, 0), (120, 170, 220)])
def test_every_flat_colour_is_a_page(page):
    rgb, truth, _ = drawn_figure(page=page)
    assert page_colour(rgb).tolist() == list(page)
    predicted = truth.copy()
    predicted[10:20, 10:20] = 0.9
    assert (clear_flat_background(rgb, predicted)[10:20, 10:20] == 0).all()


def test_a_jpeg_of_the_page_is_still_flat():
    rgb, truth, shirt = drawn_figure()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=85)
    jpeg = np.asarray(Image.open(buf).convert("RGB"))
    predicted = truth.copy()
    predicted[60:72, 30:44] = 1.0
    cleared = clear_flat_background(jpeg, predicted)
    assert (cleared[60:72, 30:44] == 0.0).all()
    assert (cleared[shirt] == 1.0).all()


def test_a_page_with_noise_within_the_tolerance_is_flat():
    rgb, truth, shirt = drawn_figure(page=(200, 200, 200))
    noise = np.random.default_rng(1).integers(-TOLERANCE // 2, TOLERANCE // 2 + 1, truth.shape + (1,))
    rgb = np.where(truth[..., None] > 0, rgb, (rgb + noise).astype(np.uint8))
    predicted = truth.copy()
    predicted[60:72, 30:44] = 1.0
    np.testing.assert_array_equal(clear_flat_background(rgb, predicted), truth)


def test_a_busy_background_is_left_alone():
    rng = np.random.default_rng(0)
    rgb, truth, _ = drawn_figure()
    scene = rng.integers(0, 256, rgb.shape, dtype=np.uint8)
    rgb = np.where(truth[..., None] > 0, rgb, scene)
    predicted = truth.copy()
    predicted[60:72, 30:44] = 1.0
    assert page_colour(rgb) is None
    assert clear_flat_background(rgb, predicted) is predicted
    # A grey page with noise well beyond the tolerance (a scan) is not flat either.
    grey = 128 + rng.integers(-4 * TOLERANCE, 4 * TOLERANCE + 1, (64, 64, 1))
    assert page_colour(np.repeat(grey, 3, axis=2).astype(np.uint8)) is None


def test_picture_and_alpha_must_agree_in_size():
    with pytest.raises(ValueError, match="differ in size"):
        clear_flat_background(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 12), np.float32))


def test_the_predictor_clears_the_page_unless_told_not_to():
    """The bundled model on the white-page sample: the page it keeps is cleared by default."""
    sample = next(p for p in sample_paths() if "white" in p.name)
    rgb = np.asarray(Image.open(sample).convert("RGB"))
    network_alone = Matter(flat_background=False, edge_matting=False).predict_alpha(rgb)
    cleared = clear_flat_background(rgb, network_alone)
    assert not np.array_equal(cleared, network_alone)
    np.testing.assert_array_equal(Matter(edge_matting=False).predict_alpha(rgb), cleared)
