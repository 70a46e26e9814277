import numpy as np
import pytest
from PIL import Image

from kirinuki import imaging


def test_composite_equation():
    fg = np.full((2, 2, 3), 0.8, np.float32)
    bg = np.full((2, 2, 3), 0.2, np.float32)
    alpha = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    out = imaging.composite(fg, alpha, bg)
    np.testing.assert_allclose(out[..., 0], [[0.2, 0.35], [0.5, 0.8]], atol=1e-6)
    # premultiplied form gives the same picture
    fp = fg * alpha[..., None]
    np.testing.assert_allclose(fp + (1 - alpha[..., None]) * bg, out, atol=1e-6)


def test_to_uint8_rounds_to_nearest_and_clips_without_touching_its_input():
    values = np.array([[-0.2, 0.0, 0.4 / 255, 1.6 / 255, 0.25, 0.9990, 1.0, 1.3]], np.float64)
    before = values.copy()
    out = imaging.to_uint8(values)
    assert out.dtype == np.uint8 and out.shape == values.shape
    assert out.tolist() == [[0, 0, 0, 2, 64, 255, 255, 255]]
    assert np.array_equal(values, before)
    rng = np.random.default_rng(0)
    plane = rng.random((64, 48, 3), dtype=np.float32) * 1.2 - 0.1
    assert np.array_equal(imaging.to_uint8(plane), np.clip(np.rint(plane * 255), 0, 255).astype(np.uint8))


def test_premultiplied_resize_has_no_dark_fringe():
    # A red disc whose transparent pixels are black: straight-colour resizing would pull the
    # edge colour towards black.
    big = np.zeros((64, 64, 4), np.uint8)
    yy, xx = np.mgrid[:64, :64]
    inside = (yy - 32) ** 2 + (xx - 32) ** 2 < 20 ** 2
    big[inside] = (255, 0, 0, 255)
    small = imaging.resize_premultiplied(Image.fromarray(big, "RGBA"), (13, 13))
    pm = np.asarray(small).astype(np.float32) / 255
    edge = (pm[..., 3] > 0.1) & (pm[..., 3] < 0.9)
    assert edge.any()
    straight = pm[..., 0][edge] / pm[..., 3][edge]
    assert straight.min() > 0.9  # still red, not darkened
    assert np.all(pm[..., 1:3] == 0)  # no colour from the transparent pixels leaks in


def test_pad_to_square_bottom():
    im = Image.new("RGBA", (10, 30), (255, 0, 0, 255))
    sq = imaging.pad_to_square_bottom(im)
    assert sq.size == (30, 30)
    a = np.asarray(sq)[..., 3]
    assert a[:, 10:20].all() and not a[:, :10].any() and not a[:, 20:].any()
    wide = imaging.pad_to_square_bottom(Image.new("RGBA", (30, 10), (0, 0, 255, 255)))
    a = np.asarray(wide)[..., 3]
    assert a[20:].all() and not a[:20].any()  # standing on the bottom edge


def test_atomic_save_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.png"
    imaging.atomic_save(Image.new("RGB", (4, 4)), target)
    assert target.exists()

    class Broken:
        def save(self, *a, **k):
            raise OSError("disk full")
    with pytest.raises(OSError):
        imaging.atomic_save(Broken(), tmp_path / "bad.png", format="PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_as_rgb_array_converts_modes(mode, tmp_path):
    base = Image.new("RGB", (5, 4), (200, 100, 50))
    if mode == "I;16":
        im = Image.fromarray(np.full((4, 5), 65535, np.uint16))
    else:
        im = base.convert(mode)
    arr = imaging.as_rgb_array(im)
    assert arr.shape == (4, 5, 3) and arr.dtype == np.uint8
    if mode == "I;16":
        assert arr.min() == 255  # 16-bit white stays white, not clipped garbage


def test_as_rgb_array_applies_exif_orientation(tmp_path):
    im = Image.new("RGB", (6, 2), (0, 0, 0))
    im.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "o.jpg"
    im.save(path, exif=exif, quality=100)
    arr = imaging.as_rgb_array(path)
    assert arr.shape == (6, 2, 3)


def test_as_rgb_array_arrays():
    gray = np.zeros((3, 4), np.uint8)
    assert imaging.as_rgb_array(gray).shape == (3, 4, 3)
    rgba = np.zeros((3, 4, 4), np.uint8)
    assert imaging.as_rgb_array(rgba).shape == (3, 4, 3)
    with pytest.raises(ValueError):
        imaging.as_rgb_array(np.zeros((3, 4), np.float32))


def test_atomic_write_flushes_to_disk_and_leaves_nothing_on_error(tmp_path, monkeypatch):
    import os

    from kirinuki.imaging import atomic_write

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_ino), real_fsync(fd)))
    path = tmp_path / "out.bin"
    atomic_write(path, lambda fh: fh.write(b"complete"))
    assert path.read_bytes() == b"complete"
    # the file's data and then the folder's entry went to disk
    assert synced == [path.stat().st_ino, tmp_path.stat().st_ino]

    def fails(fh):
        fh.write(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fails)
    assert path.read_bytes() == b"complete" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_manifest_that_fails_to_write_leaves_no_temporary_file(tmp_path):
    from kirinuki.batch import BatchSummary, JobRecord

    summary = BatchSummary([JobRecord(tmp_path / "a.jpg", None, "failed", 0.1, "r\\u00e9ason")])
    target = tmp_path / "manifest.csv"
    target.mkdir()  # a folder in the way: the rename fails
    with pytest.raises(OSError):
        summary.write_manifest(target)
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.csv"]


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 3), (50, 61)])
@pytest.mark.parametrize("radius", [0, 1, 2, 6, 40])
@pytest.mark.parametrize("diamond", [False, True])
def test_binary_dilate_grows_by_a_square_or_a_diamond_and_nothing_from_outside(shape, radius, diamond):
    """The same pixels as SciPy's dilation by a (2r+1)^2 square, or by ``radius`` 4-connected
    steps, windows wider than the picture included; the input is left as it was."""
    from scipy import ndimage as ndi

    mask = np.random.default_rng(radius).random(shape) < 0.03
    mask[0, 0] = True
    before = mask.copy()
    grown = imaging.binary_dilate(mask, radius, diamond=diamond)
    if not radius:
        expected = mask
    elif diamond:
        expected = ndi.binary_dilation(mask, iterations=radius)
    else:
        expected = ndi.binary_dilation(mask, np.ones((2 * radius + 1, 2 * radius + 1), bool))
    assert grown.dtype == bool and grown.shape == mask.shape
    assert np.array_equal(grown, expected)
    assert np.array_equal(mask, before)
    assert not imaging.binary_dilate(np.zeros(shape, bool), radius, diamond=diamond).any()
