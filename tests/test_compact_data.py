"""The compact data copy for the GPU machine: what it writes, and the check that it fits."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_spec = importlib.util.spec_from_file_location(
    "compact_data", Path(__file__).resolve().parents[1] / "tools" / "compact_data.py")
compact_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compact_data)


def test_the_copy_keeps_names_and_exact_alpha_and_reports_what_travels(tiny_data, tmp_path, capsys, monkeypatch):
    data = shutil.copytree(tiny_data, tmp_path / "data")
    (data / "val" / "backgrounds").mkdir()
    Image.open(data / "backgrounds" / "bg0.jpg").save(data / "val" / "backgrounds" / "v0.jpg")
    Image.open(data / "backgrounds" / "bg1.jpg").save(data / "val" / "backgrounds" / "v1.png")
    monkeypatch.setattr(compact_data, "COPY", {"train/a": (50, 90), "val": (320, None)})
    compact_data.main(data, tmp_path / "c")
    out = capsys.readouterr().out
    assert "MiB of the 64 MiB that travel" in out
    written = [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
    assert out.startswith(f"{len(written)} files, ")  # each picture copied once
    assert not (tmp_path / "c" / "train" / "b").exists()  # a folder the table does not name stays behind
    for original in (data / "train" / "a").glob("*.png"):  # each folder at its own side, lossy colour
        copy = tmp_path / "c" / "train" / "a" / f"{original.stem}.webp"
        with Image.open(original) as a, Image.open(copy) as b:
            assert max(b.size) == min(50, max(a.size)) and b.mode == "RGBA"
        assert b"ALPH" in copy.read_bytes()[:64]  # lossy WebP keeps its alpha in its own chunk; lossless has none
    assert sorted(p.name for p in (tmp_path / "c" / "backgrounds").iterdir()) == ["bg0.webp", "bg1.webp", "bg2.webp"]
    for name in ("v0.webp", "v1.webp"):  # a PNG scene is a background too, not a cutout
        with Image.open(tmp_path / "c" / "val" / "backgrounds" / name) as scene:
            assert scene.mode == "RGB"
    for original in (data / "val").glob("*.png"):  # validation cutouts: lossless, colour and alpha exact
        copy = tmp_path / "c" / "val" / f"{original.stem}.webp"
        a, b = (np.asarray(Image.open(p).convert("RGBA")) for p in (original, copy))
        assert np.array_equal(a, b)

    with pytest.raises(SystemExit, match="not empty"):  # an older copy's files would travel too
        compact_data.main(data, tmp_path / "c")


def test_a_copy_that_would_not_fit_is_an_error(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(compact_data, "TRAVEL_LIMIT", 1000)
    with pytest.raises(SystemExit, match="working tree .* that travel to the GPU machine"):
        compact_data.main(tiny_data, tmp_path / "c")
