"""``unet-paper``: the standard U-Net of the seed paper (Liu & Watanabe).

Ronneberger et al.'s layout: four 2x max-pool downsamplings, two 3x3 conv + BN + ReLU per
level, 2x2 transposed-conv upsampling, skip concatenations, a 1x1 head. The paper does not
state its widths; the default ``base=32`` (32-64-128-256-512, 7.8 M parameters) is half the
original's 64-1024 (31 M), which trains at the same quality per step on this data in early
probes and keeps a CPU run tractable. ``base=64`` gives the original.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import AlphaNet, conv_bn_relu


def _double(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class UNetPaper(AlphaNet):
    """Plain U-Net: ``depth`` downsamplings, widths ``base * 2**level``."""

    def __init__(self, base: int = 32, depth: int = 4) -> None:
        super().__init__({"base": base, "depth": depth})
        self.pad_multiple = 2 ** depth
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_double(3, widths[0])])
        self.down.extend(_double(widths[i - 1], widths[i]) for i in range(1, depth + 1))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2) for i in range(depth, 0, -1))
        self.merge = nn.ModuleList(_double(2 * widths[i - 1], widths[i - 1]) for i in range(depth, 0, -1))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def logits(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
