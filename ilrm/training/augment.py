"""Training-time variety: per-step view counts and image sizes, camera and photometric augmentation.

Everything here is a pure function of (seed, step) or (seed, sample), so a resumed run draws what
the uninterrupted run would have drawn.

- :func:`step_variant`: the number of context views and the image size of a whole step (a batch
  needs one shape; different steps see 2–8 views, square and 16:9 images).
- :func:`camera_jitter`: zoom and principal-point offset of one sample (exact: the ray caster renders
  with the jittered intrinsics, and the model is told them).
- :func:`photometric`: what real cameras do to colour. Exposure, white balance and tone-curve changes
  apply to every view of a sample alike (they change the scene's appearance, which the targets must
  follow); sensor noise and JPEG compression apply to the inputs only (the targets stay clean, so the
  model learns to see through them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Views
from ..data.example import Example
from ..errors import ILRMInputError

_STREAM_VARIANT, _STREAM_CAMERA, _STREAM_PHOTO = 101, 102, 103


def parse_size(text: str) -> tuple[int, int]:
    """``"256x448"`` → (256, 448)."""
    h, sep, w = text.lower().partition("x")
    if not sep or not h.isdigit() or not w.isdigit() or int(h) <= 0 or int(w) <= 0:
        raise ILRMInputError(f"image sizes are HxW, e.g. 256x448; got {text!r}")
    return int(h), int(w)


def step_variant(
    seed: int, step: int, view_choices: tuple[int, ...], sizes: tuple[tuple[int, int], ...]
) -> tuple[int, tuple[int, int]]:
    """(num_context, (height, width)) of training step ``step``: uniform over the choices."""
    rng = np.random.RandomState([seed % 2**32, _STREAM_VARIANT, step])
    return int(view_choices[rng.randint(len(view_choices))]), tuple(sizes[rng.randint(len(sizes))])


@dataclass(frozen=True)
class CameraJitter:
    """Ranges of the camera augmentation: zoom (log-uniform) and principal point (fraction of W, H)."""

    focal_range: tuple[float, float] = (0.8, 1.25)
    principal_range: float = 0.05


def camera_jitter(seed: int, key: int, jitter: CameraJitter) -> tuple[float, tuple[float, float]]:
    """(focal scale, (dx, dy) principal shift) for sample group ``key`` (samples of one scene
    visit share it, so they are still ray-cast together)."""
    rng = np.random.RandomState([seed % 2**32, _STREAM_CAMERA, key % 2**32])
    lo, hi = jitter.focal_range
    f = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    p = jitter.principal_range
    return f, (float(rng.uniform(-p, p)), float(rng.uniform(-p, p)))


# ---- photometric ---------------------------------------------------------------------------------

# The JPEG standard's (Annex K) quantisation tables, luminance and chrominance.
_Q_LUMA = torch.tensor([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=torch.float32).reshape(8, 8)
_Q_CHROMA = torch.full((8, 8), 99.0)
_Q_CHROMA[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99.0]])


def _dct_matrix(device: torch.device) -> Tensor:
    n = torch.arange(8, dtype=torch.float32, device=device)
    m = torch.cos((2 * n[None] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m  # orthonormal DCT-II: coefficients = M @ block @ M.T


def jpeg_like(images: Tensor, quality: Tensor) -> Tensor:
    """JPEG's lossy steps on (N, 3, H, W) images in [0, 1] (H, W multiples of 16), per-image quality
    (N,) in [1, 100]: YCbCr, 4:2:0 chroma subsampling, 8×8 DCT quantised with the standard tables
    scaled as libjpeg does. Not bit-exact to an encoder (no entropy coding, float rounding) but the
    same artefacts: blocking, ringing, colour bleeding."""
    N, _, H, W = images.shape
    dev = images.device
    x = images.float() * 255.0
    r, g, b = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    q = quality.float().clamp(1, 100).to(dev)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)[:, None, None]  # libjpeg's quality → table scale
    M = _dct_matrix(dev)

    def code(c: Tensor, table: Tensor) -> Tensor:  # c: (N, h, w)
        n, h, w = c.shape
        blocks = (c - 128).reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
        coef = M @ blocks @ M.T
        t = ((table.to(dev)[None] * scale + 50) / 100).floor().clamp(1, 255)[:, None, None]
        coef = torch.round(coef / t) * t
        return (M.T @ coef @ M).permute(0, 1, 3, 2, 4).reshape(n, h, w) + 128

    y = code(y, _Q_LUMA)
    sub = lambda c: F.avg_pool2d(c[:, None], 2)[:, 0]  # noqa: E731
    up = lambda c: F.interpolate(c[:, None], scale_factor=2, mode="bilinear", align_corners=False)[:, 0]  # noqa: E731
    cb, cr = up(code(sub(cb), _Q_CHROMA)) - 128, up(code(sub(cr), _Q_CHROMA)) - 128
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return (out / 255.0).clamp(0, 1).to(images.dtype)


@dataclass(frozen=True)
class Photometric:
    """Ranges of the photometric augmentation (see the module docstring)."""

    exposure: tuple[float, float] = (0.7, 1.4)  # gain, log-uniform
    white_balance: float = 0.12  # per-channel gain in [1 − wb, 1 + wb]
    gamma: tuple[float, float] = (0.8, 1.25)  # tone curve x^γ, log-uniform
    noise_prob: float = 0.5
    noise_std: tuple[float, float] = (0.005, 0.03)
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[float, float] = (40.0, 95.0)


def photometric(example: Example, seed: int, step: int, params: Photometric = Photometric()) -> Example:
    """A new Example with augmented images; cameras and scene ids unchanged. Deterministic in
    (seed, step) and the batch contents; runs on the images' device."""
    ctx, tgt = example.context, example.target
    B = ctx.images.shape[0]
    dev = ctx.images.device
    gen = torch.Generator(device="cpu").manual_seed(int(np.random.SeedSequence([seed % 2**32, _STREAM_PHOTO, step]).generate_state(1)[0]))

    def uniform(lo: float, hi: float, *shape: int) -> Tensor:
        return (lo + (hi - lo) * torch.rand(*shape, generator=gen)).to(dev)

    gain = uniform(math.log(params.exposure[0]), math.log(params.exposure[1]), B).exp()
    wb = uniform(1 - params.white_balance, 1 + params.white_balance, B, 3)
    gamma = uniform(math.log(params.gamma[0]), math.log(params.gamma[1]), B).exp()
    mult = (gain[:, None] * wb)[:, None, :, None, None]  # (B, 1, 3, 1, 1)
    g = gamma[:, None, None, None, None]

    def look(x: Tensor) -> Tensor:
        return (x.float() * mult).clamp(0, 1).pow(g).to(x.dtype)

    c_img, t_img = look(ctx.images), look(tgt.images)
    V = c_img.shape[1]
    noisy = torch.rand(B, generator=gen) < params.noise_prob
    std = uniform(*params.noise_std, B) * noisy.to(dev)
    # The noise field is large: draw it where the images are, from a generator seeded the same way.
    dev_gen = torch.Generator(device=dev).manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
    noise = torch.randn(c_img.shape, generator=dev_gen, device=dev)
    c_img = (c_img + noise * std[:, None, None, None, None]).clamp(0, 1)
    jpeg = (torch.rand(B, generator=gen) < params.jpeg_prob).to(dev)
    quality = uniform(*params.jpeg_quality, B)
    H, W = c_img.shape[-2:]
    if bool(jpeg.any()) and H % 16 == 0 and W % 16 == 0:
        coded = jpeg_like(c_img.flatten(0, 1), quality.repeat_interleave(V)).reshape(c_img.shape)
        c_img = torch.where(jpeg[:, None, None, None, None], coded, c_img)
    return Example(Views(c_img, ctx.intrinsics, ctx.c2w), Views(t_img, tgt.intrinsics, tgt.c2w), example.scene_id)
