"""Coverage-guided fuzzing (atheris, libFuzzer) of everything a file reaches in kirinuki.

    python tools/fuzz_files.py [--seconds 60] [--out fuzz-out] [--corpus DIR]
    python tools/fuzz_files.py --replay FILE [FILE ...]

Each input's first byte picks the file's suffix (every picture and video suffix kirinuki
takes), the rest is the file. It goes through the batch runner exactly as ``kirinuki cutout``
sends a file: the header checks, the still-picture, animation and video readers, and the
cutout pipeline (the bundled model at a 64-pixel working size, so that many inputs are
tried), into a temporary folder. The invariant: every input ends as a written cutout or as
one line naming the reason; an unforeseen exception (the batch runner's "unexpected error"),
running out of memory, an input over ``--timeout`` seconds (a hang) or a process over
``--rss-mb`` is a finding, saved under ``--out`` by libFuzzer (``crash-*``, ``timeout-*``,
``oom-*``). Findings are kept as regression inputs in ``tests/fuzz_regressions/``, which the
tests replay.

The corpus starts from small valid files of every accepted format, made here (``--corpus``
adds more). At the end it prints the inputs tried, the findings and the peak memory.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

SUFFIXES = (".png", ".jpg", ".gif", ".webp", ".bmp", ".tif", ".mp4", ".webm", ".mov")
MAX_PIXELS = 4_000_000
MAX_FRAMES = 24

_state: dict = {}


def _setup() -> None:
    from kirinuki.inference import Matter
    from kirinuki.pipeline import CutoutOptions

    work = Path(tempfile.mkdtemp(prefix="kirinuki-fuzz-"))
    _state.update(work=work, matter=Matter(work_size=64, threads=1),
                  opts=CutoutOptions(max_pixels=MAX_PIXELS, max_frames=MAX_FRAMES, overwrite=True))


def check_one(data: bytes) -> str:
    """Cut out one input as the command line would; returns how it ended ("done" or the
    one-line reason). Raises on anything the invariant forbids."""
    from kirinuki.batch import Job, run_batch

    if not _state:
        _setup()
    if not data:
        return "empty"
    source = _state["work"] / f"input{SUFFIXES[data[0] % len(SUFFIXES)]}"
    source.write_bytes(data[1:])
    target = _state["work"] / "out" / (source.stem + _state["opts"].suffix_for(source))
    reasons: list[str] = []
    summary = run_batch(_state["matter"], [Job(source, target)], _state["opts"],
                        lambda path, reason: reasons.append(reason), lambda path, note: None)
    record = summary.records[0]
    if record.status == "failed":
        reason = reasons[0] if reasons else record.reason
        if reason.startswith("unexpected error") or reason == "out of memory" or "\n" in reason:
            raise RuntimeError(f"{source.suffix}: {reason}")
        return reason
    return record.status


def seed_corpus(folder: Path) -> list[Path]:
    """Small valid files of every accepted format, each prefixed with its suffix's byte."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    frames = [Image.fromarray(np.roll(np.asarray(picture), 4 * k, axis=1)) for k in range(3)]
    made = {".png": [dict(format="PNG"), dict(format="PNG", save_all=True, append_images=frames[1:])],
            ".jpg": [dict(format="JPEG", quality=80)],
            ".gif": [dict(format="GIF"), dict(format="GIF", save_all=True, append_images=frames[1:], duration=80)],
            ".webp": [dict(format="WEBP", lossless=True), dict(format="WEBP", save_all=True, append_images=frames[1:])],
            ".bmp": [dict(format="BMP")], ".tif": [dict(format="TIFF")]}
    written = []
    for suffix, variants in made.items():
        for k, params in enumerate(variants):
            buf = io.BytesIO()
            (frames[0] if params.get("save_all") else picture).save(buf, **params)
            path = folder / f"seed{suffix.replace('.', '-')}-{k}"
            path.write_bytes(bytes([SUFFIXES.index(suffix)]) + buf.getvalue())
            written.append(path)
    try:
        import av
    except ImportError:
        return written
    for suffix, codec in ((".mp4", "libx264"), (".webm", "libvpx-vp9")):
        buf = io.BytesIO()
        with av.open(buf, "w", format="mp4" if suffix == ".mp4" else "webm") as out:
            stream = out.add_stream(codec, rate=10)
            stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_image(frame)):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        path = folder / f"seed{suffix.replace('.', '-')}"
        path.write_bytes(bytes([SUFFIXES.index(suffix)]) + buf.getvalue())
        written.append(path)
    return written


def _fuzz(args: argparse.Namespace) -> int:
    """The fuzzing process itself (libFuzzer takes over ``sys.argv``)."""
    import atheris

    with atheris.instrument_imports(include=["kirinuki"]):
        import kirinuki.batch  # noqa: F401  (instrumented: the coverage that guides the fuzzer)
        import kirinuki.pipeline  # noqa: F401
    atheris.Setup([sys.argv[0], *args.libfuzzer], check_one)
    atheris.Fuzz()
    return 0


def _drive(args: argparse.Namespace) -> int:
    """Run the fuzzer in a child process, then say what it found."""
    import re
    import subprocess

    args.out.mkdir(parents=True, exist_ok=True)
    corpus = args.out / "corpus"
    seed_corpus(corpus)
    libfuzzer = [f"-max_total_time={args.seconds}", f"-timeout={args.timeout}", f"-rss_limit_mb={args.rss_mb}",
                 f"-artifact_prefix={args.out}/", "-print_final_stats=1", str(corpus), *map(str, args.corpus)]
    child = subprocess.run([sys.executable, __file__, "--libfuzzer", *libfuzzer], capture_output=True, text=True)
    (args.out / "log.txt").write_text(child.stdout + child.stderr, encoding="utf-8")
    stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", child.stderr))
    findings = sorted(p.name for p in args.out.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    count = lambda kind: sum(f.startswith(kind) for f in findings)
    print(f"fuzz_files: {stats.get('number_of_executed_units', '?')} inputs tried in {args.seconds} s, "
          f"{stats.get('new_units_added', '?')} new inputs kept, {count('crash-')} crashes, "
          f"{count('timeout-')} hangs over {args.timeout} s, {count('oom-')} over {args.rss_mb} MB; "
          f"peak RSS {stats.get('peak_rss_mb', '?')} MB", flush=True)
    for name in findings:
        print(f"  {args.out / name}")
    if findings:
        tail = [line for line in (child.stdout + child.stderr).splitlines() if "Error" in line][-3:]
        print("\n".join(tail))
    return 1 if findings or child.returncode not in (0,) else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--timeout", type=int, default=10, help="seconds after which one input is a hang")
    ap.add_argument("--rss-mb", type=int, default=3072, help="memory over which the process is a finding")
    ap.add_argument("--out", type=Path, default=Path("fuzz-out"))
    ap.add_argument("--corpus", type=Path, nargs="*", default=[], help="more corpus folders")
    ap.add_argument("--replay", type=Path, nargs="+", help="run these inputs once each and say how each ended")
    ap.add_argument("--libfuzzer", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # the child's own flags
    args = ap.parse_args()
    if args.replay:
        for path in args.replay:
            print(f"{path.name}: {check_one(path.read_bytes())}")
        return 0
    return _fuzz(args) if args.libfuzzer is not None else _drive(args)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
