import json
import subprocess
import sys

import pytest
import torch

from conftest import TINY_KIRINET
from kirinuki.checkpoint import save_checkpoint
from kirinuki.cli import main
from kirinuki.models import create_model


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kirinuki", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("kirinet", **TINY_KIRINET)
    path = tmp_path_factory.mktemp("cli") / "tiny.pt"
    save_checkpoint({"name": "tiny", "arch": "kirinet", "arch_args": model.config, "work_size": 64,
                     "step": 0, "model": model.state_dict()}, path)
    return path


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("kirinuki ")
    assert "default model" in out.stdout


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate"])
    assert exc.value.code == 2


def test_train_then_evaluate_then_export(tiny_data, tmp_path, checkpoint):
    out = run_cli("train", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--steps", "2", "-q",
                  "--set", "sizes=[64]", "--set", "batch=2", "--set", "workers=0",
                  "--set", "model.args={widths=[8,16], blocks=[1,1], head=4}",
                  "--set", 'data.groups={"train/a"=1.0}', "--set", "model.work_size=64")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "run" / "last.pt").exists()
    ev = run_cli("evaluate", "--model", str(tmp_path / "run" / "last.pt"), "--data", str(tiny_data / "val"),
                 "--backgrounds", str(tiny_data / "backgrounds"), "--sizes", "48", "native",
                 "--out", str(tmp_path / "eval"))
    assert ev.returncode == 0, ev.stderr
    assert "| 48 | paper |" in ev.stdout and "| native | scene |" in ev.stdout
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["rows"]
    ex = run_cli("export", "--checkpoint", str(checkpoint), "--onnx", str(tmp_path / "m.onnx"))
    assert ex.returncode == 0, ex.stderr
    assert "max |difference|" in ex.stdout and (tmp_path / "m.onnx").exists()


def test_errors_are_one_line_with_the_path(tmp_path):
    out = run_cli("evaluate", "--model", str(tmp_path / "missing.onnx"), "--data", str(tmp_path))
    assert out.returncode == 2  # a model the person named that cannot be used: a usage error
    assert out.stderr.strip().count("\n") == 0
    assert out.stderr.startswith("kirinuki: error: ") and "missing.onnx" in out.stderr


@pytest.mark.parametrize("value", ["abc", "0", "-5", "12.5"])
def test_a_bad_work_size_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cutout", "x.jpg", "-o", "out", "--work-size", value])
    assert exc.value.code == 2
    assert "--work-size" in capsys.readouterr().err


def test_one_work_size_parser_for_cli_config_and_predictor(tiny_onnx):
    from kirinuki.config import ModelConfig, load_config, parse_override, parse_work_size
    from kirinuki.inference import Matter

    assert parse_work_size("native") is None and parse_work_size(" 384 ") == 384 and parse_work_size(512) == 512
    with pytest.raises(ValueError, match="too small"):
        ModelConfig(work_size=0)
    with pytest.raises(ValueError, match="not a size"):
        load_config("default", overrides=[parse_override("model.work_size=abc")])
    assert load_config("paper").model.work_size is None
    with pytest.raises(ValueError, match="too small"):
        Matter(tiny_onnx, work_size=-1)
    assert Matter(tiny_onnx, work_size="native").info.work_size is None


@pytest.mark.parametrize("args", [["train", "--data", "d"], ["export", "--checkpoint", "c.pt", "--onnx", "m.onnx"],
                                  ["cutout", "a.jpg", "-o", "out", "--model", "model.pt"],
                                  ["evaluate", "--data", "d", "--model", "model.pt"]])
def test_without_pytorch_one_line_names_the_extra(tmp_path, args):
    """On the core install (PyTorch absent: an import of it fails) no traceback, exit 2."""
    fake = tmp_path / "no-torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(fake.parent)}
    r = subprocess.run([sys.executable, "-m", "kirinuki", *args], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "pip install 'kirinuki[train]'" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("flags, message", [
    (["--work-size", "16"], "working size 16 is outside 192 to 2048"),
    (["--work-size", "4096"], "working size 4096 is outside 192 to 2048"),
    (["--threads", "0"], "must be 1 or more, not 0"),
    (["--threads", "-3"], "must be 1 or more, not -3"),
    (["--max-pixels", "-5"], "positive number of megapixels"),
    (["--max-pixels", "abc"], "not a number of megapixels"),
    (["--max-frames", "0"], "must be 1 or more"),
    (["--trim", "abc"], "'abc' is not a whole number"),
    (["--trim", "-1"], "the trim margin must be 0 or more"),
])
def test_options_out_of_range_are_usage_errors_that_name_the_option(flags, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cutout", "x.jpg", "-o", "out", *flags])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and flags[0] in err and message in err, err


@pytest.mark.parametrize("port, message", [("99999", "65535 or less"), ("http", "not a whole number")])
def test_serve_refuses_a_port_that_cannot_be(port, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", port])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_serve_on_a_port_in_use_says_so_in_one_line_and_never_serving():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        r = run_cli("serve", "--port", str(taken.getsockname()[1]))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "cannot listen on 127.0.0.1" in r.stderr and "serving" not in r.stderr


def test_a_model_that_cannot_be_used_is_a_usage_error_in_one_line(tmp_path):
    picture = tmp_path / "pic.webp"
    from PIL import Image
    Image.new("RGB", (8, 8)).save(picture)
    for model, message in (("nosuchmodel", "no bundled model of that name (bundled: default)"),
                           (str(picture), "not a model file")):
        r = run_cli("cutout", str(picture), "-o", str(tmp_path / "out"), "--model", model)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
        assert "Error)" not in r.stderr  # no exception class names for the person to decode


def test_mask_with_a_background_is_a_usage_error(tmp_path):
    assert main(["cutout", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--mask",
                 "--background", "red"]) == 2
    assert not (tmp_path / "out").exists()


def test_keep_and_drop_on_an_animation_or_a_video_are_usage_errors(tmp_path, tiny_onnx):
    from test_animation import moving_figure

    moving_figure(tmp_path / "sticker.gif", "GIF")
    (tmp_path / "clip.mp4").write_bytes(b"not decoded: the suffix says video")
    for name in ("sticker.gif", "clip.mp4"):
        r = run_cli("cutout", str(tmp_path / name), "-o", str(tmp_path / "out"), "--model", str(tiny_onnx),
                    "--keep", "5,5")
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "--keep and --drop apply to still pictures" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_format_for_the_other_kind_of_input_is_noted_with_what_was_written(tmp_path, tiny_onnx):
    from PIL import Image

    Image.new("RGB", (40, 30), "white").save(tmp_path / "a.png")
    r = run_cli("cutout", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_onnx),
                "--format", "webm")
    assert r.returncode == 0, r.stderr
    assert "--format webm applies to videos; a picture is written as PNG" in r.stderr
    assert Image.open(tmp_path / "out" / "a.png").format == "PNG"
    quiet = run_cli("cutout", str(tmp_path / "a.png"), "-o", str(tmp_path / "out2"), "--model", str(tiny_onnx),
                    "--format", "webp")
    assert quiet.returncode == 0 and "--format" not in quiet.stderr


def test_a_huge_declared_animation_fails_in_one_line_without_pillows_warning(tmp_path, tiny_onnx, monkeypatch):
    """A two-frame GIF whose header declares a 9500x9500 screen: 90 MP a frame is over
    Pillow's own warning threshold and under the default limit, both frames together over it."""
    import warnings

    from PIL import Image

    from PIL import ImageDraw

    frames = [Image.new("RGB", (10, 10), "white") for _ in range(2)]
    for i, frame in enumerate(frames):  # two different frames, or the GIF writer merges them
        ImageDraw.Draw(frame).rectangle((4 * i, 0, 4 * i + 3, 3), fill="red")
    path = tmp_path / "huge.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    data = bytearray(path.read_bytes())
    data[6:10] = (9500).to_bytes(2, "little") * 2  # the logical screen's width and height
    path.write_bytes(bytes(data))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # Pillow's own, as a fresh process has it
    with warnings.catch_warnings(record=True) as caught:  # what the check must keep quiet
        warnings.simplefilter("always")
        Image.open(path).close()
    assert any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
    r = run_cli("cutout", str(path), "-o", str(tmp_path / "out"), "--model", str(tiny_onnx))
    assert r.returncode == 1
    assert r.stderr.count("\n") == 2 and "over the limit of 100 MP" in r.stderr  # the error and the summary
    assert "Warning" not in r.stderr


def test_empty_garbled_and_truncated_files_each_get_a_plain_reason(tmp_path, tiny_onnx):
    from PIL import Image

    pytest.importorskip("av")
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbled.mp4").write_bytes(b"\x00\x01not a video at all" * 10)
    Image.new("RGB", (64, 64), "red").save(tmp_path / "whole.webp")
    (tmp_path / "cut.webp").write_bytes((tmp_path / "whole.webp").read_bytes()[:40])
    r = run_cli("cutout", *(str(tmp_path / n) for n in ("empty.mp4", "garbled.mp4", "cut.webp")),
                "-o", str(tmp_path / "out"), "--model", str(tiny_onnx))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 4, r.stderr  # one line each, then the summary
    assert lines[0].endswith("empty.mp4: empty file (0 bytes)")
    assert "garbled.mp4: not a video kirinuki can read (" in lines[1] and "Errno" not in lines[1]
    assert "cut.webp: truncated or corrupt image" in lines[2]


def test_trim_on_a_fully_transparent_cutout_says_so(tmp_path):
    from PIL import Image

    Image.new("RGB", (60, 40), "white").save(tmp_path / "blank.png")  # a blank page: nothing to cut out
    r = run_cli("cutout", str(tmp_path / "blank.png"), "-o", str(tmp_path / "out"), "--trim")
    assert r.returncode == 0, r.stderr
    out = Image.open(tmp_path / "out" / "blank.png")
    assert out.size == (60, 40) and out.getchannel("A").getextrema() == (0, 0)
    assert "fully transparent: nothing to trim to, written at full size" in r.stderr


def test_an_earlier_output_folder_under_a_walked_folder_is_not_cut_out_again(tmp_path, tiny_onnx):
    from PIL import Image

    Image.new("RGB", (40, 30), "white").save(tmp_path / "a.png")
    first = run_cli("cutout", str(tmp_path), "-o", str(tmp_path / "out"), "--model", str(tiny_onnx), "-q")
    assert first.returncode == 0 and (tmp_path / "out" / "a.png").exists()
    again = run_cli("cutout", str(tmp_path), "-o", str(tmp_path / "sub" / "out2"), "--model", str(tiny_onnx))
    assert again.returncode == 0, again.stderr
    written = sorted(p.relative_to(tmp_path / "sub" / "out2").as_posix()
                     for p in (tmp_path / "sub" / "out2").rglob("*.png"))
    assert written == ["a.png"], written  # not out/a.png: the first run's output was left alone


def test_settle_makes_the_meadow_figure_opaque(tmp_path):
    """``--settle`` on the command line: the meadow sample's figure comes out opaque inside
    (most of its truly opaque pixels below 255 without it)."""
    import numpy as np
    from PIL import Image
    from kirinuki.samples import sample_paths, true_alpha_path

    meadow = next(p for p in sample_paths() if "meadow" in p.name)
    truth = np.asarray(Image.open(true_alpha_path(meadow)).convert("L"))
    below = {}
    for flag in ("", "--settle"):
        out = tmp_path / (flag or "plain")
        r = run_cli("cutout", str(meadow), "-o", str(out), "--mask", "-q", *([flag] if flag else []))
        assert r.returncode == 0, r.stderr
        mask = np.asarray(Image.open(out / f"{meadow.stem}.png"))
        below[flag] = float(np.mean(mask[truth == 255] < 255))
    assert below[""] > 0.4 and below["--settle"] < 0.15, below
