"""kirinuki for Krita: cut out the character of the active layer (see Manual.html).

Loaded by Krita's Python plug-in manager. Outside Krita (kirinuki's own tests) the modules
that need no Krita, such as :mod:`.command`, import on their own.
"""

try:
    from krita import Krita
except ImportError:  # imported outside Krita
    Krita = None

if Krita is not None:
    from .extension import KirinukiExtension

    Krita.instance().addExtension(KirinukiExtension(Krita.instance()))
