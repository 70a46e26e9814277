"""Video in, video with alpha out: WebM VP9 and ProRes 4444 with alpha, PNG frames, audio,
limits and a truncated file."""

import subprocess
from pathlib import Path
import sys

import numpy as np
from PIL import Image

from kirinuki.samples import moving_figure

import av  # noqa: E402  (the video extra, which make setup installs)
from conftest import written

FRAMES = 8


def clip(path, audio_codec=None, frames=FRAMES, size=(256, 192)):
    """The white sample's character sliding over the meadow sample's sky and trees, 12 fps,
    optionally with a tone."""
    out = av.open(str(path), "w")
    vs = out.add_stream("libvpx-vp9" if path.suffix == ".webm" else "mpeg4", rate=12)
    vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
    astream = None
    if audio_codec:
        astream = out.add_stream(audio_codec, rate=48000)
    for rgb, _ in moving_figure(size, 180, frames):
        for p in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            out.mux(p)
    for p in vs.encode():
        out.mux(p)
    if astream is not None:
        t = np.arange(int(48000 * frames / 12)) / 48000
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        aframe = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        aframe.sample_rate = 48000
        for p in astream.encode(aframe):
            out.mux(p)
        for p in astream.encode():
            out.mux(p)
    out.close()
    return path


def cli(*args):
    return subprocess.run([sys.executable, "-m", "kirinuki", "cutout", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def decoded(path, codec=None):
    """Frames as RGBA arrays (the libvpx decoder reads VP9's alpha), and the stream types."""
    container = av.open(str(path))
    vs = container.streams.video[0]
    kinds = sorted(s.type for s in container.streams)
    decoder = av.codec.CodecContext.create(codec, "r") if codec else None
    frames = []
    for packet in container.demux(vs):
        for frame in (decoder.decode(packet) if decoder else packet.decode()):
            frames.append(frame.to_ndarray(format="rgba"))
    container.close()
    return frames, kinds


def test_a_clip_comes_out_as_webm_with_alpha_and_its_audio(tmp_path):
    """With the bundled model: the WebM's alpha channel is the frames' alpha (as the lossless
    PNG frames hold it, up to VP9's loss), and the Opus audio is copied."""
    src = clip(tmp_path / "clip.webm", audio_codec="libopus")
    r = cli(src, "-o", tmp_path / "out", "-q")
    assert r.returncode == 0, r.stderr
    frames, kinds = decoded(tmp_path / "out" / "clip.webm", codec="libvpx-vp9")
    assert len(frames) == FRAMES and kinds == ["audio", "video"]
    r = cli(src, "-o", tmp_path / "png", "--format", "png", "-q")
    assert r.returncode == 0, r.stderr
    pngs = sorted((tmp_path / "png" / "clip").glob("*.png"))
    for frame, png in zip(frames, pngs):
        truth = np.asarray(Image.open(png).getchannel("A")).astype(int)
        assert truth.min() < 50 and truth.max() > 200  # a real cutout, not a flat alpha
        assert np.abs(frame[..., 3].astype(int) - truth).mean() < 6


def test_prores_4444_and_png_frames(tmp_path, tiny_onnx):
    src = clip(tmp_path / "clip.mp4")
    r = cli(src, "-o", tmp_path / "mov", "--model", tiny_onnx, "--format", "mov", "-q")
    assert r.returncode == 0, r.stderr
    container = av.open(str(tmp_path / "mov" / "clip.mov"))
    stream = container.streams.video[0]
    assert stream.codec_context.name == "prores" and "yuva444" in stream.codec_context.pix_fmt
    container.close()
    r = cli(src, "-o", tmp_path / "png", "--model", tiny_onnx, "--format", "png", "-q")
    assert r.returncode == 0, r.stderr
    pngs = sorted((tmp_path / "png" / "clip").glob("*.png"))
    assert len(pngs) == FRAMES and Image.open(pngs[0]).mode == "RGBA"
    mov_frames, _ = decoded(tmp_path / "mov" / "clip.mov")
    for k in (0, FRAMES - 1):  # the same alpha, up to ProRes's 10-bit round trip
        png_alpha = np.asarray(Image.open(pngs[k]).getchannel("A")).astype(int)
        assert np.abs(mov_frames[k][..., 3].astype(int) - png_alpha).max() <= 2


def test_bad_videos_are_one_line_and_nothing_is_half_written(tmp_path, tiny_onnx):
    src = clip(tmp_path / "clip.mp4")
    data = src.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "notes.mp4").write_text("not a video")
    out = tmp_path / "out"
    r = cli(tmp_path / "cut.mp4", tmp_path / "notes.mp4", "-o", out, "--model", tiny_onnx)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("kirinuki: error:")]
    assert len(errors) == 2, r.stderr
    assert written(out) == [], written(out)
    r = cli(src, "-o", tmp_path / "o2", "--model", tiny_onnx, "--max-frames", "4")
    assert r.returncode == 1 and "over the limit of 4 (--max-frames)" in r.stderr


def test_frames_too_tall_for_vp9_are_refused_for_webm_and_cut_for_png(tmp_path, tiny_onnx):
    """A 24x57368 WebM (a fuzzing find): encoding it as VP9 took 2.2 GB; WebM output is refused
    in one line naming the formats that can hold it, and PNG frames are cut out."""
    src = tmp_path / "tall.webm"
    src.write_bytes((Path(__file__).parent / "fuzz_regressions" / "webm-frame-too-tall-for-vp9").read_bytes()[1:])
    r = cli(src, "-o", tmp_path / "webm", "--model", tiny_onnx, "--format", "webm")
    assert r.returncode == 1 and "frames of 24x57368: WebM (VP9) takes at most 16384 pixels a side" in r.stderr
    assert written(tmp_path / "webm") == []
    r = cli(src, "-o", tmp_path / "png", "--model", tiny_onnx, "--format", "png", "-q")
    assert r.returncode == 0, r.stderr
    assert Image.open(next((tmp_path / "png" / "tall").glob("*.png"))).size == (24, 57368)


def test_without_pyav_a_video_is_one_line_naming_the_extra(tmp_path, tiny_onnx):
    src = clip(tmp_path / "clip.mp4")
    fake = tmp_path / "no-av" / "av"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'av'\", name='av')\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(fake.parent)}
    r = subprocess.run([sys.executable, "-m", "kirinuki", "cutout", str(src), "-o", str(tmp_path / "out"),
                        "--model", str(tiny_onnx)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1
    assert f"kirinuki: error: {src}: video needs the 'video' extra: pip install 'kirinuki[video]'" in r.stderr
    assert "Traceback" not in r.stderr
