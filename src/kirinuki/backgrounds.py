"""Background colours shared by training and evaluation (numpy only).

The seed paper composites on white (40 %), light (40 %), dark (10 %) and black (10 %)
backgrounds without defining "light" and "dark"; kirinuki defines them as:

* ``white``: (255, 255, 255);
* ``light``: each of R, G, B drawn independently and uniformly from the integers [192, 255];
* ``dark``: each of R, G, B drawn independently and uniformly from the integers [0, 63];
* ``black``: (0, 0, 0).
"""

from __future__ import annotations

import numpy as np

PAPER_MIX: dict[str, float] = {"white": 0.4, "light": 0.4, "dark": 0.1, "black": 0.1}
FLAT_KINDS = tuple(PAPER_MIX)


def flat_colour(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One background colour of class ``kind`` as uint8 (3,)."""
    if kind == "white":
        return np.full(3, 255, np.uint8)
    if kind == "black":
        return np.zeros(3, np.uint8)
    if kind == "light":
        return rng.integers(192, 256, 3).astype(np.uint8)
    if kind == "dark":
        return rng.integers(0, 64, 3).astype(np.uint8)
    raise ValueError(f"unknown flat background {kind!r}; choose one of: {', '.join(FLAT_KINDS)}")


def paper_colour(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A background drawn from the paper's mix: (class name, uint8 (3,) colour)."""
    kinds = list(PAPER_MIX)
    kind = kinds[rng.choice(len(kinds), p=np.array(list(PAPER_MIX.values())))]
    return kind, flat_colour(kind, rng)
