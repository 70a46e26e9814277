"""The training loop: composites on the fly, one or many processes, resumable bit for bit.

Reads top to bottom: set up (processes, device, model, optimiser, data), then per step draw
a batch, composite it on the device, forward, loss, backward, step; every so often log,
validate and checkpoint. Run it with ``kirinuki train`` or, for several processes,
``torchrun --nproc_per_node N -m kirinuki train ...`` (DistributedDataParallel; NCCL on
GPUs, gloo on CPU; only rank 0 writes).

Determinism: sample ``i`` of the run is a pure function of ``(seed, i)`` and the device-side
augmentation of step ``s`` of a rank of ``(seed, s, rank, micro-step)``, and a checkpoint
holds the weights, the optimiser state and the step. A run resumed from a checkpoint
therefore continues exactly as if it had not stopped.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ._version import __version__
from .batchnorm import refresh_batchnorm, statistics_pictures
from .checkpoint import load_checkpoint, save_checkpoint
from .config import LossConfig, OptimConfig, TrainConfig, config_to_dict
from .errors import DataError
from .cutouts import CutoutLibrary
from .data import CompositeDataset, SampleMaker, StepBatchSampler, mixed_seed
from .degradations import compose_batch
from .placement import CutoutAtlas, finish_batch
from .models import AlphaNet, count_parameters, create_model
from .progress import Progress
from .runtimes import resolve_torch_device

__all__ = ["lr_at", "alpha_loss", "train", "TrainResult"]


def lr_at(step: int, cfg: OptimConfig, progress: float | None = None) -> float:
    """Learning rate at ``step``: linear warm-up, then flat or a cosine decay to
    ``lr * min_lr_ratio`` over ``decay_steps``, then flat at that floor. ``progress`` (0..1,
    the share of a time budget spent) replaces the step count in the decay when given."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if progress is not None:
        t = min(1.0, max(0.0, progress))
    elif cfg.decay_steps <= 0:
        return cfg.lr
    else:
        t = min(1.0, (step - cfg.warmup_steps) / cfg.decay_steps)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * t))


def _laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    bands = []
    for _ in range(levels):
        if min(x.shape[-2:]) < 4:
            break
        down = F.avg_pool2d(x, 2)
        up = F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False)
        bands.append(x - up)
        x = down
    bands.append(x)
    return bands


def alpha_loss(pred: torch.Tensor, target: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the configured terms; pred and target Nx1xHxW float in [0, 1].

    mse: mean squared error (the paper's only term). l1: mean absolute error. gradient: L1
    between horizontal and vertical finite differences. laplacian: L1 between Laplacian
    pyramid bands (5 levels and the low-pass rest), each band's mean error weighted equally,
    so a lost part (coarse bands) costs as much as a halo (fine bands). bce: binary cross
    entropy against the soft target; iou: one minus the soft IoU of each picture (smoothed by
    one pixel, so an empty picture predicted empty costs nothing). These two are region terms:
    a pixel confidently on the wrong side costs far more under them than under L1.
    """
    parts: dict[str, torch.Tensor] = {}
    diff = pred - target
    if cfg.mse:
        parts["mse"] = diff.pow(2).mean()
    if cfg.l1:
        parts["l1"] = diff.abs().mean()
    if cfg.gradient:
        gx = (pred[..., :, 1:] - pred[..., :, :-1]) - (target[..., :, 1:] - target[..., :, :-1])
        gy = (pred[..., 1:, :] - pred[..., :-1, :]) - (target[..., 1:, :] - target[..., :-1, :])
        parts["gradient"] = gx.abs().mean() + gy.abs().mean()
    if cfg.laplacian:
        bands = zip(_laplacian_pyramid(pred, 5), _laplacian_pyramid(target, 5))
        parts["laplacian"] = sum((p - t).abs().mean() for p, t in bands)
    if cfg.bce:
        parts["bce"] = F.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), target)
    if cfg.iou:
        inter = (pred * target).flatten(1).sum(1)
        union = (pred + target - pred * target).flatten(1).sum(1)
        parts["iou"] = (1.0 - (inter + 1.0) / (union + 1.0)).mean()
    weights = {"mse": cfg.mse, "l1": cfg.l1, "gradient": cfg.gradient, "laplacian": cfg.laplacian,
               "bce": cfg.bce, "iou": cfg.iou}
    total = sum(weights[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


@dataclass
class _Processes:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_processes(device: str) -> _Processes:
    """One process, or one of ``WORLD_SIZE`` started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = resolve_torch_device(device).type == "cuda"  # one resolver for training and inference
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    return _Processes(rank, world, dev)


@dataclass
class TrainResult:
    step: int
    checkpoint: Path | None
    metrics: dict[str, float]
    model: AlphaNet


class _Stopper:
    """Turns SIGINT/SIGTERM into a request to save and stop after the current step."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Stopper":
        if threading.current_thread() is threading.main_thread():  # signals go to the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nkirinuki: {signal.Signals(signum).name}: saving a checkpoint after this step",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _ignore_interrupts(_: int) -> None:
    # DataLoader workers share the main process's group, which a terminal's Ctrl-C or a job
    # scheduler's SIGTERM reaches as a whole: let the main process save and stop them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _pretrained_part(model: AlphaNet, why: str) -> torch.nn.Module:
    encoder = model.pretrained_part()
    if encoder is None:
        raise ValueError(f"optim.{why}: {type(model).__name__} has no pretrained encoder")
    return encoder


def _set_training(model: AlphaNet, cfg: OptimConfig) -> None:
    """Training mode, with the pretrained encoder's BatchNorm statistics held when asked."""
    model.train()
    if cfg.freeze_pretrained_bn:
        for layer in _pretrained_part(model, "freeze_pretrained_bn").modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                layer.eval()


def _validate(model: AlphaNet, cfg: TrainConfig, cases: list, device: torch.device) -> dict[str, float]:
    from .evaluate import score_cases, summarise
    from .inference import Matter

    matter = Matter.from_module(model, cfg.model.work_size, device=str(device.type))
    try:
        records, _ = score_cases(matter, cases)
    finally:
        _set_training(model, cfg.optim)
    rows = summarise(records)
    out = {f"{r['size']}/{r['condition']}/{k}": r[k] for r in rows
           for k in ("psnr", "pixel_accuracy", "iou", "edge_iou")}
    out["psnr"] = float(np.mean([r["psnr"] for r in rows]))
    out["iou"] = float(np.mean([r["iou"] for r in rows]))
    return out


def _initial_weights(init_from: str | Path) -> dict[str, Any]:
    from .bundled import bundled_file, bundled_slot
    slot = bundled_slot(str(init_from))
    if slot is not None:
        init_from = bundled_file(f"{slot}.pt")
    return load_checkpoint(init_from)


def _load_weights(model: AlphaNet, state: dict[str, Any], cfg: TrainConfig, source: str | Path,
                  key: str = "model") -> None:
    if state["arch"] != cfg.model.name or state["arch_args"] != model.config:
        from .config import PRESETS, load_config
        fits = [p for p in PRESETS if load_config(p).model.name == state["arch"]]
        hint = f" (the {fits[0]} preset's: --preset {fits[0]})" if fits else ""
        raise ValueError(f"{source}: weights are a {state['arch']} {state['arch_args']}{hint}, "
                         f"the config asks for {cfg.model.name} {model.config}")
    model.load_state_dict(state[key])


@dataclass
class _Run:
    """The model side of a run: the network, its optimiser and where a resumed run stands."""

    model: AlphaNet
    net: torch.nn.Module            # the model, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    state: dict[str, Any] | None    # the checkpoint resumed from
    start_step: int
    train_seconds: float
    ema: AveragedModel | None       # the weights' moving average (optim.ema), else None
    anchor: dict[str, torch.Tensor] | None = None  # the start the weights are pulled to (optim.anchor)

    @property
    def scored(self) -> AlphaNet:
        """The weights that are validated and saved as the model: the average when kept."""
        return self.ema.module if self.ema is not None else self.model


def _param_groups(model: AlphaNet, cfg: OptimConfig) -> list[dict[str, Any]]:
    """One parameter group, or (with ``encoder_lr_ratio`` below 1) the pretrained part's and
    the rest's, each with the share of the rate it gets."""
    if cfg.encoder_lr_ratio == 1.0:
        return [{"params": list(model.parameters()), "lr_share": 1.0}]
    encoder = _pretrained_part(model, "encoder_lr_ratio")
    inside = {id(p) for p in encoder.parameters()}
    return [{"params": list(encoder.parameters()), "lr_share": cfg.encoder_lr_ratio},
            {"params": [p for p in model.parameters() if id(p) not in inside], "lr_share": 1.0}]


def _build_model(cfg: TrainConfig, procs: _Processes, resume: str | Path | None,
                 init_from: str | Path | None) -> _Run:
    """The network (resumed, started from other weights, from published ImageNet weights, or
    from the seed), on its device, with its optimiser; wrapped for several processes."""
    cuda = procs.device.type == "cuda"
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model.name, **cfg.model.args)
    start_step, train_seconds, state = 0, 0.0, None
    if resume:
        state = load_checkpoint(resume)
        _load_weights(model, state, cfg, resume, key="train_model" if "train_model" in state else "model")
        start_step, train_seconds = int(state["step"]), float(state.get("train_seconds", 0.0))
    elif init_from:
        _load_weights(model, _initial_weights(init_from), cfg, init_from)
    elif cfg.model.pretrained:
        if not hasattr(model, "load_pretrained"):
            raise ValueError(f"model.pretrained: {cfg.model.name} has no published weights to start from")
        loaded = model.load_pretrained()
        if procs.main:
            print(f"kirinuki train: encoder starts from ImageNet weights ({loaded['tensors']} tensors)",
                  file=sys.stderr, flush=True)
    model.to(procs.device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    anchor = _anchor_weights(model, cfg.optim, state, bool(init_from))
    opt = torch.optim.AdamW(_param_groups(model, cfg.optim), lr=cfg.optim.lr, betas=cfg.optim.betas,
                            weight_decay=cfg.optim.weight_decay)
    if state is not None and "optimizer" in state:
        opt.load_state_dict(state["optimizer"])
    net: torch.nn.Module = model
    if procs.world > 1:
        if cuda:  # batch statistics over the global batch, not each GPU's slice
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[procs.device.index] if cuda else None)
    ema = None
    if cfg.optim.ema:
        # Buffers (BatchNorm statistics) are averaged too, so the average is a whole network.
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.optim.ema), use_buffers=True)
        if state is not None and "train_model" in state:  # resumed: the average goes on
            ema.module.load_state_dict(state["model"])
            ema.n_averaged.fill_(max(1, start_step))
    return _Run(model, net, opt, state, start_step, train_seconds, ema, anchor)


def _anchor_weights(model: AlphaNet, cfg: OptimConfig, state: dict[str, Any] | None,
                    init_from: bool) -> dict[str, torch.Tensor] | None:
    """The weights ``optim.anchor`` pulls towards: those the run started from with
    --init-from, kept in its checkpoints so that a resumed run pulls to the same start."""
    if not cfg.anchor:
        return None
    if state is not None:
        if "anchor" not in state:
            raise ValueError("optim.anchor: the checkpoint resumed from holds no start to pull to "
                             "(it was not trained with optim.anchor)")
        return {k: state["anchor"][k].to(p.device) for k, p in model.named_parameters()}
    if not init_from:
        raise ValueError("optim.anchor pulls the weights towards those a run starts from: give --init-from")
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def _pull_to_anchor(run: _Run, strength: float) -> None:
    """After a step: each weight moves ``lr * strength`` of the way back to its start."""
    names = {id(p): k for k, p in run.model.named_parameters()}
    with torch.no_grad():
        for group in run.opt.param_groups:
            starts = [run.anchor[names[id(p)]] for p in group["params"]]
            torch._foreach_lerp_(group["params"], starts, min(1.0, group["lr"] * strength))


def _build_data(cfg: TrainConfig, data_root: str | Path, procs: _Processes,
                start_step: int) -> tuple[CutoutLibrary, StepBatchSampler, Iterator]:
    """The cutout library and the endless stream of this process's micro-batches from
    ``start_step`` on (``fp``, ``alpha``, ``bg`` on the training device)."""
    micro = cfg.micro_batch or cfg.batch // procs.world
    library = CutoutLibrary.load(data_root, cfg.data)
    atlas = CutoutAtlas.for_library(library, cfg.data, procs.device) if cfg.data.placement == "device" else None
    dataset = CompositeDataset(SampleMaker(library, cfg.data), cfg.seed)
    sampler = StepBatchSampler(start_step, cfg.batch, micro, procs.rank, procs.world, cfg.sizes, cfg.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=cfg.workers, pin_memory=procs.device.type == "cuda",
        worker_init_fn=_ignore_interrupts if cfg.workers else None,
        prefetch_factor=4 if cfg.workers else None, persistent_workers=bool(cfg.workers))
    return library, sampler, _on_device(loader, procs.device, atlas)


def _on_device(loader: Iterable, device: torch.device, atlas: CutoutAtlas | None) -> Iterator:
    """The loader's micro-batches moved to ``device``; with an atlas (device placement) the
    loader's layer tables, effects rows and backgrounds are made into the batch there."""
    for batch in loader:
        tensors = [t.to(device, non_blocking=True) for t in batch]
        yield tensors if atlas is None else finish_batch(atlas, *tensors)


def _validation_cases(cfg: TrainConfig, val_root: str | Path | None,
                      val_backgrounds: str | Path | None) -> list:
    """The fixed composites scored during training (paper, and scene where backgrounds exist)."""
    if not val_root:
        return []
    from .evaluate import make_cases
    if val_backgrounds and not Path(val_backgrounds).is_dir():
        raise DataError(f"{val_backgrounds}: no such folder of validation backgrounds")
    bg = Path(val_backgrounds) if val_backgrounds else Path(val_root).parent / "backgrounds"
    return list(make_cases(val_root, bg if bg.is_dir() else None, cfg.val_sizes,
                           ("paper", "scene") if bg.is_dir() else ("paper",),
                           seed=cfg.val_seed, limit=cfg.val_images))


def _train_step(cfg: TrainConfig, run: _Run, procs: _Processes, batches: Iterator, step: int, accum: int,
                lr: float) -> tuple[float, dict[str, float]]:
    """One optimisation step over ``accum`` micro-batches; returns (loss, its parts)."""
    cuda = procs.device.type == "cuda"
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    for group in run.opt.param_groups:
        group["lr"] = lr * group.get("lr_share", 1.0)  # checkpoints from before the share have none
    run.opt.zero_grad(set_to_none=True)
    parts: dict[str, float] = {}
    total = 0.0
    for j in range(accum):
        fp, alpha, bg = next(batches)
        g = torch.Generator(procs.device).manual_seed(mixed_seed(cfg.seed, step, procs.rank, j))
        x, target = compose_batch(fp, alpha, bg, cfg.data, g)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        sync = run.net.no_sync() if (procs.world > 1 and j < accum - 1) else nullcontext()
        with sync:
            with amp:
                pred = run.net(x)
            loss, p = alpha_loss(pred.float(), target, cfg.loss)
            (loss / accum).backward()
        total += float(loss.detach()) / accum
        for k, v in p.items():
            parts[k] = parts.get(k, 0.0) + v / accum
    if cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.optim.grad_clip)
    run.opt.step()
    if run.anchor is not None:
        _pull_to_anchor(run, cfg.optim.anchor)
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    return total, parts


class _Keeper:
    """What a run writes: logs, validation scores, ``best.pt`` (the best validation score
    over the whole run, resumes included) and ``last.pt``, all from the main process."""

    def __init__(self, cfg: TrainConfig, run: _Run, procs: _Processes, out_dir: Path, val_cases: list,
                 statistics: Callable[[], Iterable[torch.Tensor]] | None = None) -> None:
        self.cfg, self.run, self.procs, self.out_dir, self.val_cases = cfg, run, procs, out_dir, val_cases
        self.statistics = statistics  # the pictures BatchNorm statistics are refreshed from
        state = run.state
        self.metrics: dict[str, float] = dict(state.get("metrics", {})) if state else {}
        # The latest score is not the best one: seeding from it would let a worse model
        # overwrite best.pt.
        self.best = float(state.get("best_psnr", float("-inf"))) if state else float("-inf")
        if state and "best_psnr" not in state and (out_dir / "best.pt").exists():  # older checkpoints
            self.best = float(load_checkpoint(out_dir / "best.pt").get("metrics", {}).get("psnr", self.best))
        self.started = time.time()
        self.last: Path | None = None

    def elapsed(self) -> float:
        """Training wall time of the whole run, earlier sessions of a resumed run included."""
        return self.run.train_seconds + (time.time() - self.started)

    def snapshot(self, step: int) -> dict[str, Any]:
        cfg, run = self.cfg, self.run
        return {"name": f"{cfg.model.name}-step{step}", "arch": cfg.model.name, "arch_args": run.model.config,
                "work_size": cfg.model.work_size, "config": config_to_dict(cfg), "step": step,
                "samples_seen": step * cfg.batch, "model": run.scored.state_dict(),
                **({"train_model": run.model.state_dict()} if run.ema is not None else {}),
                **({"anchor": run.anchor} if run.anchor is not None else {}),
                "optimizer": run.opt.state_dict(), "metrics": self.metrics, "best_psnr": self.best,
                "train_seconds": self.elapsed(), "kirinuki_version": __version__, "world_size": self.procs.world}

    def after_step(self, step: int, lr: float, loss: float, parts: dict[str, float], rate: float) -> str | None:
        """Log, validate and checkpoint as the config says; returns a validation line or None."""
        cfg, out = self.cfg, self.out_dir
        line = None
        if step % cfg.log_every == 0:
            _append_csv(out / "train_log.csv", {"step": step, "seconds": round(self.elapsed(), 2), "lr": lr,
                                                "loss": loss, **parts, "images_per_s": round(rate, 2)})
        if self.val_cases and cfg.val_every and step % cfg.val_every == 0:
            if self.statistics is not None:  # the same pictures for the average and the raw weights
                pictures = list(self.statistics())
                for model in [self.run.scored] + ([self.run.model] if self.run.ema is not None else []):
                    refresh_batchnorm(model, pictures)
            self.metrics = _validate(self.run.scored, cfg, self.val_cases, self.procs.device)
            raw = {} if self.run.ema is None else {
                f"raw/{k}": v for k, v in _validate(self.run.model, cfg, self.val_cases, self.procs.device).items()}
            _append_csv(out / "val_log.csv", {"step": step, **{k: round(v, 5) for k, v in {**self.metrics, **raw}.items()}})
            line = f"validation PSNR {self.metrics['psnr']:.2f} IoU {self.metrics['iou']:.4f}"
            if self.metrics["psnr"] > self.best:
                self.best = self.metrics["psnr"]
                save_checkpoint(self.snapshot(step), out / "best.pt")
        if cfg.ckpt_every and step % cfg.ckpt_every == 0:
            self.save_last(step)
        return line

    def save_last(self, step: int) -> Path:
        self.last = self.out_dir / "last.pt"
        save_checkpoint(self.snapshot(step), self.last)
        return self.last


def train(cfg: TrainConfig, data_root: str | Path, out_dir: str | Path, *,
          resume: str | Path | None = None, init_from: str | Path | None = None,
          val_root: str | Path | None = None, val_backgrounds: str | Path | None = None,
          progress: bool = True) -> TrainResult:
    """Train ``cfg`` on the cutouts under ``data_root``; checkpoints go to ``out_dir``.

    resume: a checkpoint to continue from (weights, optimiser, step). init_from: a checkpoint
    (or a bundled model's name, such as ``"default"``) whose weights start a new run, e.g. a
    fine-tune. val_root: a folder of cutouts scored every ``cfg.val_every`` steps at
    ``cfg.val_sizes`` (never trained on). val_backgrounds: the scene backgrounds for that
    validation (never trained on either); by default ``backgrounds/`` beside ``val_root`` when
    it exists, else no scene condition.
    """
    procs = _setup_processes(cfg.device)
    out_dir = Path(out_dir)
    if procs.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    run = _build_model(cfg, procs, resume, init_from)
    library, sampler, batches = _build_data(cfg, data_root, procs, run.start_step)
    statistics = None
    if cfg.val_bn_refresh:
        if procs.world > 1:  # only the main process validates; synchronised BatchNorm would wait for the rest
            raise ValueError("val_bn_refresh: a single-process run only")
        statistics = functools.partial(statistics_pictures, cfg, library, cfg.val_bn_refresh, max(cfg.sizes),
                                       procs.device)
    keeper = _Keeper(cfg, run, procs, out_dir, _validation_cases(cfg, val_root, val_backgrounds) if procs.main else [],
                     statistics)
    if procs.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"kirinuki train: {cfg.model.name} ({count_parameters(run.model) / 1e6:.2f} M parameters) on "
              f"{procs.device} x{procs.world}, {len(library)} cutouts, {len(library.backgrounds)} backgrounds, "
              f"batch {cfg.batch} (micro {sampler.micro}), cutouts placed on the "
              f"{'device' if cfg.data.placement == 'device' else 'CPU'}, from step {run.start_step}",
              file=sys.stderr, flush=True)

    bar = Progress(cfg.steps or None, unit="steps", enabled=progress and procs.main, every=30.0,
                   initial=run.start_step)
    step = run.start_step
    t_log, seen_since_log = time.time(), 0
    run.net.train()
    _set_training(run.model, cfg.optim)
    with _Stopper() as stopper:
        while True:
            # --minutes is the budget of the whole run: a resumed run goes on where it stopped.
            spent = keeper.elapsed() / (cfg.minutes * 60) if cfg.minutes else 0.0
            stop = bool((cfg.steps and step >= cfg.steps) or stopper.requested or spent >= 1.0)
            if procs.world > 1:  # all processes stop at the same step, with the same lr
                flag = torch.tensor([float(stop), spent], device=procs.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop, spent = bool(flag[0].item()), float(flag[1].item())
            if stop:
                break
            lr = lr_at(step, cfg.optim, spent if (cfg.optim.decay_over_minutes and cfg.minutes) else None)
            loss, parts = _train_step(cfg, run, procs, batches, step, sampler.accum, lr)
            step += 1
            seen_since_log += cfg.batch
            if not procs.main:
                continue
            now = time.time()
            rate = seen_since_log / max(1e-9, now - t_log)
            bar.update(step, f"loss {loss:.4f} | {rate:.1f} img/s | lr {lr:.2e}")
            if step % cfg.log_every == 0:
                t_log, seen_since_log = now, 0
            line = keeper.after_step(step, lr, loss, parts, rate)
            if line:
                bar.update(step, line, force=True)
    bar.close()
    if procs.world > 1:
        # DDP syncs BatchNorm statistics from rank 0 before each forward; after the last one
        # every rank still holds its own, so align them to what rank 0 saves.
        for buf in run.model.buffers():
            dist.broadcast(buf, 0)
    if procs.main and (keeper.last is None or step % max(1, cfg.ckpt_every)):
        keeper.save_last(step)
    if procs.main:
        print(f"kirinuki train: stopped at step {step}; checkpoint {keeper.last}", file=sys.stderr, flush=True)
    if procs.world > 1:
        dist.barrier()
    return TrainResult(step, keeper.last if procs.main else None, keeper.metrics, run.scored)
