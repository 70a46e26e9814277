"""Foreground colour estimation ("decontamination") for soft edges.

On a soft edge a pixel is ``I = alpha * F + (1 - alpha) * B``: writing ``I`` as the cutout's
colour keeps a share of the old background ``B``, which shows as a halo on any new
background. Blur fusion (Forte & Pitie, "Approximate fast foreground colour estimation",
ICIP 2021) estimates ``F`` from local means of foreground and background colour::

    Fm = blur(F * alpha) / blur(alpha)          Bm = blur(B * (1 - alpha)) / blur(1 - alpha)
    F  = Fm + alpha * (I - alpha * Fm - (1 - alpha) * Bm)

run twice (a large radius, then a small one). The local means are smooth, so kirinuki
computes them on a copy of at most ``field_side`` pixels and applies the last line at full
resolution, strip by strip: the cost and memory of the full-size pass are those of a few
rows and only of the soft pixels, whatever the image size. Opaque pixels keep their colour
exactly. The last line is computed as ``a I + (1 - a)(Fm + a (Fm - Bm))`` (the same value),
on whole planes of one channel where most of a strip is soft: numpy's loops then run over
long contiguous rows instead of triples of channels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .guided import DENSE_FRACTION, SETTLED, BilinearSampler, box_mean
from .threads import parallel_strips

__all__ = ["foreground_fields", "estimate_foreground"]


def _fusion(image: np.ndarray, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, r: int):
    a = alpha[..., None]
    blurred_a = box_mean(alpha, r)[..., None]
    fm = box_mean(fg * a, r) / (blurred_a + 1e-5)
    bm = box_mean(bg * (1 - a), r) / ((1 - blurred_a) + 1e-5)
    f = np.clip(fm + a * (image - a * fm - (1 - a) * bm), 0.0, 1.0)
    return f, fm, bm


def foreground_fields(rgb: np.ndarray, alpha: np.ndarray, field_side: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Local mean foreground and background colours, on a grid of at most ``field_side``.

    rgb: HxWx3 uint8; alpha: HxW float32 in [0, 1]. Returns (Fm, Bm), each hxwx3 float32.
    """
    h, w = alpha.shape
    s = min(1.0, field_side / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    img = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX), np.float32) / 255.0
    a = np.asarray(Image.fromarray(alpha.astype(np.float32), "F").resize(size, Image.Resampling.BOX))
    a = np.clip(a, 0.0, 1.0)
    big = max(2, round(max(size) / 16))   # ~90 px at the method's usual 1.5k scale
    small = max(1, round(max(size) / 256))
    f, _, bm = _fusion(img, img, img, a, big)
    _, fm, bm = _fusion(img, f, bm, a, small)
    return fm.astype(np.float32), bm.astype(np.float32)


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray, field_side: int = 256,
                        strip: int = 128) -> np.ndarray:
    """Straight foreground colour for every pixel: HxWx3 uint8.

    rgb: HxWx3 uint8; alpha: HxW float32 in [0, 1]. Only soft pixels (alpha strictly between
    0 and 1 once rounded to 8 bits) change: they lose the old background's share. Opaque and
    transparent pixels keep the input colour.
    """
    h, w = alpha.shape
    fm, bm = foreground_fields(rgb, alpha, field_side)
    # Fm and Fm - Bm as six planes, in levels of 255.
    sampler = BilinearSampler(np.moveaxis(np.concatenate([fm, fm - bm], axis=-1), -1, 0) * np.float32(255), h, w)
    out = rgb.copy()

    def work(y0: int, y1: int) -> None:
        a = alpha[y0:y1]
        soft = (a > SETTLED) & (a < 1 - SETTLED)
        count = np.count_nonzero(soft)
        if not count:
            return
        if count > DENSE_FRACTION * soft.size:  # mostly soft: whole rows, one channel at a time
            fields = sampler.rows(y0, y1)
            opposite = 1 - a
            for c in range(3):
                f = _unmixed(rgb[y0:y1, :, c], a, opposite, fields[c], fields[3 + c])
                np.copyto(out[y0:y1, :, c], f, casting="unsafe", where=soft)
        else:
            ys, xs = np.nonzero(soft)
            a = a[ys, xs]
            fields = sampler.at(ys + y0, xs)
            out[ys + y0, xs] = _unmixed(rgb[ys + y0, xs].T, a, 1 - a, fields[:3], fields[3:]).T
    parallel_strips(work, h, strip)
    return out


def _unmixed(image: np.ndarray, a: np.ndarray, opposite: np.ndarray, f_mean: np.ndarray,
             difference: np.ndarray) -> np.ndarray:
    """The last blur-fusion step, rearranged: ``F = a I + (1 - a)(Fm + a (Fm - Bm))``, in
    levels of 255 (image uint8, the fields already scaled), rounded and clipped to [0, 255];
    ``opposite`` is ``1 - a``. Any shapes that broadcast."""
    f = difference * a
    f += f_mean
    f *= opposite
    f += a * image
    np.rint(f, out=f)
    return np.clip(f, 0, 255, out=f)
