"""An int8 copy of the bundled network, by ONNX Runtime's static quantization.

    python tools/quantize_model.py --data ../shared/data OUT.onnx [--checkpoint FILE.pt]
        [--samples 96] [--keep-float PREFIX ...] [--calibration minmax|percentile|entropy]

The checkpoint (the bundled ``default.pt`` unless ``--checkpoint``) is exported to ONNX in
float32, pre-processed (shape inference, batch norms folded into the convolutions) and
quantized in the QDQ format: weights int8 per output channel, activations uint8 with ranges
calibrated on training composites (``SampleMaker`` on the ``--data`` folder's training groups
and backgrounds with the checkpoint's own data config, at the working size; never ``val/``).
``--keep-float /head`` leaves the nodes whose names start so in float (``/head``: the
full-resolution head, which sees the RGB picture and makes the alpha; ``/decoder``,
``/encoder/_conv_stem``...). The result runs wherever the float model runs:
``kirinuki cutout --model OUT.onnx``. Whether it ships is decided by ``kirinuki evaluate``
(every row within 0.1 dB of the float model) and ``benchmarks/cutout_latency.py``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from kirinuki.bundled import bundled_file
from kirinuki.checkpoint import load_checkpoint, model_from_checkpoint
from kirinuki.config import config_from_dict
from kirinuki.export import export_onnx, model_meta
from kirinuki.inference import prepare_input, to_network_input

def calibration_inputs(data: Path, state: dict, samples: int, seed: int = 0) -> list[np.ndarray]:
    """``samples`` training composites as the network receives them: 1x3xHxW float32 at the
    working size, padded to the network's multiple."""
    from kirinuki.cutouts import CutoutLibrary
    from kirinuki.data import SampleMaker

    cfg = config_from_dict(state["config"]) if "config" in state else None
    if cfg is None:
        raise ValueError("the checkpoint holds no training config to draw composites with")
    lib = CutoutLibrary.load(data, cfg.data)
    maker = SampleMaker(lib, cfg.data)
    rng = np.random.default_rng(seed)
    size, multiple = state.get("work_size") or 512, model_from_checkpoint(state).pad_multiple
    inputs = []
    for _ in range(samples):
        fp, alpha, bg = maker.make(rng, size)
        image = fp.astype(np.float32) + (1 - alpha[..., None] / 255.0) * bg
        rgb = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        inputs.append(to_network_input(prepare_input(rgb, size), multiple))
    return inputs


class _Reader:
    """ONNX Runtime's calibration reader over prepared inputs."""

    def __init__(self, name: str, inputs: list[np.ndarray]) -> None:
        self._items = iter([{name: x} for x in inputs])

    def get_next(self):
        return next(self._items, None)


def quantize(checkpoint: Path, data: Path, out: Path, samples: int = 96, keep_float: tuple[str, ...] = (),
             calibration: str = "minmax", inputs: list[np.ndarray] | None = None) -> dict:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state)
    meta = model_meta(state, model)
    with tempfile.TemporaryDirectory() as tmp:
        f32, pre = Path(tmp) / "f32.onnx", Path(tmp) / "pre.onnx"
        export_onnx(model, f32, meta, half=False)
        quant_pre_process(str(f32), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(pre)
        exclude = [n.name for n in graph.graph.node if keep_float and n.name.startswith(tuple(keep_float))]
        inputs = inputs if inputs is not None else calibration_inputs(data, state, samples)
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[calibration]
        staged = out.with_name(f".{out.name}.partial")
        quantize_static(str(pre), str(staged), _Reader(graph.graph.input[0].name, inputs),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=exclude, calibrate_method=method,
                        extra_options={"CalibMovingAverage": False})
    proto = onnx.load(staged)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key = "kirinuki"
    entry.value = json.dumps({**meta, "int8": {"samples": len(inputs), "keep_float": list(keep_float),
                                               "calibration": calibration}}, sort_keys=True)
    onnx.save(proto, staged)
    staged.replace(out)
    return {"nodes_in_float": len(exclude), "bytes": out.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path, required=True, help="the training data (train groups and backgrounds/)")
    ap.add_argument("--checkpoint", type=Path, help="default: the bundled default.pt")
    ap.add_argument("--samples", type=int, default=96, help="calibration composites")
    ap.add_argument("--keep-float", nargs="*", default=[], metavar="PREFIX",
                    help="leave the nodes whose names start so in float (e.g. /head)")
    ap.add_argument("--calibration", default="minmax", choices=("minmax", "percentile", "entropy"))
    args = ap.parse_args()
    print(quantize(args.checkpoint or bundled_file("default.pt"), args.data, args.out, args.samples,
                   tuple(args.keep_float), args.calibration))


if __name__ == "__main__":
    main()
