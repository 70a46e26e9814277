"""The cut itself, on a Krita document (Krita 5.1 or later; Qt through PyQt5, no numpy).

The result is a new paint layer above the source, named ``NAME (kirinuki)``, holding the
cut-out character (the old background's colour taken out of its soft edges, unless the
original colours are asked for), with the source layer hidden and never changed. Krita 5.1's
Python API cannot fill a transparency mask (a mask made with ``createNode(...,
"transparencyMask")`` gives and takes no pixels there), so the non-destructive result is this
layer: painting its transparency fixes the cut, and :func:`undo_cut` (or deleting it and
showing the source) takes it back whole. Everything that can fail (the document's colour
space, the picture's size, kirinuki itself) is checked, and the command run, before the
document is touched: a failed or cancelled cut leaves it as it was.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Sequence

from PyQt5.QtCore import QByteArray
from PyQt5.QtGui import QColor, QImage, QPainter

from .command import CutError, check_version, cutout_arguments, find_command, run, sample_points

#: The biggest canvas cut out (kirinuki's own default limit, 100 megapixels).
MAX_PIXELS = 100_000_000
#: The suffix of a cut layer's name, after its source's.
SUFFIX = " (kirinuki)"

# A cut layer's source and clicks, by the cut layer's unique id: what undo and a later
# keep or drop need. (A saved and reopened document keeps the layers, not this.)
_CUTS: dict[str, dict] = {}


def check_document(doc) -> None:
    """Only 8-bit RGB documents are cut: anything else is one message, nothing changed."""
    model, depth = doc.colorModel(), doc.colorDepth()
    if model != "RGBA" or depth != "U8":
        kind = {"RGBA": "RGB", "CMYKA": "CMYK", "GRAYA": "grayscale", "LABA": "L*a*b*", "XYZA": "XYZ",
                "YCbCrA": "YCbCr"}.get(model, model)
        bits = {"U8": "8-bit", "U16": "16-bit", "F16": "16-bit float", "F32": "32-bit float"}.get(depth, depth)
        raise CutError(f"this document is {kind} {bits}: kirinuki cuts out 8-bit RGB pictures; convert a copy "
                       "with Image > Convert Image Color Space (RGB/Alpha, 8-bit integer). Nothing was changed.")
    if doc.width() * doc.height() > MAX_PIXELS:
        raise CutError(f"the canvas is {doc.width()}x{doc.height()}, over the {MAX_PIXELS // 1_000_000} megapixels "
                       "kirinuki cuts out: scale a copy down first. Nothing was changed.")


def source_of(doc, node=None):
    """(the node to cut out, or None for the visible image, and its name): the active paint
    layer, the source of an active cut layer, or the visible image for a group or nothing."""
    node = node or doc.activeNode()
    if node is not None and node.uniqueId().toString() in _CUTS:
        node = _CUTS[node.uniqueId().toString()]["source"]
    if node is None or node.type() != "paintlayer":
        return None, "image"
    return node, node.name()


def _image_of(doc, node) -> QImage:
    """The layer's (or the visible image's) pixels over the whole canvas, ARGB32."""
    w, h = doc.width(), doc.height()
    data = bytes(node.pixelData(0, 0, w, h) if node is not None else doc.pixelData(0, 0, w, h))
    return QImage(data, w, h, 4 * w, QImage.Format_ARGB32).copy()  # BGRA bytes = ARGB32 on little-endian


def _on_white(image: QImage) -> QImage:
    """The picture as kirinuki takes it: RGB, any transparency of the layer flattened onto white."""
    flat = QImage(image.size(), QImage.Format_RGB32)
    flat.fill(QColor("white"))
    painter = QPainter(flat)
    painter.drawImage(0, 0, image)
    painter.end()
    return flat


def _within_source_alpha(cut: QImage, source: QImage) -> bytes:
    """The cut's BGRA bytes, its alpha multiplied by the source layer's own where the layer
    had transparency already (so a layer cut out before stays transparent where it was)."""
    size = cut.width() * cut.height()
    alphas = source.constBits().asstring(size * 4)[3::4]
    cut = cut.convertToFormat(QImage.Format_ARGB32)
    if alphas.count(255) != size:
        merged = cut.convertToFormat(QImage.Format_ARGB32_Premultiplied)
        painter = QPainter(merged)
        painter.setCompositionMode(QPainter.CompositionMode_DestinationIn)
        painter.drawImage(0, 0, source)
        painter.end()
        cut = merged.convertToFormat(QImage.Format_ARGB32)
    return cut.constBits().asstring(size * 4)


def cut(doc, node=None, *, keep_colours: bool = False, edits: Sequence[tuple[str, int, int]] = (),
        command: Sequence[str] | None = None, wait: Callable[[], bool] | None = None):
    """Cut out ``node`` (default: the active layer; see :func:`source_of`) of ``doc``; returns
    the new cut layer. ``edits``: keep and drop clicks ``("keep" | "drop", x, y)`` in canvas
    pixels, in order. ``wait``: called while kirinuki runs, True to cancel (see
    :func:`command.run`). Raises CutError, with the document unchanged, on any failure."""
    check_document(doc)
    source, name = source_of(doc, node)
    command = list(command) if command else find_command()
    check_version(command)
    picture = _image_of(doc, source)
    with tempfile.TemporaryDirectory(prefix="kirinuki-krita-") as tmp:
        src = Path(tmp) / "layer.png"
        if not _on_white(picture).save(str(src), "PNG"):
            raise CutError(f"could not write the layer to {src}")
        run(cutout_arguments(command, src, Path(tmp) / "out", keep_colours=keep_colours, edits=edits), wait)
        result = QImage(str(Path(tmp) / "out" / "layer.png"))
    if result.isNull() or (result.width(), result.height()) != (doc.width(), doc.height()):
        raise CutError("kirinuki gave no usable cutout")
    pixels = _within_source_alpha(result, picture)
    # Everything is ready: now, and only now, the document changes.
    layer = doc.createNode(name + SUFFIX, "paintlayer")
    parent = source.parentNode() if source is not None else doc.rootNode()
    parent.addChildNode(layer, source if source is not None else _topmost(doc))
    layer.setPixelData(QByteArray(pixels), 0, 0, doc.width(), doc.height())
    if source is not None:
        source.setVisible(False)
    doc.setActiveNode(layer)
    doc.refreshProjection()
    _CUTS[layer.uniqueId().toString()] = {"source": source, "keep_colours": keep_colours, "edits": list(edits)}
    return layer


def _topmost(doc):
    children = doc.rootNode().childNodes()
    return children[-1] if children else None


def fix_selection(doc, mode: str, node=None, *, command: Sequence[str] | None = None,
                  wait: Callable[[], bool] | None = None):
    """Keep (``mode="keep"``) or drop the region under the current selection: ``node`` (the
    active layer by default), a cut layer or the layer to cut, is cut again with points
    spread over the selection added to its clicks. Returns the new cut layer (an old cut
    layer is removed)."""
    selection = doc.selection()
    if selection is None or selection.width() <= 0 or selection.height() <= 0:
        raise CutError("select the region to keep or drop first (any selection tool)")
    x, y, w, h = selection.x(), selection.y(), selection.width(), selection.height()
    points = sample_points(bytes(selection.pixelData(x, y, w, h)), w, h, x, y)
    points = [(px, py) for px, py in points if 0 <= px < doc.width() and 0 <= py < doc.height()]
    if not points:
        raise CutError("the selection holds no pixel of the canvas")
    active = node or doc.activeNode()
    previous = _CUTS.get(active.uniqueId().toString()) if active is not None else None
    edits = (previous["edits"] if previous else []) + [(mode, px, py) for px, py in points]
    layer = cut(doc, active, keep_colours=previous["keep_colours"] if previous else False, edits=edits,
                command=command, wait=wait)
    if previous:
        active.remove()
        doc.refreshProjection()
    return layer


def undo_cut(doc, layer=None) -> bool:
    """Take a cut back whole: remove the cut layer and show its source again. False when
    ``layer`` (default: the active one) is not a cut layer made since Krita started."""
    layer = layer or doc.activeNode()
    entry = _CUTS.pop(layer.uniqueId().toString(), None) if layer is not None else None
    if entry is None:
        return False
    source = entry["source"]
    layer.remove()
    if source is not None:
        source.setVisible(True)
        doc.setActiveNode(source)
    doc.refreshProjection()
    return True
