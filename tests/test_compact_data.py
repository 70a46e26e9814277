"""The compact data copy for the GPU machine: what it writes, and the check that it fits."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

TOOL = Path(__file__).resolve().parents[1] / "tools" / "compact_data.py"


def _compact(src: Path, dst: Path, limit: int | None = None) -> subprocess.CompletedProcess:
    """The tool as a user runs it; ``limit`` replaces its travel limit (bytes)."""
    code = ("import runpy, sys; sys.argv = sys.argv[1:]; g = runpy.run_path(sys.argv[0]);"
            + (f" g['main'].__globals__['TRAVEL_LIMIT'] = {limit};" if limit is not None else "")
            + " g['main'](*sys.argv[1:3])")
    return subprocess.run([sys.executable, "-c", code, str(TOOL), str(src), str(dst)],
                          capture_output=True, text=True, timeout=120)


def test_the_copy_keeps_names_and_exact_alpha_and_reports_what_travels(tiny_data, tmp_path):
    data = shutil.copytree(tiny_data, tmp_path / "data")
    (data / "val" / "backgrounds").mkdir()
    Image.open(data / "backgrounds" / "bg0.jpg").save(data / "val" / "backgrounds" / "v0.jpg")
    done = _compact(data, tmp_path / "c")
    assert done.returncode == 0, done.stderr
    assert "MiB of the 64 MiB that travel" in done.stdout
    assert sorted(p.name for p in (tmp_path / "c" / "backgrounds").iterdir()) == ["bg0.webp", "bg1.webp", "bg2.webp"]
    assert (tmp_path / "c" / "val" / "backgrounds" / "v0.webp").is_file()
    for original in (data / "val").glob("*.png"):  # validation cutouts: lossless, alpha exact
        copy = tmp_path / "c" / "val" / f"{original.stem}.webp"
        a, b = (np.asarray(Image.open(p).convert("RGBA")) for p in (original, copy))
        assert np.array_equal(a[..., 3], b[..., 3])

    again = _compact(data, tmp_path / "c")  # an older copy's files would travel too
    assert again.returncode != 0 and "not empty" in again.stderr


def test_a_copy_that_would_not_fit_is_an_error(tiny_data, tmp_path):
    done = _compact(tiny_data, tmp_path / "c", limit=1000)
    assert done.returncode != 0
    assert "that travel to the GPU machine" in done.stderr and "working tree" in done.stderr
