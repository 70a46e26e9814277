"""The web page and HTTP API (``kirinuki serve``); needs the ``web`` extra."""
