"""A compact copy of the training data to carry to a GPU machine.

    python tools/compact_data.py ../shared/data .data/compact

Every picture is stored as WebP, downscaled to at most the longest side in ``COPY`` and with
the alpha exact: training cutouts with lossy colour, validation cutouts lossless,
backgrounds lossy. Groups and file names are kept, so the same config works on both.

The sides follow what training uses: the pipeline caches cutouts at ``data.cache_side`` (640)
and draws characters at most about as large as the canvas, so anime characters (most of the
draws) keep 640 px, painted and cartoon ones 384 and clip art 224; backgrounds keep 384. A copy with every
cutout at 384 px or less and colour at quality 85 measurably cost the plain rows (see
docs/ablation.md, "The carried data copy").

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

from kirinuki.imaging import BACKGROUND_SUFFIXES, CUTOUT_SUFFIXES, find_images

#: What may travel to the GPU machine in all: the project's working tree and the data copy.
TRAVEL_LIMIT = 64 * 2**20
PROJECT = Path(__file__).resolve().parents[1]

#: Per folder: the longest side kept and the WebP colour quality (None: lossless).
COPY = {"train/anime": (640, 90), "train/painted": (384, 90), "train/cartoon": (384, 90), "train/clipart": (224, 85),
        "val": (320, None)}
BACKGROUNDS = (384, 75)
#: Training backgrounds, and the validation scenes (never trained on) that in-training
#: validation and `kirinuki evaluate` composite on.
BACKGROUND_FOLDERS = ("backgrounds", "val/backgrounds")


def shrink(src: Path, dst: Path, side: int, rgba: bool, quality: int | None) -> int:
    with Image.open(src) as im:
        im = im.convert("RGBA" if rgba else "RGB")
    if max(im.size) > side:
        s = side / max(im.size)
        size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
        im = (im.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA") if rgba
              else im.resize(size, Image.Resampling.LANCZOS))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if quality is None:
        im.save(dst, "WEBP", lossless=True, method=4, exact=True)
    elif rgba:  # lossy colour, lossless alpha (alpha_quality 100)
        im.save(dst, "WEBP", quality=quality, alpha_quality=100, method=4)
    else:
        im.save(dst, "WEBP", quality=quality, method=6)
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
    backgrounds = [src / folder for folder in BACKGROUND_FOLDERS]
    # The files training and `kirinuki evaluate` read: the same suffixes, subfolders included.
    for group, (side, quality) in COPY.items():
        for f in find_images(src / group, CUTOUT_SUFFIXES):
            if not any(f.is_relative_to(b) for b in backgrounds):  # "val" holds val/backgrounds
                jobs.append((f, (dst / f.relative_to(src)).with_suffix(".webp"), side, True, quality))
    for folder in backgrounds:
        for f in find_images(folder, BACKGROUND_SUFFIXES):
            jobs.append((f, (dst / f.relative_to(src)).with_suffix(".webp"), BACKGROUNDS[0], False, BACKGROUNDS[1]))
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
