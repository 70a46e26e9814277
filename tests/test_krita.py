"""The Krita plug-in: its plain-Python half here, the rest in a real Krita (``kritarunner``,
headless), as the tests marked ``krita``: skipped on a machine without Krita, never in CI
(``KIRINUKI_REQUIRE_KRITA`` set), which installs it."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kirinuki.krita import NAME, PLUGIN, install
from kirinuki.samples import sample_paths, true_alpha_path

sys.path.insert(0, str(PLUGIN))
from kirinuki_krita import command  # noqa: E402  (the plug-in's plain-Python module)

ROOT = Path(__file__).resolve().parents[1]
KIRITARUNNER = shutil.which("kritarunner")
KIRINUKI = str(Path(sys.executable).with_name("kirinuki"))
#: Krita's decoder and Pillow's may round a JPEG's colours differently: the alphas of the
#: plug-in's cut and of ``kirinuki cutout --mask`` may differ by this many levels, on at most
#: ``SHARE_OFF`` of the pixels (measured: identical on both samples).
LEVELS_OFF, SHARE_OFF = 2, 0.001


def test_the_version_check_reads_kirinukis_line():
    assert command.parse_version("kirinuki 0.1.0 (default model: kirinuki-default 0.7)\n") == (0, 1, 0)
    assert command.parse_version("something else 1.2.3") is None


def test_the_command_is_found_by_override_then_path(monkeypatch, tmp_path):
    monkeypatch.setenv(command.ENVIRONMENT, KIRINUKI)
    assert command.find_command() == [KIRINUKI]
    monkeypatch.setenv(command.ENVIRONMENT, str(tmp_path / "nothing-here"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(command.CutError, match="kirinuki was not found: install it"):
        command.find_command()
    fake = tmp_path / "kirinuki"
    fake.write_text("#!/bin/sh\necho 'kirinuki 0.0.9 (default model: x)'\n")
    fake.chmod(0o755)
    assert command.find_command() == [str(fake)]  # on PATH
    with pytest.raises(command.CutError, match="kirinuki 0.0.9 is too old for this plug-in"):
        command.check_version([str(fake)])
    fake.write_text("#!/bin/sh\necho 'usage: something'\n")
    with pytest.raises(command.CutError, match="is not a working kirinuki"):
        command.check_version([str(fake)])
    assert command.check_version([KIRINUKI]) >= command.MIN_VERSION


def test_the_cutout_command_line_carries_the_clicks_in_order(tmp_path):
    argv = command.cutout_arguments(["k"], tmp_path / "in.png", tmp_path / "out", keep_colours=True,
                                    edits=[("drop", 5, 6), ("keep", 7, 8)])
    assert argv[:2] == ["k", "cutout"] and "--force" in argv and "--no-decontaminate" in argv
    assert argv[-4:] == ["--drop", "5,6", "--keep", "7,8"]
    with pytest.raises(command.CutError, match="at most 32"):
        command.cutout_arguments(["k"], tmp_path / "in.png", tmp_path / "out", edits=[("keep", 1, 1)] * 33)


def test_run_gives_kirinukis_own_line_and_can_be_cancelled(tmp_path):
    with pytest.raises(command.CutError) as failed:
        command.run([KIRINUKI, "cutout", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o"), "-q"])
    assert str(failed.value).startswith("kirinuki: ") and "missing.png: no such file" in str(failed.value)
    calls = []
    with pytest.raises(command.CutError, match="cancelled: nothing was changed"):
        command.run([sys.executable, "-c", "import time; time.sleep(30)"], wait=lambda: calls.append(1) or len(calls) > 2)


def test_a_selection_stands_for_points_spread_over_it():
    w, h = 10, 8
    mask = bytearray(w * h)
    for y in range(2, 6):
        for x in range(3, 9):
            mask[y * w + x] = 255
    points = command.sample_points(bytes(mask), w, h, left=100, top=50, most=5)
    assert len(points) == 5 and len(set(points)) == 5
    assert all(103 <= x < 109 and 52 <= y < 56 for x, y in points)
    assert points[0] in ((105, 53), (105, 54), (106, 53), (106, 54))  # the centre first
    assert command.sample_points(bytes(w * h), w, h) == []


def test_install_and_zip_carry_the_whole_plugin(tmp_path):
    folder = install(tmp_path / "pykrita")
    assert folder == tmp_path / "pykrita" / NAME
    assert (tmp_path / "pykrita" / f"{NAME}.desktop").read_text().count("X-KDE-Library=kirinuki_krita") == 1
    assert {p.name for p in folder.iterdir()} >= {"__init__.py", "command.py", "cutter.py", "extension.py",
                                                  "Manual.html", "command.txt"}
    recorded = (folder / "command.txt").read_text().strip()
    assert Path(recorded).is_file() and subprocess.run([recorded, "--version"], capture_output=True).returncode == 0
    r = subprocess.run([KIRINUKI, "krita", "zip", str(tmp_path / "k.zip")], capture_output=True, text=True)
    assert r.returncode == 0 and "Import Python Plugin from File" in r.stdout
    names = set(zipfile.ZipFile(tmp_path / "k.zip").namelist())
    assert f"{NAME}.desktop" in names and f"{NAME}/cutter.py" in names and f"{NAME}/command.txt" not in names
    assert not list(tmp_path.glob(".*tmp"))
    bad = subprocess.run([KIRINUKI, "krita", "zip", str(tmp_path / "no" / "k.zip")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def require_krita():
    if KIRITARUNNER is None:
        if os.environ.get("KIRINUKI_REQUIRE_KRITA"):
            pytest.fail("kritarunner is missing; CI installs Debian's krita")
        pytest.skip("Krita is not installed (apt-get install krita)")


def scenario(name: str, out: Path, pictures, env: dict | None = None) -> dict:
    """Run one of ``tests/krita_scenarios.py`` in Krita; what it reported."""
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "KIRINUKI_KRITA_OUT": str(out),
                   "KIRINUKI_KRITA_PICTURES": ";".join(map(str, pictures)), "KIRINUKI_COMMAND": KIRINUKI,
                   "PYTHONPATH": os.pathsep.join([str(PLUGIN), str(ROOT / "tests")]), **(env or {})}
    environment = {k: v for k, v in environment.items() if v is not None}
    subprocess.run([KIRITARUNNER, "-s", "krita_scenarios", "-f", name], env=environment, cwd=out,
                   capture_output=True, timeout=600)
    report = json.loads((out / f"{name}.json").read_text())
    assert "traceback" not in report, report.get("traceback")
    return report


def alpha_of(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))[..., 3].astype(np.int16)


@pytest.mark.krita
def test_the_action_cuts_out_the_layer_as_the_command_line_does(tmp_path):
    require_krita()
    samples = sorted(sample_paths())
    report = scenario("cut", tmp_path, samples)
    masks = tmp_path / "masks"
    r = subprocess.run([KIRINUKI, "cutout", *map(str, samples), "-o", str(masks), "--mask", "-q"], capture_output=True)
    assert r.returncode == 0
    for sample in samples:
        stem = sample.stem
        exported = alpha_of(tmp_path / f"{stem}.png")   # the document as Krita exports it after the cut
        expected = np.asarray(Image.open(masks / f"{stem}.png")).astype(np.int16)
        off = np.abs(exported - expected)
        assert off.max() <= LEVELS_OFF or (off > LEVELS_OFF).mean() <= SHARE_OFF, (stem, off.max())
        original = np.asarray(Image.open(tmp_path / f"{stem}-original-colours.png").convert("RGBA")).astype(np.int16)
        assert np.abs(original[..., 3] - expected).max() <= LEVELS_OFF
        source = np.asarray(Image.open(sample).convert("RGB")).astype(np.int16)
        seen = original[..., 3] > 0
        assert np.abs(original[..., :3] - source)[seen].mean() < 1.0  # the layer's own colours kept
        entry = report[stem]
        (name, visible, digest), = entry["before"]
        assert entry["after"][0] == [name, False, digest]  # the source hidden, its pixels as they were
        assert entry["cut_layer"] == f"{name} (kirinuki)" and entry["after"][1][:2] == [f"{name} (kirinuki)", True]


@pytest.mark.krita
def test_a_dropped_selection_becomes_transparent_and_undo_restores_the_layer(tmp_path):
    require_krita()
    board = ROOT / "docs" / "meadow-signboard.jpg"  # the meadow sample with a signboard the model keeps
    report = scenario("drop", tmp_path, [board], {"KIRINUKI_KRITA_BOX": "326,96,128,98"})
    before, after = alpha_of(tmp_path / "before-drop.png"), alpha_of(tmp_path / "after-drop.png")
    face = (slice(104, 186), slice(334, 446))
    assert before[face].mean() > 200 and after[face].max() <= 2
    meadow = next(p for p in sample_paths() if "meadow" in p.stem)
    truth = np.asarray(Image.open(true_alpha_path(meadow)).convert("L")) > 128
    assert np.abs(after - before)[truth].mean() < 0.5  # the character stays as it was
    assert report["undone"] and report["after_undo"] == report["before"]


@pytest.mark.krita
def test_missing_kirinuki_cmyk_and_16_bit_documents_get_a_message_and_stay_unchanged(tmp_path):
    require_krita()
    sample = sorted(sample_paths())[0]
    report = scenario("refusals", tmp_path, [sample], {"KIRINUKI_COMMAND": None, "PATH": "/usr/bin:/bin"})
    assert "kirinuki was not found: install it" in report["missing"]["message"]
    assert "CMYK 8-bit" in report["cmyk"]["message"] and "RGB 16-bit" in report["16-bit"]["message"]
    for case in report.values():
        assert case["unchanged"] and "\n" not in case["message"]


@pytest.mark.krita
def test_a_layer_already_transparent_keeps_its_transparency(tmp_path):
    """The left half of the white sample's layer at alpha 128: the cut's alpha there is at
    most half (the prediction times the layer's own), on the right the figure stays opaque."""
    require_krita()
    white = next(p for p in sample_paths() if "white" in p.stem)
    report = scenario("transparent", tmp_path, [white])
    alpha = alpha_of(tmp_path / "half-transparent.png")
    truth = np.asarray(Image.open(true_alpha_path(white)).convert("L")) > 250
    half = report["half"]
    left, right = alpha[:, :half][truth[:, :half]], alpha[:, half:][truth[:, half:]]
    assert left.size and left.max() <= 130 and np.median(left) >= 120  # the figure, at the layer's own half
    assert np.median(right) == 255
