"""One process's share of a bulk job started by torchrun: its rank, device and CPU threads.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``. Each rank
runs on its own GPU (``cuda:LOCAL_RANK``) when the model's runtime can use one, else on its
share of this machine's cores, so that the ranks of one machine never oversubscribe it.

torchrun stops every rank as soon as one exits with an error, so a rank that failed on some
input waits, before it exits, until every rank has finished its share and written its manifest
(``finish_rank``), counting finished ranks in torchrun's own key-value store.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

from .runtimes import torch_cuda_available

__all__ = ["RankPlan", "plan_rank", "onnx_has_cuda", "finish_rank"]


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


def finish_rank(failed: bool, env: Mapping[str, str] = os.environ, poll: float = 0.2) -> bool:
    """Count this rank as finished in torchrun's store; with ``failed``, wait until every rank
    has finished before returning, so that this rank's error exit cannot stop the others
    mid-share. Returns False when the store cannot be reached (outside torchrun, or with
    ``--master_port 0``, whose workers are not told the port actually taken): then nothing
    waits."""
    try:
        from torch.distributed import TCPStore
    except ImportError:  # not started by torchrun
        return False
    world = int(env.get("WORLD_SIZE", "1"))
    host, port = env.get("MASTER_ADDR"), int(env.get("MASTER_PORT", "0"))
    if world <= 1 or not host or port <= 0:
        return False
    try:
        store = TCPStore(host, port, is_master=False, timeout=timedelta(seconds=30))
    except (RuntimeError, OSError):
        return False
    # A restarted attempt (torchrun --max-restarts) counts afresh.
    key = f"kirinuki/cutout/finished/{env.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    store.add(key, 1)
    while failed and store.add(key, 0) < world:
        time.sleep(poll)
    return True
