"""Split the scene rows of ``kirinuki evaluate`` reports by the scene picture each case used.

The validation scenes mix painted places (streets, rooms, a coast) with games' menu and title
screens (patterns, buttons, text and other drawn characters); one mean hides which of the two a
model fails on. Each report's protocol is replayed (composites at a tiny size: the draw of the
scene picture does not depend on the size) to find every case's scene picture, whose name
either matches ``--match`` or not; the two groups' means are printed per report and size.

    python tools/scene_groups.py runs/eval-0.2 runs/ev/lite-D --match "menu|title|config|load|save"

Each report is a folder ``kirinuki evaluate`` wrote or the ``report.json`` in it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from kirinuki.evaluate import make_cases


def scene_of_each_cutout(protocol: dict) -> dict[str, str]:
    """Cutout name -> the scene picture's file name, as the report's protocol draws them."""
    cases = make_cases(protocol["cutouts"], protocol["backgrounds"], [16], ["scene"],
                       protocol["seed"], protocol["limit"])
    return {c.name: c.background for c in cases}


def read_report(path: Path) -> tuple[Path, dict]:
    """The report.json that ``path`` names (the file itself or the one in the folder) and what
    it holds. Raises ValueError, naming the file, when it is not a report."""
    file = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{file}: not a report of kirinuki evaluate ({type(e).__name__}: {e})") from None
    if not isinstance(report, dict) or not {"protocol", "cases"} <= report.keys():
        raise ValueError(f"{file}: not a report of kirinuki evaluate (no protocol and cases)")
    return file, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", type=Path, help="report folders (holding report.json), or the report.json files")
    ap.add_argument("--match", default="menu|title|config|load|save",
                    help="regular expression on the scene picture's file name (default: %(default)s)")
    args = ap.parse_args()
    pattern = re.compile(args.match)
    try:
        reports = [read_report(path) for path in args.reports]
    except ValueError as e:
        ap.error(str(e))
    scenes: dict[str, dict[str, str]] = {}
    print("| report | size | matching: n, PSNR / accuracy / IoU | other: n, PSNR / accuracy / IoU |")
    print("|---|---|---|---|")
    for file, report in reports:
        key = json.dumps(report["protocol"], sort_keys=True)
        if key not in scenes:
            scenes[key] = scene_of_each_cutout(report["protocol"])
        scene = scenes[key]
        by_size: dict[str, list[dict]] = {}
        for c in report["cases"]:
            if c["condition"] == "scene":
                by_size.setdefault(c["size"], []).append(c)
        for size, cases in by_size.items():
            cells = []
            for hit in (True, False):
                group = [c for c in cases if bool(pattern.search(scene[c["name"]])) == hit]
                mean = lambda k: float(np.mean([c[k] for c in group])) if group else float("nan")
                cells.append(f"{len(group)}, {mean('psnr'):.2f} / {mean('pixel_accuracy'):.4f} / {mean('iou'):.4f}")
            print(f"| {file.parent.name} | {size} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
