"""Closed-form matting of the band around the network's edge.

The network finds the figure; along its outline the picture's own colours say more exactly
how opaque each pixel is. Closed-form matting (Levin, Lischinski & Weiss, "A closed-form
solution to natural image matting", PAMI 2008) assumes that within each 3x3 window the
foreground and background colours each lie on a line in RGB, which makes the alpha a local
affine function of the colour; the matting Laplacian ``L`` measures how far an alpha is from
that. Here only the pixels of a thin band around the network's edge are solved for, the rest
keeps the network's alpha, and the network's alpha stays in the objective as a prior:

    minimise  a' L a + prior * |a_band - network_band|^2   over a_band

so a window where the colour-line model fails (a JPEG block, a textured background) cannot
pull the result far from what the network said. The system is sparse, symmetric and
positive definite, its size the band's pixel count: conjugate gradients solve it in a few
dozen steps.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import cg

from .guided import SYM3_PAIRS, solve_sym3
from .imaging import binary_dilate, edge_band
from .threads import on_threads, thread_count

__all__ = ["matting_band", "matte_edges", "BAND", "PRIOR", "EPSILON"]

BAND = 1         # pixels each side of the network's outline (alpha = 0.5) that are solved for
PRIOR = 0.3      # weight of the network's alpha in the objective, per pixel
EPSILON = 1e-6   # regularisation of each window's colour covariance (Levin et al.'s epsilon)
TOLERANCE = 1e-4  # relative residual at which conjugate gradients stop
MAX_ITERATIONS = 500
CHUNK = 65536    # windows whose shares of the Laplacian are formed at once (about 50 MB)
SUMS_BYTES = 1 << 27  # the threads' tables of sums together stay below this
SOFT = 0.02      # pixels the network calls neither 0 nor 1 within this are in the band too,
NEAR = 6         # when they lie within this many pixels of the outline (a busy scene's haze
                 # far from it would double the cost for a few hundredths of a dB)


def matting_band(alpha: np.ndarray, band: int = BAND) -> np.ndarray:
    """HxW bool, the pixels solved for: those within ``band`` (4-connected steps) of the
    outline of ``alpha > 0.5``, and those within NEAR of it that the network left soft
    (between SOFT and 1 - SOFT), grown by the same ``band``."""
    outline = edge_band(alpha, 0, settled=0.5)  # both sides of the 0.5 line, nothing else
    soft = (alpha > SOFT) & (alpha < 1.0 - SOFT) & binary_dilate(outline, NEAR, diamond=True)
    return binary_dilate(outline | soft, band, diamond=True)


_NEIGHBOUR_DY, _NEIGHBOUR_DX = (g.ravel() for g in np.mgrid[-2:3, -2:3])
# For pixel a and pixel b of a 3x3 window (row-major), the slot of b among a's 5x5 neighbours.
_WINDOW_DY, _WINDOW_DX = (g.ravel() for g in np.mgrid[-1:2, -1:2])
_PAIR_SLOT = ((_WINDOW_DY[None, :] - _WINDOW_DY[:, None] + 2) * 5 + (_WINDOW_DX[None, :] - _WINDOW_DX[:, None] + 2))


#: A window's 27 colour values (9 pixels x RGB) -> its mean colour.
_WINDOW_MEAN = np.tile(np.eye(3), (9, 1)) / 9.0
#: The part of a window's share that does not depend on its colours: delta_ij - 1/9.
_SHARE_BASE = np.eye(9) - 1.0 / 9.0


def _window_entries(image: np.ndarray, centres: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """For 3x3 windows centred on ``centres`` (flat indices, never on the picture's border):
    the flat indices of their pixels (n, 9) and each window's share of the Laplacian
    (n, 9, 9), ``delta_ij - (1 + (I_i - mu)' (S + eps/9 I)^-1 (I_j - mu)) / 9``."""
    idx = centres[:, None] + (_WINDOW_DY * image.shape[1] + _WINDOW_DX)[None, :]
    colours = image.reshape(-1, 3)[idx].astype(np.float64)          # n x 9 x 3
    if image.dtype == np.uint8:
        colours /= 255.0
    dev = colours - (colours.reshape(-1, 27) @ _WINDOW_MEAN)[:, None, :]
    second = np.matmul(dev.transpose(0, 2, 1), dev)                 # n x 3 x 3: 9 S
    planes = np.ascontiguousarray(dev.transpose(2, 0, 1))           # 3 x n x 9
    cov = [second[:, i, j, None] / 9.0 + (epsilon / 9.0 if i == j else 0.0) for i, j in SYM3_PAIRS]
    scaled = solve_sym3(cov, planes)                                # 3 x n x 9: S^-1 (I - mu)
    scaled *= -1.0 / 9.0
    shares = np.matmul(dev, scaled.transpose(1, 0, 2))              # n x 9 x 9
    shares += _SHARE_BASE
    return idx, shares


def _laplacian_rows(image: np.ndarray, centres: np.ndarray, position: np.ndarray, n: int,
                    epsilon: float) -> np.ndarray:
    """Each solved pixel's row of the Laplacian as weights on its 5x5 neighbours (n x 25),
    summed over the windows centred on ``centres``; ``position``: each pixel's row, -1 outside
    the band (those pixels' shares go to a spare row n, unread). The windows are taken in
    parts of at most CHUNK in all at a time, one part per thread, each summed into a table of
    its own (as many threads as SUMS_BYTES allows, so memory stays bounded), and the tables
    are added in order."""
    size = (n + 1) * 25
    threads = max(1, min(thread_count(), SUMS_BYTES // (size * 8)))
    step = max(1, min(CHUNK // threads, -(-centres.size // threads)))
    parts = [centres[start:start + step] for start in range(0, centres.size, step)]
    table = np.zeros(size)
    for first in range(0, len(parts), threads):
        batch = parts[first:first + threads]
        sums: list = [None] * len(batch)

        def add_windows(i: int) -> None:
            idx, shares = _window_entries(image, batch[i], epsilon)
            rows = position[idx].astype(np.intp)
            rows[rows < 0] = n
            keys = rows[:, :, None] * 25 + _PAIR_SLOT
            sums[i] = np.bincount(keys.ravel(), weights=shares.ravel(), minlength=size)
        on_threads(add_windows, range(len(batch)))
        for part_sum in sums:
            table += part_sum
    return table.reshape(n + 1, 25)[:n]


def matte_edges(image: np.ndarray, alpha: np.ndarray, *, band: int = BAND, prior: float = PRIOR,
                epsilon: float = EPSILON) -> np.ndarray:
    """``alpha`` (HxW float in [0, 1]) with the edge band re-solved by closed-form matting
    against ``image`` (HxWx3, float in [0, 1] or uint8, the same size). Returns HxW float32."""
    h, w = alpha.shape
    if image.shape[:2] != (h, w):
        raise ValueError(f"picture {image.shape[:2]} and alpha {(h, w)} differ in size")
    out = alpha.astype(np.float32, copy=True)
    if h < 5 or w < 5:
        return out
    unknown = matting_band(alpha, band)
    # Windows lie inside the picture, so a solved pixel's neighbours (two pixels each way)
    # do too; the two outermost rows and columns keep the network's alpha.
    unknown[:2], unknown[-2:], unknown[:, :2], unknown[:, -2:] = False, False, False, False
    solved = np.flatnonzero(unknown)
    n = solved.size
    if n == 0:
        return out
    position = np.full(h * w, -1, np.int32 if h * w < 2 ** 31 else np.int64)
    position[solved] = np.arange(n)
    table = _laplacian_rows(image, np.flatnonzero(binary_dilate(unknown, 1)), position, n, epsilon)
    neighbours = solved[:, None] + (_NEIGHBOUR_DY * w + _NEIGHBOUR_DX)[None, :]
    columns = position[neighbours]
    free = columns >= 0
    flat = alpha.reshape(-1)
    given = flat[solved].astype(np.float64)
    # Known neighbours enter the right-hand side: -L_uk a_k.
    rhs = prior * given - np.where(free, 0.0, table * flat[neighbours]).sum(axis=1)
    lap = sp.csr_matrix((table[free], columns[free], np.concatenate([[0], np.cumsum(free.sum(axis=1))])),
                        shape=(n, n))
    system = lap + prior * sp.identity(n, format="csr")
    jacobi = sp.diags(1.0 / system.diagonal())
    solution, _ = cg(system, rhs, x0=given, rtol=TOLERANCE, maxiter=MAX_ITERATIONS, M=jacobi)
    out.reshape(-1)[solved] = np.clip(solution, 0.0, 1.0)
    return out
