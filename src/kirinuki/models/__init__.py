"""Networks that map an RGB image to its alpha matte, and the registry that names them.

Every architecture is a plain ``nn.Module`` with explicit constructor arguments and the same
contract (see :class:`AlphaNet`): input ``Nx3xHxW float32`` RGB in [0, 1], output
``Nx1xHxW float32`` alpha in [0, 1], any H and W (padded internally to ``pad_multiple``;
an exported graph expects padded input, which ``kirinuki.inference`` provides).
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .base import AlphaNet
from .kirilite import KiriLite
from .kirinet import KiriNet
from .unet import UNetPaper

__all__ = ["AlphaNet", "KiriLite", "KiriNet", "UNetPaper", "create_model", "list_models", "register_model"]

_REGISTRY: dict[str, Callable[..., AlphaNet]] = {}


def register_model(name: str, factory: Callable[..., AlphaNet]) -> None:
    """Make ``factory(**kwargs)`` available as ``create_model(name, **kwargs)``."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = factory


def list_models() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> AlphaNet:
    """Build the architecture ``name`` with its constructor arguments ``kwargs``."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None
    return factory(**kwargs)


register_model("unet-paper", UNetPaper)
register_model("kirinet", KiriNet)
register_model("kirilite", KiriLite)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
