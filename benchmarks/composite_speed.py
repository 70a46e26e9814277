"""Training-data speed: composites per second on CPU (and on the GPU when there is one).

    python benchmarks/composite_speed.py --data ../shared/data [--sizes 256 512] [--batch 64]

"per sample" is the CPU side a DataLoader worker does for one sample, on one core: with
Pillow's placement (cutout choice, flip, zoom, rotation, paste, background) and with the
device placement (the same draws, the background, and a few numbers per character);
"placed" is the device side of the device placement for a batch (the atlas warp, scene
colour jitter, shadows), per composite; "batched" is the device side common to both
(compositing, blur, rescale, noise, JPEG), per composite.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from kirinuki.config import load_config
from kirinuki.cutouts import CutoutLibrary
from kirinuki.data import CompositeDataset, SampleMaker
from kirinuki.degradations import compose_batch
from kirinuki.placement import CutoutAtlas, finish_batch


def _timed(fn, dev: str, reps: int = 5) -> float:
    """Seconds per call of ``fn`` on ``dev``, after one warm-up call."""
    fn()
    if dev == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if dev == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--samples", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.preset)
    t0 = time.perf_counter()
    lib = CutoutLibrary.load(args.data, cfg.data)
    print(f"loaded {len(lib)} cutouts and {len(lib.backgrounds)} backgrounds in {time.perf_counter() - t0:.1f} s")
    device_cfg = dataclasses.replace(cfg.data, placement="device")
    ds = CompositeDataset(SampleMaker(lib, cfg.data), seed=0)
    device_ds = CompositeDataset(SampleMaker(lib, device_cfg), seed=0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    place_on = devices[-1]  # the training device: the GPU where there is one
    t0 = time.perf_counter()
    atlas = CutoutAtlas.for_library(lib, device_cfg, place_on)
    print(f"atlas on {place_on}: {len(atlas)} cutouts in {time.perf_counter() - t0:.1f} s")
    for size in args.sizes:
        t0 = time.perf_counter()
        items = [ds[(i, size)] for i in range(args.samples)]
        per_sample = args.samples / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        tables = [device_ds[(i, size)] for i in range(args.samples)]
        per_table = args.samples / (time.perf_counter() - t0)
        print(f"size {size}: per sample (1 CPU core): {per_sample:.0f} composites/s placed by Pillow, "
              f"{per_table:.0f} for the device placement")
        batch = [torch.stack(t)[: args.batch] for t in zip(*items)]
        layer_batch = [torch.stack(t)[: args.batch] for t in zip(*tables)]
        n = batch[0].shape[0]
        for dev in devices:
            fp, alpha, bg = (t.to(dev) for t in batch)
            g = torch.Generator(dev).manual_seed(0)
            rate = n / _timed(lambda: compose_batch(fp, alpha, bg, cfg.data, g), dev)
            print(f"size {size} on {dev} (batch {n}): batched {rate:.0f} composites/s")
        layers, effects, bg8 = (t.to(place_on) for t in layer_batch)
        placed = n / _timed(lambda: finish_batch(atlas, layers, effects, bg8), place_on)
        print(f"size {size} on {place_on} (batch {n}): placed {placed:.0f} composites/s")


if __name__ == "__main__":
    main()
