"""kirinuki's errors: one base class, and one subclass per thing that can be wrong.

Every message is one line that says what and why; the command line prints it as
``kirinuki: error: MESSAGE`` (for an input: ``kirinuki: error: PATH: REASON``).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["KirinukiError", "InputError", "InputKind", "ModelError", "DataError"]


class KirinukiError(Exception):
    """Anything kirinuki refuses, with a one-line reason."""


class InputKind(str, Enum):
    """Which sort of bad input (the web app maps each to an HTTP status)."""

    MISSING = "missing"
    PERMISSION = "permission"
    EMPTY = "empty"
    UNSUPPORTED = "unsupported"
    CORRUPT = "corrupt"
    TOO_LARGE = "too_large"
    WRITE = "write"
    BAD_OPTION = "bad_option"


class InputError(KirinukiError):
    """A picture that cannot be cut out (or its output written); ``kind`` says which sort."""

    def __init__(self, message: str, kind: InputKind | str = InputKind.UNSUPPORTED) -> None:
        super().__init__(message)
        self.kind = InputKind(kind)


class ModelError(KirinukiError):
    """A model file that cannot be used (missing, corrupt, wrong checksum, wrong device)."""


class DataError(KirinukiError):
    """Training or evaluation data that is missing or unusable."""
