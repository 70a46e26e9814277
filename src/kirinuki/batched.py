"""The whole alpha path as batched tensor operations, for GPU throughput.

:class:`~kirinuki.inference.Matter` serves one picture at a time with numpy refinement, which
suits a CPU. On a GPU the same steps run on whole batches without leaving the device:

1. resize to the working size (bilinear with antialiasing, as Pillow does);
2. pad to the network's multiple (replicating the border), run the network (bf16 on CUDA);
3. guided upsampling: fit ``A``, ``b`` of the colour guided filter at the working size (box
   means by average pooling over windows clipped to the image), resize them bilinearly to
   full size, ``q = A . I + b``.

Same equations as :mod:`kirinuki.guided`, evaluated densely (a GPU gains nothing from
skipping the settled pixels). Needs PyTorch. The edge matting (:mod:`kirinuki.edge_matting`,
a sparse solve per picture) and the flat-background clearing (:mod:`kirinuki.flat_background`,
connected pieces of the picture) are left to the caller: they are per-picture steps on the CPU.

Where it is used, and why not in ``kirinuki cutout``: it measures what one GPU can do
(``benchmarks/gpu_throughput.py``) and is checked against the per-picture path with the
bundled model (``tests/test_inference.py``). The cutout command keeps the per-picture path
even on a GPU, because what it does per file on the CPU (decoding, colour decontamination,
PNG encoding: about 0.4 s for a 1024-pixel picture, against a few milliseconds of network)
sets its pace, not the network; a bulk job on GPUs runs one process per GPU instead
(``--distributed``). A caller that already holds decoded pictures as tensors on the GPU, such
as a dataset builder, is what this path is for.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from .guided import GUIDED_EPS, GUIDED_RADIUS
from .models import AlphaNet

__all__ = ["box_mean", "guided_upsample", "predict_alpha_batch"]


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over (2r+1)^2 windows clipped to the image; x is NxCxHxW."""
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def guided_upsample(alpha_lo: torch.Tensor, guide_lo: torch.Tensor, guide_hi: torch.Tensor,
                    radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS) -> torch.Tensor:
    """alpha_lo Nx1xhxw, guide_lo Nx3xhxw, guide_hi Nx3xHxW (floats in [0, 1]) -> Nx1xHxW."""
    mean_i = box_mean(guide_lo, radius)
    mean_p = box_mean(alpha_lo, radius)
    cov_ip = box_mean(guide_lo * alpha_lo, radius) - mean_i * mean_p
    n, _, h, w = guide_lo.shape
    var = torch.empty(n, h, w, 3, 3, device=guide_lo.device, dtype=guide_lo.dtype)
    for i in range(3):
        for j in range(i, 3):
            v = box_mean(guide_lo[:, i:i + 1] * guide_lo[:, j:j + 1], radius) - mean_i[:, i:i + 1] * mean_i[:, j:j + 1]
            var[..., i, j] = var[..., j, i] = v[:, 0]
    var = var + eps * torch.eye(3, device=var.device, dtype=var.dtype)
    a = torch.linalg.solve(var, cov_ip.permute(0, 2, 3, 1).unsqueeze(-1)).squeeze(-1).permute(0, 3, 1, 2)
    b = mean_p - (a * mean_i).sum(1, keepdim=True)
    coef = box_mean(torch.cat([a, b], 1), radius)
    coef = F.interpolate(coef, size=guide_hi.shape[-2:], mode="bilinear", align_corners=False)
    q = (coef[:, :3] * guide_hi).sum(1, keepdim=True) + coef[:, 3:]
    return q.clamp(0, 1)


@torch.inference_mode()
def predict_alpha_batch(model: AlphaNet, images: torch.Tensor, work_size: int | None) -> torch.Tensor:
    """Alpha of a batch of same-size pictures.

    images: Nx3xHxW uint8 (or float in [0, 1]) on the model's device. Returns Nx1xHxW float32
    in [0, 1] on that device.
    """
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    n, _, h, w = x.shape
    if work_size is None or max(h, w) == work_size:
        lo = x
    else:
        s = work_size / max(h, w)
        size = (max(1, round(h * s)), max(1, round(w * s)))
        lo = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    m = model.pad_multiple
    ph, pw = (-lo.shape[-2]) % m, (-lo.shape[-1]) % m
    padded = F.pad(lo, (0, pw, 0, ph), mode="replicate") if ph or pw else lo
    cuda = padded.device.type == "cuda"
    with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext():
        alpha_lo = model(padded.contiguous(memory_format=torch.channels_last) if cuda else padded)
    alpha_lo = alpha_lo.float()[..., : lo.shape[-2], : lo.shape[-1]]
    if lo.shape[-2:] == x.shape[-2:]:
        return alpha_lo
    if lo.shape[-2] > h:  # a small picture was enlarged: average back down
        return F.interpolate(alpha_lo, size=(h, w), mode="area")
    return guided_upsample(alpha_lo, lo, x)
