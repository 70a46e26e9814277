"""Alpha-matte metrics on numpy arrays.

All functions take ``pred`` and ``true`` as HxW float arrays in [0, 1] and return a float.
The first three are the seed paper's (PSNR, pixel accuracy, IoU at threshold 0.5); the others
look at what users see: absolute error, sharpness of gradients, and the thin band around the
true edge where halos and lost hair live.
"""

from __future__ import annotations

import numpy as np

from .imaging import edge_band

__all__ = ["psnr", "pixel_accuracy", "iou", "mae", "gradient_error", "edge_iou",
           "all_metrics", "METRIC_NAMES"]

#: PSNR of a perfect prediction is infinite; report this cap instead (MSE floored at 1e-10).
PSNR_CAP_DB = 100.0


def psnr(pred: np.ndarray, true: np.ndarray) -> float:
    """``10 log10(1 / MSE)`` of the alpha in [0, 1], capped at 100 dB."""
    mse = float(np.mean((pred.astype(np.float64) - true.astype(np.float64)) ** 2))
    return min(PSNR_CAP_DB, 10.0 * np.log10(1.0 / max(mse, 1e-10)))


def pixel_accuracy(pred: np.ndarray, true: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of pixels whose foreground/background label (alpha > threshold) is right."""
    return float(np.mean((pred > threshold) == (true > threshold)))


def _iou(p: np.ndarray, t: np.ndarray) -> float:
    union = np.count_nonzero(p | t)
    return 1.0 if union == 0 else np.count_nonzero(p & t) / union


def iou(pred: np.ndarray, true: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of the foreground (alpha > threshold); 1.0 when both are empty."""
    return _iou(pred > threshold, true > threshold)


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error of the alpha."""
    return float(np.mean(np.abs(pred.astype(np.float64) - true.astype(np.float64))))


def _grad_mag(a: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(a.astype(np.float64))  # central differences, one-sided at the border
    return np.hypot(gx, gy)


def gradient_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute difference of gradient magnitudes (central differences, per pixel).

    Low when the prediction is as sharp as the truth where the truth is sharp, and smooth
    where it is smooth; a blurred or ragged edge raises it.
    """
    return float(np.mean(np.abs(_grad_mag(pred) - _grad_mag(true))))


def edge_iou(pred: np.ndarray, true: np.ndarray, radius: int = 3, threshold: float = 0.5) -> float:
    """IoU of the foreground restricted to the band of ``radius`` pixels around the true edge.
    1.0 when the image has no edge."""
    band = edge_band(true, radius, threshold=threshold)
    return _iou((pred > threshold) & band, (true > threshold) & band)


METRIC_NAMES = ("psnr", "pixel_accuracy", "iou", "mae", "gradient_error", "edge_iou")


def all_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Every metric of this module, by name (see ``METRIC_NAMES``)."""
    return {
        "psnr": psnr(pred, true),
        "pixel_accuracy": pixel_accuracy(pred, true),
        "iou": iou(pred, true),
        "mae": mae(pred, true),
        "gradient_error": gradient_error(pred, true),
        "edge_iou": edge_iou(pred, true),
    }
