"""The limits a picture, an animation or a video is checked against, unless the caller sets
its own (``--max-pixels``, ``--max-frames``). Standard library only, so that the command
line can name them without loading numpy or Pillow."""

#: Pixels in a megapixel.
MEGAPIXEL = 1_000_000
#: The largest picture opened (for an animation or video: all its frames together).
DEFAULT_MAX_PIXELS = 100 * MEGAPIXEL
#: The most frames of an animation or video.
DEFAULT_MAX_FRAMES = 1000
