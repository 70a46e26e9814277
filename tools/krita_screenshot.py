"""The README's Krita picture, step 1 (inside Krita, headless): the meadow sample cut out by
the plug-in as its action does, saved as a Krita document. Run by tools/krita_screenshot.sh."""

import os

from krita import Krita

from kirinuki_krita import cutter


def main(*_args):
    app = Krita.instance()
    app.setBatchmode(True)
    doc = app.openDocument(os.environ["SHOT_PICTURE"])
    doc.setBatchmode(True)
    cutter.cut(doc, doc.rootNode().childNodes()[0])
    doc.saveAs(os.environ["SHOT_DOCUMENT"])
    doc.close()
