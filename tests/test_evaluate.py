import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_KIRINET
from kirinuki.cli import main
from kirinuki.errors import DataError
from kirinuki.evaluate import make_cases, markdown_table, run_evaluation, summarise
from kirinuki.imaging import pad_to_square_bottom
from kirinuki.inference import Matter
from kirinuki.models import create_model


def test_cases_are_deterministic_and_exactly_composited(tiny_data):
    a = list(make_cases(tiny_data / "val", tiny_data / "backgrounds", [64, "native"], seed=5))
    b = list(make_cases(tiny_data / "val", tiny_data / "backgrounds", [64, "native"], seed=5))
    assert len(a) == 4 * 2 * 3
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image) and np.array_equal(x.alpha, y.alpha)
    first = a[0]
    assert (first.size, first.condition, first.image.shape) == ("64", "paper", (64, 64, 3))
    # paper condition: a flat background shows where alpha is 0, the picture where it is 1
    corner = first.image[0, 0]
    assert first.alpha[0, 0] == 0 and np.all(first.image[first.alpha == 0] == corner)
    # native size: the padded square of the cutout, standing on the bottom edge
    native = next(c for c in a if c.size == "native")
    src = pad_to_square_bottom(Image.open(sorted((tiny_data / "val").glob("*.png"))[0]).convert("RGBA"))
    assert native.alpha.shape == src.size[::-1]
    np.testing.assert_allclose(native.alpha, np.asarray(src)[..., 3] / 255, atol=1 / 255)
    # jpeg differs from its lossless twin only by compression
    paper, jpeg = a[0], a[1]
    assert jpeg.condition == "jpeg" and np.array_equal(paper.alpha, jpeg.alpha)
    assert 0 < np.abs(paper.image.astype(int) - jpeg.image).mean() < 8


def test_each_scene_case_names_its_scene_picture_whatever_the_size(tiny_data):
    """Which scene each case used is known (to split scores by kind of scene), and does not
    depend on the size, so a replay at a tiny size finds the same scenes."""
    names = {p.name for p in (tiny_data / "backgrounds").iterdir()}
    small = list(make_cases(tiny_data / "val", tiny_data / "backgrounds", [16], seed=5))
    large = list(make_cases(tiny_data / "val", tiny_data / "backgrounds", [64, "native"], seed=5))
    scene = {c.name: c.background for c in small if c.condition == "scene"}
    assert len(scene) == 4 and set(scene.values()) <= names
    assert all(c.background == scene[c.name] for c in large if c.condition == "scene")
    assert all(c.background is None for c in small + large if c.condition != "scene")


def test_summary_and_table():
    recs = [{"size": "256", "condition": "paper", "psnr": 30.0, "pixel_accuracy": 0.99, "iou": 0.9, "mae": 0.01,
             "gradient_error": 0.1, "edge_iou": 0.8, "seconds": 0.1},
            {"size": "256", "condition": "paper", "psnr": 20.0, "pixel_accuracy": 0.97, "iou": 0.7, "mae": 0.03,
             "gradient_error": 0.3, "edge_iou": 0.6, "seconds": 0.3}]
    rows = summarise(recs)
    assert rows[0]["psnr"] == 25.0 and rows[0]["n"] == 2
    table = markdown_table(rows)
    assert "| 256 | paper | 25.00 | 0.9800 | 0.8000 |" in table


def test_run_evaluation_writes_the_report(tiny_data, tmp_path):
    torch.manual_seed(0)
    matter = Matter.from_module(create_model("kirinet", **TINY_KIRINET), 64)
    report = run_evaluation(matter, tiny_data / "val", tiny_data / "backgrounds", tmp_path,
                            sizes=[48, 64], worst=3)
    assert [(r["size"], r["condition"]) for r in report["rows"]] == \
        [(s, c) for s in ("48", "64") for c in ("paper", "jpeg", "scene")]
    assert len(report["cases"]) == 4 * 2 * 3
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["rows"] == report["rows"]
    assert "| 48 | paper |" in (tmp_path / "report.md").read_text()
    sheet = Image.open(tmp_path / "worst.png")
    assert sheet.height == 3 * 192
    # the scene rows split by the kind of scene picture (tools/scene_groups.py)
    scene = {c.name: c.background for c in make_cases(tiny_data / "val", tiny_data / "backgrounds", [16], ["scene"])}
    first = next(iter(scene.values()))
    tool = Path(__file__).resolve().parents[1] / "tools" / "scene_groups.py"
    run = subprocess.run([sys.executable, str(tool), str(tmp_path), "--match", first], capture_output=True,
                         text=True, check=True)
    rows = [line.split("|") for line in run.stdout.splitlines() if line.startswith(f"| {tmp_path.name} |")]
    assert [r[2].strip() for r in rows] == ["48", "64"]
    hits = [n for n, b in scene.items() if b == first]
    assert [(int(r[3].split(",")[0]), int(r[4].split(",")[0])) for r in rows] == [(len(hits), 4 - len(hits))] * 2
    psnr = np.mean([c["psnr"] for c in report["cases"] if (c["condition"], c["size"]) == ("scene", "64") and c["name"] in hits])
    assert f", {psnr:.2f} /" in rows[1][3]
    # the report.json itself gives the same table; a file that is no report, one line naming it
    again = subprocess.run([sys.executable, str(tool), str(tmp_path / "report.json"), "--match", first],
                           capture_output=True, text=True, check=True)
    assert again.stdout == run.stdout
    for bad in (tmp_path / "worst.png", tmp_path / "missing"):
        fail = subprocess.run([sys.executable, str(tool), str(bad)], capture_output=True, text=True)
        assert fail.returncode == 2 and "Traceback" not in fail.stderr and fail.stdout == ""
        assert f"{bad}" in fail.stderr.strip().splitlines()[-1]


def test_scene_condition_needs_backgrounds(tiny_data):
    with pytest.raises(DataError, match="scene"):
        list(make_cases(tiny_data / "val", None, [64], conditions=["scene"]))


@pytest.mark.parametrize("switch, flag, default", [("flat_background", "--no-flat-background", True),
                                                   ("edge_matting", "--no-edge-matting", True),
                                                   ("precise_edges", "--precise-edges", False)])
def test_evaluate_reports_the_switches_it_ran_with(tiny_onnx, tiny_data, tmp_path, switch, flag, default):
    """The report names each switch, and the switch changes what was computed: the cases'
    scores differ (at 128 px, twice the tiny model's working size, so that the full-size
    matting has something to do)."""
    scores = []
    for flags, expected in (([], default), ([flag], not default)):
        out = tmp_path / str(expected)
        assert main(["evaluate", "--model", str(tiny_onnx), "--data", str(tiny_data / "val"), "--sizes", "128",
                     "--conditions", "paper", "--out", str(out), *flags]) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["model"][switch] is expected
        assert f"{switch} {'on' if expected else 'off'}" in (out / "report.md").read_text().splitlines()[0]
        scores.append([(case["mae"], case["psnr"]) for case in report["cases"]])
    assert scores[0] != scores[1], f"{flag} changed nothing that was scored"
