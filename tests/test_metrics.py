import numpy as np
import pytest

from kirinuki import metrics
from kirinuki.imaging import edge_band


def test_psnr_hand_computed():
    true = np.zeros((2, 2), np.float32)
    pred = np.array([[0.1, 0.0], [0.0, 0.0]], np.float32)  # MSE = 0.01 / 4 = 0.0025
    assert metrics.psnr(pred, true) == pytest.approx(10 * np.log10(1 / 0.0025), abs=1e-6)
    assert metrics.psnr(true, true) == metrics.PSNR_CAP_DB


def test_pixel_accuracy_and_iou_hand_computed():
    true = np.array([[1, 1, 0, 0]], np.float32)
    pred = np.array([[0.9, 0.2, 0.7, 0.1]], np.float32)  # labels 1 0 1 0 vs 1 1 0 0
    assert metrics.pixel_accuracy(pred, true) == pytest.approx(0.5)
    assert metrics.iou(pred, true) == pytest.approx(1 / 3)  # intersection 1, union 3
    empty = np.zeros((3, 3), np.float32)
    assert metrics.iou(empty, empty) == 1.0


def test_mae_hand_computed():
    assert metrics.mae(np.array([0.0, 0.5]), np.array([1.0, 0.25])) == pytest.approx(0.625)


def test_gradient_error_hand_computed():
    true = np.tile(np.array([0.0, 0.0, 1.0, 1.0], np.float32), (4, 1))  # a sharp vertical edge
    pred = np.tile(np.array([0.0, 1 / 3, 2 / 3, 1.0], np.float32), (4, 1))  # a ramp
    # np.gradient along x: true [0, .5, .5, 0]; pred [1/3, 1/3, 1/3, 1/3] -> |diff| mean = 1/3 * ... :
    expected = np.mean(np.abs(np.array([0, 0.5, 0.5, 0]) - 1 / 3))
    assert metrics.gradient_error(pred, true) == pytest.approx(expected, abs=1e-6)
    assert metrics.gradient_error(true, true) == 0.0


def test_edge_band_and_edge_iou():
    true = np.zeros((9, 9), np.float32)
    true[:, 5:] = 1.0  # edge between columns 4 and 5
    band = edge_band(true, radius=1)
    assert band[:, 3:7].all() and not band[:, :3].any() and not band[:, 7:].any()
    pred = true.copy()
    pred[:, 4] = 1.0  # one column too wide: inside the band, P = cols 4..6 (3 px), T = cols 5..6
    assert metrics.edge_iou(pred, true, radius=1) == pytest.approx(2 / 3)
    assert metrics.edge_iou(true, true, radius=1) == 1.0
    # an error far from the edge is not in the band
    far = true.copy()
    far[:, 0] = 1.0
    assert metrics.edge_iou(far, true, radius=1) == 1.0


def test_all_metrics_names():
    a = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    assert set(metrics.all_metrics(a, a)) == set(metrics.METRIC_NAMES)
