"""The threaded PNG writer: exact round trips, a valid stream (CRCs, Adler-32), Pillow's size."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from kirinuki import png
from kirinuki.png import adler32_combine, png_bytes
from kirinuki.samples import sample_paths, true_alpha_path


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + payload), kind
        out.append((kind, payload))
        pos += 12 + length
    return out


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("band_bytes", [300, 5000, 1 << 20])
def test_round_trip_is_exact_over_any_number_of_bands(mode, band_bytes, monkeypatch):
    monkeypatch.setattr(png, "BAND_BYTES", band_bytes)  # many bands, each primed, on threads
    rng = np.random.default_rng(len(mode) + band_bytes)
    pixels = rng.integers(0, 256, (97, 61, len(mode)), dtype=np.uint8)
    pixels[40:60] = pixels[40]  # runs the deflate can match across bands
    pixels = pixels.squeeze(-1) if len(mode) == 1 else pixels
    data = png_bytes(Image.fromarray(pixels, mode))
    chunks = _chunks(data)
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    idat = b"".join(p for k, p in chunks if k == b"IDAT")
    scanlines = np.frombuffer(zlib.decompress(idat), np.uint8)  # checks the combined Adler-32
    assert scanlines.size == 97 * (61 * len(mode) + 1)
    with Image.open(io.BytesIO(data)) as back:
        assert back.mode == mode and back.size == (61, 97)
        np.testing.assert_array_equal(np.asarray(back), pixels)
    if band_bytes == 300:
        assert sum(k == b"IDAT" for k, _ in chunks) > 10


def test_adler32_combine_matches_zlib():
    rng = np.random.default_rng(3)
    blob = rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    for cut in (0, 1, 65520, 65521, 100_000, 200_000):
        a, b = blob[:cut], blob[cut:]
        assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(blob)


def test_modes_it_does_not_write_go_to_pillow():
    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P")
    with Image.open(io.BytesIO(png_bytes(image))) as back:
        assert back.mode == "P"
        np.testing.assert_array_equal(np.asarray(back.convert("RGB")), np.asarray(image.convert("RGB")))


def test_compresses_as_well_as_pillow_at_its_fastest_level_on_a_cutout():
    sample = next(p for p in sample_paths() if "white" in p.name)
    rgb = Image.open(sample).convert("RGB")
    alpha = Image.open(true_alpha_path(sample)).convert("L")
    cutout = rgb.copy()
    cutout.putalpha(alpha)
    pillow = io.BytesIO()
    cutout.save(pillow, format="PNG", compress_level=1)  # what the cutout was written with before
    ours = png_bytes(cutout)
    assert len(ours) <= 1.02 * len(pillow.getvalue())
    with Image.open(io.BytesIO(ours)) as back:
        np.testing.assert_array_equal(np.asarray(back), np.asarray(cutout))


def test_written_file_holds_the_same_bytes(tmp_path):
    image = Image.fromarray(np.random.default_rng(5).integers(0, 256, (40, 30, 4), dtype=np.uint8), "RGBA")
    with open(tmp_path / "out.png", "wb") as fh:
        png.write_png(image, fh)
    assert (tmp_path / "out.png").read_bytes() == png_bytes(image)
