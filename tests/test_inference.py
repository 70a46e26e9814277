import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_KIRINET
from kirinuki.checkpoint import save_checkpoint
from kirinuki.export import export_checkpoint, parity_images
from kirinuki.guided import bilinear_rows, box_mean, guided_upsample
from kirinuki.inference import Matter, ModelError
from kirinuki.metrics import edge_iou, mae
from kirinuki.models import create_model
from kirinuki.samples import sample_paths


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("kirinet", **TINY_KIRINET)
    # non-trivial BatchNorm statistics, so the export must carry them
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(2, 3, 64, 64))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint({"name": "tiny", "arch": "kirinet", "arch_args": model.config, "work_size": 96,
                     "step": 0, "model": model.state_dict()}, path)
    return path


def test_box_mean_matches_a_direct_window_mean(rng):
    a = rng.random((7, 9)).astype(np.float32)
    got = box_mean(a, 1)
    y, x = 3, 0
    np.testing.assert_allclose(got[y, x], a[y - 1:y + 2, 0:2].mean(), rtol=1e-5)
    np.testing.assert_allclose(got[3, 4], a[2:5, 3:6].mean(), rtol=1e-5)


def test_bilinear_rows_in_strips_equals_whole(rng):
    plane = rng.random((13, 17, 2)).astype(np.float32)
    whole = bilinear_rows(plane, 50, 61, 0, 50)
    strips = np.concatenate([bilinear_rows(plane, 50, 61, y, min(50, y + 7)) for y in range(0, 50, 7)])
    np.testing.assert_array_equal(whole, strips)
    ref = np.asarray(torch.nn.functional.interpolate(torch.from_numpy(plane).permute(2, 0, 1)[None], size=(50, 61),
                                                     mode="bilinear", align_corners=False)[0].permute(1, 2, 0))
    np.testing.assert_allclose(whole, ref, atol=1e-5)


def test_guided_upsampling_is_sharper_than_bilinear():
    """A thin diagonal strand and a disc edge at 512, predicted at 128: guided upsampling must
    recover the full-resolution edge far better than bilinear interpolation."""
    n = 512
    yy, xx = np.mgrid[:n, :n]
    alpha = ((yy - 256) ** 2 + (xx - 256) ** 2 < 150 ** 2).astype(np.float32)
    alpha[np.abs(yy - xx * 0.9 - 20) < 1.5] = 1.0  # strands
    fg, bg = np.array([230, 80, 90]), np.array([40, 120, 200])
    rgb = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.uint8)
    small = Image.fromarray(rgb).resize((128, 128), Image.Resampling.BILINEAR)
    guide_lo = np.asarray(small).astype(np.float32) / 255
    alpha_lo = np.asarray(Image.fromarray(alpha).resize((128, 128), Image.Resampling.BILINEAR))
    guided = guided_upsample(alpha_lo, guide_lo, rgb)
    plain = np.asarray(Image.fromarray(alpha_lo).resize((n, n), Image.Resampling.BILINEAR))
    assert guided.shape == (n, n) and guided.min() >= 0 and guided.max() <= 1
    assert mae(guided, alpha) < 0.5 * mae(plain, alpha)
    assert edge_iou(guided, alpha) > edge_iou(plain, alpha) + 0.05


@pytest.mark.parametrize("shape", [(32, 32), (41, 300), (300, 37), (1, 8), (513, 257)])
def test_predict_alpha_any_size(tiny_checkpoint, shape, rng):
    matter = Matter(tiny_checkpoint, device="cpu")
    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    alpha = matter.predict_alpha(image)
    assert alpha.shape == shape and alpha.dtype == np.float32
    assert alpha.min() >= 0 and alpha.max() <= 1


def test_predict_alpha_accepts_path_pil_and_array(tiny_checkpoint):
    matter = Matter(tiny_checkpoint, device="cpu")
    path = sample_paths()[0]
    from_path = matter.predict_alpha(path)
    from_pil = matter.predict_alpha(Image.open(path))
    from_array = matter.predict_alpha(np.asarray(Image.open(path).convert("RGB")))
    np.testing.assert_array_equal(from_path, from_pil)
    np.testing.assert_array_equal(from_path, from_array)


def test_onnx_export_matches_torch(tiny_checkpoint, tmp_path):
    onnx_path = tmp_path / "tiny.onnx"
    diff = export_checkpoint(tiny_checkpoint, onnx_path, parity_images())
    assert diff <= 1e-3
    torch_matter = Matter(tiny_checkpoint, device="cpu")
    onnx_matter = Matter(onnx_path, device="cpu")
    assert onnx_matter.info.work_size == 96 and onnx_matter.info.arch == "kirinet"
    for path in sample_paths():  # the whole shared path, full size, guided refinement included
        a, b = torch_matter.predict_alpha(path), onnx_matter.predict_alpha(path)
        assert np.max(np.abs(a - b)) <= 1e-3


def test_missing_or_broken_model_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        Matter(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="bad.onnx"):
        Matter(bad)
    bad_pt = tmp_path / "bad.pt"
    bad_pt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        Matter(bad_pt)
