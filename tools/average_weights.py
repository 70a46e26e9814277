"""Average the weights of two checkpoints of one architecture (a two-model "soup").

    python tools/average_weights.py src/kirinuki/weights/default.pt runs/J/best.pt \
        runs/soup.pt --share 0.05
    kirinuki evaluate --model runs/soup.pt --data ../shared/data/val/anime ...

Two networks fine-tuned from the same pretrained weights often lie in one basin, where the
straight line between them scores as well as either end or better (Wortsman et al., "Model
soups", 2022). The copy holds ``(1 - share) * FIRST + share * SECOND`` for every floating-point
tensor of the ``model`` weights, BatchNorm running statistics included; the first checkpoint
gives everything else (its recipe, its step counters). Averaged statistics belong to neither
network, yet on kirilite they scored better than statistics recomputed after averaging
(tools/refresh_batchnorm.py; docs/ablation.md, "F and J averaged"): score both when in doubt.
A third network joins by averaging the copy with it. The inputs are never overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from kirinuki.checkpoint import load_checkpoint, save_checkpoint, without_training_state


def average_weights(first: dict, second: dict, share: float) -> dict:
    """The state of ``first`` with its ``model`` weights moved ``share`` of the way to those of
    ``second`` (0: ``first``'s own, 1: ``second``'s). Integer tensors (BatchNorm's batch
    counters) stay ``first``'s. Raises ValueError when the two are not one architecture."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must lie in [0, 1], not {share}")
    if (first["arch"], first["arch_args"]) != (second["arch"], second["arch_args"]):
        raise ValueError(f"different architectures: {first['arch']} {first['arch_args']} "
                         f"and {second['arch']} {second['arch_args']}")
    a, b = first["model"], second["model"]
    if set(a) != set(b):
        raise ValueError(f"different weights: {sorted(set(a) ^ set(b))[:3]}")
    averaged = {}
    for key, tensor in a.items():
        if tensor.shape != b[key].shape:
            raise ValueError(f"{key}: shape {tuple(tensor.shape)} against {tuple(b[key].shape)}")
        if tensor.is_floating_point():
            averaged[key] = torch.lerp(tensor, b[key].to(tensor.dtype), share)
        else:
            averaged[key] = tensor.clone()
    state = {**without_training_state(first), "model": averaged}
    state["weight_average"] = {"share_of_second": share,
                               "first": {"step": first.get("step"), "name": first.get("name")},
                               "second": {"step": second.get("step"), "name": second.get("name")}}
    return state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--share", type=float, default=0.5, help="the second checkpoint's share (0 to 1)")
    args = ap.parse_args()
    if args.out.resolve() in (args.first.resolve(), args.second.resolve()):
        sys.exit(f"average_weights: {args.out}: the output would overwrite an input")
    try:
        state = average_weights(load_checkpoint(args.first), load_checkpoint(args.second), args.share)
    except ValueError as exc:
        sys.exit(f"average_weights: {exc}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, args.out)
    print(f"{args.out}: {1 - args.share:g} x {args.first} + {args.share:g} x {args.second}")


if __name__ == "__main__":
    main()
