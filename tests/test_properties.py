"""Property-based tests (Hypothesis) of what a person types or clicks: every text an option
takes ends as a value or as a one-line reason, and clicks keep their meaning whatever they are."""

import argparse

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirinuki import cli
from kirinuki.inference import check_points
from kirinuki.pipeline import parse_colour
from kirinuki.regions import MAX_POINTS, apply_edits, parse_edits, parse_points

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=60) | st.from_regex(
    r"[-+ ]?\d{0,6}\s?[,;:]?\s?-?\d{0,6}(;\s?(keep|drop|x)?:?\d{0,4},\d{0,4}){0,40}", fullmatch=True)


def one_line(exc: BaseException) -> bool:
    return bool(str(exc)) and "\n" not in str(exc) and "Traceback" not in str(exc)


def valid_points(points) -> bool:
    return len(points) <= MAX_POINTS and all(isinstance(v, int) for p in points for v in p)


def valid_edits(edits) -> bool:
    return len(edits) <= MAX_POINTS and all(mode in ("keep", "drop") for mode, _, _ in edits)


def valid_colour(rgb) -> bool:
    return len(rgb) == 3 and all(0 <= v <= 255 for v in rgb)


@pytest.mark.parametrize("parse, valid", [(parse_points, valid_points), (parse_edits, valid_edits),
                                          (parse_colour, valid_colour)], ids=["points", "edits", "colour"])
@given(text=TEXT | st.sampled_from(["white", "#102030", "#fff", "tomato", "#GGHHII", "rgb(1,2,3)", "keep:1,2"]))
def test_typed_values_parse_or_say_why_in_one_line(parse, valid, text):
    try:
        value = parse(text)
    except ValueError as exc:
        assert one_line(exc)
        return
    assert valid(value)


@pytest.mark.parametrize("parse", [cli._work_size, cli._positive_int, cli._megapixels, cli._trim_margin, cli._port])
@given(text=TEXT | st.integers(-10**12, 10**12).map(str) | st.floats(allow_nan=True).map(str))
def test_option_values_parse_or_say_why_in_one_line(parse, text):
    try:
        parse(text)
    except argparse.ArgumentTypeError as exc:
        assert one_line(exc)


@given(st.lists(st.tuples(st.integers(-5, 70), st.integers(-5, 50)), max_size=40))
def test_points_outside_the_picture_or_too_many_are_refused(points):
    inside = all(0 <= x < 60 and 0 <= y < 40 for x, y in points) and len(points) <= MAX_POINTS
    try:
        check_points(points, 60, 40)
    except ValueError as exc:
        assert not inside and one_line(exc)
        return
    assert inside


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1),
       clicks=st.lists(st.tuples(st.sampled_from(["keep", "drop"]), st.integers(0, 47), st.integers(0, 31)),
                       min_size=1, max_size=6))
def test_the_last_click_decides_its_own_pixel_and_alpha_stays_in_range(seed, clicks):
    rng = np.random.default_rng(seed)
    image = np.repeat(np.repeat(rng.random((4, 6, 3), dtype=np.float32), 8, 0), 8, 1)  # 32x48 in blocks
    alpha = rng.random((32, 48), dtype=np.float32)
    out, marks = apply_edits(alpha, image, clicks)
    assert out.shape == alpha.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    mode, x, y = clicks[-1]
    assert out[y, x] == (1.0 if mode == "keep" else 0.0)
    untouched = np.isnan(marks)
    np.testing.assert_array_equal(out[untouched], alpha[untouched])
