"""Recompute a checkpoint's BatchNorm statistics from its own recipe's training composites.

    python tools/refresh_batchnorm.py src/kirinuki/weights/default.pt runs/default-bn.pt \
        --data ../shared/data [--samples 320] [--size 320]

Writes a copy of the checkpoint whose ``model`` weights keep every learned parameter and carry
BatchNorm running statistics taken as the plain average over ``--samples`` composites of the
checkpoint's training recipe (its config), at ``--size`` px (default: the recipe's largest
training canvas, where the statistics were learned). The input is never overwritten. Score
the copy with ``kirinuki evaluate --model OUT`` before bundling it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from kirinuki.batchnorm import refresh_batchnorm, statistics_pictures
from kirinuki.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint, without_training_state
from kirinuki.config import config_from_dict
from kirinuki.cutouts import CutoutLibrary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", required=True, help="the training data root (cutouts and backgrounds)")
    ap.add_argument("--samples", type=int, default=320)
    ap.add_argument("--size", type=int, default=0, help="canvas side; 0: the recipe's largest training canvas")
    args = ap.parse_args()
    if args.out.resolve() == args.checkpoint.resolve():
        sys.exit(f"refresh_batchnorm: {args.out}: the output would overwrite the input")
    state = load_checkpoint(args.checkpoint)
    cfg = config_from_dict(state["config"])
    size = args.size or max(cfg.sizes)
    model = model_from_checkpoint(state)
    library = CutoutLibrary.load(args.data, cfg.data)
    layers = refresh_batchnorm(model, statistics_pictures(cfg, library, args.samples, size, torch.device("cpu")))
    state = without_training_state(state)
    state["model"] = model.state_dict()
    state["batchnorm_refresh"] = {"samples": args.samples, "size": size, "seed": cfg.seed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, args.out)
    print(f"{args.out}: {layers} BatchNorm layers refreshed from {args.samples} composites at {size} px")


if __name__ == "__main__":
    main()
