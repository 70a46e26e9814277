"""BatchNorm statistics recomputed from training composites.

A BatchNorm layer's running statistics follow the weights with a lag: kirilite's encoder keeps
TensorFlow's momentum and moves them 1 % a step, so early in a run from ImageNet they still
describe weights of a few hundred steps before. A moving average of the weights (optim.ema)
gets averaged statistics that belong to none of the weights it averages. Either way the
network scores worse in inference than its weights can, and a validation then follows the
lag as much as the weights. :func:`refresh_batchnorm` replaces the statistics with the plain
mean and variance over a fixed set of training composites (what SWA's ``update_bn`` does),
and :func:`statistics_pictures` draws that set.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import torch

from .config import TrainConfig
from .cutouts import CutoutLibrary
from .data import CompositeDataset, SampleMaker, mixed_seed
from .degradations import compose_batch

__all__ = ["refresh_batchnorm", "statistics_pictures"]

#: Tags the composites' own sample stream, apart from the run's training samples.
_STREAM = 0xB17


def _batchnorm_layers(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def refresh_batchnorm(model: torch.nn.Module, pictures: Iterable[torch.Tensor]) -> int:
    """Replace the running mean and variance of every BatchNorm layer of ``model`` with their
    equal-weight average over the batches ``pictures`` (N x 3 x H x W on the model's device),
    the rest of the network as in inference (no weight changes). Returns the number of layers
    refreshed; a network without BatchNorm is left as it was and gives 0."""
    layers = _batchnorm_layers(model)
    if not layers:
        return 0
    modes = [(m, m.training) for m in model.modules()]
    momenta = [m.momentum for m in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None           # a cumulative average over the batches
        layer.train()
    seen = 0
    try:
        with torch.no_grad():
            for x in pictures:
                model(x)
                seen += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for m, training in modes:
            m.train(training)
    if not seen:
        raise ValueError("refresh_batchnorm: no pictures to take the statistics from")
    return len(layers)


def statistics_pictures(cfg: TrainConfig, library: CutoutLibrary, count: int, size: int,
                        device: torch.device, batch: int = 8) -> Iterator[torch.Tensor]:
    """``count`` training composites of ``cfg``'s recipe at ``size`` px, in batches of
    ``batch``, on ``device``: the same pictures every time for a given seed, drawn from a
    stream of their own (no training sample is taken from the run), placed on the CPU and
    degraded as in training."""
    maker = SampleMaker(library, dataclasses.replace(cfg.data, placement="cpu"))
    seed = mixed_seed(cfg.seed, _STREAM)
    dataset = CompositeDataset(maker, seed)
    generator = torch.Generator(device).manual_seed(seed)
    for first in range(0, count, batch):
        items = [dataset[(i, size)] for i in range(first, min(count, first + batch))]
        fp, alpha, bg = (torch.stack(t).to(device) for t in zip(*items))
        x, _ = compose_batch(fp, alpha, bg, cfg.data, generator)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        yield x
