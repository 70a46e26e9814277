"""A compact copy of the training data to carry to a GPU machine (about 30 MB).

    python tools/compact_data.py ../shared/data .data/compact

Cutouts are downscaled (longest side: anime 384, painted 192, clip art 128, validation 320)
and stored as WebP with the alpha exact: training cutouts with lossy colour (quality 85),
validation cutouts lossless; backgrounds become JPEG (quality 75, longest side 384). 29 MB
for today's data, which leaves room for the project itself (33 MB tracked) inside the 64 MiB that
travel to the GPU machine. Groups and file names are kept, so the same config works on both.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

SIDES = {"train/anime": 384, "train/painted": 192, "train/clipart": 128, "val": 320}
BACKGROUND_SIDE = 384


def shrink(src: Path, dst: Path, side: int, rgba: bool, exact_colour: bool = True) -> int:
    with Image.open(src) as im:
        im = im.convert("RGBA" if rgba else "RGB")
    if max(im.size) > side:
        s = side / max(im.size)
        size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
        im = (im.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA") if rgba
              else im.resize(size, Image.Resampling.LANCZOS))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if rgba and exact_colour:
        im.save(dst, "WEBP", lossless=True, method=4, exact=True)
    elif rgba:  # lossy colour, lossless alpha (alpha_quality 100)
        im.save(dst, "WEBP", quality=85, alpha_quality=100, method=4)
    else:
        im.save(dst, "JPEG", quality=75)
    return dst.stat().st_size


def main(src_root: str, dst_root: str) -> None:
    src, dst = Path(src_root), Path(dst_root)
    jobs = []
    for group, side in SIDES.items():
        for f in sorted((src / group).rglob("*.png")):
            jobs.append((f, (dst / f.relative_to(src)).with_suffix(".webp"), side, True, group == "val"))
    # Training backgrounds, and the validation scenes (never trained on) that in-training
    # validation and `kirinuki evaluate` composite on.
    for folder in ("backgrounds", "val/backgrounds"):
        for f in sorted((src / folder).glob("*")):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
                jobs.append((f, (dst / f.relative_to(src)).with_suffix(".jpg"), BACKGROUND_SIDE, False))
    with ThreadPoolExecutor(4) as pool:
        total = sum(pool.map(lambda j: shrink(*j), jobs))
    print(f"{len(jobs)} files, {total / 1e6:.1f} MB in {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
