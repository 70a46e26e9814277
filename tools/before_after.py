"""The README's before/after picture: the input beside its cutout over a checkerboard.

    kirinuki cutout src/kirinuki/samples/sylvie-on-meadow.jpg -o demo-output
    python tools/before_after.py src/kirinuki/samples/sylvie-on-meadow.jpg demo-output/sylvie-on-meadow.png docs/before-after.png
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


def main(before: str, after: str, out: str) -> None:
    src = Image.open(before).convert("RGB")
    cut = Image.open(after).convert("RGBA")
    board = checkerboard(cut.size)
    board.paste(cut, (0, 0), cut)
    sheet = Image.new("RGB", (src.width + cut.width + 16, max(src.height, cut.height)), (255, 255, 255))
    sheet.paste(src, (0, 0))
    sheet.paste(board, (src.width + 16, 0))
    sheet.save(out, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
