"""Two inference-time levers measured on the evaluation protocol, without changing the tool.

* **Several passes averaged**: the network at working sizes 448, 512 and 576, each on the
  picture and on its mirror image, in the combinations below; the mean alpha is then
  cleared as the tool clears it (the flat background). "512 + mirror" is ``--tta``. Both
  levers are measured on the network's alpha without the edge matting (they were measured
  before it existed).
* **Detached pieces dropped**: after the tool's own prediction, every piece of foreground
  (alpha > 0.5, 8-connected) smaller than ``share`` times the largest piece is made
  transparent, with the soft pixels within ``GROW`` pixels that lie nearer to it than to a
  kept piece: against blobs of scenery kept beside the character.

    python tools/inference_levers.py --model default --data ../shared/data/val/anime \\
        --backgrounds ../shared/data/val/backgrounds [--size 512]

Prints PSNR / IoU per condition, and for the dropped pieces how many cases got better or
worse (by more than 0.01 dB) and the worst loss.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage as ndi

from kirinuki.evaluate import CONDITIONS, make_cases
from kirinuki.flat_background import clear_flat_background
from kirinuki.inference import Matter
from kirinuki.metrics import all_metrics

PASSES = {
    "512": [(512, False)],
    "512 + mirror (--tta)": [(512, False), (512, True)],
    "512 + 448": [(512, False), (448, False)],
    "512 + 576": [(512, False), (576, False)],
    "448 + 512 + 576": [(448, False), (512, False), (576, False)],
    "448 and 512, each with its mirror": [(448, False), (448, True), (512, False), (512, True)],
    "448, 512 and 576, each with its mirror": [(w, f) for w in (448, 512, 576) for f in (False, True)],
}
SHARES = (0.01, 0.05, 0.2, 0.5)
GROW = 3


def drop_detached(alpha: np.ndarray, share: float) -> np.ndarray:
    """``alpha`` without the foreground pieces smaller than ``share`` of the largest."""
    fg = alpha > 0.5
    labels, n = ndi.label(fg, structure=np.ones((3, 3), bool))
    if n <= 1:
        return alpha
    sizes = np.bincount(labels.ravel())[1:]
    kept_label = np.concatenate([[False], sizes >= share * sizes.max()])
    dropped, kept = fg & ~kept_label[labels], fg & kept_label[labels]
    if not dropped.any():
        return alpha
    to_dropped, to_kept = ndi.distance_transform_edt(~dropped), ndi.distance_transform_edt(~kept)
    out = alpha.copy()
    out[(to_dropped < to_kept) & (to_dropped <= GROW)] = 0.0
    out[dropped] = 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", required=True)
    ap.add_argument("--backgrounds", required=True)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    sizes = sorted({w for keys in PASSES.values() for w, _ in keys})
    matters = {w: Matter(args.model, work_size=w, flat_background=False, edge_matting=False) for w in sizes}
    own = Matter(args.model).info.work_size  # the tool's own prediction is one of the passes
    if own not in sizes:
        ap.error(f"{args.model} works at {own}, not at one of {sizes}")
    passes = {name: {c: [] for c in CONDITIONS} for name in PASSES}
    pieces = {s: {c: [] for c in CONDITIONS} for s in (None, *SHARES)}
    for case in make_cases(args.data, args.backgrounds, [args.size]):
        image = case.image
        raw = {(w, f): (matters[w].predict_alpha(np.ascontiguousarray(image[:, ::-1]))[:, ::-1] if f
                        else matters[w].predict_alpha(image)) for w in sizes for f in (False, True)}
        for name, keys in PASSES.items():
            alpha = clear_flat_background(image, np.mean([raw[k] for k in keys], axis=0))
            passes[name][case.condition].append(all_metrics(alpha, case.alpha))
        alpha = clear_flat_background(image, raw[(own, False)])
        for share in pieces:
            pred = alpha if share is None else drop_detached(alpha, share)
            pieces[share][case.condition].append(all_metrics(pred, case.alpha))

    def cell(ms: list[dict]) -> str:
        return f"{np.mean([m['psnr'] for m in ms]):.2f} / {np.mean([m['iou'] for m in ms]):.4f}"
    print(f"| passes averaged | {' | '.join(f'{c}@{args.size}' for c in CONDITIONS)} |")
    print("|---|" + "---|" * len(CONDITIONS))
    for name, rows in passes.items():
        print(f"| {name} | {' | '.join(cell(rows[c]) for c in CONDITIONS)} |")
    print()
    print(f"| pieces dropped below | {' | '.join(f'{c}@{args.size}: PSNR / IoU, better / worse, worst' for c in CONDITIONS)} |")
    print("|---|" + "---|" * len(CONDITIONS))
    for share, rows in pieces.items():
        cells = []
        for c in CONDITIONS:
            diffs = [m["psnr"] - b["psnr"] for m, b in zip(rows[c], pieces[None][c])]
            changed = f", {sum(d > 0.01 for d in diffs)} / {sum(d < -0.01 for d in diffs)}, {min(diffs):+.2f} dB"
            cells.append(cell(rows[c]) + ("" if share is None else changed))
        label = "none (as shipped)" if share is None else f"{share:g} of the largest piece"
        print(f"| {label} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
