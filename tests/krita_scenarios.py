"""Scenarios run inside a real Krita by ``tests/test_krita.py`` (``kritarunner -s
krita_scenarios -f NAME``, headless). Each opens documents, uses the plug-in as its actions
do, exports what it made and writes what it saw as JSON to ``$KIRINUKI_KRITA_OUT/NAME.json``.
Inputs come from the environment: ``KIRINUKI_KRITA_OUT`` (a folder), ``KIRINUKI_KRITA_PICTURES``
(pictures separated by ``;``), ``KIRINUKI_COMMAND`` (the kirinuki command) and, for the
selection, ``KIRINUKI_KRITA_BOX`` (``x,y,w,h``).
"""

import hashlib
import json
import os
import traceback
from pathlib import Path

from krita import InfoObject, Krita, Selection
from PyQt5.QtGui import QImage

from kirinuki_krita import cutter
from kirinuki_krita.command import CutError

OUT = Path(os.environ.get("KIRINUKI_KRITA_OUT", "."))


def _report(name, result) -> None:
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")


def _open(path):
    app = Krita.instance()
    app.setBatchmode(True)
    doc = app.openDocument(str(path))
    doc.setBatchmode(True)
    doc.setActiveNode(doc.rootNode().childNodes()[0])
    return doc


def _state(doc):
    """What the document holds: each layer's name, visibility and pixels' digest (the global
    selection, which Krita keeps as a node of its own, left out)."""
    w, h = doc.width(), doc.height()
    return [(n.name(), n.visible(), hashlib.sha256(bytes(n.pixelData(0, 0, w, h))).hexdigest())
            for n in doc.rootNode().childNodes() if n.type() != "selectionmask"]


def _save_layer(doc, layer, path) -> None:
    w, h = doc.width(), doc.height()
    QImage(bytes(layer.pixelData(0, 0, w, h)), w, h, 4 * w, QImage.Format_ARGB32).save(str(path), "PNG")


def _guarded(name):
    def wrap(scenario):
        def run(*_args):
            try:
                _report(name, scenario())
            except Exception:
                _report(name, {"traceback": traceback.format_exc()})
        return run
    return wrap


@_guarded("cut")
def cut(*_):
    """Each picture cut out as the action does (decontaminated, and with the original
    colours), the visible image exported as PNG."""
    result = {}
    for picture in os.environ["KIRINUKI_KRITA_PICTURES"].split(";"):
        stem = Path(picture).stem
        doc = _open(picture)
        before = _state(doc)
        layer = cutter.cut(doc, doc.rootNode().childNodes()[0])
        doc.exportImage(str(OUT / f"{stem}.png"), InfoObject())
        plain = cutter.cut(doc, doc.rootNode().childNodes()[0], keep_colours=True)
        _save_layer(doc, plain, OUT / f"{stem}-original-colours.png")
        result[stem] = {"before": before, "after": _state(doc), "cut_layer": layer.name()}
        doc.close()
    return result


@_guarded("drop")
def drop(*_):
    """A selection over a region the model keeps, dropped; then the cut undone."""
    picture = os.environ["KIRINUKI_KRITA_PICTURES"].split(";")[0]
    doc = _open(picture)
    before = _state(doc)
    first = cutter.cut(doc, doc.rootNode().childNodes()[0])
    _save_layer(doc, first, OUT / "before-drop.png")
    x, y, w, h = (int(v) for v in os.environ["KIRINUKI_KRITA_BOX"].split(","))
    selection = Selection()
    selection.select(x, y, w, h, 255)
    doc.setSelection(selection)
    fixed = cutter.fix_selection(doc, "drop", first)
    doc.exportImage(str(OUT / "after-drop.png"), InfoObject())
    layers_after_fix = _state(doc)
    undone = cutter.undo_cut(doc, fixed)
    return {"before": before, "after_fix": layers_after_fix, "after_undo": _state(doc), "undone": undone,
            "fixed_layer": fixed.name()}


@_guarded("refusals")
def refusals(*_):
    """kirinuki missing, a CMYK document, a 16-bit document: a message each, nothing changed."""
    app = Krita.instance()
    app.setBatchmode(True)
    picture = os.environ["KIRINUKI_KRITA_PICTURES"].split(";")[0]
    cases = {}

    def attempt(name, doc, **kw):
        before = _state(doc)
        try:
            cutter.cut(doc, doc.rootNode().childNodes()[0], **kw)
            message = None
        except CutError as exc:
            message = str(exc)
        cases[name] = {"message": message, "unchanged": _state(doc) == before}

    attempt("missing", _open(picture))  # run with no kirinuki to be found
    for name, model, depth in (("cmyk", "CMYKA", "U8"), ("16-bit", "RGBA", "U16")):
        doc = app.createDocument(64, 48, name, model, depth, "", 72.0)
        doc.setBatchmode(True)
        layer = doc.createNode("paint", "paintlayer")
        doc.rootNode().addChildNode(layer, None)
        attempt(name, doc)
    return cases


@_guarded("transparent")
def transparent(*_):
    """A layer already half transparent (alpha 128 over its left half) cut out: the cut keeps
    that transparency."""
    from PyQt5.QtCore import QByteArray

    doc = _open(os.environ["KIRINUKI_KRITA_PICTURES"].split(";")[0])
    layer = doc.rootNode().childNodes()[0]
    w, h = doc.width(), doc.height()
    data = bytearray(bytes(layer.pixelData(0, 0, w, h)))
    for y in range(h):
        row = 4 * w * y
        data[row + 3:row + 4 * (w // 2):4] = bytes([128]) * (w // 2)
    layer.setPixelData(QByteArray(bytes(data)), 0, 0, w, h)
    cut_layer = cutter.cut(doc, layer)
    _save_layer(doc, cut_layer, OUT / "half-transparent.png")
    return {"half": w // 2}
