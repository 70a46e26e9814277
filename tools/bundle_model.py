"""Bundle a trained checkpoint as one of the package's models.

    python tools/bundle_model.py runs/cpu-default/best.pt --version 0.1-cpu [--report eval/report.json]
    python tools/bundle_model.py runs/lite/best.pt --slot quality --version 0.1 --name kirinuki-quality

Writes, for the slot NAME (``default`` unless ``--slot`` says otherwise), into
src/kirinuki/weights/: NAME.onnx (ONNX, parity-checked against PyTorch), NAME.pt (weights
and config, no optimiser state: for fine-tuning with ``kirinuki train --init-from NAME``) and
NAME.json (name, version, checksums, training facts and, when given, the evaluation rows).

Everything is first written to a staging folder beside the weights; only when the export,
the parity check and the checksums are all done are the three files moved into place (the
manifest last), so a failed step leaves the bundle that was there untouched.

NAME.pt holds the kernels in half precision (``checkpoint.half_precision``: half the bytes of
the package, and of the working tree a GPU machine receives), and NAME.onnx is exported from
exactly those rounded weights (stored as float16 there too: ``export.store_half``), so the two
files are one network.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from kirinuki.checkpoint import half_precision, load_checkpoint, save_checkpoint, without_training_state
from kirinuki.export import export_checkpoint, parity_images
from kirinuki.bundled import sha256_file

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "kirinuki" / "weights"


def bundle(checkpoint: Path, slot: str, version: str, name: str, weights: Path = WEIGHTS,
           report: Path | None = None, history: str | None = None, tolerance: float = 1e-3) -> dict:
    state = load_checkpoint(checkpoint)
    slim = {k: v for k, v in without_training_state(state).items() if k not in ("format", "format_version")}
    slim["name"] = name
    weights.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{slot}-staging-", dir=weights))
    try:
        pt, onnx_path, manifest_path = (staging / f"{slot}{ext}" for ext in (".pt", ".onnx", ".json"))
        save_checkpoint(half_precision(slim), pt)
        diff = export_checkpoint(pt, onnx_path, parity_images(), name=name, tolerance=tolerance)
        manifest = {
            "name": name, "version": version, "arch": state["arch"], "arch_args": state["arch_args"],
            "work_size": state.get("work_size"), "step": state["step"], "samples_seen": state.get("samples_seen"),
            "train_seconds": round(float(state.get("train_seconds", 0.0)), 1),
            "onnx_parity_max_abs_diff": diff,
            "files": {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in (onnx_path, pt)},
        }
        if history:
            manifest["history"] = history
        if report:
            manifest["evaluation"] = json.loads(Path(report).read_text())["rows"]
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        for staged in (pt, onnx_path, manifest_path):  # all checks passed: swap, manifest last
            os.replace(staged, weights / staged.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--slot", default="default", help="the bundled model's file name: default or quality")
    ap.add_argument("--name", default="kirinuki-default")
    ap.add_argument("--version", required=True)
    ap.add_argument("--report", type=Path, help="report.json of kirinuki evaluate on this checkpoint")
    ap.add_argument("--history", help="how the weights came to be (earlier runs they continue), in words")
    ap.add_argument("--weights", type=Path, default=WEIGHTS, help="the folder to bundle into")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="largest ONNX vs PyTorch difference allowed")
    args = ap.parse_args()
    manifest = bundle(args.checkpoint, args.slot, args.version, args.name, args.weights, args.report,
                      args.history, args.tolerance)
    print(json.dumps({k: v for k, v in manifest.items() if k != "evaluation"}, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
