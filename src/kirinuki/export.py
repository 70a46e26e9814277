"""ONNX export of a trained network, and the parity check against PyTorch.

The exported graph takes ``image``: Nx3xHxW float32 RGB in [0, 1] (H and W dynamic) and
returns ``alpha``: Nx1xHxW float32 in [0, 1]; normalisation and padding are inside it.
The model's description (architecture, arguments, working size, version) travels in the
file's metadata under the key ``kirinuki``, so the ONNX file alone is enough to run it.

The graph is written unfolded (BatchNorm beside its convolution, as in PyTorch), so that a
kernel stored in half precision (``checkpoint.half_precision``) stays exactly representable:
such kernels are stored as float16 with a Cast to float32 in front (:func:`store_half`), half
the bytes of the package. ONNX Runtime folds the casts and the BatchNorm into the
convolutions when it loads the model, so it runs at the speed of the folded graph.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._version import __version__
from .checkpoint import load_checkpoint, model_from_checkpoint
from .imaging import atomic_write, to_float
from .inference import to_network_input
from .models import AlphaNet

__all__ = ["OPSET", "export_onnx", "export_checkpoint", "parity_check", "fold_zero_pads", "store_half"]

#: ONNX opset of the exported graph (supported by ONNX Runtime >= 1.14).
OPSET = 17


def export_onnx(model: AlphaNet, path: str | os.PathLike, meta: dict[str, Any], half: bool = True) -> Path:
    """Write ``model`` as ONNX to ``path`` (atomically), with ``meta`` in its metadata.
    half: store the kernels that float16 holds exactly as float16 (:func:`store_half`);
    False keeps every initializer in float32 (what a quantizer reads)."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    example = torch.rand(1, 3, 2 * model.pad_multiple, 3 * model.pad_multiple)
    graph = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (example,), graph, dynamo=False, opset_version=OPSET,
                          do_constant_folding=False, input_names=["image"], output_names=["alpha"],
                          dynamic_axes={"image": {0: "n", 2: "height", 3: "width"},
                                        "alpha": {0: "n", 2: "height", 3: "width"}})
    proto = fold_zero_pads(onnx.load_from_string(graph.getvalue()))
    if half:
        proto = store_half(proto)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "kirinuki", json.dumps(meta, sort_keys=True)
    proto.producer_name = "kirinuki"
    proto.producer_version = __version__
    return atomic_write(path, lambda fh: fh.write(proto.SerializeToString()))


def fold_zero_pads(proto: "onnx.ModelProto") -> "onnx.ModelProto":
    """``proto`` with each zero padding of height and width (a ``Pad`` node: constant mode, no
    fill value, fixed amounts) that only convolutions read folded into those convolutions'
    own ``pads``, and what is left unread removed: the same network. EfficientNet-Lite's
    "same" padding is written as such a node before every depthwise convolution, and ONNX
    Runtime neither folds it nor runs it in the blocked layout of the convolutions, so each
    one cost a pass over its tensor and a change of layout there and back."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    graph = proto.graph
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def explicit_pads(conv: Any) -> bool:  # not auto_pad, which takes no pads of its own
        return all(helper.get_attribute_value(a) in (b"NOTSET", "NOTSET") for a in conv.attribute
                   if a.name == "auto_pad")

    def foldable(node: Any) -> bool:
        modes = [helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"]
        users = readers.get(node.output[0], [])
        no_fill_no_axes = all(name == "" for name in node.input[2:])  # zeros, on every axis
        return (node.op_type == "Pad" and modes in ([], [b"constant"]) and no_fill_no_axes
                and node.output[0] not in outputs and bool(users)
                and all(u.op_type == "Conv" and u.input[0] == node.output[0] and explicit_pads(u) for u in users))
    pads = [node for node in graph.node if foldable(node)]
    if not pads:
        return proto
    # The amounts, read by running the graph twice at two sizes with them as outputs: fixed
    # amounts come out the same both times.
    probe = onnx.ModelProto.FromString(proto.SerializeToString())
    probe.graph.output.extend(helper.make_tensor_value_info(n.input[1], onnx.TensorProto.INT64, None) for n in pads)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    image = session.get_inputs()[0].name
    amounts = [session.run([n.input[1] for n in pads], {image: np.zeros((1, 3, side, side), np.float32)})
               for side in (64, 96)]
    folded = set()
    for node, first, second in zip(pads, *amounts):
        amount = [int(v) for v in first]
        if (len(amount) != 8 or not np.array_equal(first, second) or min(amount) < 0
                or any(amount[i] for i in (0, 1, 4, 5))):
            continue  # not fixed, or not on height and width alone
        top, left, bottom, right = amount[2], amount[3], amount[6], amount[7]
        for conv in readers[node.output[0]]:
            own = [a for a in conv.attribute if a.name == "pads"]
            was = list(helper.get_attribute_value(own[0])) if own else [0, 0, 0, 0]
            for a in own:
                conv.attribute.remove(a)
            conv.attribute.append(helper.make_attribute("pads", [was[0] + top, was[1] + left,
                                                                 was[2] + bottom, was[3] + right]))
            conv.input[0] = node.input[0]
        folded.add(id(node))
    live = [node for node in graph.node if id(node) not in folded]
    while True:  # drop what nothing reads any more (the amounts' constant arithmetic)
        read = {name for node in live for name in node.input} | outputs
        kept = [node for node in live if any(name in read for name in node.output)]
        if len(kept) == len(live):
            break
        live = kept
    del graph.node[:]
    graph.node.extend(live)
    read = {name for node in live for name in node.input}
    initializers = [init for init in graph.initializer if init.name in read]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    return proto


def store_half(proto: "onnx.ModelProto", min_elements: int = 64) -> "onnx.ModelProto":
    """``proto`` with every float32 initializer of at least ``min_elements`` values that float16
    holds exactly stored as float16, read through a Cast node under its old name: the same
    network in about half the bytes. Others (biases, BatchNorm statistics) stay as they are."""
    import onnx
    from onnx import helper, numpy_helper

    kept, casts = [], []
    for init in proto.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.size >= min_elements:
            half = values.astype(np.float16)
            if np.array_equal(half.astype(np.float32), values):
                kept.append(numpy_helper.from_array(half, f"{init.name}.half"))
                casts.append(helper.make_node("Cast", [f"{init.name}.half"], [init.name],
                                              to=onnx.TensorProto.FLOAT, name=f"{init.name}.cast"))
                continue
        kept.append(init)
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    nodes = casts + list(proto.graph.node)  # the casts first: the nodes stay in topological order
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return proto


def parity_check(model: AlphaNet, onnx_path: str | os.PathLike, images: list[np.ndarray]) -> float:
    """Max absolute difference between PyTorch and ONNX Runtime alphas over ``images``
    (each HxWx3 uint8, run at its own size)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model = model.cpu().eval()
    worst = 0.0
    for rgb in images:
        x = to_network_input(to_float(rgb), model.pad_multiple)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"image": x})[0]
        worst = max(worst, float(np.max(np.abs(ref - got))))
    return worst


def model_meta(state: dict[str, Any], model: AlphaNet, name: str | None = None) -> dict[str, Any]:
    return {"name": name or state.get("name", "kirinuki-model"), "arch": state["arch"],
            "arch_args": state["arch_args"], "work_size": state.get("work_size"),
            "pad_multiple": model.pad_multiple,
            "step": state.get("step"), "version": __version__}


def export_checkpoint(checkpoint: str | os.PathLike, onnx_path: str | os.PathLike,
                      check_images: list[np.ndarray], name: str | None = None,
                      tolerance: float = 1e-3) -> float:
    """Export a training checkpoint to ONNX and verify it; returns the parity figure.

    Raises ValueError (and removes the file) when ONNX and PyTorch differ by more than
    ``tolerance`` on ``check_images``.
    """
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state)
    export_onnx(model, onnx_path, model_meta(state, model, name))
    diff = parity_check(model, onnx_path, check_images)
    if diff > tolerance:
        Path(onnx_path).unlink(missing_ok=True)
        raise ValueError(f"{onnx_path}: ONNX and PyTorch differ by {diff:.2e} > {tolerance:.0e}")
    return diff


def parity_images(max_side: int = 320) -> list[np.ndarray]:
    """The bundled samples (downscaled to ``max_side``) and one odd-sized random picture:
    the inputs of the export's parity check."""
    from .imaging import as_rgb_array
    from .samples import sample_paths
    from PIL import Image

    images = []
    for path in sample_paths():
        im = Image.fromarray(as_rgb_array(path))
        im.thumbnail((max_side, max_side))
        images.append(np.asarray(im))
    images.append(np.random.default_rng(0).integers(0, 256, (97, 61, 3), dtype=np.uint8))
    return images
