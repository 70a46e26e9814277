"""kirinuki: give anime illustrations their alpha channel back.

Importing the package does nothing observable; the public functions load their
dependencies when first called.
"""

from ._version import __version__

__all__ = ["__version__"]
