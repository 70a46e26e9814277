"""Cutout latency and peak memory by image size, and folder throughput.

    python benchmarks/cutout_latency.py [--sizes 512 1024 2048 4096 8000] [--engines onnx torch]
                                        [--repeats 5] [--folder 100] [--json results.json]
                                        [--model default|FILE] [--cli 1024]
                                        [--stages 1024 4096] [--no-edge-matting] [--precise-edges]

Each (engine, size) runs in a fresh process, so its peak RSS is its own: the sample picture
is resized to NxN and saved as JPEG, then timed end to end exactly as ``kirinuki cutout``
does it (decode, network at the working size, guided refinement, decontamination, PNG
encode and write), median of the warm repeats after one warm-up; "network" is the model
call alone on the prepared input. ``onnx`` is ONNX Runtime on the bundled default.onnx;
``torch`` is PyTorch on the bundled default.pt. ``--folder N`` times N pictures of mixed
sizes (256 to 2048 px) through the batch runner. ``--cli`` times whole ``kirinuki cutout``
processes on one picture (interpreter and model start-up included), beside the warm
in-process figure. ``--stages`` times each stage of the ONNX cutout on its own (the
library's own functions called in the order ``Matter.predict_alpha`` and ``render`` call
them), median of the warm repeats, and skips the rest. ``--no-edge-matting`` times the
cutout without the edge matting (``kirinuki cutout --no-edge-matting``), ``--precise-edges``
with the outline matted again at full size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "kirinuki" / "samples" / "sylvie-on-meadow.jpg"


def make_picture(size: int, folder: Path) -> Path:
    from PIL import Image
    path = folder / f"sample-{size}.jpg"
    if not path.exists():
        Image.open(SAMPLE).convert("RGB").resize((size, size), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


MODEL = os.environ.get("KIRINUKI_BENCH_MODEL", "default")
EDGE_MATTING = os.environ.get("KIRINUKI_BENCH_EDGE_MATTING", "1") == "1"
PRECISE_EDGES = os.environ.get("KIRINUKI_BENCH_PRECISE_EDGES", "0") == "1"


def model_path(engine: str) -> str:
    """The bundled model ``MODEL`` (``--model``: default) for the engine, or a file given by
    path."""
    from kirinuki.bundled import bundled_file, bundled_slot
    slot = bundled_slot(MODEL)
    if slot is None:
        return MODEL
    return str(bundled_file(f"{slot}.onnx" if engine == "onnx" else f"{slot}.pt"))


def measure_cli(size: int, repeats: int) -> float:
    """Median wall time of one ``kirinuki cutout`` process on one picture, start-up included."""
    folder = Path(tempfile.mkdtemp(prefix="kirinuki-cli-"))
    src = make_picture(size, folder)
    cmd = [sys.executable, "-m", "kirinuki", "cutout", str(src), "-o", str(folder / "out"), "--overwrite", "-q",
           "--model", model_path("onnx"),
           *([] if EDGE_MATTING else ["--no-edge-matting"]), *(["--precise-edges"] if PRECISE_EDGES else [])]
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])  # the first run warms the disk cache


def measure_one(engine: str, size: int, repeats: int, threads: int | None) -> dict:
    """Runs in its own process."""
    import numpy as np

    from kirinuki.imaging import open_image
    from kirinuki.pipeline import CutoutOptions, render, save_output
    from kirinuki.inference import Matter, prepare_input, to_network_input

    folder = Path(tempfile.mkdtemp(prefix="kirinuki-bench-"))
    src = make_picture(size, folder)
    matter = Matter(model_path(engine), device="cpu", threads=threads, edge_matting=EDGE_MATTING,
                    precise_edges=PRECISE_EDGES)
    opts = CutoutOptions()
    out = folder / "out.png"

    def end_to_end() -> float:
        t0 = time.perf_counter()
        image = open_image(src)
        result, _ = render(matter, image, opts)
        save_output(result, out, "png")
        return time.perf_counter() - t0

    rgb = np.asarray(open_image(src).convert("RGB"))
    guide = prepare_input(rgb, matter.info.work_size)
    x = to_network_input(guide, matter.info.pad_multiple)

    def network() -> float:
        t0 = time.perf_counter()
        matter._run(x)
        return time.perf_counter() - t0
    end_to_end()
    network()
    e2e = [end_to_end() for _ in range(repeats)]
    net = [network() for _ in range(max(3, repeats))]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"engine": engine, "size": size, "end_to_end_s": statistics.median(e2e),
            "network_s": statistics.median(net), "peak_rss_mb": round(rss_mb, 1), "repeats": repeats,
            "work_size": matter.info.work_size}


def measure_stages(size: int, repeats: int, threads: int | None) -> dict:
    """Seconds per stage of one cutout (ONNX Runtime), median of ``repeats`` warm runs."""
    import numpy as np

    from kirinuki.edge_matting import matte_edges
    from kirinuki.flat_background import clear_flat_background
    from kirinuki.foreground import estimate_foreground
    from kirinuki.imaging import open_image, to_uint8
    from kirinuki.inference import Matter, prepare_input, restore_size
    from kirinuki.pipeline import join_rgba, save_output

    folder = Path(tempfile.mkdtemp(prefix="kirinuki-stages-"))
    src = make_picture(size, folder)
    matter = Matter(model_path("onnx"), device="cpu", threads=threads)

    def one_run() -> dict:
        times, t0 = {}, time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal t0
            now = time.perf_counter()
            times[stage], t0 = now - t0, now
        rgb = np.asarray(open_image(src).convert("RGB"))
        lap("decode")
        guide = prepare_input(rgb, matter.info.work_size)
        lap("resize to the working size")
        alpha = matter._network_alpha(guide)
        lap("network")
        if EDGE_MATTING:
            alpha = matte_edges(guide, alpha)
            lap("edge matting")
        alpha = restore_size(alpha, guide, rgb)
        lap("guided refinement")
        if PRECISE_EDGES:
            alpha = matte_edges(rgb, alpha)
            lap("precise edges")
        alpha = clear_flat_background(rgb, alpha)
        lap("flat-background clearing")
        fg = estimate_foreground(rgb, alpha)
        lap("decontamination")
        result = join_rgba(fg, to_uint8(alpha))
        lap("assemble RGBA")
        save_output(result, folder / "out.png", "png")
        lap("PNG encode and write")
        return times
    one_run()
    runs = [one_run() for _ in range(repeats)]
    return {stage: statistics.median(r[stage] for r in runs) for stage in runs[0]}


def measure_folder(count: int, threads: int | None) -> dict:
    import numpy as np

    from kirinuki.batch import plan_jobs, run_batch
    from kirinuki.pipeline import CutoutOptions
    from kirinuki.inference import Matter
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="kirinuki-folder-"))
    src = folder / "in"
    src.mkdir()
    base = Image.open(SAMPLE).convert("RGB")
    rng = np.random.default_rng(0)
    pixels = 0
    for i in range(count):
        side = int(rng.integers(256, 2049))
        aspect = float(rng.uniform(0.5, 2.0))
        w, h = (side, max(32, int(side / aspect))) if aspect > 1 else (max(32, int(side * aspect)), side)
        base.resize((w, h), Image.Resampling.BILINEAR).save(src / f"p{i:03d}.jpg", quality=90)
        pixels += w * h
    matter = Matter(model_path("onnx"), device="cpu", threads=threads, edge_matting=EDGE_MATTING,
                    precise_edges=PRECISE_EDGES)
    jobs = plan_jobs([src], folder / "out", ".png")
    summary = run_batch(matter, jobs, CutoutOptions(), lambda p, r: None, lambda p, r: None)
    return {"images": count, "megapixels": round(pixels / 1e6, 1), "seconds": round(summary.seconds, 2),
            "images_per_s": round(count / summary.seconds, 2), "failed": summary.failed,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> int:
    global MODEL, EDGE_MATTING, PRECISE_EDGES
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8000])
    ap.add_argument("--engines", nargs="+", default=["onnx", "torch"], choices=("onnx", "torch"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--folder", type=int, default=100, help="pictures in the folder run (0: skip)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--model", default=MODEL, help="a bundled model's name (default) or a model file")
    ap.add_argument("--cli", type=int, nargs="*", default=[1024], metavar="SIZE",
                    help="also time the one-file CLI (start-up included) at these sizes")
    ap.add_argument("--stages", type=int, nargs="+", metavar="SIZE",
                    help="time each stage of the cutout at these sizes instead")
    ap.add_argument("--no-edge-matting", dest="edge_matting", action="store_false", default=EDGE_MATTING,
                    help="time the cutout without the edge matting")
    ap.add_argument("--precise-edges", action="store_true", default=PRECISE_EDGES,
                    help="time the cutout with the outline matted again at full size")
    ap.add_argument("--one", nargs=2, metavar=("ENGINE", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--folder-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["KIRINUKI_BENCH_MODEL"] = args.model  # the measuring subprocesses use them too
    os.environ["KIRINUKI_BENCH_EDGE_MATTING"] = "1" if args.edge_matting else "0"
    os.environ["KIRINUKI_BENCH_PRECISE_EDGES"] = "1" if args.precise_edges else "0"
    MODEL, EDGE_MATTING, PRECISE_EDGES = args.model, args.edge_matting, args.precise_edges
    if args.one:
        print(json.dumps(measure_one(args.one[0], int(args.one[1]), args.repeats, args.threads)))
        return 0
    if args.folder_only:
        print(json.dumps(measure_folder(args.folder, args.threads)))
        return 0
    if args.stages:
        print(f"{'stage':<28}" + "".join(f"{size:>9}" for size in args.stages))
        columns = [measure_stages(size, args.repeats if size <= 2048 else max(2, args.repeats // 2), args.threads)
                   for size in args.stages]
        for stage in columns[0]:
            print(f"{stage:<28}" + "".join(f"{col[stage]:>8.3f}s" for col in columns))
        print(f"{'sum':<28}" + "".join(f"{sum(col.values()):>8.3f}s" for col in columns))
        return 0

    rows = []
    print(f"{'engine':<7} {'size':>6} {'end to end':>11} {'network':>9} {'peak RSS':>10}")
    for engine in args.engines:
        for size in args.sizes:
            reps = args.repeats if size <= 2048 else max(2, args.repeats // 2)
            cmd = [sys.executable, __file__, "--one", engine, str(size), "--repeats", str(reps)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            rows.append(row)
            print(f"{engine:<7} {size:>6} {row['end_to_end_s']:>10.3f}s {row['network_s']:>8.3f}s "
                  f"{row['peak_rss_mb']:>8.0f} MB", flush=True)
    cli_rows = []
    for size in args.cli:
        seconds = measure_cli(size, args.repeats)
        cli_rows.append({"size": size, "cli_s": round(seconds, 3)})
        print(f"one-file CLI, {size}x{size}, start-up included: {seconds:.3f}s", flush=True)
    folder = None
    if args.folder:
        cmd = [sys.executable, __file__, "--folder-only", "--folder", str(args.folder)]
        folder = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(f"folder: {folder['images']} pictures ({folder['megapixels']} MP) in {folder['seconds']} s = "
              f"{folder['images_per_s']} pictures/s, peak RSS {folder['peak_rss_mb']:.0f} MB")
    if args.json:
        import numpy, onnxruntime, PIL
        meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}".strip(", "),
                "python": platform.python_version(), "numpy": numpy.__version__, "pillow": PIL.__version__,
                "onnxruntime": onnxruntime.__version__}
        try:
            import torch
            meta["torch"] = torch.__version__
        except ImportError:
            pass
        args.json.write_text(json.dumps({"meta": meta, "model": args.model, "rows": rows, "cli": cli_rows,
                                          "folder": folder}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
