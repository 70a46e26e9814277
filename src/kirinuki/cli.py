"""``kirinuki`` command line: argument parsing only; each subcommand calls one library function."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ._version import __version__
from .config import PRESETS, parse_work_size
from .errors import KirinukiError
from .errors import ModelError
from .limits import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS, MEGAPIXEL, SERVE_MAX_PIXELS, WORK_SIZE_RANGE

PROG = "kirinuki"


MODEL_HELP = "an ONNX file, a training checkpoint, or a bundled model's name (default: the bundled default)"


def _model_flags() -> argparse.ArgumentParser:
    """The flags that choose and tune the predictor, shared by cutout, evaluate and serve."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model")
    g.add_argument("--model", help=MODEL_HELP)
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    g.add_argument("--threads", type=_positive_int, help="CPU threads for the network")
    g.add_argument("--work-size", type=_work_size,
                   help=f"override the model's working size ({WORK_SIZE_RANGE[0]} to {WORK_SIZE_RANGE[1]} "
                        "pixels, or 'native')")
    g.add_argument("--tta", action="store_true", help="test-time flip: average with the mirrored picture's "
                                                       "prediction (twice the network time)")
    g.add_argument("--regions", action="store_true",
                   help="region consensus: make each closed region agree with its confident majority")
    g.add_argument("--no-flat-background", dest="flat_background", action="store_false",
                   help="leave the network's alpha as it is on a flat background (by default the page's "
                        "own pixels are made transparent and the edge pixels beside it follow their colour)")
    g.add_argument("--no-edge-matting", dest="edge_matting", action="store_false",
                   help="leave the network's alpha along the outline as it is (by default the pixels "
                        "around it are re-solved from the picture's colours by closed-form matting)")
    g.add_argument("--precise-edges", action="store_true",
                   help="also re-solve the outline at the picture's full size (slower on large pictures)")
    g.add_argument("--settle", action="store_true",
                   help="away from the outline, make alpha within 0.03 of 0 or 1 exactly 0 or 1: no faint haze "
                        "over a scene, no slightly see-through figure (off by default: it costs up to 0.04 dB "
                        "of PSNR on the validation set)")
    return p


def _matter(args: argparse.Namespace, device: str | None = None, threads: int | None = None):
    from .bundled import former_name_note
    from .inference import Matter
    note = former_name_note(args.model)
    if note and not getattr(args, "quiet", False):
        print(f"{PROG}: {note}", file=sys.stderr, flush=True)
    return Matter(args.model, device=device or args.device, threads=threads or args.threads,
                  work_size=args.work_size, tta=args.tta, regions=args.regions,
                  flat_background=args.flat_background, edge_matting=args.edge_matting,
                  precise_edges=args.precise_edges, settle=args.settle)


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _torch_missing(what: str) -> bool:
    """True (after one line naming the extra to install) when PyTorch cannot be imported."""
    try:
        import torch  # noqa: F401
    except ImportError:
        _error(f"{what} needs PyTorch, which the core install leaves out: pip install 'kirinuki[train]'")
        return True
    return False


def _checkpoint_without_torch(model: str | None) -> bool:
    if not model or str(model).lower().endswith(".onnx"):
        return False
    from .bundled import bundled_slot
    return bundled_slot(model) is None and _torch_missing(f"--model {model} (a training checkpoint)")


def _version_text() -> str:
    from .bundled import bundled_model_info

    info = bundled_model_info()
    model = f"{info['name']} {info.get('version', '')}".strip() if info else "no bundled model"
    return f"{PROG} {__version__} (default model: {model})"


# -- train --------------------------------------------------------------------------------

def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on RGBA cutouts",
                       description="Train on RGBA cutouts composited on the fly. Config: the preset, "
                                   "then --config, then --set, then the flags below.")
    p.add_argument("--data", required=True, type=Path, help="data root holding the cutout groups and backgrounds")
    p.add_argument("--val", type=Path, help="folder of validation cutouts (never trained on)")
    p.add_argument("--val-backgrounds", type=Path,
                   help="scene backgrounds for validation, never trained on (default: backgrounds/ beside --val)")
    p.add_argument("--preset", default="default", choices=PRESETS)
    p.add_argument("--config", type=Path, help="TOML file overriding the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set optim.lr=1e-3 (repeatable)")
    p.add_argument("--out", type=Path, help="output folder (default: runs/<preset>)")
    p.add_argument("--steps", type=int, help="stop after this many steps in all")
    p.add_argument("--minutes", type=float, help="stop after this much wall time")
    p.add_argument("--batch", type=int, help="global batch size")
    p.add_argument("--workers", type=int, help="DataLoader worker processes")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", type=Path, help="continue from this checkpoint")
    p.add_argument("--init-from", help="start from these weights: a checkpoint, or 'default' (the bundled model)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    if _torch_missing("kirinuki train"):
        return 2
    from .config import load_config, parse_override
    from .train import train

    overrides = [parse_override(o) for o in args.overrides]
    for key in ("steps", "minutes", "batch", "workers", "device", "seed"):
        value = getattr(args, key)
        if value is not None:
            overrides.append({key: value})
    cfg = load_config(args.preset, args.config, overrides)
    out = args.out or Path("runs") / args.preset
    train(cfg, args.data, out, resume=args.resume, init_from=args.init_from,
          val_root=args.val, val_backgrounds=args.val_backgrounds, progress=not args.quiet)
    return 0


# -- cutout -------------------------------------------------------------------------------

def _work_size(text: str) -> int | str:
    try:
        size = parse_work_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if size is None:
        return "native"
    low, high = WORK_SIZE_RANGE
    if not low <= size <= high:
        raise argparse.ArgumentTypeError(f"working size {size} is outside {low} to {high} pixels (or 'native')")
    return size


def _whole_number(text: str, least: int, what: str = "it") -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{what} must be {least} or more, not {value}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _megapixels(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of megapixels") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"the pixel limit must be a positive number of megapixels, not {text}")
    return value


class _EditAction(argparse.Action):
    """``--keep X,Y`` and ``--drop X,Y`` into one list of clicks, in the order given."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        mode = option_string.lstrip("-")
        setattr(namespace, self.dest, [*getattr(namespace, self.dest, []), (mode, *values)])


def _point(text: str) -> tuple[int, int]:
    from .regions import parse_points
    try:
        points = parse_points(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if len(points) != 1:
        raise argparse.ArgumentTypeError(f"{text!r}: one point x,y per flag")
    return points[0]


def _port(text: str) -> int:
    port = _whole_number(text, 0, "the port")
    if port > 65535:
        raise argparse.ArgumentTypeError(f"the port must be 65535 or less, not {port}")
    return port


def _trim_margin(text: str) -> int:
    return _whole_number(text, 0, "the trim margin")


def _add_cutout(sub: argparse._SubParsersAction) -> None:
    from .bundled import bundled_model_info

    info = bundled_model_info()
    model = f"{info['name']} {info.get('version', '')}".strip() if info else "none bundled"
    p = sub.add_parser(
        "cutout", parents=[_model_flags()], help="cut out pictures: RGB in, RGBA out",
        description=f"Predict the alpha of each picture and write OUTDIR/<stem>.png (RGBA, straight alpha). "
                    f"Default model: {model}.",
        epilog="Exit status: 0 all done, 1 some inputs failed (the others were processed), 2 usage error.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="picture files or folders (walked recursively)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    p.add_argument("--mask", action="store_true", help="write the alpha alone as 8-bit grayscale")
    p.add_argument("--background", metavar="COLOR", help="flatten onto this colour (#rrggbb or a name), write RGB")
    p.add_argument("--format", choices=("png", "webp", "gif", "webm", "mov"),
                   help="pictures: png (the default; APNG for an animation), lossless webp, or gif (one bit of "
                        "transparency); videos: webm (the default, VP9 with alpha), mov (ProRes 4444 with alpha) "
                        "or png (a folder of frames)")
    p.add_argument("--max-frames", type=_positive_int, default=DEFAULT_MAX_FRAMES, metavar="N",
                   help="refuse animations of more frames (default %(default)s)")
    p.add_argument("--trim", nargs="?", const=0, type=_trim_margin, metavar="MARGIN",
                   help="crop to the content's bounding box plus MARGIN pixels (default 0)")
    p.add_argument("--keep", type=_point, action=_EditAction, dest="edits", default=[], metavar="X,Y",
                   help="make the whole region under this point opaque (pixels of the input; repeatable; "
                        "one input picture)")
    p.add_argument("--drop", type=_point, action=_EditAction, dest="edits", default=[], metavar="X,Y",
                   help="make the whole region under this point transparent (as --keep; the last of "
                        "--keep and --drop on a region decides it)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist (inputs never)")
    p.add_argument("--force", action="store_true", help="recompute the alpha of inputs that already have one")
    p.add_argument("--no-decontaminate", dest="decontaminate", action="store_false",
                   help="keep the input colours on soft edges")
    p.add_argument("--max-pixels", type=_megapixels, default=DEFAULT_MAX_PIXELS / MEGAPIXEL, metavar="MP",
                   help="refuse pictures over this many megapixels, checked before decoding (default 100)")
    p.add_argument("--distributed", action="store_true",
                   help="take this process's share of the inputs from RANK / WORLD_SIZE (as torchrun sets "
                        "them) and write OUTDIR/manifest-rank<RANK>.csv; each rank uses its own GPU "
                        "(LOCAL_RANK) or CPU threads")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no notes")
    p.set_defaults(func=_run_cutout)


def _run_cutout(args: argparse.Namespace) -> int:
    if _checkpoint_without_torch(args.model):
        return 2
    from .batch import mark_output, plan_jobs, run_batch, shard
    from .pipeline import CutoutOptions, parse_colour
    from .threads import set_thread_limit
    from .ranks import finish_rank, plan_rank
    from .progress import Progress

    try:
        background = parse_colour(args.background) if args.background else None
    except ValueError as exc:
        _error(f"--background: {exc}")
        return 2
    if args.mask and background is not None:
        _error("--mask writes the alpha alone: it takes no --background")
        return 2
    if args.output.exists() and not args.output.is_dir():
        _error(f"{args.output}: not a folder")
        return 2
    max_pixels = int(args.max_pixels * MEGAPIXEL)
    if args.edits:
        from .errors import InputError
        from .imaging import open_image
        from .inference import check_points
        if len(args.inputs) != 1 or Path(args.inputs[0]).is_dir():
            _error("--keep and --drop take points of one picture: give exactly one input file")
            return 2
        from .animation import is_animation
        from .video import is_video
        if is_video(Path(args.inputs[0])) or is_animation(args.inputs[0]):
            _error(f"{args.inputs[0]}: --keep and --drop apply to still pictures, not to animations or videos")
            return 2
        try:
            check_points([(x, y) for _, x, y in args.edits], *open_image(args.inputs[0], max_pixels).size)
        except ValueError as exc:
            _error(f"--keep/--drop: {exc}")
            return 2
        except InputError as exc:
            _error(f"{args.inputs[0]}: {exc}")
            return 1
    fmt = args.format if args.format in ("png", "webp", "gif") else "png"
    video_fmt = args.format if args.format in ("webm", "mov", "png") else "webm"
    opts = CutoutOptions(mask=args.mask, background=background, fmt=fmt, video_fmt=video_fmt, trim=args.trim,
                         overwrite=args.overwrite, force=args.force, decontaminate=args.decontaminate,
                         max_pixels=max_pixels, edits=tuple(args.edits),
                         max_frames=args.max_frames, asked_fmt=args.format)
    rank, world, device, threads = 0, 1, args.device, args.threads
    if args.distributed:
        plan = plan_rank(args.model, args.device, args.threads)
        rank, world, device, threads = plan.rank, plan.world, plan.device, plan.threads
        set_thread_limit(threads)  # the refinement too stays within this rank's share
        if plan.note and not args.quiet and rank == 0:
            print(f"{PROG}: {plan.note}", file=sys.stderr, flush=True)
    matter = _matter(args, device, threads)
    jobs = plan_jobs(args.inputs, args.output, opts.suffix_for)
    mark_output(args.output)
    if args.distributed:
        jobs = shard(jobs, rank, world)
    bar = Progress(len(jobs), "files", enabled=len(jobs) > 1 and not args.quiet)

    def on_error(path: Path, reason: str) -> None:
        bar.close()
        _error(f"{path}: {reason}")

    def on_note(path: Path, note: str) -> None:
        if not args.quiet:
            bar.close()
            print(f"{PROG}: {path}: {note}", file=sys.stderr, flush=True)

    frame_bar: list[Progress] = []

    def on_frame(path: Path, done: int, total: int) -> None:  # frames done / total of an animation
        if done == 1:
            bar.close()
            frame_bar[:] = [Progress(total, "frames", enabled=not args.quiet)]
        frame_bar[0].update(done, path.name)
        if done == total:
            frame_bar[0].close()

    summary = run_batch(matter, jobs, opts, on_error, on_note, bar.update, on_frame)
    bar.close()
    if args.distributed:
        summary.write_manifest(args.output / f"manifest-rank{rank}.csv")
    if not args.quiet or summary.failed:
        print(f"{PROG}: {summary.line()}", file=sys.stderr, flush=True)
    if args.distributed:
        finish_rank(bool(summary.failed))  # a failing rank's exit would stop the others
    return 1 if summary.failed else 0


# -- evaluate -----------------------------------------------------------------------------

def _size(text: str) -> int | str:
    if text == "native":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (an integer or 'native')") from None
    if value < 16:
        raise argparse.ArgumentTypeError(f"size {value} is too small (at least 16)")
    return value


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", parents=[_model_flags()], help="score a model with the evaluation protocol",
                       description="Composite each cutout deterministically, predict, and report "
                                   "PSNR / pixel accuracy / IoU (the paper's) plus MAE, gradient error and edge IoU.")
    p.add_argument("--data", required=True, type=Path, help="folder of RGBA cutouts (e.g. the validation set)")
    p.add_argument("--backgrounds", type=Path, help="folder of scene backgrounds (for the scene condition)")
    p.add_argument("--sizes", nargs="+", type=_size, default=[256, 512, "native"])
    p.add_argument("--conditions", nargs="+", default=None, choices=("paper", "jpeg", "scene"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="use at most this many cutouts (evenly spaced)")
    p.add_argument("--out", type=Path, default=Path("eval-output"), help="report folder")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    if _checkpoint_without_torch(args.model):
        return 2
    from .evaluate import CONDITIONS, markdown_table, run_evaluation

    conditions = args.conditions or [c for c in CONDITIONS if c != "scene" or args.backgrounds]
    matter = _matter(args)
    report = run_evaluation(matter, args.data, args.backgrounds, args.out, args.sizes, conditions,
                            args.seed, args.limit)
    print(f"Model: {matter.info.describe()}\n")
    print(markdown_table(report["rows"]), end="")
    print(f"\nreport: {args.out / 'report.md'}, {args.out / 'report.json'}, worst cases: {args.out / 'worst.png'}")
    return 0


# -- export -------------------------------------------------------------------------------

def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a training checkpoint to ONNX and check parity",
                       description="Write an ONNX model (opset 17, dynamic height and width) and check that "
                                   "ONNX Runtime and PyTorch agree within 1e-3 on the bundled samples.")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--onnx", required=True, type=Path, help="output .onnx file")
    p.add_argument("--name", help="model name stored in the file")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    if _torch_missing("kirinuki export"):
        return 2
    from .export import export_checkpoint, parity_images

    diff = export_checkpoint(args.checkpoint, args.onnx, parity_images(), name=args.name)
    print(f"{args.onnx}: written; ONNX vs PyTorch max |difference| {diff:.2e}")
    return 0


# -- serve --------------------------------------------------------------------------------

def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", parents=[_model_flags()], help="serve the web page and HTTP API",
                       description="A page for cutting out pictures in the browser, and POST /api/cutout. "
                                   "Binds to loopback by default; --host 0.0.0.0 exposes it to the network.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("--workers", type=int, default=1, help="cutouts computed at the same time (default 1)")
    p.add_argument("--queue", type=int, default=8, help="requests allowed to wait; more get 503 (default 8)")
    p.add_argument("--max-upload-mb", type=float, default=25.0)
    p.add_argument("--max-pixels", type=_megapixels, default=SERVE_MAX_PIXELS / MEGAPIXEL, metavar="MP",
                   help="refuse a request whose picture (or animation, all frames together) holds more than "
                        "this many megapixels (default %(default)g)")
    p.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    try:
        from .web.app import ServeSettings, listen, serve
    except ImportError as exc:
        _error(f"kirinuki serve needs the web extra: pip install 'kirinuki[web]' ({exc.name} is missing)")
        return 1

    if _checkpoint_without_torch(args.model):
        return 2
    if args.workers < 1 or args.queue < 0:
        _error("--workers must be at least 1 and --queue at least 0")
        return 2
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        _error(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})")
        return 2
    matter = _matter(args)
    settings = ServeSettings(host=args.host, port=args.port, workers=args.workers, queue=args.queue,
                             max_upload_mb=args.max_upload_mb, max_pixels=int(args.max_pixels * MEGAPIXEL))
    serve(matter, settings, sock)
    return 0


# -- krita ----------------------------------------------------------------------------------

def _add_krita(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("krita", help="the Krita plug-in: install it, or write its archive",
                       description="kirinuki inside Krita: Tools > Scripts > Cut out character (kirinuki).")
    actions = p.add_subparsers(dest="krita_command", required=True, metavar="ACTION")
    inst = actions.add_parser("install", help="put the plug-in where Krita looks (your pykrita folder)")
    inst.add_argument("--folder", type=Path, help="another pykrita folder (default: this system's)")
    inst.set_defaults(func=_run_krita_install)
    z = actions.add_parser("zip", help="write the archive for Krita's 'Import Python Plugin from File'")
    z.add_argument("out", type=Path, metavar="OUT.zip")
    z.set_defaults(func=_run_krita_zip)


def _run_krita_install(args: argparse.Namespace) -> int:
    from .krita import ENABLE_HINT, install

    where = install(args.folder)
    print(f"{PROG}: Krita plug-in installed in {where}; {ENABLE_HINT}")
    return 0


def _run_krita_zip(args: argparse.Namespace) -> int:
    from .krita import write_zip

    if not args.out.parent.is_dir():
        _error(f"{args.out.parent}: no such folder")
        return 2
    write_zip(args.out)
    print(f"{PROG}: wrote {args.out}; in Krita: Tools > Scripts > Import Python Plugin from File, then enable "
          "'kirinuki: cut out characters' in the Python Plugin Manager and restart Krita")
    return 0


# -- entry point --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Give anime illustrations their alpha channel back.")
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_cutout, _add_serve, _add_train, _add_evaluate, _add_export, _add_krita):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except ModelError as exc:  # a model the person named that cannot be used is a usage error
        _error(str(exc))
        return 2 if getattr(args, "model", None) else 1
    except (KirinukiError, OSError, ValueError, RuntimeError) as exc:
        _error(str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
