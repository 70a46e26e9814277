"""Image I/O, compositing and premultiplied resampling; numpy + Pillow only.

Conventions used across the package:

* an *RGB image* is an ``HxWx3 uint8`` array in [0, 255] (sRGB);
* an *alpha matte* is an ``HxW float32`` array in [0, 1], straight (not premultiplied);
* a *premultiplied colour* ``Fp`` is ``alpha * F``, so the compositing equation

      I = alpha * F + (1 - alpha) * B = Fp + (1 - alpha) * B

  holds without dividing by alpha anywhere.

Resampling an RGBA picture must happen on premultiplied colour: resampling straight colour
mixes the (arbitrary) colour of transparent pixels into the edge and leaves a dark or
coloured fringe.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError, InputKind
from .limits import DEFAULT_MAX_PIXELS, MEGAPIXEL

__all__ = [
    "open_image",
    "pillow_open",
    "DECODE_ERRORS",
    "CUTOUT_SUFFIXES",
    "BACKGROUND_SUFFIXES",
    "find_images",
    "longest_side",
    "composite",
    "composite_premultiplied",
    "resize_premultiplied",
    "pad_to_square_bottom",
    "to_float",
    "to_uint8",
    "atomic_save",
    "atomic_write",
    "open_temporary",
    "binary_dilate",
    "edge_band",
    "image_to_rgba_or_rgb",
    "as_rgb_array",
    "NOTE_KEY",
]


#: Files that hold cutouts (RGBA) and opaque backgrounds, for training and evaluation.
CUTOUT_SUFFIXES = (".png", ".webp")
BACKGROUND_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def find_images(root: str | os.PathLike, suffixes: Sequence[str]) -> list[Path]:
    """Files under ``root`` (recursive) with one of ``suffixes``, in a stable order."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in suffixes and p.is_file())


def longest_side(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer one is ``side`` (each at least 1)."""
    s = side / max(size)
    return max(1, round(size[0] * s)), max(1, round(size[1] * s))


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 in [0, 255] -> float32 in [0, 1] (any shape)."""
    return image.astype(np.float32) * np.float32(1.0 / 255.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 in [0, 255], rounded and clipped (any shape). One float
    temporary, rounded and clipped in place: on a large picture each fresh temporary costs
    more in first-touch page faults than the arithmetic."""
    scaled = np.multiply(np.asarray(image, dtype=np.float32), np.float32(255))
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def composite(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """``I = alpha * F + (1 - alpha) * B`` with straight colour.

    fg, bg: HxWx3 float32 in [0, 1]; alpha: HxW float32 in [0, 1]. Returns HxWx3 float32.
    """
    a = alpha[..., None]
    return a * fg + (1.0 - a) * bg


def composite_premultiplied(fp: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """The same equation from premultiplied colour ``Fp = alpha * F``: ``I = Fp + (1 - alpha) * B``
    (no division by alpha anywhere). Arrays as in :func:`composite`."""
    return fp + (1.0 - alpha[..., None]) * bg


def resize_premultiplied(rgba: Image.Image, size: tuple[int, int],
                         resample: int = Image.Resampling.LANCZOS) -> Image.Image:
    """Resize an RGBA image to ``size`` (width, height) through premultiplied colour.

    Returns an ``RGBa`` (premultiplied, 8-bit) Pillow image: keep it premultiplied for
    compositing (``Fp + (1 - alpha) * B``) rather than dividing by alpha again.
    """
    return rgba.convert("RGBa").resize(size, resample)


def pad_to_square_bottom(rgba: Image.Image) -> Image.Image:
    """Pad an RGBA cutout with transparency to a square, centred horizontally and standing on
    the bottom edge (the way a standing character is framed)."""
    w, h = rgba.size
    side = max(w, h)
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    canvas.paste(rgba, ((side - w) // 2, side - h))
    return canvas


def binary_dilate(mask: np.ndarray, radius: int, diamond: bool = False) -> np.ndarray:
    """Dilate a boolean HxW mask with a (2r+1)^2 square, or with a diamond (``radius``
    4-connected steps) when ``diamond`` (outside counts as False)."""
    if radius <= 0:
        return mask.copy()
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    kernel = (np.abs(y) + np.abs(x) <= radius if diamond else np.ones((2 * radius + 1,) * 2, bool)).astype(np.uint8)
    grown = cv2.dilate(np.ascontiguousarray(mask, np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return grown.view(bool)


def edge_band(alpha: np.ndarray, radius: int, settled: float = 0.0, threshold: float = 0.5) -> np.ndarray:
    """Boolean HxW mask of the pixels within ``radius`` of an edge of ``alpha`` (HxW float in
    [0, 1]): the edge is every pixel not settled (``settled < alpha < 1 - settled``) plus every
    pixel whose side of ``threshold`` differs from a 4-neighbour's."""
    side = alpha > threshold
    edge = (alpha > settled) & (alpha < 1 - settled)
    edge[:-1] |= side[:-1] != side[1:]
    edge[1:] |= side[:-1] != side[1:]
    edge[:, :-1] |= side[:, :-1] != side[:, 1:]
    edge[:, 1:] |= side[:, :-1] != side[:, 1:]
    return binary_dilate(edge, radius)


def open_temporary(path: str | os.PathLike) -> tuple[int, Path]:
    """Create a new, unique temporary file beside ``path`` for an atomic write.

    Returns (file descriptor, temporary path). Unlike ``tempfile.mkstemp`` the file gets the
    usual permissions (0666 less the umask), so the renamed result looks like any saved file.
    """
    path = Path(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: could not create a temporary file beside it")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file so that ``path`` is either absent or complete, even across a power loss:
    ``write(fh)`` fills a temporary file in the same folder, which is flushed to disk,
    renamed over ``path``, and the folder's entry flushed too. On any error the temporary
    file is removed and ``path`` is left as it was."""
    path = Path(path)
    fd, tmp = open_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without folder handles (Windows): the rename is what it has
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(image: Image.Image, path: str | os.PathLike, **params) -> None:
    """Save a Pillow image atomically (see :func:`atomic_write`)."""
    path = Path(path)
    fmt = params.pop("format", None) or Image.registered_extensions().get(path.suffix.lower())
    atomic_write(path, lambda fh: image.save(fh, format=fmt, **params))


# -- reading pictures as users have them -------------------------------------------------

#: Where a decoded picture carries a note for the user (a colour profile that was ignored).
NOTE_KEY = "kirinuki_note"


def _eight_bit(im: Image.Image) -> Image.Image:
    """16/32-bit integer or float grayscale -> 8-bit L, scaled rather than clipped at 255."""
    arr = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        return Image.fromarray(to_uint8(arr))
    top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
    return Image.fromarray(to_uint8(arr / top))


def _split_alpha(im: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Any Pillow mode -> (colour in RGB, L or CMYK, alpha or None), keeping transparency
    where the file has it: an alpha channel, a palette's transparent entries, or a tRNS colour
    key on an RGB or grayscale picture (GIF and PNG both have it)."""
    keyed = "transparency" in im.info
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _eight_bit(im), None
    if im.mode == "P" or (keyed and im.mode in ("1", "L", "RGB")):
        im = im.convert("RGBA") if keyed else im.convert("RGB")
    if im.mode in ("LA", "La"):
        im = im.convert("LA")
        return im.getchannel("L"), im.getchannel("A")
    if im.mode in ("RGBA", "PA", "RGBa"):
        im = im.convert("RGBA")
        return im.convert("RGB"), im.getchannel("A")
    if im.mode in ("RGB", "L", "CMYK"):
        return im, None
    return im.convert("RGB"), None  # 1, YCbCr, LAB, HSV, ...


def _to_srgb(colour: Image.Image, icc: bytes) -> tuple[Image.Image, str | None]:
    """Convert ``colour`` (RGB, L or CMYK) from its ICC profile to sRGB. Returns (RGB picture,
    None), or (the plain conversion, a note saying why the profile was ignored)."""
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(colour, src, ImageCms.createProfile("sRGB"), outputMode="RGB"), None
    except Exception as exc:  # an unusable or mismatched profile
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        return colour.convert("RGB"), f"colour profile ignored ({reason}); colours read as sRGB"


def image_to_rgba_or_rgb(image: "Image.Image") -> Image.Image:
    """A decoded Pillow image -> RGB or RGBA, colour-managed to sRGB when it carries an ICC
    profile (whatever its mode: palette, grayscale with alpha and 16-bit included), with its
    EXIF orientation applied. A profile that cannot be used is ignored with a note in
    ``info[NOTE_KEY]``."""
    from PIL import ImageOps

    im = ImageOps.exif_transpose(image)
    icc = im.info.get("icc_profile")
    colour, alpha = _split_alpha(im)
    note = None
    if icc:
        colour, note = _to_srgb(colour, icc)
    out = colour.convert("RGB")
    if alpha is not None:
        out.putalpha(alpha)
    if note:
        out.info[NOTE_KEY] = note
    return out


#: What Pillow raises on a cut-short or damaged file while decoding it or counting its
#: frames (a truncated GIF's frame count is an IndexError, a short header a struct.error).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


def pillow_open(stream: "str | os.PathLike | io.BytesIO", max_pixels: int) -> Image.Image:
    """``Image.open`` under our pixel limit instead of Pillow's: Pillow warns (a two-line
    Python warning) over its own limit and refuses twice that before ours is checked, so the
    limit asked for here is the one that applies, in the CLI, the API and the web app alike.
    Raises what ``Image.open`` raises."""
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(stream)


def open_image(source: "str | os.PathLike | bytes", max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open a picture as users have them: RGB or RGBA, EXIF orientation applied, colour
    managed to sRGB, first frame of an animation. ``source`` is a path or the file's bytes.

    Raises :class:`InputError` with a one-line reason for anything else; the pixel count is
    checked against ``max_pixels`` from the header, before decoding.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise InputError("empty file (0 bytes)", InputKind.EMPTY)
        stream: "str | os.PathLike | io.BytesIO" = io.BytesIO(source)
    else:
        p = Path(source)
        try:
            if p.is_dir():
                raise InputError("is a folder, not a file", InputKind.MISSING)
            if p.stat().st_size == 0:
                raise InputError("empty file (0 bytes)", InputKind.EMPTY)
        except FileNotFoundError:
            raise InputError("no such file", InputKind.MISSING) from None
        except PermissionError:
            raise InputError("permission denied", InputKind.PERMISSION) from None
        stream = p
    try:
        im = pillow_open(stream, max_pixels)
    except UnidentifiedImageError:
        raise InputError("not an image, or a format kirinuki cannot read", InputKind.UNSUPPORTED) from None
    except Image.DecompressionBombError as exc:
        # Pillow's own guard fired first (at twice its limit): same answer as ours below.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / MEGAPIXEL:.1f} MP, " if found else ""
        raise InputError(f"{size}over the limit of {max_pixels / MEGAPIXEL:g} MP (--max-pixels)", InputKind.TOO_LARGE) from None
    except PermissionError:
        raise InputError("permission denied", InputKind.PERMISSION) from None
    except OSError as exc:  # a known format whose decoder gave up on the data: cut short or damaged
        raise InputError(f"truncated or corrupt image ({exc})", InputKind.CORRUPT) from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise InputError(f"{w}x{h} is {w * h / MEGAPIXEL:.1f} MP, over the limit of {max_pixels / MEGAPIXEL:g} MP "
                             "(--max-pixels)", InputKind.TOO_LARGE)
        try:
            im.seek(0)
            im.load()
        except DECODE_ERRORS as exc:
            raise InputError(f"truncated or corrupt image ({exc})", InputKind.CORRUPT) from None
        return image_to_rgba_or_rgb(im)


def as_rgb_array(image: "str | os.PathLike | Image.Image | np.ndarray") -> np.ndarray:
    """A path, Pillow image or array -> ``HxWx3 uint8`` RGB (alpha, if any, dropped).

    Arrays: HxWx3 uint8, HxW uint8 (gray) or HxWx4 uint8 (RGBA) are accepted.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 array, got {image.dtype}")
        if image.ndim == 2:
            return np.repeat(image[..., None], 3, axis=2)
        if image.ndim == 3 and image.shape[2] in (3, 4):
            return np.ascontiguousarray(image[..., :3])
        raise ValueError(f"expected an HxWx3 array, got shape {image.shape}")
    if isinstance(image, Image.Image):
        return np.asarray(image_to_rgba_or_rgb(image).convert("RGB"))
    return np.asarray(open_image(image).convert("RGB"))
