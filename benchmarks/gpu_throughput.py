"""Batched alpha throughput on the whole tensor path (resize, network, guided refinement).

    python benchmarks/gpu_throughput.py [--size 1024] [--batches 1 8 32] [--checkpoint PATH]

Pictures are already on the device (decoding and encoding are not counted). On CUDA the
network runs in bf16 with channels-last; without a GPU it runs on the CPU (slowly) so the
script itself can be checked anywhere.
"""

from __future__ import annotations

import argparse
import time

import torch

from kirinuki.batched import predict_alpha_batch
from kirinuki.checkpoint import load_checkpoint, model_from_checkpoint
from kirinuki.bundled import bundled_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--checkpoint", help="default: the bundled default.pt")
    ap.add_argument("--seconds", type=float, default=5.0, help="time per batch size")
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    state = load_checkpoint(args.checkpoint or bundled_file("default.pt"))
    model = model_from_checkpoint(state).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "CPU"
    print(f"{state['arch']} at working size {state.get('work_size')}, {args.size}x{args.size} inputs, on {name}")
    for n in args.batches:
        images = torch.randint(0, 256, (n, 3, args.size, args.size), dtype=torch.uint8, device=dev)
        predict_alpha_batch(model, images, state.get("work_size"))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds or done == 0:
            predict_alpha_batch(model, images, state.get("work_size"))
            done += n
            if dev.type == "cuda":
                torch.cuda.synchronize()
        rate = done / (time.perf_counter() - t0)
        print(f"batch {n:>3}: {rate:8.1f} images/s")


if __name__ == "__main__":
    main()
