"""One process's share of a bulk job started by torchrun: its rank, device and CPU threads.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``. Each rank
runs on its own GPU (``cuda:LOCAL_RANK``) when the model's runtime can use one, else on its
share of this machine's cores, so that the ranks of one machine never oversubscribe it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from .runtimes import torch_cuda_available

__all__ = ["RankPlan", "plan_rank", "onnx_has_cuda"]


@dataclass(frozen=True)
class RankPlan:
    rank: int
    world: int
    device: str
    threads: int | None
    note: str | None = None


def onnx_has_cuda() -> bool:
    """ONNX Runtime in this installation has a CUDA provider (the usual wheel has none)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def plan_rank(model: str | None, device: str, threads: int | None, env: Mapping[str, str] = os.environ,
              cuda: bool | None = None, onnx_cuda: bool | None = None) -> RankPlan:
    """The device and threads of this rank. ``model``: None (the bundled ONNX model), an
    ``.onnx`` file (ONNX Runtime) or a checkpoint (PyTorch). ``cuda`` and ``onnx_cuda`` are
    found out when not given. With ``--device auto`` on a GPU machine whose ONNX Runtime has
    no CUDA provider, the rank runs on the CPU with a note rather than fail."""
    rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    local, local_world = int(env.get("LOCAL_RANK", "0")), int(env.get("LOCAL_WORLD_SIZE", "1"))
    cpu_share = threads or max(1, (os.cpu_count() or 1) // max(1, local_world))
    if device not in ("auto", "cuda") or not (torch_cuda_available() if cuda is None else cuda):
        return RankPlan(rank, world, device, cpu_share)
    on_torch = model is not None and not str(model).lower().endswith(".onnx")
    # A GPU when the runtime can use it, or when asked for explicitly (the runner then says
    # why it cannot); with "auto", the CPU otherwise.
    if on_torch or device == "cuda" or (onnx_has_cuda() if onnx_cuda is None else onnx_cuda):
        return RankPlan(rank, world, f"cuda:{local}", threads)
    return RankPlan(rank, world, "cpu", cpu_share,
                    "ONNX Runtime here has no CUDA provider: this rank runs on the CPU "
                    "(give --model a training checkpoint .pt to use the GPU through PyTorch)")
