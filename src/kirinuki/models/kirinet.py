"""``kirinet``: the project's default architecture, built to be fast on a laptop CPU.

Why it looks the way it does:

* **Downsample at once.** A 4x4 stride-4 stem: a plain U-Net spends most of its CPU time in
  its full-resolution first stage (1.9 M U-Net: 0.25 s at 512x512 here); this network's
  first feature map is at 1/4 and the whole net costs ~60 ms at 512x512 on 2 cores.
* **Deep context.** Five levels (1/4 to 1/64) give a receptive field larger than the working
  image, so the decision "character or background" is taken with the whole figure in view:
  that, not local colour, is what saves a skirt whose colour matches the background.
* **Sharp output from cheap parts.** The 1/4 decoder output is turned into full-resolution
  detail by a learned sub-pixel upsampling (pixel shuffle), then fused with the RGB image in
  a small full-resolution head, so anti-aliased edges follow the real image edges.
* **Scale.** The inference path runs it at a fixed working resolution (the longest side is
  resized to ``work_size``) and refines the result at full size; training varies the
  character's zoom widely. Fully convolutional, any input size.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import AlphaNet, conv_bn_relu


class KiriNet(AlphaNet):
    """Encoder-decoder with a stride-4 stem, ``len(widths)`` levels and a full-res head.

    widths: channels at 1/4, 1/8, ...; blocks: 3x3 conv blocks per encoder level;
    head: channels of the full-resolution head.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 96, 128, 160),
                 blocks: Sequence[int] = (1, 2, 2, 2, 2), head: int = 8) -> None:
        widths, blocks = list(widths), list(blocks)
        if len(widths) != len(blocks) or len(widths) < 2:
            raise ValueError("widths and blocks need the same length, at least 2")
        super().__init__({"widths": widths, "blocks": blocks, "head": head})
        self.pad_multiple = 4 * 2 ** (len(widths) - 1)
        self.stem = conv_bn_relu(3, widths[0], stride=4, kernel=4)
        self.encoder = nn.ModuleList()
        prev = widths[0]
        for level, (width, n) in enumerate(zip(widths, blocks)):
            layers = [conv_bn_relu(prev, width, stride=2)] if level else []
            layers += [conv_bn_relu(width, width) for _ in range(n)]
            self.encoder.append(nn.Sequential(*layers))
            prev = width
        self.decoder = nn.ModuleList(
            nn.Sequential(conv_bn_relu(widths[i] + widths[i - 1], widths[i - 1]),
                          conv_bn_relu(widths[i - 1], widths[i - 1]))
            for i in range(len(widths) - 1, 0, -1))
        self.to_full = nn.Conv2d(widths[0], 16 * head, 1)
        self.head = nn.Sequential(conv_bn_relu(head + 3, head), nn.Conv2d(head, 1, 3, padding=1))

    def logits(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        skips = []
        h = self.stem(x)
        for stage in self.encoder:
            h = stage(h)
            skips.append(h)
        skips.pop()
        for block in self.decoder:
            skip = skips.pop()
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        h = F.pixel_shuffle(self.to_full(h), 4)
        return self.head(torch.cat([h, x], dim=1))
