"""Self-describing training checkpoints: saving atomically, loading, rebuilding the network.

A checkpoint is a ``torch.save`` dict with everything needed to rebuild the run:
``arch`` and ``arch_args`` (the registry name and constructor arguments), ``work_size``,
``config`` (the full training config), ``step``, ``model`` (state dict: the weights'
moving average when the run keeps one), ``train_model`` (then the raw weights training goes
on from), ``optimizer`` (absent in a weights-only file), ``metrics`` (the last validation),
``train_seconds``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .imaging import atomic_write
from .models import AlphaNet, create_model

FORMAT = "kirinuki-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, fh))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; a clear error for anything else."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable kirinuki checkpoint ({exc.__class__.__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a kirinuki checkpoint")
    return state


def without_training_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without what only training goes on from (the optimiser state, the raw
    weights beside a moving average, the start ``optim.anchor`` pulls to): what a bundled or
    derived checkpoint keeps."""
    return {k: v for k, v in state.items() if k not in ("optimizer", "train_model", "anchor")}


def half_precision(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the network's kernels and weight matrices (floating-point tensors of two
    or more dimensions) stored in half precision: about half the bytes, for a bundled or a
    returned checkpoint. Biases and BatchNorm parameters and statistics (one dimension, a
    small share of the bytes) keep their precision. Loading the weights into a network casts
    them back to its own precision, so the network then holds exactly the rounded values."""
    model = {k: v.half() if v.is_floating_point() and v.dim() > 1 else v for k, v in state["model"].items()}
    return {**state, "model": model}


def model_from_checkpoint(state: dict[str, Any]) -> AlphaNet:
    """Rebuild the network a checkpoint describes and load its weights (eval mode, CPU)."""
    model = create_model(state["arch"], **state["arch_args"])
    model.load_state_dict(state["model"])
    return model.eval()
