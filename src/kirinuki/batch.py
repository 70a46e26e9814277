"""Cutting out files: opening inputs safely, rendering the output, and the batch runner.

A batch never stops at a bad file: each failure is reported as one line naming the file and
the reason, and the others go on. Outputs are written to a temporary name and renamed, so a
file at an output path is always complete; an input is never overwritten.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image, ImageColor, UnidentifiedImageError

from .foreground import estimate_foreground
from .imaging import NOTE_KEY, atomic_save, atomic_write, image_to_rgba_or_rgb
from .inference import Matter

__all__ = ["InputError", "CutoutOptions", "open_image", "parse_colour", "has_real_alpha", "render",
           "plan_jobs", "Job", "BatchSummary", "run_batch", "check_encodable", "INPUT_SUFFIXES",
           "DEFAULT_MAX_PIXELS", "WEBP_MAX_SIDE"]

INPUT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
DEFAULT_MAX_PIXELS = 100_000_000
#: The longest side a WebP file can hold (the format stores 14-bit sizes).
WEBP_MAX_SIDE = 16383


class InputError(Exception):
    """An input that cannot be cut out; the message is the one-line reason and ``kind`` says
    which sort: missing, empty, unsupported, corrupt, too_large or write."""

    def __init__(self, message: str, kind: str = "unsupported") -> None:
        super().__init__(message)
        self.kind = kind


def parse_colour(text: str) -> tuple[int, int, int]:
    """``#rrggbb``, ``#rgb`` or a CSS colour name -> (r, g, b)."""
    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a colour (use #rrggbb or a name such as white)") from None
    return tuple(rgb[:3])  # type: ignore[return-value]


@dataclass(frozen=True)
class CutoutOptions:
    """What to write. mask: the alpha alone (8-bit grayscale); background: flatten onto this
    colour (RGB output); fmt: ``png`` or ``webp`` (lossless); trim: crop to the content plus
    this margin (None: no crop); force: recompute alpha even when the input has one;
    decontaminate: estimate the foreground colour on soft edges (no halo); keep, drop:
    points whose regions are made opaque or transparent (the alpha is then always
    computed)."""

    mask: bool = False
    background: tuple[int, int, int] | None = None
    fmt: str = "png"
    trim: int | None = None
    overwrite: bool = False
    force: bool = False
    decontaminate: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Points (x, y) whose whole region is kept (opaque) or dropped (transparent).
    keep: tuple[tuple[int, int], ...] = ()
    drop: tuple[tuple[int, int], ...] = ()

    @property
    def suffix(self) -> str:
        return "." + self.fmt


def open_image(source: "str | os.PathLike | bytes", max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open a picture as users have them: RGB or RGBA, EXIF orientation applied, colour
    managed to sRGB, first frame of an animation. ``source`` is a path or the file's bytes.

    Raises :class:`InputError` with a one-line reason for anything else; the pixel count is
    checked against ``max_pixels`` from the header, before decoding.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise InputError("empty file (0 bytes)", "empty")
        stream: "str | os.PathLike | io.BytesIO" = io.BytesIO(source)
    else:
        p = Path(source)
        try:
            if p.is_dir():
                raise InputError("is a folder, not a file", "missing")
            if p.stat().st_size == 0:
                raise InputError("empty file (0 bytes)", "empty")
        except FileNotFoundError:
            raise InputError("no such file", "missing") from None
        except PermissionError:
            raise InputError("permission denied", "missing") from None
        stream = p
    # Pillow refuses pictures over twice its own limit before ours is checked: the limit
    # asked for here is the one that applies, in the CLI, the API and the web app alike.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(stream)
    except UnidentifiedImageError:
        raise InputError("not an image, or a format kirinuki cannot read", "unsupported") from None
    except Image.DecompressionBombError as exc:
        # Pillow's own guard fired first (at twice its limit): same answer as ours below.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.1f} MP, " if found else ""
        raise InputError(f"{size}over the limit of {max_pixels / 1e6:g} MP (--max-pixels)", "too_large") from None
    except PermissionError:
        raise InputError("permission denied", "missing") from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc})", "unsupported") from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise InputError(f"{w}x{h} is {w * h / 1e6:.1f} MP, over the limit of {max_pixels / 1e6:g} MP "
                             "(--max-pixels)", "too_large")
        try:
            im.seek(0)
            im.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InputError(f"truncated or corrupt image ({exc})", "corrupt") from None
        return image_to_rgba_or_rgb(im)


def has_real_alpha(image: Image.Image) -> bool:
    """True when an RGBA picture's alpha carries a cutout already: some pixels fully
    transparent (an all-opaque alpha channel says nothing)."""
    if image.mode != "RGBA":
        return False
    lo, hi = image.getchannel("A").getextrema()
    return lo == 0 and hi > 0


def render(matter: Matter, image: Image.Image, opts: CutoutOptions) -> tuple[Image.Image, str | None]:
    """Cut out one picture (RGB or RGBA). Returns (output image, note or None).

    The output is RGBA with straight alpha, or L (``mask``), or RGB (``background``).
    """
    note = None
    if has_real_alpha(image) and not opts.force and not (opts.keep or opts.drop):
        arr = np.asarray(image)
        rgb, alpha8 = arr[..., :3], arr[..., 3]
        note = "already has transparency: alpha kept as it is (--force recomputes it)"
        fg = rgb
    else:
        rgb = np.asarray(image.convert("RGB"))
        alpha = matter.predict_alpha(rgb, opts.keep, opts.drop)
        fg = estimate_foreground(rgb, alpha) if opts.decontaminate else rgb
        alpha8 = np.clip(np.rint(alpha * 255), 0, 255).astype(np.uint8)
    if opts.trim is not None:
        ys, xs = np.nonzero(alpha8)
        if ys.size:
            m = opts.trim
            y0, y1 = max(0, ys.min() - m), min(alpha8.shape[0], ys.max() + 1 + m)
            x0, x1 = max(0, xs.min() - m), min(alpha8.shape[1], xs.max() + 1 + m)
            fg, alpha8 = fg[y0:y1, x0:x1], alpha8[y0:y1, x0:x1]
    if opts.mask:
        return Image.fromarray(np.ascontiguousarray(alpha8), "L"), note
    if opts.background is not None:
        a = alpha8[..., None].astype(np.float32) / 255
        flat = fg.astype(np.float32) * a + np.asarray(opts.background, np.float32) * (1 - a)
        return Image.fromarray(np.clip(np.rint(flat), 0, 255).astype(np.uint8), "RGB"), note
    return Image.fromarray(np.dstack([fg, alpha8]), "RGBA"), note


def check_encodable(size: tuple[int, int], fmt: str) -> None:
    """Refuse, before any work, an output the format cannot hold (WebP: 16383 px a side)."""
    if fmt == "webp" and max(size) > WEBP_MAX_SIDE:
        raise InputError(f"{size[0]}x{size[1]} is too large for WebP (at most {WEBP_MAX_SIDE} pixels a side); "
                         "use --format png", "too_large")


def encode_params(fmt: str) -> dict:
    """Pillow save parameters: PNG at a fast compression level, WebP lossless (exact alpha)."""
    if fmt == "webp":
        return {"format": "WEBP", "lossless": True, "quality": 50, "method": 1}
    if fmt == "png":
        return {"format": "PNG", "compress_level": 1}
    raise ValueError(f"unknown output format {fmt!r}; choose png or webp")


def encode(image: Image.Image, fmt: str) -> bytes:
    """The output file's bytes (for the web app)."""
    check_encodable(image.size, fmt)
    buf = io.BytesIO()
    image.save(buf, **encode_params(fmt))
    return buf.getvalue()


def save_output(image: Image.Image, path: Path, fmt: str) -> None:
    """Write atomically (a complete file or none)."""
    check_encodable(image.size, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(image, path, **encode_params(fmt))


@dataclass
class Job:
    source: Path
    target: Path | None
    error: str | None = None


def plan_jobs(inputs: Sequence[str | os.PathLike], outdir: Path, suffix: str) -> list[Job]:
    """Map inputs (files, or folders walked recursively in a stable order) to output paths.

    A folder's sub-folders are kept under ``outdir``; the output folder itself is never walked
    as input (so ``kirinuki cutout . -o out`` can be run again). A file named twice (or a
    folder and a file inside it) is taken once, from its first mention. An output that a
    previous input already claims, or that is itself an input, is an error for that input,
    never an overwrite.
    """
    out_key = _key(outdir)
    pairs: list[tuple[Path, Path | None, str | None]] = []
    seen: set[Path] = set()

    def add(src: Path, target: Path | None, err: str | None) -> None:
        key = _key(src)
        if key in seen and err is None:
            return
        seen.add(key)
        pairs.append((src, target, err))

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = _pictures_under(p, out_key)
            if not files:
                add(p, None, "folder holds no supported pictures")
            for f in files:
                rel = f.relative_to(p)
                add(f, outdir / rel.parent / (rel.stem + suffix), None)
        else:
            add(p, outdir / (p.stem + suffix), None)
    sources = {_key(src) for src, _, _ in pairs}
    claimed: dict[Path, Path] = {}
    jobs = []
    for src, target, err in pairs:
        if err is None and target is not None:
            key = _key(target)
            if key in sources:
                err = f"output {target} would overwrite an input"
            elif key in claimed:
                err = f"output {target} is already the output of {claimed[key]}"
            else:
                claimed[key] = src
        jobs.append(Job(src, target, err))
    return jobs


def _pictures_under(folder: Path, skip: Path) -> list[Path]:
    """Supported pictures under ``folder``, sorted: symlinked sub-folders are followed (each
    real folder walked once, so a link loop ends), and the folder ``skip`` is left out."""
    found, visited = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = _key(Path(root))
        if real in visited or real.is_relative_to(skip):
            dirs[:] = []
            continue
        visited.add(real)
        found += [Path(root) / f for f in files if Path(f).suffix.lower() in INPUT_SUFFIXES
                  and (Path(root) / f).is_file()]
    return sorted(found)


def _key(path: Path) -> Path:
    return Path(os.path.realpath(path))


@dataclass
class JobRecord:
    """What happened to one input: status is done, skipped or failed."""

    source: Path
    target: Path | None
    status: str
    seconds: float
    reason: str = ""


@dataclass
class BatchSummary:
    records: list[JobRecord] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def failed(self) -> int:
        return self.count("failed")

    def line(self) -> str:
        return (f"{self.count('done')} done, {self.count('skipped')} skipped, {self.failed} failed "
                f"({self.seconds:.1f} s)")

    def write_manifest(self, path: Path) -> None:
        """CSV of input, output, status, seconds, reason; written atomically."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["input", "output", "status", "seconds", "reason"])
        for r in self.records:
            w.writerow([r.source, r.target or "", r.status, f"{r.seconds:.3f}", r.reason])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: fh.write(buf.getvalue().encode("utf-8")))


def shard(jobs: Sequence[Job], rank: int, world: int) -> list[Job]:
    """This process's share of a batch: every ``world``-th job from ``rank`` on. The plan is
    sorted and the same in every process, so each input is done by exactly one of them."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    return list(jobs[rank::world])


def run_batch(matter: Matter, jobs: Iterable[Job], opts: CutoutOptions,
              on_error: Callable[[Path, str], None], on_note: Callable[[Path, str], None],
              on_progress: Callable[[int], None] | None = None) -> BatchSummary:
    """Cut out every job; report each failure or note through the callbacks and go on."""
    summary = BatchSummary()
    t0 = time.perf_counter()
    for k, job in enumerate(jobs, 1):
        started = time.perf_counter()
        status, reason = "done", ""
        try:
            if job.error:
                raise InputError(job.error)
            assert job.target is not None
            if job.target.exists() and not opts.overwrite:
                status, reason = "skipped", f"{job.target} exists (--overwrite replaces it)"
                on_note(job.source, f"skipped: {reason}")
                continue
            image = open_image(job.source, opts.max_pixels)
            if image.info.get(NOTE_KEY):
                on_note(job.source, image.info[NOTE_KEY])
            if opts.trim is None:  # the output has the input's size: refuse before the work
                check_encodable(image.size, opts.fmt)
            out, note = render(matter, image, opts)
            try:
                save_output(out, job.target, opts.fmt)
            except OSError as exc:
                raise InputError(f"cannot write {job.target}: {exc.strerror or exc}", "write") from None
            if note:
                reason = note
                on_note(job.source, note)
        except InputError as exc:
            status, reason = "failed", str(exc)
            on_error(job.source, reason)
        except MemoryError:
            status, reason = "failed", "out of memory"
            on_error(job.source, reason)
        except Exception as exc:  # anything unforeseen fails this input only, never the batch
            status, reason = "failed", f"unexpected error: {exc.__class__.__name__}: {exc}"
            on_error(job.source, reason)
        finally:
            summary.records.append(JobRecord(job.source, job.target, status,
                                             time.perf_counter() - started, reason))
            if on_progress:
                on_progress(k)
    summary.seconds = time.perf_counter() - t0
    return summary
