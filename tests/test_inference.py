import numpy as np
import pytest
import torch
from PIL import Image

from conftest import sample_over_magenta
from kirinuki.export import export_checkpoint, parity_images
from kirinuki.guided import BilinearSampler, bilinear_rows, box_mean, guided_upsample
from kirinuki.errors import ModelError
from kirinuki.inference import Matter
from kirinuki.metrics import edge_iou, mae, psnr
from kirinuki.samples import sample_paths


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_checkpoint_path):
    return tiny_checkpoint_path


def _direct_window_mean(a: np.ndarray, r: int) -> np.ndarray:
    out = np.empty(a.shape, np.float64)
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            out[y, x] = a[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].mean(axis=(0, 1))
    return out


@pytest.mark.parametrize("shape, r", [((7, 9), 1), ((7, 9), 2), ((5, 3), 4), ((1, 8), 2),
                                      ((9, 6, 13), 2), ((260, 256, 5), 2), ((20, 17, 3), 16)])
def test_box_mean_matches_a_direct_window_mean(rng, shape, r):
    """Every pixel, the window clipped at the borders (on both sides where it is wider than
    the picture), planes and stacks of channels (the large one runs on threads in blocks)."""
    a = rng.random(shape).astype(np.float32)
    got = box_mean(a, r)
    assert got.dtype == np.float32 and got.shape == a.shape
    np.testing.assert_allclose(got, _direct_window_mean(a, r), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("source, size", [((2, 13, 17), (50, 61)), ((3, 7, 9), (200, 61)), ((1, 20, 20), (20, 20)),
                                          ((13, 17), (50, 61)), ((2, 80, 90), (50, 61))])
def test_bilinear_rows_in_strips_equals_whole_and_torch(rng, source, size):
    """Channels first or one plane; enlarging by much, a little, not at all, and shrinking
    (two taps, as the per-pixel sampler): strips of any height put together equal the whole
    (to rounding: OpenCV's resize rounds a row a little differently by how many rows it is
    given, up to 4e-6 here when shrinking; a strip one row out of place is off by 1e-2), which
    equals PyTorch's bilinear resize (align_corners=False, no antialiasing)."""
    planes = rng.random(source).astype(np.float32)
    out_h, out_w = size
    whole = bilinear_rows(planes, out_h, out_w, 0, out_h)
    assert whole.shape == (*source[:-2], out_h, out_w) and whole.dtype == np.float32
    for step in (1, 7, 64):
        strips = np.concatenate([bilinear_rows(planes, out_h, out_w, y, min(out_h, y + step))
                                 for y in range(0, out_h, step)], axis=-2)
        np.testing.assert_allclose(whole, strips, rtol=0, atol=1e-5)
    stack = torch.from_numpy(planes).reshape(1, -1, *source[-2:])
    ref = torch.nn.functional.interpolate(stack, size=size, mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(whole, ref.reshape(whole.shape), atol=1e-5)
    ys, xs = np.mgrid[0:out_h, 0:out_w]
    sampled = BilinearSampler(planes.reshape(-1, *source[-2:]), out_h, out_w).at(ys.ravel(), xs.ravel())
    np.testing.assert_allclose(whole, sampled.reshape(whole.shape), atol=1e-6)


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


@pytest.mark.parametrize("shape", [(32, 32), (40, 320), (320, 40), (1, 8), (513, 257)])
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
    with pytest.raises(ModelError, match="bad.pt: not a readable kirinuki checkpoint"):
        Matter(bad_pt)
    other = tmp_path / "picture.webp"
    other.write_bytes(b"RIFF")
    with pytest.raises(ModelError, match="picture.webp: not a model file"):
        Matter(other)


def _disc_scene(n=384):
    yy, xx = np.mgrid[:n, :n]
    alpha = np.clip(120 - np.hypot(yy - n / 2, xx - n / 2), 0, 1).astype(np.float32)  # 1-px soft edge
    alpha[np.abs(yy - xx * 0.9 - 20) < 1.2] = 1.0
    fg, bg = np.array([230, 80, 90], np.float32), np.array([40, 120, 200], np.float32)
    rgb = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.uint8)
    return rgb, alpha


def test_band_restricted_guided_filter_equals_the_dense_filter():
    from kirinuki.guided import guided_coefficients
    rgb, alpha = _disc_scene()
    small = Image.fromarray(rgb).resize((96, 96), Image.Resampling.BILINEAR)
    guide_lo = np.asarray(small).astype(np.float32) / 255
    alpha_lo = np.asarray(Image.fromarray(alpha).resize((96, 96), Image.Resampling.BILINEAR))
    a, b = guided_coefficients(guide_lo, alpha_lo, 2, 1e-3)
    n = rgb.shape[0]
    dense = np.clip(np.einsum("chw,hwc->hw", bilinear_rows(np.moveaxis(a, -1, 0), n, n, 0, n), rgb / 255.0)
                    + bilinear_rows(b, n, n, 0, n), 0, 1)
    got = guided_upsample(alpha_lo, guide_lo, rgb, radius=2, eps=1e-3, strip=50)
    np.testing.assert_allclose(got, dense, atol=2 / 255)
    assert set(np.unique(got[-20:, :20])) == {0.0}  # settled areas are exact


def test_foreground_estimation_removes_the_old_background():
    """Magenta cast on soft edges, with the true alpha: the unchanged colours carry the old
    background; the estimated foreground does not. Also: sparse and dense paths agree."""
    from kirinuki.foreground import estimate_foreground, foreground_fields
    alpha, fg, on_magenta = sample_over_magenta()
    a = alpha[..., None]
    band = (alpha > 0.02) & (alpha < 0.98)

    def cast(colours):
        d = a * (colours - fg)  # difference from the true cutout, both over white
        return 255 * np.maximum(0, (d[..., 0] + d[..., 2]) / 2 - d[..., 1])[band].mean()
    unchanged = cast(on_magenta / 255.0)
    estimated = estimate_foreground(on_magenta, alpha)
    cleaned = cast(estimated / 255.0)
    assert unchanged > 20 and cleaned < 0.05 * unchanged
    # opaque pixels keep their colour exactly
    assert np.array_equal(estimated[alpha == 1], on_magenta[alpha == 1])
    # the sparse evaluation equals the dense formula
    h, w = alpha.shape
    fm, bm = foreground_fields(on_magenta, alpha)
    fmu, bmu = (np.moveaxis(bilinear_rows(np.moveaxis(f, -1, 0), h, w, 0, h), 0, -1) for f in (fm, bm))
    img = on_magenta / 255.0
    dense = np.clip(np.rint((fmu + a * (img - a * fmu - (1 - a) * bmu)) * 255), 0, 255)
    soft = (alpha > 0.5 / 255) & (alpha < 1 - 0.5 / 255)
    assert np.abs(dense[soft] - estimated[soft]).max() <= 1


@pytest.mark.parametrize("strip", [16, 100, 512])
def test_foreground_estimation_follows_the_formula_on_dense_and_sparse_strips(rng, strip):
    """Top half: soft almost everywhere (whole rows, one channel at a time); bottom half: one
    soft edge (only its pixels): both give blur fusion's last line to within one level, and
    every pixel that is not soft keeps its colour exactly."""
    from kirinuki.foreground import estimate_foreground, foreground_fields
    from kirinuki.guided import DENSE_FRACTION
    h, w = 300, 410
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    alpha = np.where(yy < h // 2, 0.1 + 0.8 * xx / w, (xx > 200 + 20 * np.sin(yy / 9)).astype(np.float32))
    alpha[h // 2:] = np.clip(alpha[h // 2:] + (np.abs(xx - 200 - 20 * np.sin(yy / 9)) < 2)[h // 2:] * 0.4, 0, 1)
    alpha = alpha.astype(np.float32)
    rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    soft = (alpha > 0.5 / 255) & (alpha < 1 - 0.5 / 255)
    shares = [soft[y:y + strip].mean() for y in range(0, h, strip)]
    if strip < h // 2:
        assert max(shares) > DENSE_FRACTION and min(shares) < DENSE_FRACTION
    got = estimate_foreground(rgb, alpha, strip=strip)
    fm, bm = (np.moveaxis(bilinear_rows(np.moveaxis(f, -1, 0), h, w, 0, h), 0, -1) for f in foreground_fields(rgb, alpha))
    a, img = alpha[..., None], rgb / 255.0
    want = np.clip(np.rint((fm + a * (img - a * fm - (1 - a) * bm)) * 255), 0, 255)
    assert np.abs(want[soft] - got[soft]).max() <= 1
    assert np.mean(want[soft] == got[soft]) > 0.999
    assert np.array_equal(got[~soft], rgb[~soft])


def test_batched_tensor_path_matches_the_per_picture_path(tiny_checkpoint):
    """The GPU-oriented batch path computes the same alpha as Matter (here on the CPU)."""
    from kirinuki.batched import predict_alpha_batch
    from kirinuki.checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(tiny_checkpoint))
    matter = Matter(tiny_checkpoint, device="cpu")
    rgb, _ = _disc_scene(384)
    pictures = np.stack([rgb, rgb[:, ::-1].copy()])
    batch = predict_alpha_batch(model, torch.from_numpy(pictures).permute(0, 3, 1, 2), matter.info.work_size)
    assert batch.shape == (2, 1, 384, 384)
    for k in range(2):
        reference = matter.predict_alpha(pictures[k])
        assert np.abs(batch[k, 0].numpy() - reference).mean() < 0.01
        assert np.abs(batch[k, 0].numpy() - reference).max() < 0.1


def test_test_time_flip_averages_with_the_mirror_image(tiny_onnx):
    img = np.random.default_rng(3).integers(0, 256, (64, 50, 3), dtype=np.uint8)  # at the working size
    plain = Matter(tiny_onnx, edge_matting=False)  # the flip averages the network's passes
    a = plain.predict_alpha(img)
    b = plain.predict_alpha(np.ascontiguousarray(img[:, ::-1]))[:, ::-1]
    assert np.abs(a - b).max() > 1e-3  # the network is not mirror-symmetric: the check has teeth
    np.testing.assert_allclose(Matter(tiny_onnx, tta=True, edge_matting=False).predict_alpha(img), (a + b) / 2,
                               atol=1e-5)


def test_batched_path_matches_the_per_picture_path_with_the_bundled_model():
    """On the samples, with the real weights: the batched path agrees with Matter far more
    closely than the working-size alpha merely enlarged (what a broken guided step gives).
    The batched path is the network and the guided step; the edge matting and the
    flat-background clearing are the per-picture path's own."""
    from kirinuki.batched import predict_alpha_batch
    from kirinuki.checkpoint import load_checkpoint, model_from_checkpoint
    from kirinuki.bundled import bundled_file

    model = model_from_checkpoint(load_checkpoint(bundled_file("default.pt"))).eval()
    matter = Matter(bundled_file("default.pt"), device="cpu", flat_background=False, edge_matting=False)
    for path in sample_paths():
        rgb = np.asarray(Image.open(path).convert("RGB"))
        reference = matter.predict_alpha(rgb)
        got = predict_alpha_batch(model, torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None],
                                  matter.info.work_size)[0, 0].numpy()
        lo = torch.nn.functional.interpolate(torch.from_numpy(reference)[None, None], scale_factor=0.25,
                                             mode="area")
        enlarged = torch.nn.functional.interpolate(lo, size=reference.shape, mode="bilinear")[0, 0].numpy()
        err, crude = np.abs(got - reference), np.abs(enlarged - reference)
        assert err.mean() < 0.002 and np.mean(err > 0.1) < 0.001, path.name
        assert err.mean() < 0.1 * crude.mean(), path.name


def test_the_upsampling_brings_back_strands_the_working_size_cannot_hold():
    """A 2048-pixel picture with 2-pixel strands of hair, a quarter of a pixel at the working
    size of 512: given the working-size alpha (the truth averaged down, as a perfect network
    would give it), the guided upsampling against the full-size picture restores the strands
    (measured: 74.7 dB) where a plain bilinear enlargement blurs them (21.6 dB)."""
    from PIL import ImageDraw

    from kirinuki.inference import prepare_input, restore_size

    n = 2048
    figure = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(figure)
    draw.ellipse((700, 700, 1350, 1350), fill=255)
    rng = np.random.default_rng(0)
    for angle, reach in zip(rng.uniform(0, 2 * np.pi, 60), rng.uniform(600, 950, 60)):
        c, s = np.cos(angle), np.sin(angle)
        draw.line((1025 + 320 * c, 1025 + 320 * s, 1025 + reach * c, 1025 + reach * s), fill=255, width=2)
    truth = np.asarray(figure).astype(np.float32) / 255
    a = truth[..., None]
    rgb = np.clip(a * np.float32([60, 30, 20]) + (1 - a) * np.float32([250, 245, 235]), 0, 255).astype(np.uint8)
    low = np.asarray(Image.fromarray(truth, "F").resize((512, 512), Image.Resampling.BOX)).astype(np.float32)
    guided = restore_size(low, prepare_input(rgb, 512), rgb)
    bilinear = np.clip(np.asarray(Image.fromarray(low, "F").resize((n, n), Image.Resampling.BILINEAR)), 0, 1)
    assert psnr(guided, truth) >= 40 and psnr(guided, truth) >= psnr(bilinear, truth) + 15


def _padded_convolutions():
    """image -> five zero-padded 3x3 convolutions side by side: a plain zero padding (folded),
    one filled with 0.5, one reflecting, one whose padding a Relu reads too, and one before a
    convolution that pads itself by auto_pad (all kept)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, outputs = [], [], []
    amounts = numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 0, 2, 1], np.int64), "amounts")
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    inits += [amounts, half]
    for i, (mode, fill, also_relu) in enumerate([("constant", "", False), ("constant", "half", False),
                                                   ("reflect", "", False), ("constant", "", True),
                                                   ("constant", "", False)]):
        inits.append(numpy_helper.from_array(rng.standard_normal((2, 3, 3, 3)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("Pad", ["image", "amounts", fill], [f"padded{i}"], mode=mode, name=f"pad{i}"))
        own = {"auto_pad": "SAME_UPPER"} if i == 4 else {"pads": [1, 0, 0, 1]}
        nodes.append(helper.make_node("Conv", [f"padded{i}", f"w{i}"], [f"out{i}"], strides=[2, 2], **own))
        outputs.append(helper.make_tensor_value_info(f"out{i}", TensorProto.FLOAT, None))
        if also_relu:
            nodes.append(helper.make_node("Relu", [f"padded{i}"], ["relu"]))
            outputs.append(helper.make_tensor_value_info("relu", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "padded", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                             [1, 3, None, None])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_zero_paddings_before_convolutions_fold_into_them_and_nothing_else_does():
    import onnxruntime as ort

    from kirinuki.export import fold_zero_pads

    proto = _padded_convolutions()
    folded = fold_zero_pads(proto)
    assert sorted(n.name for n in folded.graph.node if n.op_type == "Pad") == ["pad1", "pad2", "pad3", "pad4"]
    conv = next(n for n in folded.graph.node if n.output[0] == "out0")
    assert conv.input[0] == "image" and list(conv.attribute[-1].ints) == [2, 0, 2, 2]  # its own plus the Pad's
    x = np.random.default_rng(1).random((1, 3, 11, 14), np.float32)
    runs = [ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": x})
            for p in (proto, folded)]
    for before, after in zip(*runs):
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)


def test_the_bundled_network_has_its_paddings_folded():
    import onnx

    from kirinuki.bundled import bundled_file
    from kirinuki.export import fold_zero_pads

    proto = onnx.load(str(bundled_file("default.onnx")))
    assert not any(n.op_type == "Pad" for n in proto.graph.node)
    assert fold_zero_pads(proto).SerializeToString() == proto.SerializeToString()  # nothing left to fold
