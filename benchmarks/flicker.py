"""Flicker of the alpha on a moving clip, frame by frame and with the steady alpha.

    python benchmarks/flicker.py [--frames 12] [--model default]

The clip: the bundled white-background sample's character (cut out with its true alpha)
sliding 6 pixels a frame over the meadow sample's sky and trees (a crop with no character). Flicker is the mean absolute
alpha change between consecutive frames on the pixels whose colour did not change
(:func:`kirinuki.animation.flicker`); the motion error is the mean absolute difference from
the true alpha on the pixels that did change, so a steadier alpha that smeared the motion
would show there (and the same on the unchanged pixels: keeping an alpha must not keep it wrong).
"""

from __future__ import annotations

import argparse

import numpy as np

from kirinuki.animation import NEAR_MOTION, UNCHANGED, flicker, steady_sequence
from kirinuki.inference import Matter
from kirinuki.samples import moving_figure


def clip(frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    pictures, truths = zip(*moving_figure((448, 448), 350, frames, x0=40))
    return list(pictures), list(truths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    matter = Matter(args.model, device="cpu")
    pictures, truths = clip(args.frames)
    raw = [matter.predict_alpha(p) for p in pictures]
    steady = steady_sequence(pictures, raw)

    def error(alphas: list[np.ndarray], moving: bool) -> float:
        errs = []
        for k in range(1, len(pictures)):
            moved = np.abs(pictures[k].astype(np.int16) - pictures[k - 1]).max(axis=2) > UNCHANGED
            errs.append(np.abs(alphas[k] - truths[k])[moved if moving else ~moved].mean())
        return float(np.mean(errs))
    print(f"model {matter.info.describe()}, {args.frames} frames of 448x448")
    print(f"flicker (mean |alpha change| on unchanged pixels): frame by frame {flicker(pictures, raw):.5f}, "
          f"steady {flicker(pictures, steady):.5f}")
    far = lambda alphas: flicker(pictures, alphas, margin=NEAR_MOTION)
    print(f"flicker on the pixels more than {NEAR_MOTION} px from any change: frame by frame {far(raw):.5f}, "
          f"steady {far(steady):.5f}")
    for moving, name in ((True, "moving"), (False, "unchanged")):
        print(f"error on {name} pixels (mean |alpha - truth|): frame by frame {error(raw, moving):.4f}, "
              f"steady {error(steady, moving):.4f}")


if __name__ == "__main__":
    main()
