"""Forward time of an ISNet-class general background remover on this CPU, for comparison.

    python benchmarks/isnet_speed.py [--size 1024] [--runs 3] [--threads N]

The network is the ISNet layout of "Highly Accurate Dichotomous Image Segmentation" (Qin et
al., 2022), the architecture inside isnet-anime and other general removers: a stride-2 input
convolution, six residual U-blocks (RSU-7, 6, 5, 4, 4F, 4F) down and five up, 64 to 512
channels, side outputs at every scale; about 44 M parameters. Its weights live on model hubs
this project cannot reach, so it runs here with random weights: the time of a forward pass
does not depend on them. Prints the parameter count and the median forward time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, dilation: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class RSU(nn.Module):
    """Residual U-block of ``height`` levels (max-pooling between them), or with ``dilated``
    the 4F form: the same at one resolution with dilations 1, 2, 4, 8."""

    def __init__(self, height: int, cin: int, mid: int, cout: int, dilated: bool = False) -> None:
        super().__init__()
        self.dilated = dilated
        self.conv_in = conv_bn_relu(cin, cout)
        rates = [1, 2, 4, 8] if dilated else [1] * (height - 1) + [2]
        self.down = nn.ModuleList([conv_bn_relu(cout, mid, rates[0])] +
                                  [conv_bn_relu(mid, mid, r) for r in rates[1:]])
        self.up = nn.ModuleList([conv_bn_relu(2 * mid, mid, r) for r in rates[-2:0:-1]] +
                                [conv_bn_relu(2 * mid, cout, rates[0])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hx_in = self.conv_in(x)
        skips, h = [], hx_in
        for i, block in enumerate(self.down):
            if i and not self.dilated and i < len(self.down) - 1:
                h = F.max_pool2d(h, 2, ceil_mode=True)
            h = block(h)
            skips.append(h)
        h = skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = block(torch.cat([h if self.dilated else _up(h, skip), skip], 1))
        return h + hx_in


class ISNetLayout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, 64, 3, stride=2, padding=1)
        enc = [(7, 64, 32, 64, False), (6, 64, 32, 128, False), (5, 128, 64, 256, False),
               (4, 256, 128, 512, False), (4, 512, 256, 512, True), (4, 512, 256, 512, True)]
        dec = [(4, 1024, 256, 512, True), (4, 1024, 128, 256, False), (5, 512, 64, 128, False),
               (6, 256, 32, 64, False), (7, 128, 16, 64, False)]
        self.encoder = nn.ModuleList(RSU(*a) for a in enc)
        self.decoder = nn.ModuleList(RSU(*a) for a in dec)
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, 3, padding=1) for c in (64, 64, 128, 256, 512, 512))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.conv_in(x)
        feats = []
        for i, stage in enumerate(self.encoder):
            h = stage(h if i == 0 else F.max_pool2d(h, 2, ceil_mode=True))
            feats.append(h)
        outs = [feats.pop()]
        h = outs[0]
        for stage in self.decoder:
            skip = feats.pop()
            h = stage(torch.cat([_up(h, skip), skip], 1))
            outs.append(h)
        return [torch.sigmoid(_up(side(o), x)) for side, o in zip(self.sides, reversed(outs))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = ISNetLayout().eval()
    params = sum(p.numel() for p in net.parameters())
    x = torch.rand(1, 3, args.size, args.size)
    times = []
    with torch.inference_mode():
        net(x)  # warm-up
        for _ in range(args.runs):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    print(f"ISNet layout: {params / 1e6:.1f} M parameters; forward at {args.size}x{args.size}: "
          f"median {statistics.median(times):.2f} s over {args.runs} runs ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
