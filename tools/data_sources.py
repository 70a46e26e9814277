"""Print the data's sources and licences as the model card's table, from its ``manifest.csv``.

One row per split, folder, source and licence with its number of files, sorted, in the
model card's markdown. Whoever redistributes the weights must carry this table, so it is
generated from the manifest rather than typed, and a test checks that the card holds it.

    python tools/data_sources.py ../shared/data
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

HEADER = ["| split | folder | source | licence | files |", "|---|---|---|---|---|"]


def source_rows(data: Path) -> list[str]:
    """The table's rows (without its header) for the manifest in ``data``."""
    with open(data / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    counts: Counter = Counter()
    for row in rows:
        parts = Path(row["path"]).parent.parts
        folder = parts[-1]  # train/anime -> anime; backgrounds -> backgrounds; val/backgrounds -> backgrounds
        counts[(row["split"], folder, row["source"], row["license"])] += 1
    return [f"| {split} | {folder} | {source} | {licence} | {n} |"
            for (split, folder, source, licence), n in sorted(counts.items())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="the data folder holding manifest.csv")
    args = ap.parse_args()
    print("\n".join(HEADER + source_rows(args.data)))


if __name__ == "__main__":
    main()
