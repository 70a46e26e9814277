"""Time of the region map and of a keep / drop click, by picture size.

    python benchmarks/region_speed.py [--sizes 1024 2048 4096] [--repeats 5]

The region map is computed on the picture at the model's working size (the longest side
resized to it, 512 for the bundled model), so its cost is bounded whatever the picture's
size; a click then selects a region and the refinement brings it to full size. Prints, per
size, the median of: the region map alone, and a whole cutout with one drop click against the
same cutout without it (the difference is what a click costs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from kirinuki.inference import Matter, prepare_input
from kirinuki.regions import region_map

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "kirinuki" / "samples" / "sylvie-on-meadow.jpg"


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    matter = Matter(device="cpu")
    print(f"model {matter.info.describe()}")
    for size in args.sizes:
        rgb = np.asarray(Image.open(SAMPLE).convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
        guide = prepare_input(rgb, matter.info.work_size)
        t_map = median_time(lambda: region_map(guide), args.repeats)
        point = [(int(size * 400 / 456), int(size * 330 / 700))]
        t_plain = median_time(lambda: matter.predict_alpha(rgb), args.repeats)
        t_click = median_time(lambda: matter.predict_alpha(rgb, drop=point), args.repeats)
        print(f"{size}x{size}: region map at {guide.shape[1]}x{guide.shape[0]} {t_map:.3f} s; "
              f"alpha {t_plain:.3f} s, with one drop click {t_click:.3f} s (+{t_click - t_plain:.3f} s)")


if __name__ == "__main__":
    main()
