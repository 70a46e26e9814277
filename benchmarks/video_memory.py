"""Peak memory of a video cutout by clip length: frames stream through, so it stays flat.

    python benchmarks/video_memory.py [--seconds 10 60] [--size 320x240] [--fps 12]

Each clip (the white sample's character sliding over a sky, MPEG-4) is cut out to WebM with
alpha by ``kirinuki cutout`` in a fresh process; its peak RSS is read from the operating
system after it ends.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from kirinuki.samples import moving_figure


def make_clip(path: Path, seconds: int, size: tuple[int, int], fps: int) -> None:
    out = av.open(str(path), "w")
    stream = out.add_stream("mpeg4", rate=fps)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    for rgb, _ in moving_figure(size, size[1] * 9 // 10, seconds * fps, x0=0, step=3):
        for p in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            out.mux(p)
    for p in stream.encode():
        out.mux(p)
    out.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, nargs="+", default=[10, 60])
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--fps", type=int, default=12)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="kirinuki-video-"))
    for seconds in args.seconds:
        clip = folder / f"clip-{seconds}s.mp4"
        make_clip(clip, seconds, size, args.fps)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-c", "import resource, sys; from kirinuki.cli import main; code = main(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)",
               "cutout", str(clip), "-o", str(folder / "out"), "--overwrite", "-q"]
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rss_mb = int(r.stderr.strip().splitlines()[-1]) / 1024
        seconds_taken = time.perf_counter() - t0
        print(f"{seconds} s clip ({seconds * args.fps} frames of {args.size}): peak RSS {rss_mb:.0f} MB, "
              f"{seconds_taken:.1f} s")


if __name__ == "__main__":
    main()
