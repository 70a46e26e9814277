"""The predictor: RGB image in, alpha matte out, at any size.

One code path serves the command line, the Python API, ``kirinuki evaluate`` and the web
app: :class:`Matter` loads a model once (the bundled ONNX model by default, any exported
ONNX file, or a training checkpoint through PyTorch) and :meth:`Matter.predict_alpha` does

1. resize so the longest side is the model's working size (``work_size``; the network was
   trained at that scale, so every input size looks the same to it);
2. pad to the network's size multiple (replicating the border) and run it;
3. re-solve the band around the network's outline by closed-form matting against the
   picture's colours, with the network's alpha as a prior (:mod:`kirinuki.edge_matting`);
4. bring the alpha back to full size: guided upsampling for larger inputs (edges follow the
   full-resolution picture), area averaging for smaller ones; with ``precise_edges``, the
   outline is matted again at full size; then, on a flat background, the page's own pixels
   are made transparent (:mod:`kirinuki.flat_background`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from .bundled import bundled_file, bundled_model_info, bundled_slot, bundled_slots
from .config import parse_work_size
from .edge_matting import matte_edges
from .errors import ModelError
from .flat_background import clear_flat_background
from .guided import guided_upsample
from .imaging import as_rgb_array, longest_side, to_float
from .regions import MAX_POINTS, Edit, apply_edits, hold_edits, kept_regions, ordered_edits, region_consensus
from .runtimes import module_runner, onnx_runner
from .settling import settle

__all__ = ["Matter", "ModelInfo", "SWITCHES", "prepare_input", "to_network_input", "restore_size", "check_points"]

#: The stages around the network that a :class:`Matter` switches on or off.
SWITCHES = ("tta", "regions", "flat_background", "edge_matting", "precise_edges", "settle")


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is: registry name, its arguments, working size and provenance."""

    name: str
    arch: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    work_size: int | None = None
    pad_multiple: int = 1
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        ws = self.work_size or "native"
        return f"{self.name} ({self.arch}, working size {ws})"


def prepare_input(rgb: np.ndarray, work_size: int | None) -> np.ndarray:
    """HxWx3 uint8 -> hxwx3 float32 in [0, 1] at the working size (longest side = work_size)."""
    h, w = rgb.shape[:2]
    if work_size is None or max(h, w) == work_size:
        return to_float(rgb)
    size = longest_side((w, h), work_size)
    return to_float(np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR)))


def to_network_input(guide: np.ndarray, multiple: int) -> np.ndarray:
    """hxwx3 float32 -> 1x3xHpxWp float32, padded at the bottom and right by replicating the
    border up to a multiple of ``multiple`` (as the network itself pads)."""
    h, w = guide.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        guide = np.pad(guide, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return np.ascontiguousarray(guide.transpose(2, 0, 1)[None])


def restore_size(alpha_lo: np.ndarray, guide_lo: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """The working-size alpha -> full size HxW float32 in [0, 1] (guided when enlarging)."""
    h, w = rgb.shape[:2]
    if alpha_lo.shape == (h, w):
        return alpha_lo
    if alpha_lo.shape[0] < h:
        return guided_upsample(alpha_lo, guide_lo, rgb)
    im = Image.fromarray(alpha_lo.astype(np.float32), "F")
    resample = Image.Resampling.BOX if alpha_lo.shape[0] > h else Image.Resampling.BILINEAR
    return np.clip(np.asarray(im.resize((w, h), resample)), 0.0, 1.0)


class Matter:
    """A loaded alpha model, reused across calls.

    model: None (the bundled default), the name of a bundled model (``default``; the former
    ``quality`` finds it too), a path to an ``.onnx`` file (ONNX Runtime, no
    PyTorch needed) or to a training checkpoint ``.pt`` (PyTorch). device: ``auto``, ``cpu``
    or ``cuda``. threads: CPU threads (None: the runtime's default). work_size: override the
    model's working size (an int, or ``"native"`` to run at the input's own size). tta:
    test-time flip, the mean of the predictions for the picture and its mirror image (twice
    the network time; see docs/ablation.md for what it gains). regions: region consensus,
    each closed region of the picture made to agree with its confident majority (see
    :func:`kirinuki.regions.region_consensus` and docs/ablation.md). flat_background: on a
    picture with a flat background, make the page's own pixels transparent and the edge pixels
    beside it follow their colour (:mod:`kirinuki.flat_background`; on by default, a no-op
    elsewhere). edge_matting: re-solve the few pixels around the network's outline from the
    picture's colours (:mod:`kirinuki.edge_matting`; on by default). precise_edges: do it
    again on the full-size picture after the upsampling (slower: its cost grows with the
    picture; docs/ablation.md). settle: make the network's alpha exactly 0 or 1 where it is
    within 0.03 of either and away from the outline (:mod:`kirinuki.settling`; off by
    default).
    """

    def __init__(self, model: str | os.PathLike | None = None, *, device: str = "auto",
                 threads: int | None = None, work_size: int | str | None = None,
                 tta: bool = False, regions: bool = False, flat_background: bool = True,
                 edge_matting: bool = True, precise_edges: bool = False, settle: bool = False) -> None:
        slot = bundled_slot(model)
        if slot is not None:
            path = bundled_file(f"{slot}.onnx")
            manifest = bundled_model_info(slot)
        else:
            path = Path(model)
            manifest = {}
            if not path.is_file():
                raise ModelError(f"{path}: no such model file, and no bundled model of that name "
                                 f"(bundled: {', '.join(bundled_slots())})")
            if path.suffix.lower() not in (".onnx", ".pt", ".pth"):
                raise ModelError(f"{path}: not a model file (an exported .onnx file or a training checkpoint .pt)")
        if path.suffix.lower() == ".onnx":
            self._run, meta = onnx_runner(path, device, threads)
            info = ModelInfo(name=manifest.get("name", meta.get("name", path.stem)),
                             arch=meta.get("arch", "unknown"), arch_args=meta.get("arch_args", {}),
                             work_size=meta.get("work_size"), pad_multiple=meta.get("pad_multiple", 1),
                             source=str(path),
                             extra={"version": manifest.get("version", meta.get("version"))})
        else:
            from .checkpoint import load_checkpoint, model_from_checkpoint

            try:
                state = load_checkpoint(path)
            except ValueError as exc:
                raise ModelError(str(exc)) from None
            module = model_from_checkpoint(state)
            self._run = module_runner(module, device, threads)
            info = ModelInfo(name=state.get("name", path.stem), arch=state["arch"],
                             arch_args=state["arch_args"], work_size=state.get("work_size"),
                             pad_multiple=module.pad_multiple,
                             source=str(path), extra={"step": state.get("step")})
        self.info = _with_work_size(info, work_size)
        self._switch(tta=tta, regions=regions, flat_background=flat_background, edge_matting=edge_matting,
                     precise_edges=precise_edges, settle=settle)

    def _switch(self, *, tta: bool = False, regions: bool = False, flat_background: bool = False,
                edge_matting: bool = False, precise_edges: bool = False, settle: bool = False) -> None:
        """Set the stages around the network (all off unless given; see the class docstring)."""
        self.tta = tta
        self.regions = regions
        self.flat_background = flat_background
        self.edge_matting = edge_matting
        self.precise_edges = precise_edges
        self.settle = settle

    @classmethod
    def from_module(cls, module: Any, work_size: int | None, *, device: str = "cpu",
                    name: str = "in-memory") -> "Matter":
        """Wrap a live ``AlphaNet`` (used by training's validation, which scores the network
        alone: no test-time flip, region consensus, edge matting or flat-background clearing)."""
        self = cls.__new__(cls)
        self._run = module_runner(module, device, None)
        self.info = ModelInfo(name=name, arch=type(module).__name__, arch_args=dict(module.config),
                              work_size=work_size, pad_multiple=module.pad_multiple)
        self._switch()
        return self

    def predict_alpha(self, image: "str | os.PathLike | Image.Image | np.ndarray",
                      keep: Sequence[tuple[int, int]] = (), drop: Sequence[tuple[int, int]] = (),
                      edits: Sequence[Edit] = ()) -> np.ndarray:
        """Alpha matte of ``image`` (path, Pillow image, or HxWx3 uint8 array).

        keep, drop: points ``(x, y)`` in the image's pixels; the whole region under each keep
        point becomes opaque and under each drop point transparent (see
        :mod:`kirinuki.regions`), with its border refined like every other edge. edits:
        ``("keep" | "drop", x, y)`` clicks applied in their order after those, so that the
        last click on a region decides it. Returns HxW float32 in [0, 1], the size of the image.
        """
        rgb = as_rgb_array(image)
        h, w = rgb.shape[:2]
        clicks = ordered_edits(keep, drop, edits)
        check_points([(x, y) for _, x, y in clicks], w, h)
        guide = prepare_input(rgb, self.info.work_size)
        alpha = self._network_alpha(guide)
        if self.tta:
            alpha = 0.5 * (alpha + self._network_alpha(guide[:, ::-1])[:, ::-1])
        if self.settle:
            alpha = settle(alpha)
        if self.regions:
            alpha = region_consensus(alpha, guide)
        if self.edge_matting:
            alpha = matte_edges(guide, alpha)
        marks = None
        if clicks:
            gh, gw = guide.shape[:2]
            scaled = [(mode, min(gw - 1, int(x * gw / w)), min(gh - 1, int(y * gh / h))) for mode, x, y in clicks]
            alpha, marks = apply_edits(alpha, guide, scaled)
        alpha = restore_size(alpha, guide, rgb)
        if self.precise_edges and alpha.shape != guide.shape[:2]:
            alpha = matte_edges(rgb, alpha)
        if self.flat_background:
            alpha = clear_flat_background(rgb, alpha, None if marks is None else kept_regions(marks, alpha.shape))
        # The person's keep and drop clicks have the last word.
        return alpha if marks is None else hold_edits(alpha, marks)

    def _network_alpha(self, guide: np.ndarray) -> np.ndarray:
        """The network's alpha for an hxwx3 float32 picture at the working size, hxw float32."""
        x = to_network_input(guide, self.info.pad_multiple)
        return self._run(x)[0, 0, : guide.shape[0], : guide.shape[1]].astype(np.float32)


def check_points(points: Sequence[tuple[int, int]], width: int, height: int) -> None:
    """Keep and drop points must lie in a ``width`` x ``height`` picture, at most MAX_POINTS."""
    if len(points) > MAX_POINTS:
        raise ValueError(f"{len(points)} keep and drop points: at most {MAX_POINTS}")
    for x, y in points:
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f"point {x},{y} is outside the {width}x{height} picture")


def _with_work_size(info: ModelInfo, work_size: int | str | None) -> ModelInfo:
    if work_size is None:
        return info
    return dataclasses.replace(info, work_size=parse_work_size(work_size))
