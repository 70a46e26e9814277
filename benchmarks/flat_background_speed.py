"""Time of the flat-background clearing, by picture size.

    python benchmarks/flat_background_speed.py [--sizes 1024 2048 4096] [--repeats 5]

The clearing runs on the full-size picture and alpha (:mod:`kirinuki.flat_background`), so
its cost grows with the pixels. Prints, per size, the median of: the clearing alone on the
white-page sample (a flat background, the case where it does its work) and on the same
picture multiplied by a tint (a tinted page, where it also looks for page-coloured pieces the
border does not reach), and the whole alpha with the clearing against the same without it.
On a picture without a flat background (the meadow sample) it stops after reading the border
and costs nothing measurable.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from kirinuki.flat_background import clear_flat_background
from kirinuki.inference import Matter
from kirinuki.samples import sample_paths
from region_speed import median_time  # this folder's timing helper (the script's own folder is on sys.path)


#: The tinted page's colour (the white page times it).
TINT = np.array([205, 225, 240], np.uint16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sample = next(p for p in sample_paths() if "white" in p.name)
    cleared, alone = Matter(device="cpu"), Matter(device="cpu", flat_background=False)
    print(f"model {alone.info.describe()}, picture {sample.name}")
    for size in args.sizes:
        rgb = np.asarray(Image.open(sample).convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
        alpha = alone.predict_alpha(rgb)
        tinted = (rgb.astype(np.uint16) * TINT // 255).astype(np.uint8)
        t_clear = median_time(lambda: clear_flat_background(rgb, alpha), args.repeats)
        t_tinted = median_time(lambda: clear_flat_background(tinted, alpha), args.repeats)
        t_alone = median_time(lambda: alone.predict_alpha(rgb), args.repeats)
        t_with = median_time(lambda: cleared.predict_alpha(rgb), args.repeats)
        print(f"{size}x{size}: clearing {t_clear:.3f} s (tinted page {t_tinted:.3f} s); alpha {t_alone:.3f} s, "
              f"with the clearing {t_with:.3f} s (+{t_with - t_alone:.3f} s)")


if __name__ == "__main__":
    main()
