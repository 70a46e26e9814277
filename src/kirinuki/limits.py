"""The limits a picture, an animation or a video is checked against, unless the caller sets
its own (``--max-pixels``, ``--max-frames``). Standard library only, so that the command
line can name them without loading numpy or Pillow."""

#: Pixels in a megapixel.
MEGAPIXEL = 1_000_000
#: The largest picture opened (for an animation or video: all its frames together).
DEFAULT_MAX_PIXELS = 100 * MEGAPIXEL
#: The most pixels one request to ``kirinuki serve`` may make it cut out (a picture, or all
#: the frames of an animation together): a 591-byte GIF declaring 24 frames of 2000x2000
#: (96 MP) took 13 s and 1.47 GB of the only worker under the command line's 100 MP.
SERVE_MAX_PIXELS = 25 * MEGAPIXEL
#: The most frames of an animation or video.
DEFAULT_MAX_FRAMES = 1000
#: The working sizes the command line accepts (``--work-size``): below the smallest, the
#: bundled network loses whole parts of a figure (at 128 px the meadow sample scores IoU
#: 0.84 against 0.98 at 512); above the largest, memory grows with no gain (the network was
#: trained on canvases of 256-320 px and runs at 512).
WORK_SIZE_RANGE = (192, 2048)
