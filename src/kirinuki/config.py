"""Training configuration: frozen dataclasses, presets in TOML files, overrides from flags.

Precedence, lowest first: the preset (``presets/<name>.toml`` inside the package), a user's
config file, ``--set section.key=value`` overrides, then dedicated command-line flags.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

__all__ = ["parse_work_size", "MIN_WORK_SIZE", "ModelConfig", "DataConfig", "OptimConfig", "LossConfig", "TrainConfig",
           "PRESETS", "load_config", "config_from_dict", "config_to_dict", "parse_override"]

PRESETS = ("default", "paper", "lite")
#: The smallest working size a network can be run at.
MIN_WORK_SIZE = 16


def parse_work_size(value: Any) -> int | None:
    """A working size as the CLI, a config file or the predictor give it: a positive integer
    (at least ``MIN_WORK_SIZE``), or ``native`` / ``none`` / None (the input's own size).
    Anything else is a ``ValueError`` with a one-line reason."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("native", "none")):
        return None
    if isinstance(value, bool):
        raise ValueError(f"working size {value!r} is not a size (an integer or 'native')")
    try:
        size = int(value) if not isinstance(value, str) else int(value.strip())
    except (TypeError, ValueError):
        raise ValueError(f"working size {value!r} is not a size (an integer or 'native')") from None
    if isinstance(value, float) and size != value:
        raise ValueError(f"working size {value!r} is not a whole number of pixels")
    if size < MIN_WORK_SIZE:
        raise ValueError(f"working size {size} is too small (at least {MIN_WORK_SIZE}, or 'native')")
    return size


@dataclass(frozen=True)
class ModelConfig:
    name: str = "kirinet"
    args: dict[str, Any] = field(default_factory=dict)
    # Longest image side the network runs at; None ("native") runs at the input's own size.
    # Read by parse_work_size, the same parser as --work-size and the predictor's.
    work_size: Any = 512

    def __post_init__(self) -> None:
        object.__setattr__(self, "work_size", parse_work_size(self.work_size))

    # Start the encoder from published ImageNet weights (architectures that have them, such
    # as kirilite); ignored when resuming or starting from a checkpoint (--init-from).
    pretrained: bool = False


@dataclass(frozen=True)
class DataConfig:
    """How a training sample is synthesised (see ``kirinuki.data`` for the exact meaning)."""

    # Sub-folders of the data root holding RGBA cutouts, with their sampling weights.
    groups: dict[str, float] = field(default_factory=lambda: {"train": 1.0})
    backgrounds: str = "backgrounds"
    # Optional folder of real pairs: NAME.jpg/.png (RGB) beside NAME.alpha.png.
    pairs: str | None = None
    pairs_weight: float = 0.0
    # Cutouts are cached in memory with their longest side at most this.
    cache_side: int = 640
    # Where cutouts are zoomed, turned and placed: "cpu" (Pillow, per sample, in the
    # DataLoader workers) or "device" (one batched warp on the training device, from an
    # atlas of every cutout held there: see kirinuki.placement).
    placement: str = "cpu"
    # Geometry.
    flip: float = 0.5
    rotation: float = 10.0            # degrees, uniform in [-r, r]
    zoom: tuple[float, float] = (0.8, 1.2)   # character size relative to "fits the canvas"
    shift: float = 0.1                # centre offset, fraction of the canvas side
    p_stand: float = 0.0              # stand on the bottom edge (as sprites do)
    p_cutoff: float = 0.0             # zoomed in so that the frame cuts the character
    cutoff_zoom: tuple[float, float] = (1.2, 2.5)
    p_two: float = 0.0                # several characters in one image (overlapping)
    max_characters: int = 2           # with p_two: 2 .. this many characters
    p_empty: float = 0.0              # no character at all: alpha all zero
    # The character itself redrawn (its alpha unchanged), so that texture is no cue.
    p_lineart: float = 0.0            # as line art: dark lines on white
    p_flatcolour: float = 0.0         # its colours reduced to a few flat ones
    # Background mix: relative weights (normalised at use).
    bg_white: float = 0.4
    bg_light: float = 0.4
    bg_dark: float = 0.1
    bg_black: float = 0.1
    bg_flat: float = 0.0              # a flat colour of any hue (uniform RGB): chroma keys too
    bg_scene: float = 0.0
    bg_hard: float = 0.0              # a colour taken from the character itself
    bg_grey: float = 0.0              # a flat grey level, uniform in [0, 255]
    hard_push: float = 0.0            # hard negatives pushed up to this share towards white or black
    scene_jitter: float = 0.0         # strength of scene colour jitter, 0..1
    # Additions to the background (the target alpha never includes them).
    p_shadow: float = 0.0             # a soft drop shadow of the characters
    p_drawn: float = 0.0              # drawn shapes, outlines and text painted over it
    p_pattern: float = 0.0            # a tiled pattern (dots, stripes, checks) over part of it
    p_backdrop: float = 0.0           # another character painted into it (a title screen's)
    backdrop_cutoff: float = 1.0      # chance that one is a close-up; else placed as composited ones
    # Aimed at the scene failures (see kirinuki.styles and kirinuki.scenery):
    p_clothing_texture: float = 0.0   # 1-3 closed regions of the cutout filled with a texture (CPU placement)
    p_own_colour_scenery: float = 0.0  # on scenes: a piece in its own colour behind lower body or hair
    p_props: float = 0.0              # on scenes: a prop (pole, lamp, board, shelf) touching head or shoulders
    # Degradations of the composite, each with its probability.
    p_jpeg: float = 0.0
    jpeg_quality: tuple[int, int] = (40, 95)
    p_blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    p_rescale: float = 0.0
    rescale_factor: tuple[float, float] = (0.4, 0.9)
    p_noise: float = 0.0
    noise_std: float = 0.02


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    # Cosine decay to lr * min_lr_ratio over this many steps after warm-up; 0 keeps lr flat.
    decay_steps: int = 0
    # With a --minutes budget: decay over that wall time instead of over decay_steps (the
    # schedule then depends on the machine's speed, so a resumed run is not bit-for-bit).
    decay_over_minutes: bool = False
    min_lr_ratio: float = 0.1
    grad_clip: float = 0.0            # 0 = no clipping
    # Keep an exponential moving average of the weights with this decay per step (0: off).
    # Validation then scores the average, best.pt and the checkpoints' "model" hold it (the
    # raw weights, which training goes on from, as "train_model"), and val_log.csv adds the
    # raw weights' scores as raw/... columns: the two side by side at the same step.
    ema: float = 0.0
    # The learning rate of a pretrained encoder (kirilite's) as a share of the rest's: below 1
    # it moves less from what ImageNet taught it (an error for networks without one).
    encoder_lr_ratio: float = 1.0
    # Keep the BatchNorm statistics of a pretrained encoder as they are while training (its
    # BatchNorm layers in eval mode; their scale and shift still learn): batches of 8 move
    # them with every step (an error for networks without a pretrained encoder).
    freeze_pretrained_bn: bool = False
    # Pull every weight towards the weights the run started from (--init-from), decoupled
    # from the gradient as AdamW's decay is from zero: after each step, w -= lr * anchor *
    # (w - w_start) (0: off). A continuation then searches near its start instead of
    # drifting from it; the start is saved with the checkpoints, so a resumed run keeps it.
    anchor: float = 0.0

    def __post_init__(self) -> None:
        if self.anchor < 0.0:
            raise ValueError(f"optim.anchor {self.anchor!r}: a strength >= 0 (0: off)")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"optim.ema {self.ema!r}: a decay in [0, 1) (0 keeps no average)")
        if not 0.0 < self.encoder_lr_ratio <= 1.0:
            raise ValueError(f"optim.encoder_lr_ratio {self.encoder_lr_ratio!r}: a share in (0, 1]")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms (see ``kirinuki.train.alpha_loss``)."""

    mse: float = 1.0
    l1: float = 0.0
    gradient: float = 0.0
    laplacian: float = 0.0
    bce: float = 0.0
    iou: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    batch: int = 16                   # global batch, whatever the number of processes
    micro_batch: int = 0              # per-process batch per forward; 0 = batch / processes
    sizes: tuple[int, ...] = (256,)   # canvas sides, one drawn per step
    steps: int = 0                    # stop after this many steps (0 = no step limit)
    minutes: float = 0.0              # stop after this much wall time (0 = no time limit)
    seed: int = 0
    workers: int = 1                  # DataLoader worker processes
    val_every: int = 200
    val_images: int = 16              # validation cutouts, evenly spaced through the folder
    val_sizes: tuple[int, ...] = (256, 512)
    val_seed: int = 1234              # the validation composites' seed (fixed across runs)
    # Before each validation, replace the BatchNorm running statistics of the weights scored
    # (and saved) with their average over this many training composites at the largest
    # training canvas (kirinuki.batchnorm; 0: keep the running statistics as training left
    # them). For a run's early validations: see docs/ablation.md.
    val_bn_refresh: int = 0
    ckpt_every: int = 200
    log_every: int = 10
    device: str = "auto"              # auto | cpu | cuda

    def __post_init__(self) -> None:
        if self.val_bn_refresh < 0:
            raise ValueError(f"val_bn_refresh {self.val_bn_refresh!r}: a number of composites (0: off)")
        if self.val_bn_refresh and self.optim.freeze_pretrained_bn:
            raise ValueError("val_bn_refresh would replace the statistics optim.freeze_pretrained_bn holds: "
                             "use one or the other")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table")
        return config_from_dict(value, tp, where)
    if origin is tuple:
        args = get_args(tp)
        item = args[0]
        if not isinstance(value, (list, tuple)):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(item, v, where) for v in value)
        if len(value) != len(args):
            raise ValueError(f"{where}: expected {len(args)} values")
        return tuple(_coerce(t, v, where) for t, v in zip(args, value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table")
        key_t, val_t = get_args(tp)
        return {str(k): (v if val_t is Any else _coerce(val_t, v, where)) for k, v in value.items()}
    args = get_args(tp)
    if args and type(None) in args:  # Optional[X]
        if value is None or value == "none":
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, where)
    if tp is float and isinstance(value, (int, float)):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, str):
        return float(value)
    if tp is int and isinstance(value, str):
        return int(value)
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if tp is Any:
        return value
    raise ValueError(f"{where}: {value!r} is not a valid {getattr(tp, '__name__', tp)}")


def config_from_dict(data: dict[str, Any], cls: type = TrainConfig, where: str = "config") -> Any:
    """Build the dataclass ``cls`` from nested dicts; unknown keys are an error."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The dataclass as plain nested dicts/lists (JSON and TOML friendly)."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("groups", "args"):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"optim.lr=1e-3"`` -> ``{"optim": {"lr": 0.001}}``; the value is read as TOML
    (numbers, strings, lists, tables), falling back to a plain string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r}: expected KEY=VALUE, e.g. optim.lr=1e-3")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def preset_dict(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    text = resources.files("kirinuki").joinpath("presets", f"{name}.toml").read_text("utf-8")
    return tomllib.loads(text)


def load_config(preset: str = "default", path: str | Path | None = None,
                overrides: list[dict[str, Any]] | None = None) -> TrainConfig:
    """Preset, then the TOML file at ``path``, then each override dict, merged in order."""
    data = preset_dict(preset)
    if path is not None:
        with open(path, "rb") as fh:
            data = _deep_merge(data, tomllib.load(fh))
    for o in overrides or []:
        data = _deep_merge(data, o)
    return config_from_dict(data)
