"""The limits a picture, an animation or a video is checked against, unless the caller sets
its own (``--max-pixels``, ``--max-frames``). Standard library only, so that the command
line can name them without loading numpy or Pillow."""

#: Pixels in a megapixel.
MEGAPIXEL = 1_000_000
#: The largest picture opened (for an animation or video: all its frames together).
DEFAULT_MAX_PIXELS = 100 * MEGAPIXEL
#: The most frames of an animation or video.
DEFAULT_MAX_FRAMES = 1000
#: The working sizes the command line accepts (``--work-size``): below the smallest, the
#: bundled network loses whole parts of a figure (at 128 px the meadow sample scores IoU
#: 0.84 against 0.98 at 512); above the largest, memory grows with no gain (the network was
#: trained on canvases of 256-320 px and runs at 512).
WORK_SIZE_RANGE = (192, 2048)
