"""PNG files written on every core: the last stage of a cutout, and at large sizes its slowest.

Pillow's PNG encoder tries each row filter on every row and deflates on one thread. This
writer gives every row the "Up" filter (each byte minus the one above it: one numpy
subtraction per band of rows), deflates the bands on threads (zlib-ng, a faster deflate that
writes the same format, releases the interpreter lock) and joins them into one zlib stream
the way pigz does: each band is a raw deflate stream primed with the 32 KiB of filtered
bytes before it, every band but the last ends on a byte boundary (a sync flush), and the
bands' Adler-32 checksums are combined. Each band reads only its own rows of the picture,
so the memory beyond the picture is a few bands and the compressed file. Any PNG reader
decodes the result; the files come out no larger than Pillow's at its fastest level
(``benchmarks/png_speed.py``).
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

import numpy as np
from PIL import Image
from zlib_ng import zlib_ng

from .threads import on_threads

__all__ = ["png_bytes", "write_png", "adler32_combine"]

#: Pillow mode -> (PNG colour type, channels); other modes go to Pillow's own encoder.
COLOUR_TYPES = {"L": (0, 1), "RGB": (2, 3), "LA": (4, 2), "RGBA": (6, 4)}
#: Filtered bytes per band: enough to keep a thread busy, small enough to spread over cores.
BAND_BYTES = 1 << 20
WINDOW = 1 << 15  # deflate's window: the priming dictionary of each band
ADLER_BASE = 65521
#: zlib-ng's level: on the samples' cutouts, 3 is the fastest whose files are no larger than
#: Pillow's at level 1 (1 % smaller at 1024, 17 % at 4096), in half the time or less of the
#: standard zlib at 4; level 2's files are 3-4 % larger at 1024 (benchmarks/png_speed.py).
LEVEL = 3


def adler32_combine(adler1: int, adler2: int, length2: int) -> int:
    """The Adler-32 of ``a + b`` from those of ``a`` and ``b`` (``length2`` bytes)."""
    a1, b1 = adler1 & 0xFFFF, adler1 >> 16
    a2, b2 = adler2 & 0xFFFF, adler2 >> 16
    a = (a1 + a2 - 1) % ADLER_BASE
    b = (b1 + b2 + length2 * (a1 - 1)) % ADLER_BASE
    return a | (b << 16)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib_ng.crc32(data, zlib_ng.crc32(kind)))


def _up_filtered(rows: np.ndarray, above: np.ndarray | None) -> bytes:
    """Rows (h, w * channels) as PNG scanlines with the Up filter; ``above`` is the row
    before them (None at the top of the picture, where the row above counts as zeros)."""
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = 2
    if above is None:
        out[0, 1:] = rows[0]
    else:
        np.subtract(rows[0], above, out=out[0, 1:])
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    return out.tobytes()


def png_bytes(image: Image.Image, level: int = LEVEL) -> bytes:
    """The bytes of a PNG file holding ``image`` (8-bit L, LA, RGB or RGBA)."""
    return b"".join(_png_parts(image, level))


def write_png(image: Image.Image, fh: BinaryIO, level: int = LEVEL) -> None:
    """Write ``image`` as PNG to an open binary file, chunk by chunk."""
    for part in _png_parts(image, level):
        fh.write(part)


def _png_parts(image: Image.Image, level: int) -> list[bytes]:
    """The file's signature and chunks, in order."""
    if image.mode not in COLOUR_TYPES:
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=level)
        return [buf.getvalue()]
    colour_type, channels = COLOUR_TYPES[image.mode]
    width, height = image.size
    line = width * channels + 1
    band = max(1, BAND_BYTES // line)
    context = -(-WINDOW // line)  # rows before a band whose filtered bytes prime its deflate
    starts = list(range(0, height, band))
    deflated: list[tuple[bytes, int, int]] = [(b"", 1, 0)] * len(starts)

    def deflate_band(i: int) -> None:
        y0, y1 = starts[i], min(height, starts[i] + band)
        c0 = max(0, y0 - context)
        top = max(0, c0 - 1)  # the row above the band's context, if any, for its first filter
        rows = np.asarray(image.crop((0, top, width, y1))).reshape(y1 - top, width * channels)
        scanlines = _up_filtered(rows[c0 - top:], rows[0] if c0 else None)
        split = (y0 - c0) * line
        prime, data = scanlines[max(0, split - WINDOW):split], scanlines[split:]
        comp = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15, 9, zlib_ng.Z_DEFAULT_STRATEGY,
                                  *((prime,) if prime else ()))
        last = i == len(starts) - 1
        deflated[i] = (comp.compress(data) + comp.flush(zlib_ng.Z_FINISH if last else zlib_ng.Z_SYNC_FLUSH),
                       zlib_ng.adler32(data), len(data))

    on_threads(deflate_band, range(len(starts)))
    checksum = 1
    for _, adler, length in deflated:
        checksum = adler32_combine(checksum, adler, length)
    # zlib header: deflate, 32 KiB window, the level's hint, check bits (RFC 1950).
    header = bytes([0x78, 0x01 if level <= 1 else 0x5E if level <= 5 else 0x9C])
    idat = [header + deflated[0][0]] + [d for d, _, _ in deflated[1:]]
    idat[-1] += struct.pack(">I", checksum)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", ihdr), *(_chunk(b"IDAT", d) for d in idat), _chunk(b"IEND", b"")]
