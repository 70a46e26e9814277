"""The plug-in's actions in Krita's window: Tools > Scripts > Cut out character (kirinuki),
Keep / Drop selected region, Undo cut and the settings. Each runs kirinuki behind a progress
dialog with Cancel; Krita's window keeps answering meanwhile (its events are processed while
the separate kirinuki process works), and any failure is one message box, never a traceback."""

from __future__ import annotations

from krita import Extension, Krita
from PyQt5.QtWidgets import QApplication, QFileDialog, QMessageBox, QProgressDialog

from . import cutter
from .command import CutError, find_command

SETTING = ("kirinuki", "command")


class KirinukiExtension(Extension):
    def __init__(self, parent) -> None:
        super().__init__(parent)

    def setup(self) -> None:
        pass

    def createActions(self, window) -> None:
        for name, text, slot in (
                ("kirinuki_cutout", "Cut out character (kirinuki)", self.cut_out),
                ("kirinuki_keep", "Keep selected region (kirinuki)", lambda: self.fix("keep")),
                ("kirinuki_drop", "Drop selected region (kirinuki)", lambda: self.fix("drop")),
                ("kirinuki_undo", "Undo cut (kirinuki)", self.undo),
                ("kirinuki_settings", "kirinuki settings...", self.settings)):
            action = window.createAction(name, text, "tools/scripts")
            action.triggered.connect(slot)

    # -- actions --------------------------------------------------------------------------------
    def cut_out(self) -> None:
        doc = Krita.instance().activeDocument()
        if doc is None:
            return self._say("open a picture first")
        keep_colours = QMessageBox.question(
            None, "kirinuki", "Take the old background's colour out of the soft edges?\n"
            "(No keeps the layer's original colours.)", QMessageBox.Yes | QMessageBox.No) == QMessageBox.No
        self._run(lambda wait: cutter.cut(doc, keep_colours=keep_colours, command=self._command(), wait=wait))

    def fix(self, mode: str) -> None:
        doc = Krita.instance().activeDocument()
        if doc is None:
            return self._say("open a picture first")
        self._run(lambda wait: cutter.fix_selection(doc, mode, command=self._command(), wait=wait))

    def undo(self) -> None:
        doc = Krita.instance().activeDocument()
        if doc is None or not cutter.undo_cut(doc):
            self._say("the active layer is not a cut made since Krita started: delete it and show its source instead")

    def settings(self) -> None:
        path, _ = QFileDialog.getOpenFileName(None, "The kirinuki command (kirinuki, or kirinuki.exe)")
        if path:
            Krita.instance().writeSetting(*SETTING, path)

    # -- helpers --------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        return find_command(Krita.instance().readSetting(*SETTING, ""))

    def _run(self, work) -> None:
        dialog = QProgressDialog("Cutting out with kirinuki...", "Cancel", 0, 0)
        dialog.setWindowTitle("kirinuki")
        dialog.setMinimumDuration(300)

        def wait() -> bool:
            QApplication.processEvents()
            return dialog.wasCanceled()
        try:
            work(wait)
        except CutError as exc:
            dialog.close()
            self._say(str(exc))
        except Exception as exc:  # a plug-in never shows the artist a traceback
            dialog.close()
            self._say(f"the cut failed ({exc.__class__.__name__}: {exc}); nothing was changed")
        finally:
            dialog.close()

    @staticmethod
    def _say(message: str) -> None:
        QMessageBox.warning(None, "kirinuki", message)
