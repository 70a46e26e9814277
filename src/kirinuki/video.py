"""Video in, video with alpha out, frame by frame and streamed (PyAV: FFmpeg's libraries).

Outputs: WebM with VP9 and an alpha channel (``webm``), QuickTime with ProRes 4444 and alpha
for editors (``mov``), or a folder of PNG frames (``png``). Frames stream through: one is
decoded, cut out and encoded at a time, so memory stays bounded whatever the length. The
alpha is steadied where the picture does not move (the renderer the caller passes does it),
timestamps are kept, and the audio is copied when the output container can hold its codec.
The output is written under a temporary name and renamed when complete. Needs the ``video``
extra (``pip install 'kirinuki[video]'``).
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from .errors import InputError, InputKind
from .limits import MEGAPIXEL
from .png import png_bytes
from .inference import Matter

__all__ = ["VIDEO_SUFFIXES", "VIDEO_FORMATS", "is_video", "cutout_video"]

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".m4v", ".avi")
#: Output formats for a video: WebM VP9 with alpha, ProRes 4444 with alpha, a folder of PNGs.
VIDEO_FORMATS = ("webm", "mov", "png")
#: The longest frame side a WebM (VP9) output takes: VP9's highest level allows 16384, and
#: libvpx's memory grows with the longer side (a 24x57368 frame took 2.2 GB to encode,
#: 24x16384 0.7 GB, 1176x1176 0.4 GB).
VP9_MAX_SIDE = 16384
# Audio codecs each container takes as they are.
_AUDIO_OK = {"webm": {"opus", "vorbis"}, "mov": {"aac", "alac", "mp3", "pcm_s16le", "pcm_s24le", "pcm_f32le"}}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise InputError("video needs the 'video' extra: pip install 'kirinuki[video]'", InputKind.UNSUPPORTED) from None
    return av


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")


def cutout_video(matter: Matter, source: Path, target: Path, fmt: str, render_frame: Callable[..., Any],
                 max_frames: int, max_pixels: int,
                 on_frame: Callable[[int, int], None] | None = None) -> str | None:
    """Cut out the video ``source`` into ``target`` (a file, or a folder for ``png``).

    ``render_frame(rgb, previous_rgb, previous_alpha) -> (output HxWxC uint8, alpha float)``
    makes one output frame (the cutout pipeline's options: mask, background, decontamination).
    The frame count (``max_frames``) and the pixels of all frames (``max_pixels``) are checked
    from the container's header first. Returns a note (audio dropped) or None.
    """
    av = _av()
    if fmt not in VIDEO_FORMATS:
        raise InputError(f"a video goes out as {', '.join(VIDEO_FORMATS)} (--format), not {fmt}", InputKind.BAD_OPTION)
    if Path(source).is_file() and Path(source).stat().st_size == 0:
        raise InputError("empty file (0 bytes)", InputKind.EMPTY)
    try:
        # Tags in another encoding are replaced, not a reason to refuse the video.
        inp = av.open(str(source), metadata_errors="replace")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)  # FFmpeg's words, without its error number
        raise InputError(f"not a video kirinuki can read ({reason})", InputKind.UNSUPPORTED) from None
    tmp = _temporary(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    note, out, oas = None, None, None
    try:
        if not inp.streams.video:
            raise InputError("no video stream", InputKind.UNSUPPORTED)
        vs = inp.streams.video[0]
        if vs.codec_context is None or not vs.codec_context.width or not vs.codec_context.height:
            raise InputError("truncated or corrupt video (its video stream has no decoder or no size)",
                             InputKind.CORRUPT)
        w, h = vs.codec_context.width, vs.codec_context.height
        if fmt == "webm" and max(w, h) > VP9_MAX_SIDE:
            raise InputError(f"frames of {w}x{h}: WebM (VP9) takes at most {VP9_MAX_SIDE} pixels a side "
                             "(--format mov or png can hold them)", InputKind.TOO_LARGE)
        rate = vs.average_rate or vs.guessed_rate or 24
        total = vs.frames or (int(float(inp.duration / av.time_base) * float(rate) + 0.5) if inp.duration else 0)
        if total > max_frames:
            raise InputError(f"about {total} frames, over the limit of {max_frames} (--max-frames)", InputKind.TOO_LARGE)
        if total * w * h > max_pixels:
            raise InputError(f"about {total} frames of {w}x{h} are {total * w * h / MEGAPIXEL:.3g} MP in all, over "
                             f"the limit of {max_pixels / MEGAPIXEL:g} MP (--max-pixels)", InputKind.TOO_LARGE)
        audio = inp.streams.audio[0] if inp.streams.audio else None
        if fmt == "png":
            tmp.mkdir(parents=True)
        else:
            out = av.open(str(tmp), "w", format="webm" if fmt == "webm" else "mov")
            ovs = out.add_stream("libvpx-vp9" if fmt == "webm" else "prores_ks", rate=rate)
            ovs.width, ovs.height = w, h
            ovs.time_base = vs.time_base
            ovs.pix_fmt = "yuva420p" if fmt == "webm" else "yuva444p10le"
            if fmt == "mov":
                ovs.options = {"profile": "4"}  # ProRes 4444: with an alpha channel
            if audio is not None:
                if audio.codec_context.name in _AUDIO_OK[fmt]:
                    oas = out.add_stream_from_template(audio)
                else:
                    note = f"audio ({audio.codec_context.name}) dropped: {fmt} cannot hold it as it is"
        if fmt == "png" and audio is not None:
            note = "audio dropped: a folder of frames holds none"
        previous: tuple[np.ndarray, np.ndarray] | None = None
        done = 0
        streams = [vs] + ([audio] if oas is not None else [])  # audio only where it is copied
        try:
            for packet in inp.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        packet.stream = oas
                        out.mux(packet)
                    continue
                for frame in packet.decode():
                    done += 1
                    if done > max_frames:
                        raise InputError(f"more than {max_frames} frames (--max-frames)", InputKind.TOO_LARGE)
                    rgb = frame.to_ndarray(format="rgb24")
                    pixels, alpha = render_frame(rgb, *(previous or (None, None)))
                    previous = (rgb, alpha)
                    if out is None:
                        (tmp / f"frame-{done:06d}.png").write_bytes(png_bytes(Image.fromarray(pixels)))
                    else:
                        layout = "gray" if pixels.ndim == 2 else {4: "rgba", 3: "rgb24"}[pixels.shape[2]]
                        new = av.VideoFrame.from_ndarray(pixels, format=layout)
                        new.pts, new.time_base = frame.pts, frame.time_base
                        for p in ovs.encode(new):
                            out.mux(p)
                    if on_frame:
                        on_frame(done, max(total, done))
            if done == 0:
                raise InputError("truncated or corrupt video (no frame could be decoded)", InputKind.CORRUPT)
            if out is not None:  # the encoder's last frames: a damaged input's timestamps fail here too
                for p in ovs.encode():
                    out.mux(p)
                out.close()
                out = None
        except av.error.FFmpegError as exc:  # FFmpeg's words, without the temporary file's name
            raise InputError(f"truncated or corrupt video ({exc.strerror or exc.__class__.__name__})",
                             InputKind.CORRUPT) from None
        _move_into_place(tmp, target)
    except BaseException:
        if out is not None:
            try:
                out.close()
            except Exception:
                pass
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        inp.close()
    return note


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished output over ``target`` (a folder replaces a folder whole)."""
    if tmp.is_dir() and target.is_dir():
        old = _temporary(target)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
