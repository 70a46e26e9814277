"""The cutout command and API: naming, options, bad inputs, and what is never overwritten."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kirinuki.batch import plan_jobs
from kirinuki.errors import InputError
from kirinuki.imaging import open_image
from kirinuki.pipeline import CutoutOptions, render
from kirinuki.inference import Matter
from conftest import written


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kirinuki", "cutout", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def picture(path, size=(40, 30), mode="RGB", **save):
    rng = np.random.default_rng(abs(hash(str(path))) % 2 ** 32)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).save(path, **save)
    return path


def cutout_with_alpha(path, size=(40, 30)):
    """An RGBA picture with a real cutout: an opaque red box in a transparent frame."""
    arr = np.zeros((size[1], size[0], 4), np.uint8)
    arr[5:20, 10:25] = (255, 0, 0, 255)
    Image.fromarray(arr, "RGBA").save(path)
    return path


# -- naming and overwriting ---------------------------------------------------------------

def test_files_and_folders_map_to_png_outputs(tmp_path, tiny_onnx):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    picture(src / "a.jpg")
    picture(src / "sub" / "b.webp")
    single = picture(tmp_path / "single.bmp")
    out = tmp_path / "out"
    r = cli(src, single, "-o", out, "--model", tiny_onnx, "-q")
    assert r.returncode == 0, r.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "single.png", "sub/b.png"]
    im = Image.open(out / "sub" / "b.png")
    assert im.mode == "RGBA" and im.size == (40, 30)


def test_second_input_with_the_same_output_name_is_an_error(tmp_path, tiny_onnx):
    a = picture(tmp_path / "x.jpg")
    b = picture(tmp_path / "x.png")
    out = tmp_path / "out"
    r = cli(a, b, "-o", out, "--model", tiny_onnx)
    assert r.returncode == 1
    assert f"kirinuki: error: {b}: output {out / 'x.png'} is already the output of {a}" in r.stderr
    assert "1 done, 0 skipped, 1 failed" in r.stderr


def test_inputs_are_never_overwritten(tmp_path, tiny_onnx):
    src = picture(tmp_path / "keep.png")
    before = src.read_bytes()
    r = cli(src, "-o", tmp_path, "--model", tiny_onnx, "--overwrite")
    assert r.returncode == 1 and "would overwrite an input" in r.stderr
    assert src.read_bytes() == before


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, tiny_onnx):
    src = picture(tmp_path / "a.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"mine")
    r = cli(src, "-o", out, "--model", tiny_onnx)
    assert r.returncode == 0 and "skipped" in r.stderr and (out / "a.png").read_bytes() == b"mine"
    assert "0 done, 1 skipped, 0 failed" in r.stderr
    r = cli(src, "-o", out, "--model", tiny_onnx, "--overwrite")
    assert r.returncode == 0 and Image.open(out / "a.png").mode == "RGBA"


# -- options -------------------------------------------------------------------------------

def test_mask_background_webp_and_trim(tmp_path, tiny_onnx):
    src = cutout_with_alpha(tmp_path / "c.png")
    r = cli(src, "-o", tmp_path / "m", "--model", tiny_onnx, "--mask", "-q")
    assert r.returncode == 0, r.stderr
    mask = Image.open(tmp_path / "m" / "c.png")
    assert mask.mode == "L" and np.asarray(mask)[10, 15] == 255 and np.asarray(mask)[0, 0] == 0
    r = cli(src, "-o", tmp_path / "b", "--model", tiny_onnx, "--background", "#00ff00", "-q")
    assert r.returncode == 0, r.stderr
    flat = Image.open(tmp_path / "b" / "c.png")
    assert flat.mode == "RGB" and flat.getpixel((0, 0)) == (0, 255, 0) and flat.getpixel((15, 10)) == (255, 0, 0)
    r = cli(src, "-o", tmp_path / "w", "--model", tiny_onnx, "--format", "webp", "-q")
    assert r.returncode == 0, r.stderr
    webp = Image.open(tmp_path / "w" / "c.webp")
    assert webp.format == "WEBP" and webp.mode == "RGBA"
    assert np.array_equal(np.asarray(webp), np.asarray(Image.open(src)))  # lossless
    r = cli(src, "-o", tmp_path / "t", "--model", tiny_onnx, "--trim", "2", "-q")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "t" / "c.png").size == (15 + 4, 15 + 4)
    r = cli(src, "-o", tmp_path / "t0", "--model", tiny_onnx, "--trim", "-q")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "t0" / "c.png").size == (15, 15)


def test_options_on_a_predicted_alpha(tmp_path):
    """The options on an opaque picture, whose alpha the bundled model predicts: every run
    exits 0 and each output agrees with the plain cutout of the same picture."""
    from kirinuki.samples import sample_paths

    src = next(p for p in sample_paths() if "white" in p.name)
    runs = {"plain": [], "mask": ["--mask"], "flat": ["--background", "#00ff00"], "webp": ["--format", "webp"],
            "trim": ["--trim", "3"]}
    for name, flags in runs.items():
        r = cli(src, "-o", tmp_path / name, *flags, "-q")
        assert r.returncode == 0, (name, r.stderr)
    rgba = np.asarray(Image.open(tmp_path / "plain" / (src.stem + ".png")))
    alpha = rgba[..., 3]
    assert 0.1 < np.mean(alpha == 255) < 0.6 and 0.3 < np.mean(alpha == 0) < 0.9  # a figure was cut out
    mask = np.asarray(Image.open(tmp_path / "mask" / (src.stem + ".png")))
    assert mask.ndim == 2 and np.array_equal(mask, alpha)
    flat = np.asarray(Image.open(tmp_path / "flat" / (src.stem + ".png"))).astype(int)
    assert flat.shape == rgba.shape[:2] + (3,)
    assert (flat[alpha == 0] == (0, 255, 0)).all() and (flat[alpha == 255] == rgba[alpha == 255][:, :3]).all()
    webp = Image.open(tmp_path / "webp" / (src.stem + ".webp"))
    assert webp.format == "WEBP" and np.array_equal(np.asarray(webp)[..., 3], alpha)  # lossless alpha
    trimmed = np.asarray(Image.open(tmp_path / "trim" / (src.stem + ".png")))
    ys, xs = np.nonzero(alpha)
    box = (min(ys.max() + 4, alpha.shape[0]) - max(ys.min() - 3, 0), min(xs.max() + 4, alpha.shape[1]) - max(xs.min() - 3, 0))
    assert trimmed.shape[:2] == box and trimmed[..., 3].sum() == alpha.astype(int).sum()


def test_existing_alpha_is_kept_unless_forced(tmp_path, tiny_onnx):
    src = cutout_with_alpha(tmp_path / "c.png")
    r = cli(src, "-o", tmp_path / "o", "--model", tiny_onnx)
    assert "already has transparency" in r.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / "c.png")), np.asarray(Image.open(src)))
    r = cli(src, "-o", tmp_path / "f", "--model", tiny_onnx, "--force", "-q")
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "f" / "c.png"))[..., 3], np.asarray(Image.open(src))[..., 3])


def test_bad_colour_is_a_usage_error(tmp_path, tiny_onnx):
    r = cli(picture(tmp_path / "a.jpg"), "-o", tmp_path / "o", "--model", tiny_onnx, "--background", "nocolour")
    assert r.returncode == 2 and "--background" in r.stderr


# -- inputs as users have them ----------------------------------------------------------------

@pytest.mark.parametrize("name,mode,save", [
    ("a.jpg", "RGB", {}), ("a.png", "P", {}), ("a.webp", "RGB", {}), ("a.bmp", "RGB", {}),
    ("a.tif", "CMYK", {}), ("a.gif", "P", {}), ("a.png", "L", {}), ("a.png", "LA", {}), ("a.tiff", "I;16", {}),
])
def test_formats_and_modes(tmp_path, tiny_onnx, name, mode, save):
    path = tmp_path / name
    if mode == "I;16":
        Image.fromarray(np.full((30, 40), 40000, np.uint16)).save(path)
    else:
        picture(path, mode=mode, **save)
    im = open_image(path)
    assert im.mode in ("RGB", "RGBA") and im.size == (40, 30)
    out, _ = render(Matter(tiny_onnx), im, CutoutOptions())
    assert out.mode == "RGBA" and out.size == (40, 30)


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    r, g, b = open_image(tmp_path / "a.gif").convert("RGB").getpixel((0, 0))
    assert r > 200 and b < 50


def linear_rgb_icc() -> bytes:
    """A minimal ICC v2 display profile: sRGB primaries with a linear (gamma 1.0) curve."""
    import struct

    def s15(v):
        return struct.pack(">i", round(v * 65536))

    def xyz(x, y, z):
        return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)
    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 0x0100) + b"\0\0"
    tags = [(b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
            (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)), (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ " + b"\0" * 12
              + b"acsp" + b"\0" * 28 + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + table + data


def test_icc_profile_is_converted_to_srgb(tmp_path):
    # Mid-grey 128 in linear light is about 188 in sRGB.
    Image.new("RGB", (8, 8), (128, 128, 128)).save(tmp_path / "linear.png", icc_profile=linear_rgb_icc())
    out = open_image(tmp_path / "linear.png")
    assert out.mode == "RGB"
    assert abs(int(np.asarray(out)[0, 0, 1]) - 188) <= 3


# -- bad input -------------------------------------------------------------------------------

def bad_inputs(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    data = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(data, "PNG")
    (tmp_path / "truncated.png").write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    (tmp_path / "notes.jpg").write_text("not a picture")
    # a decompression bomb: 20000 x 20000 pixels in a small file
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")
    return {"empty.png": "empty file", "truncated.png": "truncated or corrupt",
            "notes.jpg": "not an image", "bomb.png": "over the limit of 100 MP",
            "missing.jpg": "no such file"}


def test_bad_inputs_fail_one_line_each_and_the_batch_goes_on(tmp_path, tiny_onnx):
    src = tmp_path / "in"
    src.mkdir()
    reasons = bad_inputs(src)
    good = picture(src / "good.jpg")
    out = tmp_path / "out"
    args = [src / n for n in reasons] + [good]
    r = cli(*args, "-o", out, "--model", tiny_onnx)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("kirinuki: error: ")]
    assert len(errors) == len(reasons)
    for name, reason in reasons.items():
        assert any(line.startswith(f"kirinuki: error: {src / name}: ") and reason in line for line in errors), \
            (name, r.stderr)
    assert "1 done, 0 skipped, 5 failed" in r.stderr
    assert written(out) == ["good.png"]  # no partial or temporary files


def test_pixel_limit_is_configurable_and_checked_before_decoding(tmp_path):
    Image.new("RGB", (3000, 2000)).save(tmp_path / "six.png")
    with pytest.raises(InputError, match="6.0 MP, over the limit of 5 MP"):
        open_image(tmp_path / "six.png", max_pixels=5_000_000)
    assert open_image(tmp_path / "six.png", max_pixels=7_000_000).size == (3000, 2000)


def test_unwritable_output_is_an_error_and_the_batch_goes_on(tmp_path, tiny_onnx):
    src = tmp_path / "in"
    (src / "blocked").mkdir(parents=True)
    picture(src / "blocked" / "a.jpg")
    picture(src / "b.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocked").write_text("a file where a folder should be")
    r = cli(src, "-o", out, "--model", tiny_onnx, "-q")
    assert r.returncode == 1
    assert f"kirinuki: error: {src / 'blocked' / 'a.jpg'}: cannot write" in r.stderr
    assert (out / "b.png").exists()


def test_plan_jobs_is_stable_and_reports_empty_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    for n in ("c.jpg", "a.jpg", "b.jpg"):
        picture(tmp_path / n)
    jobs = plan_jobs([tmp_path], tmp_path / "out", ".png")
    assert [j.source.name for j in jobs] == ["a.jpg", "b.jpg", "c.jpg"]
    empty = plan_jobs([tmp_path / "empty"], tmp_path / "out", ".png")
    assert empty[0].error == "folder holds no supported pictures"


# -- the Python API ----------------------------------------------------------------------------

def test_api_accepts_paths_images_and_arrays(tmp_path, tiny_onnx):
    import kirinuki

    matter = kirinuki.Matter(tiny_onnx)
    path = picture(tmp_path / "a.png")
    arr = np.asarray(Image.open(path).convert("RGB"))
    out = kirinuki.cutout(path, matter)
    assert out.mode == "RGBA" and out.size == (40, 30)
    a = kirinuki.predict_alpha(arr, matter)
    assert a.shape == (30, 40) and a.dtype == np.float32 and 0 <= a.min() <= a.max() <= 1
    np.testing.assert_array_equal(a, kirinuki.predict_alpha(Image.open(path), matter))


def test_import_does_nothing_observable():
    code = ("import sys, kirinuki; "
            "assert not any(m in sys.modules for m in ('torch', 'onnxruntime', 'kirinuki.api')); print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "ok" and r.stderr == ""


# -- a batch survives what it meets --------------------------------------------------------

def test_webp_size_limit_is_one_line_and_the_batch_goes_on(tmp_path, tiny_onnx):
    wide = picture(tmp_path / "wide.png", size=(16400, 8))
    small = picture(tmp_path / "small.png")
    out = tmp_path / "out"
    r = cli(wide, small, "-o", out, "--model", tiny_onnx, "--format", "webp")
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("kirinuki: error:")]
    assert errors == [f"kirinuki: error: {wide}: 16400x8 is too large for WebP (at most 16383 pixels a side); "
                      "use --format png"]
    assert "1 done, 0 skipped, 1 failed" in r.stderr
    assert written(out) == ["small.webp"]


def test_an_unexpected_runtime_error_fails_one_input_only(tmp_path, tiny_onnx):
    """A failure inside the network runtime (injected: the runtime raising on one picture)
    becomes that input's one-line reason; the batch finishes and writes its manifest."""
    from kirinuki.batch import run_batch

    matter = Matter(tiny_onnx)
    run = matter._run

    def flaky(x):
        if x.shape[-1] > x.shape[-2]:  # the landscape picture only
            raise RuntimeError("device lost")
        return run(x)
    matter._run = flaky
    a, b = picture(tmp_path / "a.png", size=(64, 48)), picture(tmp_path / "b.png", size=(30, 40))
    jobs = plan_jobs([a, b], tmp_path / "out", ".png")
    errors = []
    summary = run_batch(matter, jobs, CutoutOptions(), lambda p, r: errors.append((p, r)), lambda p, n: None)
    assert errors == [(a, "unexpected error: RuntimeError: device lost")]
    assert [r.status for r in summary.records] == ["failed", "done"]
    summary.write_manifest(tmp_path / "out" / "manifest.csv")
    assert "device lost" in (tmp_path / "out" / "manifest.csv").read_text()


def test_an_output_folder_inside_the_input_folder_is_never_walked(tmp_path, tiny_onnx):
    picture(tmp_path / "a.jpg")
    for _ in range(2):
        r = cli(".", "-o", "out", "--model", tiny_onnx, "-q", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert written(tmp_path / "out") == ["a.png"]


def test_the_same_file_named_twice_is_taken_once(tmp_path, tiny_onnx):
    (tmp_path / "dir").mkdir()
    a = picture(tmp_path / "dir" / "a.jpg")
    r = cli(a, a, tmp_path / "dir", "./dir/a.jpg", "-o", tmp_path / "out", "--model", tiny_onnx, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 done, 0 skipped, 0 failed" in r.stderr


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but holds no pixel data (a few bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_the_pixel_limit_is_checked_from_the_header_without_decoding():
    import time

    huge = png_header_only(40_000, 25_000)  # declares 1,000 MP in 45 bytes
    started = time.perf_counter()
    with pytest.raises(InputError, match="1000.0 MP, over the limit of 100 MP") as exc:
        open_image(huge)
    assert exc.value.kind == "too_large" and time.perf_counter() - started < 1.0


def test_one_pixel_limit_everywhere_not_pillows_own():
    """A limit above Pillow's own (about 179 MP) is the one that applies in the API too."""
    declared_200mp = png_header_only(20_000, 10_000)
    with pytest.raises(InputError) as exc:
        open_image(declared_200mp, max_pixels=300_000_000)
    assert exc.value.kind == "corrupt"  # under the limit: it was opened, and has no pixel data
    with pytest.raises(InputError, match="over the limit of 150 MP"):
        open_image(declared_200mp, max_pixels=150_000_000)


# -- what the opener does to pixels ---------------------------------------------------------

def test_exif_orientation_turns_and_mirrors_the_pixels(tmp_path):
    arr = np.zeros((30, 40, 3), np.uint8)
    arr[:10, :10] = (255, 0, 0)  # a red block in the stored top-left corner
    for tag, size, corner in ((6, (30, 40), (slice(0, 10), slice(20, 30))),   # turn 90 degrees clockwise
                              (8, (30, 40), (slice(30, 40), slice(0, 10))),   # turn 90 anticlockwise
                              (2, (40, 30), (slice(0, 10), slice(30, 40)))):  # mirror left-right
        exif = Image.Exif()
        exif[0x0112] = tag
        Image.fromarray(arr).save(tmp_path / f"o{tag}.png", exif=exif)
        out = np.asarray(open_image(tmp_path / f"o{tag}.png"))
        assert out.shape[1::-1] == size, tag
        red = (out[..., 0] == 255) & (out[..., 2] == 0)
        assert red[corner].all() and red.sum() == 100, tag


@pytest.mark.parametrize("mode, expected", [("P", (30, 140, 220)), ("L", (90, 90, 90)), ("LA", (90, 90, 90)),
                                            ("CMYK", None), ("I;16", (156, 156, 156))])
def test_modes_convert_to_the_right_colours(tmp_path, mode, expected):
    path = tmp_path / ("a.tif" if mode in ("CMYK", "I;16") else "a.png")
    if mode == "P":
        Image.new("RGB", (8, 8), expected).quantize(4).save(path)
    elif mode in ("L", "LA"):
        Image.new(mode, (8, 8), 90 if mode == "L" else (90, 255)).save(path)
    elif mode == "CMYK":
        Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path)  # full magenta + yellow: red
        expected = (255, 0, 0)
    else:  # 16-bit: 40000 of 65535 is 156 of 255 (clipping would give 255)
        Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(path)
    assert open_image(path).convert("RGB").getpixel((3, 3)) == expected


@pytest.mark.parametrize("mode, key", [("RGB", (10, 200, 30)), ("L", 77)])
def test_a_colour_keyed_picture_keeps_its_transparency(tmp_path, tiny_onnx, mode, key):
    arr = np.full((30, 40, 3), 250, np.uint8)
    arr[:, :15] = key if mode == "RGB" else (key,) * 3
    Image.fromarray(arr).convert(mode).save(tmp_path / "keyed.png", transparency=key)
    out = tmp_path / "out"
    r = cli(tmp_path / "keyed.png", "-o", out, "--model", tiny_onnx)
    assert r.returncode == 0 and "already has transparency" in r.stderr
    alpha = np.asarray(Image.open(out / "keyed.png").getchannel("A"))
    assert (alpha[:, :15] == 0).all() and (alpha[:, 15:] == 255).all()


def grey_gamma_icc() -> bytes:
    """A minimal ICC v2 grayscale profile with a linear (gamma 1.0) curve."""
    import struct

    def s15(v):
        return struct.pack(">i", round(v * 65536))
    tags = [(b"wtpt", b"XYZ " + b"\0" * 4 + s15(0.9642) + s15(1.0) + s15(0.8249)),
            (b"kTRC", b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 0x0100) + b"\0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrGRAYXYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 28 + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    return header + table + data


def test_icc_profiles_convert_palette_and_grey_with_alpha_pictures(tmp_path):
    # Mid-grey 128 in linear light is about 188 in sRGB, whatever the picture's mode.
    Image.new("RGB", (8, 8), (128, 128, 128)).quantize(2).save(tmp_path / "p.png", icc_profile=linear_rgb_icc())
    Image.new("LA", (8, 8), (128, 200)).save(tmp_path / "la.png", icc_profile=grey_gamma_icc())
    for name in ("p.png", "la.png"):
        out = open_image(tmp_path / name)
        assert abs(out.convert("RGB").getpixel((2, 2))[1] - 188) <= 3, name
    assert open_image(tmp_path / "la.png").getchannel("A").getpixel((2, 2)) == 200


def test_an_unusable_profile_is_ignored_with_a_note(tmp_path, tiny_onnx):
    # A grayscale profile on an RGB picture cannot be applied.
    Image.new("RGB", (40, 30), (128, 10, 10)).save(tmp_path / "mismatch.png", icc_profile=grey_gamma_icc())
    r = cli(tmp_path / "mismatch.png", "-o", tmp_path / "out", "--model", tiny_onnx)
    assert r.returncode == 0
    assert f"kirinuki: {tmp_path / 'mismatch.png'}: colour profile ignored" in r.stderr


def test_symlinked_sub_folders_are_walked_once(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "elsewhere").mkdir()
    picture(tmp_path / "elsewhere" / "b.jpg")
    picture(tmp_path / "in" / "a.jpg")
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "loop").symlink_to(tmp_path / "in")  # a cycle must end
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out", ".png")
    assert [j.target.relative_to(tmp_path / "out").as_posix() for j in jobs] == ["a.png", "linked/b.png"]


def test_errors_share_one_base(tmp_path):
    from kirinuki.errors import DataError, InputKind, KirinukiError, ModelError

    with pytest.raises(InputError) as exc:
        open_image(tmp_path / "absent.png")
    assert exc.value.kind is InputKind.MISSING and isinstance(exc.value, KirinukiError)
    assert InputError("x", "permission").kind is InputKind.PERMISSION
    assert issubclass(ModelError, KirinukiError) and issubclass(DataError, KirinukiError)


def test_join_rgba_equals_the_stacked_planes_and_takes_cropped_views():
    from kirinuki.pipeline import join_rgba

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    alpha8 = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    for box in ((slice(None), slice(None)), (slice(3, 30), slice(5, 41))):  # whole, and a trim's view
        image = join_rgba(colour[box], alpha8[box])
        assert image.mode == "RGBA"
        assert np.array_equal(np.asarray(image), np.dstack([colour[box], alpha8[box]]))
