"""Exact ray casting of textured rooms in torch (ground truth for the procedural scenes).

:func:`render_views` casts one ray per pixel (or s×s with ``supersample=s``), intersects it with the
room (:mod:`.geometry`), looks its texture up with trilinear mip-mapping (``grid_sample`` on a padded
texture atlas per mip level, so distant textures do not alias) and shades it (:mod:`.shading`).
Antialiasing of geometric edges is by supersampling (s×s rays per pixel, averaged); the default 1
keeps it fast, and the mip-mapping already removes texture aliasing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...cameras import pixel_rays, scale_intrinsics
from .geometry import RoomGeometry, intersect, surface_points
from .shading import light_visibility, shade, shade_extended, shadow_casters


def build_mip_atlas(textures: Tensor, min_size: int = 4) -> list[Tensor]:
    """Mip pyramid of a texture stack as side-by-side atlases with a 1-texel wrap-around border.

    textures: (S, 3, T, T), T a power of two. Returns one (1, 3, T_l + 2, S · (T_l + 2)) atlas per
    level (T_l = T, T/2, ..., min_size); the circular border makes bilinear lookups wrap exactly.
    """
    atlases = []
    level = textures
    while True:
        s, c, t, _ = level.shape
        padded = F.pad(level, (1, 1, 1, 1), mode="circular")
        atlases.append(padded.permute(1, 2, 0, 3).reshape(1, c, t + 2, s * (t + 2)))
        if t <= min_size or t % 2:
            return atlases
        level = F.avg_pool2d(level, 2)


def _sample_level(atlas: Tensor, tex: Tensor, uv: Tensor) -> Tensor:
    """Bilinear lookups in one atlas level: tex (M,), uv (M, 2) in repeats → (M, 3)."""
    _, _, h, w = atlas.shape
    t = h - 2
    frac = torch.remainder(uv, 1.0)
    x = tex.to(uv.dtype) * (t + 2) + 1 + frac[:, 0] * t
    y = 1 + frac[:, 1] * t
    grid = torch.stack([2 * x / w - 1, 2 * y / h - 1], -1).view(1, 1, -1, 2)
    out = F.grid_sample(atlas, grid.to(atlas.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].t()


def sample_textures(atlases: list[Tensor], tex: Tensor, uv: Tensor, lod: Tensor) -> Tensor:
    """Trilinear (mip-mapped) texture lookup: tex (M,), uv (M, 2), lod (M,) level ≥ 0 → (M, 3)."""
    lod = lod.clamp(0, len(atlases) - 1)
    lo = lod.floor().long()
    w = lod - lo
    out = torch.zeros(len(tex), 3, dtype=uv.dtype, device=uv.device)
    for level, atlas in enumerate(atlases):
        weight = torch.where(lo == level, 1 - w, torch.where(lo + 1 == level, w, torch.zeros_like(w)))
        sel = (weight > 0).nonzero()[:, 0]
        if len(sel):
            out[sel] += weight[sel, None] * _sample_level(atlas, tex[sel], uv[sel])
    return out


def render_rays(
    geom: RoomGeometry,
    atlases: list[Tensor],
    o: Tensor,
    d: Tensor,
    pixel_angle: Tensor,
    casters: RoomGeometry | None = None,
) -> tuple[Tensor, Tensor]:
    """Colour (N, 3) and hit distance t (N,) of rays o, d (N, 3); pixel_angle (N,) radians per pixel
    (sets the texture mip level from the pixel footprint). casters: :func:`shadow_casters` of geom
    (lighting 2 with shadows; computed here when not given)."""
    hits, face = intersect(geom, o, d)
    pts = surface_points(geom, o, d, hits, face)
    cos = (pts.normal * d).sum(-1).abs().clamp_min(0.05)
    # Footprint of a pixel on the surface (geometric mean of its two axes) in texels.
    footprint = hits.t * pixel_angle / torch.sqrt(cos)
    lod = torch.log2((footprint / pts.texel).clamp_min(1e-6))
    albedo = sample_textures(atlases, pts.tex, pts.uv, lod)
    if geom.lighting == 1:
        return shade(geom, pts, albedo), hits.t
    vis0 = None
    if geom.shadows and len(geom.lights_pos):
        casters = casters if casters is not None else shadow_casters(geom)
        vis0 = light_visibility(casters, pts.p, pts.normal, geom.lights_pos[0])
    return shade_extended(geom, pts, albedo, d, vis0), hits.t


def render_views(
    geom: RoomGeometry,
    K: Tensor,
    c2w: Tensor,
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    supersample: int = 1,
    chunk_elements: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Ray-cast V views of a room.

    K: (V, 3, 3) or (3, 3) pixel intrinsics; c2w: (V, 4, 4) OpenCV camera-to-world.
    device: where to compute (default: c2w's device). supersample: s casts s×s rays per pixel and
    box-filters them (antialiased edges; cost ∝ s²). chunk_elements bounds rays × primitives per chunk
    (default 2²² on the CPU, 2²⁶ on an accelerator, where launches rather than memory set the cost).
    Returns images (V, 3, H, W) in [0, 1] and z-depth (V, H, W) in world units (OpenCV: distance
    along the camera's z axis; the mean over sub-samples when supersampling), both float32 on device.
    """
    device = torch.device(device) if device is not None else c2w.device
    geom = geom.to(device)
    c2w = c2w.to(device=device, dtype=torch.float32)
    views = c2w.shape[0]
    K = K.to(device=device, dtype=torch.float32).expand(views, 3, 3)
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    hs, ws = height * s, width * s
    Ks = scale_intrinsics(K, s, s) if s > 1 else K
    o, d = pixel_rays(Ks, c2w, hs, ws)  # (V, hs, ws, 3)
    forward = c2w[:, :3, 2]
    cos_axis = (d * forward[:, None, None, :]).sum(-1)  # ray direction · optical axis, (V, hs, ws)
    pixel_angle = (1.0 / Ks[:, 0, 0])[:, None, None].expand(views, hs, ws)
    o, d, pixel_angle = o.reshape(-1, 3), d.reshape(-1, 3), pixel_angle.reshape(-1)
    tex = geom.textures.float() / 255.0 if geom.textures.dtype == torch.uint8 else geom.textures.float()
    atlases = build_mip_atlas(tex)
    n = o.shape[0]
    if chunk_elements is None:
        chunk_elements = 1 << (22 if device.type == "cpu" else 26)
    step = max(1024, chunk_elements // geom.num_primitives)
    rgb = torch.empty(n, 3, device=device)
    t = torch.empty(n, device=device)
    casters = shadow_casters(geom) if geom.lighting != 1 and geom.shadows else None
    for i in range(0, n, step):
        rgb[i : i + step], t[i : i + step] = render_rays(
            geom, atlases, o[i : i + step], d[i : i + step], pixel_angle[i : i + step], casters
        )
    images = rgb.view(views, hs, ws, 3).permute(0, 3, 1, 2)
    depth = t.view(views, hs, ws) * cos_axis
    if s > 1:
        images = F.avg_pool2d(images, s)
        depth = F.avg_pool2d(depth[:, None], s)[:, 0]
    return images.contiguous(), depth.contiguous()
