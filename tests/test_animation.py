"""Animated pictures: frames, timing and loop kept, steady alpha, limits and bad files."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_background, synthetic_cutout, written
from kirinuki.animation import NEAR_MOTION, flicker, read_animation, steady_sequence
from kirinuki.inference import Matter

DURATIONS = [80, 120, 100, 60, 150, 90]


def moving_figure(path, fmt, frames=6, size=(96, 72)):
    """A drawn figure sliding over a still background; returns the frames' true alphas."""
    rng = np.random.default_rng(4)
    figure = synthetic_cutout(rng, 30, 40)
    background = synthetic_background(rng, 96).crop((0, 0) + size).convert("RGBA")
    pictures, alphas = [], []
    for k in range(frames):
        frame = background.copy()
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        layer.paste(figure, (10 + 7 * k, 20))
        frame.alpha_composite(layer)
        pictures.append(frame.convert("RGB"))
        alphas.append(np.asarray(layer.getchannel("A")).astype(np.float32) / 255)
    params = {"lossless": True} if fmt == "WEBP" else {}
    pictures[0].save(path, fmt, save_all=True, append_images=pictures[1:], duration=DURATIONS[:frames], loop=2,
                     **params)
    return alphas


def cli(*args):
    return subprocess.run([sys.executable, "-m", "kirinuki", "cutout", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def frames_of(path):
    im = Image.open(path)
    frames, durations = [], []
    for k in range(im.n_frames):
        im.seek(k)
        im.load()
        frames.append(im.convert("RGBA"))
        durations.append(int(round(float(im.info.get("duration", 0)))))
    return frames, durations, im.info.get("loop")


@pytest.mark.parametrize("name, fmt", [("sticker.png", "PNG"), ("sticker.webp", "WEBP"), ("sticker.gif", "GIF")])
def test_frames_durations_and_loop_are_kept(tmp_path, tiny_onnx, name, fmt):
    moving_figure(tmp_path / name, fmt)
    out = tmp_path / "out"
    r = cli(tmp_path / name, "-o", out, "--model", tiny_onnx, "-q")
    assert r.returncode == 0, r.stderr
    frames, durations, loop = frames_of(out / "sticker.png")
    assert Image.open(out / "sticker.png").format == "PNG" and len(frames) == 6
    assert durations == DURATIONS and loop == 2
    assert all(f.size == (96, 72) for f in frames)


def test_each_frame_matches_the_still_cutout(tmp_path, tiny_onnx):
    moving_figure(tmp_path / "a.png", "PNG")
    r = cli(tmp_path / "a.png", "-o", tmp_path / "out", "--model", tiny_onnx, "-q")
    assert r.returncode == 0, r.stderr
    frames, _, _ = frames_of(tmp_path / "out" / "a.png")
    source = read_animation(tmp_path / "a.png")
    matter = Matter(tiny_onnx)
    first = matter.predict_alpha(np.asarray(source.frames[0]))
    got = np.asarray(frames[0].getchannel("A")).astype(np.float32) / 255
    assert np.abs(got - first).max() <= 1 / 255 + 1e-6  # the first frame is the still cutout
    for k in range(1, 6):
        still = matter.predict_alpha(np.asarray(source.frames[k]))
        got = np.asarray(frames[k].getchannel("A")).astype(np.float32) / 255
        moved = np.abs(np.asarray(source.frames[k]).astype(int) - np.asarray(source.frames[k - 1])).max(axis=2) > 3
        assert np.abs(got - still)[moved].max() <= 1 / 255 + 1e-6  # motion follows its own frame
    # and the parts far from the motion hold still in what was written (frame by frame they
    # flicker: see below)
    written = [np.asarray(f.getchannel("A")).astype(np.float32) / 255 for f in frames]
    assert flicker([np.asarray(f) for f in source.frames], written, margin=NEAR_MOTION) == 0


def test_steady_alpha_removes_flicker_on_still_parts(tmp_path, tiny_onnx):
    moving_figure(tmp_path / "a.png", "PNG")
    frames = [np.asarray(f) for f in read_animation(tmp_path / "a.png").frames]
    matter = Matter(tiny_onnx)
    raw = [matter.predict_alpha(f) for f in frames]
    steady = steady_sequence(frames, raw)
    before, after = (flicker(frames, a, margin=NEAR_MOTION) for a in (raw, steady))
    assert before > 1e-5 and after < 0.1 * before


def test_a_moving_figure_leaves_no_trail_on_a_plain_page():
    """The white sample's character sliding 15 px a frame over a white page: the page it
    uncovers is the colour its white parts had there. Each frame's page pixels are as clear
    as that frame cut out alone (with the rule that kept every unchanged colour, 101 to 470
    of them kept some alpha in frames 2 to 5)."""
    from PIL import Image

    from kirinuki.samples import sample_paths, true_alpha_path

    white = next(p for p in sample_paths() if "white" in p.name)
    figure = Image.open(white).convert("RGBA")
    figure.putalpha(Image.open(true_alpha_path(white)).convert("L"))
    figure = figure.resize((167, 350), Image.Resampling.LANCZOS)
    frames, pages = [], []
    for k in range(6):
        page = Image.new("RGBA", (260, 350), "white")
        layer = Image.new("RGBA", page.size, (0, 0, 0, 0))
        layer.paste(figure, (15 * k, 0))
        page.alpha_composite(layer)
        frames.append(np.asarray(page.convert("RGB")))
        pages.append(np.asarray(layer.getchannel("A")) == 0)
    matter = Matter()
    alone = [matter.predict_alpha(f) for f in frames]
    steady = steady_sequence(frames, alone)
    for k in range(1, 6):
        left_of_figure = pages[k].copy()
        left_of_figure[:, 15 * k:] = False
        assert np.count_nonzero(alone[k][left_of_figure]) == 0
        assert np.count_nonzero(steady[k][left_of_figure]) == 0, k


def test_gif_and_mask_outputs(tmp_path, tiny_onnx):
    moving_figure(tmp_path / "a.png", "PNG")
    r = cli(tmp_path / "a.png", "-o", tmp_path / "gif", "--model", tiny_onnx, "--format", "gif", "-q")
    assert r.returncode == 0, r.stderr
    frames, durations, loop = frames_of(tmp_path / "gif" / "a.gif")
    assert len(frames) == 6 and durations == DURATIONS and loop == 2
    assert set(np.unique(np.asarray(frames[2].getchannel("A")))) <= {0, 255}  # one bit of transparency
    r = cli(tmp_path / "a.png", "-o", tmp_path / "mask", "--model", tiny_onnx, "--mask", "-q")
    assert r.returncode == 0, r.stderr
    mask = Image.open(tmp_path / "mask" / "a.png")
    assert mask.n_frames == 6 and mask.mode == "L"


def test_limits_and_truncated_animations_fail_one_line_each(tmp_path, tiny_onnx):
    moving_figure(tmp_path / "six.png", "PNG")
    data = (tmp_path / "six.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) * 2 // 3])
    good = tmp_path / "still.png"
    Image.new("RGB", (40, 30), "white").save(good)
    out = tmp_path / "out"
    r = cli(tmp_path / "cut.png", good, "-o", out, "--model", tiny_onnx)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("kirinuki: error:")]
    assert len(errors) == 1 and f"{tmp_path / 'cut.png'}: truncated or corrupt animation" in errors[0]
    assert written(out) == ["still.png"]  # nothing half-written, the batch went on
    r = cli(tmp_path / "six.png", "-o", tmp_path / "o1", "--model", tiny_onnx, "--max-frames", "5")
    assert r.returncode == 1
    assert f"kirinuki: error: {tmp_path / 'six.png'}: 6 frames, over the limit of 5 (--max-frames)" in r.stderr
    r = cli(tmp_path / "six.png", "-o", tmp_path / "o2", "--model", tiny_onnx, "--max-pixels", "0.04")
    assert r.returncode == 1
    assert "6 frames of 96x72 are 0.0415 MP in all, over the limit of 0.04 MP (--max-pixels)" in r.stderr
    assert written(tmp_path / "o1") == []
