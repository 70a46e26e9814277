"""Training-data speed: composites per second on CPU (and on the GPU when there is one).

    python benchmarks/composite_speed.py --data ../shared/data [--sizes 256 512] [--batch 64]

"per sample" is the CPU side a DataLoader worker does (cutout choice, flip, zoom, rotation,
placement, background) for one sample, on one core; "batched" is the device side
(compositing, blur, rescale, noise, JPEG) for a batch, per composite.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kirinuki.config import load_config
from kirinuki.data import CompositeDataset, CutoutLibrary, SampleMaker, compose_batch


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
    ds = CompositeDataset(SampleMaker(lib, cfg.data), seed=0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for size in args.sizes:
        t0 = time.perf_counter()
        items = [ds[(i, size)] for i in range(args.samples)]
        per_sample = args.samples / (time.perf_counter() - t0)
        print(f"size {size}: per sample (1 CPU core): {per_sample:.0f} composites/s")
        batch = [torch.stack(t)[: args.batch] for t in zip(*items)]
        for dev in devices:
            fp, alpha, bg = (t.to(dev) for t in batch)
            g = torch.Generator(dev).manual_seed(0)
            compose_batch(fp, alpha, bg, cfg.data, g)
            if dev == "cuda":
                torch.cuda.synchronize()
            reps = 5
            t0 = time.perf_counter()
            for _ in range(reps):
                compose_batch(fp, alpha, bg, cfg.data, g)
            if dev == "cuda":
                torch.cuda.synchronize()
            rate = reps * fp.shape[0] / (time.perf_counter() - t0)
            print(f"size {size}: batched on {dev} (batch {fp.shape[0]}): {rate:.0f} composites/s")


if __name__ == "__main__":
    main()
