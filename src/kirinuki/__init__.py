"""kirinuki: give anime illustrations their alpha channel back.

    >>> import kirinuki
    >>> kirinuki.cutout("character.jpg").save("character.png")   # RGBA, straight alpha
    >>> alpha = kirinuki.predict_alpha("character.jpg")           # HxW float32 in [0, 1]
    >>> matter = kirinuki.Matter("model.onnx")                     # load once, reuse

Importing the package does nothing observable; the public names load their modules (and
the model) when first used.
"""

from ._version import __version__

__all__ = ["__version__", "cutout", "predict_alpha", "Matter"]


def __getattr__(name: str):
    if name in ("cutout", "predict_alpha"):
        from . import api
        return getattr(api, name)
    if name == "Matter":
        from .inference import Matter
        return Matter
    raise AttributeError(f"module 'kirinuki' has no attribute {name!r}")
