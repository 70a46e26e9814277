"""tools/quantize_model.py: an int8 copy of a trained network, calibrated on training composites."""

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_overrides
from kirinuki.config import load_config
from kirinuki.inference import Matter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from quantize_model import calibration_inputs, quantize  # noqa: E402

pytest.importorskip("onnxruntime.quantization")


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    from kirinuki.train import train

    out = tmp_path_factory.mktemp("run")
    train(load_config("default", overrides=tiny_overrides(steps=2)), tiny_data, out, progress=False)
    return out / "last.pt"


def test_calibration_draws_training_composites_at_the_working_size(trained, tiny_data):
    from kirinuki.checkpoint import load_checkpoint

    inputs = calibration_inputs(tiny_data, load_checkpoint(trained), 3)
    assert len(inputs) == 3 and all(x.shape == (1, 3, 64, 64) and x.dtype == np.float32 for x in inputs)
    assert 0 <= min(x.min() for x in inputs) and max(x.max() for x in inputs) <= 1
    assert not np.array_equal(inputs[0], inputs[1])  # different composites, not one repeated


def test_an_int8_model_with_its_head_in_float_runs_as_the_cutout_tool_runs_it(trained, tiny_data, tmp_path):
    import onnx

    from kirinuki.checkpoint import load_checkpoint, model_from_checkpoint
    from kirinuki.export import export_onnx, model_meta

    out = tmp_path / "int8.onnx"
    quantize(trained, tiny_data, out, samples=4, keep_float=("/head",))
    graph = onnx.load(out).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    head = [n for n in convs if n.name.startswith("/head")]
    assert head and all(n.input[1] not in dequantized for n in head)  # float kernels in the head
    assert all(n.input[1] in dequantized for n in convs if n not in head)  # int8 kernels elsewhere
    int8_kernels = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_kernels) == len(convs) - len(head)
    assert not list(tmp_path.glob(".*partial"))  # written by rename, nothing half-written left

    state = load_checkpoint(trained)
    model = model_from_checkpoint(state)
    reference = tmp_path / "float.onnx"
    export_onnx(model, reference, model_meta(state, model))
    picture = np.random.default_rng(3).integers(0, 256, (80, 60, 3), dtype=np.uint8)
    quantized = Matter(out).predict_alpha(picture)
    exact = Matter(reference).predict_alpha(picture)
    assert quantized.shape == exact.shape == (80, 60)
    assert np.abs(quantized - exact).mean() < 0.05
