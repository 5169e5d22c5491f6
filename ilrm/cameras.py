"""Posed views, per-pixel rays, pose normalisation and intrinsics-aware resizing.

One convention everywhere: OpenCV camera axes (x right, y down, z forward), camera-to-world
matrices ``c2w``, intrinsics ``K`` in pixels with continuous pixel coordinates (pixel ``(x, y)``
covers ``[x, x+1) × [y, y+1)``, its centre is ``(x + 0.5, y + 0.5)``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ILRMInputError


@dataclass
class Views:
    """A batch of posed images.

    images: (B, V, 3, H, W) float in [0, 1]
    intrinsics: (B, V, 3, 3) pixels
    c2w: (B, V, 4, 4) camera-to-world, OpenCV axes
    """

    images: Tensor
    intrinsics: Tensor
    c2w: Tensor

    @property
    def batch_size(self) -> int:
        return self.images.shape[0]

    @property
    def num_views(self) -> int:
        return self.images.shape[1]

    @property
    def height(self) -> int:
        return self.images.shape[-2]

    @property
    def width(self) -> int:
        return self.images.shape[-1]

    def to(self, *args, **kwargs) -> Views:
        return Views(*(getattr(self, f.name).to(*args, **kwargs) for f in fields(self)))

    def select(self, index: Tensor | list[int] | slice) -> Views:
        """Keep the views ``index`` (along dim 1)."""
        return Views(self.images[:, index], self.intrinsics[:, index], self.c2w[:, index])

    def validate(self) -> None:
        """Raise :class:`ILRMInputError` if the shapes do not agree."""
        im, K, c2w = self.images, self.intrinsics, self.c2w
        if im.ndim != 5 or im.shape[2] != 3:
            raise ILRMInputError(f"images must be (B, V, 3, H, W), got {tuple(im.shape)}")
        B, V = im.shape[:2]
        if tuple(K.shape) != (B, V, 3, 3):
            raise ILRMInputError(f"intrinsics must be (B, V, 3, 3) = {(B, V, 3, 3)}, got {tuple(K.shape)}")
        if tuple(c2w.shape) != (B, V, 4, 4):
            raise ILRMInputError(f"c2w must be (B, V, 4, 4) = {(B, V, 4, 4)}, got {tuple(c2w.shape)}")


def pixel_rays(K: Tensor, c2w: Tensor, height: int, width: int, offset: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """World-space rays through pixel centres.

    K: (..., 3, 3) pixels; c2w: (..., 4, 4).
    offset: optional (..., H, W, 2) shift of each pixel centre in pixels (x, y).
    Returns origins and unit directions, each (..., H, W, 3).
    """
    # Rays are geometry: keep them in fp32 even under autocast.
    with torch.autocast(device_type=c2w.device.type, enabled=False):
        K, c2w = K.float(), c2w.float()
        device = c2w.device
        ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5
        xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5
        y, x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W)
        lead = K.shape[:-2]
        x = x.expand(*lead, height, width)
        y = y.expand(*lead, height, width)
        if offset is not None:
            x = x + offset[..., 0].float()
            y = y + offset[..., 1].float()
        fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]
        cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
        d_cam = F.normalize(torch.stack([(x - cx) / fx, (y - cy) / fy, torch.ones_like(x)], dim=-1), dim=-1)
        # Elementwise rather than a batched 3×3 matmul: 16.6 → 2.3 ms per 32-view 544×960 forward on an
        # H200 (docs/results/gpu_benchmark.md), with the same result.
        d = (c2w[..., None, None, :3, :3] * d_cam[..., None, :]).sum(-1)
        o = c2w[..., None, None, :3, 3].expand_as(d)
    return o, d


def ray_features(o: Tensor, d: Tensor, names: tuple[str, ...], images: Tensor | None = None) -> Tensor:
    """Stack per-pixel features in the order ``names`` (each 3 channels), channels last.

    o, d: (..., H, W, 3); images: (..., 3, H, W) in [0, 1] (needed for "rgb").
    Returns (..., H, W, 3 * len(names)).
    """
    parts = []
    for name in names:
        if name == "o":
            parts.append(o)
        elif name == "d":
            parts.append(d)
        elif name == "m":
            parts.append(torch.linalg.cross(o, d, dim=-1))
        elif name == "rgb":
            if images is None:
                raise ValueError("'rgb' features need images")
            parts.append(images.movedim(-3, -1).to(o.dtype) * 2 - 1)
        else:
            raise ValueError(f"unknown feature {name!r}")
    return torch.cat(parts, dim=-1)


def scale_intrinsics(K: Tensor, sx: float, sy: float) -> Tensor:
    """Intrinsics after resizing the image by (sx, sy) (continuous pixel coordinates)."""
    K = K.clone()
    K[..., 0, :] *= sx
    K[..., 1, :] *= sy
    return K


# ---- pose normalisation ------------------------------------------------------------------


def average_pose(c2w: Tensor) -> Tensor:
    """The mean camera of (..., V, 4, 4) c2w: mean position, mean forward, mean down made orthogonal."""
    pos = c2w[..., :3, 3].mean(-2)
    forward = F.normalize(c2w[..., :3, 2].mean(-2), dim=-1)
    down = c2w[..., :3, 1].mean(-2)
    down = F.normalize(down - (down * forward).sum(-1, keepdim=True) * forward, dim=-1)
    right = torch.linalg.cross(down, forward, dim=-1)
    out = torch.zeros(*c2w.shape[:-3], 4, 4, dtype=c2w.dtype, device=c2w.device)
    out[..., :3, 0], out[..., :3, 1], out[..., :3, 2], out[..., :3, 3] = right, down, forward, pos
    out[..., 3, 3] = 1
    return out


def normalize_poses(
    context_c2w: Tensor, target_c2w: Tensor | None = None, *, scale_before_recentre: bool = False
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Express poses in the frame of the average context camera, scaled to unit extent.

    context_c2w: (..., Vc, 4, 4); target_c2w: (..., Vt, 4, 4) or None.
    ``scale_before_recentre`` reproduces the RE10K code's quirk (scale from the raw context
    translations); the default takes it after re-centring, as the DL3DV code does.
    Returns (context, target, transform) with ``new_c2w = transform @ old_c2w`` where the
    transform also includes the scale (applied to translations), shape (..., 4, 4).
    """
    inv = torch.linalg.inv(average_pose(context_c2w))
    ctx = inv.unsqueeze(-3) @ context_c2w
    ref = context_c2w if scale_before_recentre else ctx
    scale = ref[..., :3, 3].abs().flatten(-2).amax(-1).clamp_min(1e-8)  # (...)
    s = (1.0 / scale)[..., None, None]
    ctx = _scale_translation(ctx, s)
    tgt = None
    if target_c2w is not None:
        tgt = _scale_translation(inv.unsqueeze(-3) @ target_c2w, s)
    transform = inv.clone()
    transform[..., :3, :] = transform[..., :3, :] * s
    return ctx, tgt, transform


def _scale_translation(c2w: Tensor, s: Tensor) -> Tensor:
    out = c2w.clone()
    out[..., :3, 3] = out[..., :3, 3] * s
    return out


# ---- resizing ----------------------------------------------------------------------------


def resize_crop_params(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Resize that covers ``out_hw`` keeping aspect, then centre crop.

    Returns ((resized_h, resized_w), (crop_top, crop_left)); e.g. 360×640 → 256×455, crop (0, 99).
    """
    (h, w), (oh, ow) = in_hw, out_hw
    s = max(oh / h, ow / w)
    rh, rw = max(oh, round(h * s)), max(ow, round(w * s))
    return (rh, rw), ((rh - oh) // 2, (rw - ow) // 2)


def resize_crop_intrinsics(K: Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Tensor:
    """Intrinsics matching :func:`resize_and_center_crop` (``K`` for an image of size ``in_hw``)."""
    (rh, rw), (top, left) = resize_crop_params(in_hw, out_hw)
    K = scale_intrinsics(K, rw / in_hw[1], rh / in_hw[0])
    K[..., 0, 2] -= left
    K[..., 1, 2] -= top
    return K


def resize_and_center_crop(images: Tensor, K: Tensor, out_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Resize (antialiased bicubic) to cover ``out_hw``, centre-crop, and update intrinsics.

    images: (..., 3, H, W) float; K: (..., 3, 3). Data loaders that must match a published protocol
    resize with PIL Lanczos instead (see ``resize_crop_pil``).
    """
    in_hw = (images.shape[-2], images.shape[-1])
    (rh, rw), (top, left) = resize_crop_params(in_hw, out_hw)
    lead = images.shape[:-3]
    x = images.reshape(-1, *images.shape[-3:])
    if (rh, rw) != in_hw:
        x = F.interpolate(x, size=(rh, rw), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    x = x[..., top : top + out_hw[0], left : left + out_hw[1]]
    return x.reshape(*lead, *x.shape[-3:]), resize_crop_intrinsics(K, in_hw, out_hw)


def resize_crop_pil(image, out_hw: tuple[int, int]):
    """PIL image → PIL image resized with Lanczos to cover ``out_hw`` and centre-cropped (RE10K protocol)."""
    from PIL import Image

    (rh, rw), (top, left) = resize_crop_params((image.height, image.width), out_hw)
    if (rh, rw) != (image.height, image.width):
        image = image.resize((rw, rh), Image.LANCZOS)
    return image.crop((left, top, left + out_hw[1], top + out_hw[0]))


def check_image_size(height: int, width: int, multiple: int) -> None:
    """Raise a ValueError naming usable sizes when H or W is not a multiple of ``multiple``."""
    if height % multiple or width % multiple or height <= 0 or width <= 0:
        def near(n: int) -> str:
            lo = max(multiple, n // multiple * multiple)
            return f"{lo}" if lo == n else f"{lo} or {lo + multiple}"
        raise ILRMInputError(
            f"image size {height}×{width} is not usable: height and width must be positive multiples of "
            f"{multiple} (patch size × viewpoint factor); try {near(height)} × {near(width)}, "
            "e.g. with ilrm.cameras.resize_and_center_crop"
        )


# Camera paths for videos live in their own module; re-exported as part of `ilrm.cameras`.
