"""A compact copy of the training data to carry to a GPU machine.

    python tools/compact_data.py ../shared/data .data/compact

Cutouts are downscaled (longest side: anime 384, painted 192, clip art 128, validation 320)
and stored as WebP with the alpha exact: training cutouts with lossy colour (quality 85),
validation cutouts lossless; backgrounds become WebP too (quality 75, longest side 384).
Groups and file names are kept, so the same config works on both.

The GPU machine receives the project's working tree (tracked files and untracked ones git
does not ignore) together with this copy, 64 MiB at most. The script ends by adding them
up: it exits with an error, naming the sizes, when they would not fit.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

#: What may travel to the GPU machine in all: the project's working tree and the data copy.
TRAVEL_LIMIT = 64 * 2**20
PROJECT = Path(__file__).resolve().parents[1]

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
        im.save(dst, "WEBP", quality=75, method=6)
    return dst.stat().st_size


def working_tree_bytes(project: Path = PROJECT) -> int:
    """The bytes of the project's files that travel: tracked, and untracked but not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=project, capture_output=True, check=True).stdout
    files = {project / name for name in listed.decode().split("\0") if name}
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())



def main(src_root: str, dst_root: str) -> None:
    src, dst = Path(src_root), Path(dst_root)
    if dst.exists() and any(dst.iterdir()):  # files of an older copy would travel as well
        sys.exit(f"compact_data: {dst} is not empty; remove it first, or name a new folder")
    jobs = []
    for group, side in SIDES.items():
        for f in sorted((src / group).rglob("*.png")):
            jobs.append((f, (dst / f.relative_to(src)).with_suffix(".webp"), side, True, group == "val"))
    # Training backgrounds, and the validation scenes (never trained on) that in-training
    # validation and `kirinuki evaluate` composite on.
    for folder in ("backgrounds", "val/backgrounds"):
        for f in sorted((src / folder).glob("*")):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
                jobs.append((f, (dst / f.relative_to(src)).with_suffix(".webp"), BACKGROUND_SIDE, False))
    with ThreadPoolExecutor(4) as pool:
        total = sum(pool.map(lambda j: shrink(*j), jobs))
    print(f"{len(jobs)} files, {total / 1e6:.1f} MB in {dst}")
    tree = working_tree_bytes()  # and the copy is ``total``: the folder was empty before
    travel = f"working tree {tree / 2**20:.1f} MiB + {dst} {total / 2**20:.1f} MiB = {(tree + total) / 2**20:.1f} MiB"
    if tree + total > TRAVEL_LIMIT:
        sys.exit(f"compact_data: {travel}, over the {TRAVEL_LIMIT / 2**20:.0f} MiB that travel to the GPU machine")
    print(f"{travel} of the {TRAVEL_LIMIT / 2**20:.0f} MiB that travel")


if __name__ == "__main__":
    main(*sys.argv[1:3])
