"""Cutting out many files: the plan (inputs to outputs), its share per process, and the runner.

A batch never stops at a bad file: each failure is reported as one line naming the file and
the reason, and the others go on; an input is never overwritten. Each picture goes through
:mod:`kirinuki.pipeline`, each animation through :mod:`kirinuki.animation` and each video
through :mod:`kirinuki.video`.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .animation import read_animation, save_animation
from .errors import InputError, InputKind
from .imaging import NOTE_KEY, atomic_write, open_image
from .inference import Matter
from .pipeline import CutoutOptions, check_encodable, render, render_animation, save_output, video_frame_renderer
from .video import VIDEO_SUFFIXES, cutout_video, is_video

__all__ = ["plan_jobs", "Job", "JobRecord", "BatchSummary", "run_batch", "shard", "INPUT_SUFFIXES"]

INPUT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif") + VIDEO_SUFFIXES


@dataclass
class Job:
    source: Path
    target: Path | None
    error: str | None = None


def plan_jobs(inputs: Sequence[str | os.PathLike], outdir: Path, suffix: str | Callable[[Path], str]) -> list[Job]:
    """Map inputs (files, or folders walked recursively in a stable order) to output paths.

    A folder's sub-folders are kept under ``outdir``; the output folder itself, and any
    earlier output folder under a walked folder, is never walked as input (so ``kirinuki
    cutout . -o out`` and then ``-o sub/out2`` can be run). A file named twice (or a
    folder and a file inside it) is taken once, from its first mention. An output that a
    previous input already claims, or that is itself an input, is an error for that input,
    never an overwrite.
    """
    suffix_of = suffix if callable(suffix) else (lambda _: suffix)
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
                add(f, outdir / rel.parent / (rel.stem + suffix_of(f)), None)
        else:
            add(p, outdir / (p.stem + suffix_of(p)), None)
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


#: The file ``kirinuki cutout`` leaves in each output folder: a folder walked as input that
#: holds it is an earlier run's output, and is not cut out again.
OUTPUT_MARK = ".kirinuki-output"


def mark_output(outdir: Path) -> None:
    """Mark ``outdir`` (created if needed) as a kirinuki output folder (:data:`OUTPUT_MARK`)."""
    outdir.mkdir(parents=True, exist_ok=True)
    mark = outdir / OUTPUT_MARK
    if not mark.exists():
        mark.write_text("cutouts written by kirinuki; a folder walked as input that holds this file is skipped\n",
                        encoding="utf-8")


def _pictures_under(folder: Path, skip: Path) -> list[Path]:
    """Supported pictures under ``folder``, sorted: symlinked sub-folders are followed (each
    real folder walked once, so a link loop ends), and the folder ``skip`` and every earlier
    output folder (one holding :data:`OUTPUT_MARK`) below ``folder`` are left out."""
    found, visited = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = _key(Path(root))
        if real in visited or real.is_relative_to(skip) or (OUTPUT_MARK in files and real != _key(folder)):
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


def _cut_one(matter: Matter, source: Path, target: Path, opts: CutoutOptions,
             on_note: Callable[[Path, str], None], on_frame: Callable[[int, int], None] | None) -> str | None:
    """Cut out one input into ``target``: a video, an animation or a still. Returns a note."""
    format_note = opts.format_note(source)
    if format_note:
        on_note(source, format_note)
    if is_video(source):
        try:
            return cutout_video(matter, source, target, opts.video_fmt, video_frame_renderer(matter, opts),
                                opts.max_frames, opts.max_pixels, on_frame)
        except PermissionError as exc:
            raise InputError(f"cannot write {target}: {exc.strerror or exc}", InputKind.WRITE) from None
    animation = read_animation(source, opts.max_frames, opts.max_pixels)
    if animation is not None:
        check_encodable(animation.frames[0].size, opts.fmt)
        frames, note = render_animation(matter, animation, opts, on_frame)
        write = lambda: save_animation(frames, animation.durations, animation.loop, target, opts.fmt,
                                       opts.background or (255, 255, 255))
    else:
        image = open_image(source, opts.max_pixels)
        if image.info.get(NOTE_KEY):
            on_note(source, image.info[NOTE_KEY])
        if opts.trim is None:  # the output has the input's size: refuse before the work
            check_encodable(image.size, opts.fmt)
        out, note = render(matter, image, opts)
        write = lambda: save_output(out, target, opts.fmt)
    try:
        write()
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}", InputKind.WRITE) from None
    return note


def run_batch(matter: Matter, jobs: Iterable[Job], opts: CutoutOptions,
              on_error: Callable[[Path, str], None], on_note: Callable[[Path, str], None],
              on_progress: Callable[[int], None] | None = None,
              on_frame: Callable[[Path, int, int], None] | None = None) -> BatchSummary:
    """Cut out every job; report each failure or note through the callbacks and go on.
    Animated pictures (GIF, APNG, WebP) and videos are cut out frame by frame
    (``on_frame(path, done, total)``) and written as animations or videos with their timing."""
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
            progress = (lambda d, n: on_frame(job.source, d, n)) if on_frame else None
            note = _cut_one(matter, job.source, job.target, opts, on_note, progress)
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
