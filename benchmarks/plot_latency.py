"""Plot cutout latency against image size from cutout_latency.py's JSON (Pillow only).

    python benchmarks/plot_latency.py results.json docs/latency.png
"""

from __future__ import annotations

import json
import math
import sys

from PIL import Image, ImageDraw

W, H, L, R, T, B = 760, 460, 70, 170, 30, 60
COLOURS = {("onnx", "end_to_end_s"): (194, 24, 91), ("torch", "end_to_end_s"): (33, 150, 243),
           ("onnx", "network_s"): (240, 140, 170), ("torch", "network_s"): (140, 200, 250)}
LABELS = {"end_to_end_s": "end to end", "network_s": "network only"}


def main(src: str, out: str) -> None:
    rows = json.load(open(src))["rows"]
    sizes = sorted({r["size"] for r in rows})
    values = [r[k] for r in rows for k in ("end_to_end_s", "network_s")]
    x0, x1 = math.log10(min(sizes)), math.log10(max(sizes))
    y0, y1 = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)

    def px(size: float, sec: float) -> tuple[float, float]:
        return (L + (math.log10(size) - x0) / (x1 - x0) * (W - L - R),
                H - B - (math.log10(sec) - y0) / (y1 - y0) * (H - T - B))
    for e in range(y0, y1 + 1):
        y = px(sizes[0], 10 ** e)[1]
        d.line([(L, y), (W - R, y)], fill=(225, 225, 225))
        d.text((8, y - 6), f"{10 ** e:g} s", fill="black")
    for s in sizes:
        x = px(s, 10 ** y0)[0]
        d.line([(x, T), (x, H - B)], fill=(235, 235, 235))
        d.text((x - 14, H - B + 8), f"{s}", fill="black")
    d.text((L + (W - L - R) / 2 - 70, H - 25), "image side (pixels, square)", fill="black")
    d.rectangle([L, T, W - R, H - B], outline="black")
    ly = T + 10
    for (engine, key), colour in COLOURS.items():
        pts = [px(r["size"], r[key]) for r in sorted(rows, key=lambda r: r["size"]) if r["engine"] == engine]
        if not pts:
            continue
        d.line(pts, fill=colour, width=3)
        for x, y in pts:
            d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
        d.line([(W - R + 12, ly + 6), (W - R + 36, ly + 6)], fill=colour, width=3)
        d.text((W - R + 42, ly), f"{engine}, {LABELS[key]}", fill="black")
        ly += 20
    d.text((L, 8), "kirinuki cutout latency on CPU (median of warm runs, log-log)", fill="black")
    img.save(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
