"""The cutouts of the bundled samples, byte for byte: a change to the code that is meant to
change nothing (a refactor) must leave them identical.

The recorded SHA-256 belong to one bundled model. Bundling a new model, or a change to the
pipeline meant to change its output, changes them on purpose: record the new ones then (run
the command of the test and take `sha256sum`). Last recorded for the flat-background clearing's
softened ring beside the page (sylvie-on-white; the meadow has no flat background and kept
its bytes).
"""

import hashlib
import subprocess
import sys

from kirinuki.bundled import bundled_model_info
from kirinuki.samples import sample_paths

# default.onnx's SHA-256 -> {output file: its SHA-256}, from
# `kirinuki cutout src/kirinuki/samples/*.jpg -o OUT --threads 1`.
RECORDED = {
    "643c47e2fd8d41c8a05bc7f33d332fbf4a87cee46feac30ddc86102a22513515": {
        "sylvie-on-meadow.png": "365cd16b29881eb7fcb90484cc3bbdfa83caa74afd9a3ed4ee11ef3a39fb162e",
        "sylvie-on-white.png": "6868a42e3f95ab41d2972966aad2a93239f4ae209c43585f3a4ea29eeee3011c",
    },
}


def test_sample_cutouts_are_byte_identical_to_the_recorded_ones(tmp_path):
    model = bundled_model_info()["files"]["default.onnx"]["sha256"]
    assert model in RECORDED, "the bundled model changed: record its sample outputs (see this file's docstring)"
    r = subprocess.run([sys.executable, "-m", "kirinuki", "cutout", *map(str, sample_paths()), "-o", str(tmp_path),
                        "--threads", "1", "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tmp_path.glob("*.png"))}
    assert got == RECORDED[model]
