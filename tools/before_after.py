"""The README's before/after pictures: the input beside one or more cutouts over a checkerboard.

    kirinuki cutout src/kirinuki/samples/sylvie-on-meadow.jpg -o demo-output
    python tools/before_after.py src/kirinuki/samples/sylvie-on-meadow.jpg demo-output/sylvie-on-meadow.png docs/before-after.png

    python tools/before_after.py INPUT CUTOUT [CUTOUT ...] OUT.png
"""

import sys

from PIL import Image


def checkerboard(size, cell=16):
    board = Image.new("RGB", size, (255, 255, 255))
    grey = Image.new("RGB", (cell, cell), (204, 204, 204))
    for y in range(0, size[1], cell):
        for x in range((y // cell) % 2 * cell, size[0], 2 * cell):
            board.paste(grey, (x, y))
    return board


def main(before: str, *rest: str) -> None:
    *afters, out = rest
    src = Image.open(before).convert("RGB")
    panels = [src]
    for after in afters:
        cut = Image.open(after).convert("RGBA")
        board = checkerboard(cut.size)
        board.paste(cut, (0, 0), cut)
        panels.append(board)
    sheet = Image.new("RGB", (sum(p.width for p in panels) + 16 * (len(panels) - 1), max(p.height for p in panels)),
                      (255, 255, 255))
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width + 16
    sheet.save(out, optimize=True)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: python tools/before_after.py INPUT CUTOUT [CUTOUT ...] OUT.png")
    main(*sys.argv[1:])
