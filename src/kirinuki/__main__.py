"""``python -m kirinuki`` (and ``torchrun ... -m kirinuki train``): the command line."""

import sys

from .cli import main

sys.exit(main())
