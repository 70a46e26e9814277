"""Training throughput with the data pipeline included (images/s through the model).

    python benchmarks/train_speed.py --data ../shared/data [--preset default] [--steps 20] [--batch 16]
        [--placement cpu|device]

Runs ``kirinuki.train.train`` for a few steps (device chosen automatically; random weights,
so that no pretrained encoder has to be installed) and reads the images/s it logged once the
batches that the DataLoader workers made ahead (4 per worker) are used up: the steady state,
where the data pipeline has to keep pace. ``--placement
device`` places the cutouts on the training device (``data.placement``), so that the
workers only draw placements and backgrounds.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

from kirinuki.config import load_config
from kirinuki.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--steps", type=int, help="default: enough to pass the prefetched batches")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--placement", choices=["cpu", "device"], help="default: the preset's")
    args = ap.parse_args()
    ahead = 4 * args.workers if args.workers else 0
    args.steps = args.steps or max(20, 3 * ahead)
    cfg = load_config(args.preset, overrides=[{"steps": args.steps, "batch": args.batch, "sizes": [args.size],
                                               "workers": args.workers, "log_every": min(5, args.steps), "val_every": 0,
                                               "ckpt_every": 0, "model": {"pretrained": False}},
                                              {"data": {"placement": args.placement}} if args.placement else {}])
    with tempfile.TemporaryDirectory() as out:
        train(cfg, args.data, out, progress=False)
        rows = list(csv.DictReader(open(Path(out) / "train_log.csv")))
    steady = [float(r["images_per_s"]) for r in rows if int(r["step"]) > ahead + 5]
    rates = steady or [float(rows[-1]["images_per_s"])]
    print(f"{args.preset} ({cfg.model.name}) at {args.size}x{args.size}, batch {args.batch}, "
          f"{args.workers} workers, cutouts placed on the {'CPU' if cfg.data.placement == 'cpu' else 'device'}: "
          f"{sum(rates) / len(rates):.1f} images/s with the data pipeline")


if __name__ == "__main__":
    main()
