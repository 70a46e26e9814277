"""The runtimes a model runs on: ONNX Runtime (no PyTorch needed) and PyTorch.

Each runner is a function from a ``1x3xHxW float32`` array (padded to the network's multiple)
to the ``1x1xHxW`` alpha. :func:`resolve_torch_device` is the one place that turns ``auto``,
``cpu``, ``cuda`` or ``cuda:N`` into a device, for the runners and for training alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import ModelError

__all__ = ["onnx_runner", "module_runner", "resolve_torch_device", "torch_cuda_available"]


def torch_cuda_available() -> bool:
    """A CUDA device that PyTorch can use (False without PyTorch)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def onnx_runner(path: Path, device: str, threads: int | None) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ONNX Runtime's threads otherwise spin for a while after each call, on the cores that
    # the refinement after the network runs on (10-25 ms of it at 1024x1024 here).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers: list = ["CPUExecutionProvider"]
    cuda = device == "auto" or device.startswith("cuda")
    if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        device_id = int(device.split(":")[1]) if ":" in device else 0
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device_id}))
    elif device.startswith("cuda"):
        raise ModelError(f"--device {device}: ONNX Runtime has no CUDA provider in this installation "
                         "(use a training checkpoint with --model to run on the GPU through PyTorch)")
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:
        raise ModelError(f"{path}: not a usable ONNX model ({exc.__class__.__name__})") from exc
    meta_map = session.get_modelmeta().custom_metadata_map
    meta = json.loads(meta_map.get("kirinuki", "{}"))
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: x})[0]
    return run, meta


def resolve_torch_device(device: str) -> Any:
    """``auto`` (CUDA when PyTorch sees it, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device}: PyTorch sees no CUDA device")
    return torch.device(device)


def module_runner(module: Any, device: str, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    dev = resolve_torch_device(device)
    if threads:
        torch.set_num_threads(threads)
    module = module.to(dev).eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x).to(dev)).float().cpu().numpy()
    return run
