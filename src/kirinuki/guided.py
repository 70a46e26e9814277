"""Guided upsampling of a low-resolution alpha to full resolution (fast guided filter).

He, Sun & Tang's guided filter models the output as locally linear in the guide image,
``q = A . I + b``, with ``A = (Sigma + eps U)^-1 cov(I, p)`` and ``b = mean(p) - A . mean(I)``
over windows of radius r. He & Sun's fast variant fits ``A`` and ``b`` on the low-resolution
pair (guide, alpha), upsamples them bilinearly, and applies them to the full-resolution guide:
edges in the output follow the edges of the full-size picture, so a 384-pixel prediction
brought to 4000 pixels keeps anti-aliased edges and thin strands where the picture has them.

The full-resolution pass works on strips of rows and only on the pixels near an edge, so
its memory is a few strips and its time grows with the length of the edges, not the area.
"""

from __future__ import annotations

import cv2
import numpy as np

from .imaging import edge_band
from .threads import parallel_strips

__all__ = ["box_mean", "guided_coefficients", "guided_upsample", "bilinear_rows", "BilinearSampler",
           "solve_sym3", "SYM3_PAIRS", "GUIDED_RADIUS", "GUIDED_EPS"]


#: The guided filter's window radius (at the working size) and regularisation, shared by the
#: per-picture path here and the batched tensor path (kirinuki.batched).
GUIDED_RADIUS = 2
GUIDED_EPS = 1e-3


def _inverse_counts(n: int, r: int) -> np.ndarray:
    """Per position along an axis of length ``n``: one over the number of the window's
    ``2r + 1`` positions that lie inside the array."""
    i = np.arange(n)
    return (1.0 / (np.minimum(i + r + 1, n) - np.maximum(i - r, 0))).astype(np.float32)


def _window_sums(a: np.ndarray, r: int) -> np.ndarray:
    """Sums over (2r+1)^2 windows of an HxW or HxWxC float array, zero outside (OpenCV's box
    filter: running sums in double precision, float32 out)."""
    return cv2.boxFilter(np.ascontiguousarray(a, np.float32), cv2.CV_32F, (2 * r + 1, 2 * r + 1), normalize=False,
                         borderType=cv2.BORDER_CONSTANT)


def _inverse_areas(h: int, w: int, r: int) -> np.ndarray:
    """HxW: one over the number of pixels of each (2r+1)^2 window that lie in the picture."""
    return _inverse_counts(h, r)[:, None] * _inverse_counts(w, r)[None, :]


def box_mean(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window clipped to the image, for HxW or HxWxC float arrays
    (float32 out)."""
    out = _window_sums(a, r)
    scale = _inverse_areas(a.shape[0], a.shape[1], r)
    out *= scale if a.ndim == 2 else scale[..., None]
    return out


def _box_planes(planes: np.ndarray, r: int) -> np.ndarray:
    """:func:`box_mean` of each plane of a CxHxW stack (channels first), CxHxW float32."""
    scale = _inverse_areas(planes.shape[1], planes.shape[2], r)
    out = np.empty(planes.shape, np.float32)
    for plane, mean in zip(planes, out):
        np.multiply(_window_sums(plane, r), scale, out=mean)
    return out


def solve_sym3(m: list[np.ndarray], v: np.ndarray) -> np.ndarray:
    """Solve ``m x = v`` for a field of symmetric 3x3 systems by the adjugate (closed form).

    m: six planes (xx, xy, xz, yy, yz, zz, the order of SYM3_PAIRS); v: 3 x ... (the
    right-hand side's planes). Returns x as 3 x .... Much faster than a batched LAPACK call
    for millions of tiny systems; safe for covariances with eps added to the diagonal, which
    keeps every m well conditioned (the guided filter's and the matting Laplacian's).
    """
    a, b, c, d, e, f = m
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    inv_det = 1 / (a * c00 + b * c01 + c * c02)
    x, y, z = v
    return np.stack([(c00 * x + c01 * y + c02 * z) * inv_det, (c01 * x + c11 * y + c12 * z) * inv_det,
                     (c02 * x + c12 * y + c22 * z) * inv_det])


#: The six distinct entries of a symmetric 3x3 matrix, in the order solve_sym3 takes them.
SYM3_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def guided_coefficients(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Fit the colour guided filter. guide hxwx3 float32 in [0, 1], p hxw float32.

    Returns (A hxwx3, b hxw), already averaged over the windows, so ``q = sum(A * I) + b``.
    """
    # All window means in one pass, on planes (channels first: each plane contiguous).
    g = np.ascontiguousarray(np.moveaxis(guide, -1, 0), dtype=np.float32)
    stacked = np.empty((13, *p.shape), np.float32)
    stacked[:3], stacked[3] = g, p
    np.multiply(g, p, out=stacked[4:7])
    for k, (i, j) in enumerate(SYM3_PAIRS):
        np.multiply(g[i], g[j], out=stacked[7 + k])
    means = _box_planes(stacked, r)
    mean_i, mean_p, mean_ip, mean_ii = means[:3], means[3], means[4:7], means[7:]
    cov_ip = mean_ip - mean_i * mean_p
    # Sigma: the 3x3 covariance of the guide in each window, plus eps on the diagonal.
    var = [mean_ii[k] - mean_i[i] * mean_i[j] for k, (i, j) in enumerate(SYM3_PAIRS)]
    for k in (0, 3, 5):
        var[k] += eps
    fitted = np.empty((4, *p.shape), np.float32)
    fitted[:3] = solve_sym3(var, cov_ip)
    fitted[3] = mean_p - np.einsum("chw,chw->hw", fitted[:3], mean_i)
    coef = np.moveaxis(_box_planes(fitted, r), 0, -1)
    return coef[..., :3], coef[..., 3]


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear resampling (pixel centres aligned, as
    ``align_corners=False``)."""
    s = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    s = np.clip(s, 0, n_in - 1)
    i0 = np.floor(s).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (s - i0).astype(np.float32)


def bilinear_rows(planes: np.ndarray, out_h: int, out_w: int, y0: int, y1: int) -> np.ndarray:
    """Rows ``y0:y1`` of ``planes`` (hxw, or cxhxw: channels first) resized bilinearly to
    ``out_h x out_w`` (pixel centres aligned, as ``align_corners=False``): (y1-y0) x out_w,
    or c x (y1-y0) x out_w, float32 (:meth:`BilinearSampler.rows`)."""
    flat = planes.ndim == 2
    out = BilinearSampler(planes[None] if flat else planes, out_h, out_w).rows(y0, y1)
    return out[0] if flat else out


class BilinearSampler:
    """Bilinear samples of a low-resolution field (``cxhxw``, channels first) on an ``out_h x
    out_w`` grid: whole strips of rows, or only chosen pixels, so that work is proportional to
    the pixels that need it. Both give the same values."""

    def __init__(self, planes: np.ndarray, out_h: int, out_w: int) -> None:
        self.planes = np.ascontiguousarray(planes, dtype=np.float32)
        self.r0, self.r1, self.wy = _axis_weights(planes.shape[1], out_h)
        self.c0, self.c1, self.wx = _axis_weights(planes.shape[2], out_w)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Every pixel of rows y0:y1: c x (y1-y0) x out_w.

        Separable: each output row is first ``base + wy * (next - base)`` of its two source
        rows, at the source's width; then those rows are resampled along x (OpenCV's bilinear
        resize, which keeps each row to itself). The values are those of :meth:`at` (and of a
        whole-picture resize), so strips put together equal the whole picture.
        """
        r0, r1, wy = self.r0[y0:y1], self.r1[y0:y1], self.wy[y0:y1]
        base = self.planes[:, r0]
        down = self.planes[:, r1] - base
        down *= wy[:, None]
        down += base
        out = np.empty((len(down), y1 - y0, len(self.c0)), np.float32)
        for plane, resized in zip(down, out):
            cv2.resize(plane, (resized.shape[1], resized.shape[0]), dst=resized, interpolation=cv2.INTER_LINEAR)
        return out

    def at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Values at full-resolution pixels (ys, xs): c x N float32, each channel gathered
        from its own plane by flat index (long contiguous vectors, not rows of c values)."""
        w = self.planes.shape[2]
        top, bottom = self.r0[ys] * w, self.r1[ys] * w
        left, right = self.c0[xs], self.c1[xs]
        wy, wx = self.wy[ys], self.wx[xs]
        corners = [(top + left, (1 - wy) * (1 - wx)), (top + right, (1 - wy) * wx),
                   (bottom + left, wy * (1 - wx)), (bottom + right, wy * wx)]
        out = np.zeros((self.planes.shape[0], len(ys)), np.float32)
        for plane, values in zip(self.planes.reshape(len(out), -1), out):
            for index, weight in corners:
                values += plane[index] * weight
        return out

    def nearest_rows(self, plane: np.ndarray, y0: int, y1: int) -> np.ndarray:
        """Rows y0:y1 of a low-resolution ``hxw`` plane at full size, nearest neighbour."""
        h, w = plane.shape[:2]
        n_out_h, n_out_w = len(self.r0), len(self.c0)
        iy = np.minimum(((np.arange(y0, y1) + 0.5) * (h / n_out_h)).astype(np.intp), h - 1)
        ix = np.minimum(((np.arange(n_out_w) + 0.5) * (w / n_out_w)).astype(np.intp), w - 1)
        return plane[iy][:, ix]


#: Above this share of band pixels in a strip, evaluating whole rows beats gathering.
DENSE_FRACTION = 0.25

#: Alpha within this of 0 or 1 is "settled": it rounds to 0 or 255 in an 8-bit output.
SETTLED = 0.5 / 255


def guided_upsample(alpha_lo: np.ndarray, guide_lo: np.ndarray, guide_hi: np.ndarray,
                    radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS, strip: int = 512) -> np.ndarray:
    """Bring ``alpha_lo`` (hxw float32 in [0, 1]) to the size of ``guide_hi``.

    guide_lo: hxwx3 float32 in [0, 1], the picture the low-resolution alpha was predicted
    from; guide_hi: HxWx3 uint8, the full-resolution picture. Returns HxW float32 in [0, 1].

    The filter is evaluated only in the band where it can differ from a settled 0 or 1:
    where the low-resolution alpha, within the filter's reach (2r + 1 pixels), is all
    settled and all on one side, the fitted model is constant and the output is that 0 or 1
    (exactly, rather than a stray 0.001 in a solid area).
    """
    a, b = guided_coefficients(guide_lo, alpha_lo, radius, eps)
    h, w = guide_hi.shape[:2]
    side = alpha_lo > 0.5
    band = edge_band(alpha_lo, 2 * radius + 1, settled=SETTLED)
    # A and b as four planes, the guide's 8-bit scale folded into A.
    sampler = BilinearSampler(np.concatenate([np.moveaxis(a, -1, 0) * np.float32(1 / 255), b[None]]), h, w)
    out = np.empty((h, w), np.float32)

    def work(y0: int, y1: int) -> None:
        rows = out[y0:y1]
        in_band = sampler.nearest_rows(band, y0, y1)
        count = np.count_nonzero(in_band)
        if count > DENSE_FRACTION * in_band.size:  # mostly edges: whole rows are cheaper
            coef = sampler.rows(y0, y1)
            q = coef[3]
            for c in range(3):
                q += coef[c] * guide_hi[y0:y1, :, c]
            np.clip(q, 0.0, 1.0, out=q)
            rows[:] = np.where(in_band, q, sampler.nearest_rows(side, y0, y1))
        else:
            rows[:] = sampler.nearest_rows(side, y0, y1)
            ys, xs = np.nonzero(in_band)
            if count:
                coef = sampler.at(ys + y0, xs)
                q = coef[3]
                for c, guide in enumerate(guide_hi[ys + y0, xs].T):
                    q += coef[c] * guide
                rows[ys, xs] = np.clip(q, 0.0, 1.0)
    parallel_strips(work, h, strip)
    return out
