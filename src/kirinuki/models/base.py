"""The contract every alpha network shares: normalisation inside, padding, sigmoid output."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class AlphaNet(nn.Module):
    """Base class: RGB ``Nx3xHxW`` float in [0, 1] -> alpha ``Nx1xHxW`` float in [0, 1].

    Subclasses implement :meth:`logits` on normalised input whose sides are multiples of
    ``pad_multiple``. Pixel mean and std are buffers, so training, inference and the ONNX
    export can never disagree on preprocessing. ``config`` holds the constructor arguments,
    so a checkpoint can rebuild the network.
    """

    pad_multiple: int = 1

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)

    def logits(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def pretrained_part(self) -> nn.Module | None:
        """The part that starts from published weights (``load_pretrained``), which training
        may give its own share of the learning rate; None for networks trained from scratch."""
        return None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        m = self.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            # Replicate the border: zeros would look like a black frame to the network.
            # (Not taken when exporting: the exported graph expects padded input, and the
            # shared preprocessing pads the same way; see kirinuki.inference.)
            padded = F.pad(image, (0, pw, 0, ph), mode="replicate")
            return self.forward(padded)[..., :h, :w]
        x = (image - self.mean) / self.std
        return torch.sigmoid(self.logits(x, image))


def conv_bn_relu(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """Conv + BatchNorm + ReLU; 'same' padding for odd kernels, none for even (patchify) ones."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2 if kernel % 2 else 0, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )
