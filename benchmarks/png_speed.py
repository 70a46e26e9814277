"""Time and size of the PNG a cutout is saved as: the project's threaded writer against Pillow.

    python benchmarks/png_speed.py [--sizes 1024 2048 4096] [--repeats 5] [--level N]

Each bundled sample is cut out (``kirinuki.cutout``, the default model) after a bicubic resize
to each size, so the pictures are real outputs: anti-aliased alpha, colours decontaminated.
Prints, per size and sample, the median time and the bytes of :func:`kirinuki.png.png_bytes`
(on every core, and on one thread) and of Pillow's encoder at its fastest level (1, what
cutouts were written with before), and checks that both files decode to the same pixels.
``--level`` deflates at another level than the writer's own (``kirinuki.png.LEVEL``).
"""

from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image

import kirinuki
from kirinuki.png import LEVEL, png_bytes
from kirinuki.samples import sample_paths
from kirinuki.threads import set_thread_limit, thread_count
from region_speed import median_time  # this folder's timing helper (the script's own folder is on sys.path)


def pillow_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--level", type=int, default=LEVEL)
    args = ap.parse_args()
    level = args.level
    print(f"level {level} against Pillow at level 1, {thread_count()} threads")
    for size in args.sizes:
        for sample in sample_paths():
            picture = Image.open(sample).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
            cutout = kirinuki.cutout(picture)
            ours, theirs = png_bytes(cutout, level), pillow_bytes(cutout)
            for data in (ours, theirs):
                with Image.open(io.BytesIO(data)) as back:
                    assert np.array_equal(np.asarray(back), np.asarray(cutout)), "the file does not decode back"
            t_ours = median_time(lambda: png_bytes(cutout, level), args.repeats)
            set_thread_limit(1)
            t_one = median_time(lambda: png_bytes(cutout, level), args.repeats)
            set_thread_limit(None)
            t_pillow = median_time(lambda: pillow_bytes(cutout), args.repeats)
            print(f"{size}x{size} {sample.stem}: threaded {t_ours:.3f} s, one thread {t_one:.3f} s, "
                  f"Pillow {t_pillow:.3f} s; {len(ours) / 1e6:.2f} MB against {len(theirs) / 1e6:.2f} MB "
                  f"({100 * (len(ours) / len(theirs) - 1):+.1f} %)")


if __name__ == "__main__":
    main()
