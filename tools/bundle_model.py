"""Bundle a trained checkpoint as the package's default model.

    python tools/bundle_model.py runs/cpu-default/best.pt --version 0.1-cpu [--report eval/report.json]

Writes src/kirinuki/weights/default.onnx (ONNX, parity-checked against PyTorch),
default.pt (weights and config, no optimiser state: for fine-tuning with
``kirinuki train --init-from default``) and default.json (name, version, checksums, training
facts and, when given, the evaluation rows).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

from kirinuki.checkpoint import load_checkpoint, save_checkpoint
from kirinuki.export import export_checkpoint, parity_images

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "kirinuki" / "weights"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--name", default="kirinuki-default")
    ap.add_argument("--version", required=True)
    ap.add_argument("--report", type=Path, help="report.json of kirinuki evaluate on this checkpoint")
    ap.add_argument("--history", help="how the weights came to be (earlier runs they continue), in words")
    args = ap.parse_args()

    state = load_checkpoint(args.checkpoint)
    slim = {k: v for k, v in state.items() if k not in ("optimizer", "format", "format_version")}
    slim["name"] = args.name
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    pt, onnx_path = WEIGHTS / "default.pt", WEIGHTS / "default.onnx"
    save_checkpoint(slim, pt)
    diff = export_checkpoint(pt, onnx_path, parity_images(), name=args.name)
    manifest = {
        "name": args.name, "version": args.version, "arch": state["arch"], "arch_args": state["arch_args"],
        "work_size": state.get("work_size"), "step": state["step"], "samples_seen": state.get("samples_seen"),
        "train_seconds": round(float(state.get("train_seconds", 0.0)), 1),
        "onnx_parity_max_abs_diff": diff,
        "files": {p.name: {"sha256": sha256(p), "bytes": p.stat().st_size} for p in (onnx_path, pt)},
    }
    if args.history:
        manifest["history"] = args.history
    if args.report:
        manifest["evaluation"] = json.loads(args.report.read_text())["rows"]
    (WEIGHTS / "default.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in manifest.items() if k != "evaluation"}, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
