"""Batched work on the training device (torch): the composite ``I = Fp + (1 - alpha) * B``
and what degrades it (blur, down-and-up rescaling, JPEG compression simulated exactly as the
codec's lossy steps do it: YCbCr, 4:2:0, 8x8 DCT, quantisation tables scaled by quality, and
noise), and the background effects drawn per sample and applied per batch (a scene's colour
jitter, soft drop shadows). The sample maker's workers and the device placement
(:mod:`kirinuki.placement`) both use them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import DataConfig

__all__ = ["compose_batch", "jpeg_simulate", "gaussian_blur", "jitter_colours", "cast_shadows"]


def jitter_colours(bg: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """Backgrounds ``N x 3 x H x W`` (float, levels 0-255) with their jitter rows ``N x 6``
    (:func:`draw_jitter`) applied: saturation about the pixel's grey, contrast about mid-grey,
    brightness, cast; clipped to 0-255. Workers and the training device both use it."""
    j = jitter.to(bg.device, bg.dtype)[:, :, None, None]
    grey = bg.mean(1, keepdim=True)
    bg = grey + (bg - grey) * j[:, 0:1]
    bg = (bg - 128) * j[:, 1:2] + 128
    bg = bg * j[:, 2:3] + j[:, 3:6]
    return bg.clamp(0, 255)


def cast_shadows(bg: torch.Tensor, alpha: torch.Tensor, shadows: torch.Tensor) -> torch.Tensor:
    """Soft drop shadows of the placed characters on the backgrounds: ``bg`` N x 3 x S x S
    float in [0, 1], ``alpha`` N x 1 x S x S, ``shadows`` N x 5 (on 0/1, then
    :func:`draw_shadow`'s dx, dy, sigma, strength). The alpha shifted by (dx, dy) with
    wrap-around, blurred, times the strength, darkens the background; rows with ``on`` = 0
    are left as they are."""
    on = torch.nonzero(shadows[:, 0] > 0.5).flatten()
    if on.numel() == 0:
        return bg
    bg = bg.clone()
    rows = shadows[on].cpu()
    shifted = torch.stack([torch.roll(alpha[i], (int(r[2]), int(r[1])), dims=(1, 2))
                           for i, r in zip(on.tolist(), rows)])
    shade = gaussian_blur(shifted, shadows[on, 3].to(bg.device)) * shadows[on, 4].to(bg.device)[:, None, None, None]
    bg[on] = bg[on] * (1.0 - shade)
    return bg


def _rand(n: int, g: torch.Generator, device: torch.device, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample Gaussian blur; x NxCxHxW, sigma N."""
    n, c, h, w = x.shape
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, K)
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)
    y = F.conv2d(y, k[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


# Annex K tables of the JPEG standard (luminance, chrominance), row-major 8x8.
_JPEG_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
              14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
              18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]


_JPEG_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32


def _jpeg_tables(quality: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """libjpeg's quality scaling of the standard tables; quality N in [1, 100] -> N x 8 x 8."""
    q = quality.clamp(1, 100).to(torch.float64)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)[:, None]
    out = []
    for base in (_JPEG_LUMA, _JPEG_CHROMA):
        t = torch.tensor(base, dtype=torch.float64, device=device)[None]
        out.append(torch.floor((t * scale + 50) / 100).clamp(1, 255).reshape(-1, 8, 8).float())
    return out[0], out[1]


def _dct_matrix(device: torch.device) -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.float().to(device)


def _dct_quantise(plane: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """plane N x 1 x H x W (H, W multiples of 8, values centred on 0); table N x 8 x 8."""
    n, _, h, w = plane.shape
    blocks = plane.reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)  # n, by, bx, 8, 8
    coef = d @ blocks @ d.T
    t = table[:, None, None]
    coef = torch.round(coef / t) * t
    blocks = d.T @ coef @ d
    return blocks.permute(0, 1, 3, 2, 4).reshape(n, 1, h, w)


def jpeg_simulate(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """What JPEG at ``quality`` does to an image, batched and on any device.

    x: Nx3xHxW float in [0, 1]; quality: N values in [1, 100]. The lossy steps of a baseline
    encoder and decoder: full-range YCbCr, 4:2:0 chroma averaging, 8x8 DCT, quantisation with
    the standard tables scaled as libjpeg scales them, and the inverse (chroma upsampled
    bilinearly, as libjpeg's "fancy upsampling" does). Only the lossless entropy coding is
    left out. Returns Nx3xHxW float in [0, 1] on the 1/255 grid.
    """
    n, _, h, w = x.shape
    ph, pw = (-h) % 16, (-w) % 16
    x = F.pad(x.float() * 255.0, (0, pw, 0, ph), mode="replicate")
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    qy, qc = _jpeg_tables(quality, x.device)
    d = _dct_matrix(x.device)
    y = _dct_quantise(y - 128, qy, d) + 128
    chroma = []
    for c in (cb, cr):
        small = F.avg_pool2d(c, 2)
        ph2, pw2 = (-small.shape[-2]) % 8, (-small.shape[-1]) % 8
        small = F.pad(small, (0, pw2, 0, ph2), mode="replicate")
        small = _dct_quantise(small - 128, qc, d)[..., : c.shape[-2] // 2, : c.shape[-1] // 2] + 128
        chroma.append(F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False))
    cb, cr = chroma
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    out = torch.cat([r, g, b], 1)[..., :h, :w]
    return torch.round(out.clamp(0, 255)) / 255.0


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()


def compose_batch(fp: torch.Tensor, alpha: torch.Tensor, bg: torch.Tensor, cfg: DataConfig,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite and degrade a batch on its device.

    fp, bg: Nx3xSxS; alpha: Nx1xSxS (on the training device), each uint8 (0-255) or float
    (0-1). Returns (image Nx3xSxS float32 in [0, 1], alpha Nx1xSxS float32 in [0, 1]). The
    alpha target is never degraded: the network must recover the exact matte from a
    degraded picture.
    """
    dev = fp.device
    a = _unit(alpha)
    x = _unit(fp) + (1.0 - a) * _unit(bg)
    n = x.shape[0]

    def chosen(p: float) -> torch.Tensor:
        return torch.nonzero(_rand(n, generator, dev) < p).flatten() if p > 0 else torch.empty(0, dtype=torch.long)

    idx = chosen(cfg.p_blur)
    if idx.numel():
        x[idx] = gaussian_blur(x[idx], _rand(idx.numel(), generator, dev, *cfg.blur_sigma))
    idx = chosen(cfg.p_rescale)
    if idx.numel():
        factors = _rand(idx.numel(), generator, dev, *cfg.rescale_factor).tolist()
        s = x.shape[-1]
        for i, f in zip(idx.tolist(), factors):
            small = F.interpolate(x[i:i + 1], size=(max(8, round(s * f)),) * 2, mode="area")
            x[i:i + 1] = F.interpolate(small, size=(s, s), mode="bilinear", align_corners=False)
    idx = chosen(cfg.p_noise)
    if idx.numel():
        std = _rand(idx.numel(), generator, dev, 0.0, cfg.noise_std)[:, None, None, None]
        x[idx] = x[idx] + torch.randn(x[idx].shape, generator=generator, device=dev) * std
    x = x.clamp(0, 1)
    idx = chosen(cfg.p_jpeg)  # last, as a saved file would be
    if idx.numel():
        q = torch.floor(_rand(idx.numel(), generator, dev, cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        x[idx] = jpeg_simulate(x[idx], q)
    return x, a
