"""Exact ray casting of textured rooms in torch (ground truth for the procedural scenes).

A :class:`RoomGeometry` is the inside of an axis-aligned room (seen from within) plus boxes (rotated
about the vertical axis), spheres and vertical capped cylinders. World axes: z up, the floor at
``z = room_min[2]``. Every surface has a texture index, a tile size in metres (so textures have a
real-world scale) and a texture offset. Rays are intersected analytically with every primitive at
once (batched over rays × primitives, chunked to bound memory), the nearest hit is kept, its texture
is looked up with trilinear mip-mapping (``grid_sample`` on a padded texture atlas per mip level, so
distant textures do not alias) and shaded with a Lambertian model: ambient + a point light under the
ceiling + a directional fill light, no shadows.

Antialiasing of geometric edges is by supersampling (``supersample=s`` casts s×s rays per pixel and
averages); the default 1 keeps it fast, and the mip-mapping already removes texture aliasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import pixel_rays, scale_intrinsics

HIT_EPS = 1e-4  # metres: hits closer than this along the ray are ignored (self-intersection guard)
KIND_ROOM, KIND_BOX, KIND_SPHERE, KIND_CYLINDER = 0, 1, 2, 3


@dataclass
class RoomGeometry:
    """A textured room; all tensors float32 (indices int64) on one device.

    room_min, room_max: (3,) corners of the room (z up). Room faces are ordered
    (-x, +x, -y, +y, floor, ceiling); room_tex (6,), room_tile (6, 2), room_uvoff (6, 2).
    box_center (Nb, 3), box_half (Nb, 3) half extents in the box frame, box_yaw (Nb,) radians about +z.
    sphere_center (Ns, 3), sphere_radius (Ns,).
    cyl_center (Nc, 3) (mid-height point), cyl_radius (Nc,), cyl_half_height (Nc,) (axis along z).
    ``*_tex`` (N,) index into ``textures``; ``*_tile`` (N, 2) metres per texture repeat along (u, v);
    ``*_uvoff`` (N, 2) texture offset in repeats (0.5 centres a texture shown once).
    textures: (S, 3, T, T), float in [0, 1] or uint8 (0-255; 4× smaller to store and send).
    Lighting: light_pos (3,) point light, light_power, light_range (metres; fall-off 1/(1+(r/range)²)),
    fill_dir (3,) unit direction the fill light travels, fill_power, ambient.
    """

    room_min: Tensor
    room_max: Tensor
    room_tex: Tensor
    room_tile: Tensor
    room_uvoff: Tensor
    box_center: Tensor
    box_half: Tensor
    box_yaw: Tensor
    box_tex: Tensor
    box_tile: Tensor
    box_uvoff: Tensor
    sphere_center: Tensor
    sphere_radius: Tensor
    sphere_tex: Tensor
    sphere_tile: Tensor
    sphere_uvoff: Tensor
    cyl_center: Tensor
    cyl_radius: Tensor
    cyl_half_height: Tensor
    cyl_tex: Tensor
    cyl_tile: Tensor
    cyl_uvoff: Tensor
    textures: Tensor
    light_pos: Tensor
    light_power: float
    light_range: float
    fill_dir: Tensor
    fill_power: float
    ambient: float

    def to(self, device: torch.device | str) -> RoomGeometry:
        vals = {}
        for f in fields(self):
            v = getattr(self, f.name)
            vals[f.name] = v.to(device) if isinstance(v, Tensor) else v
        return RoomGeometry(**vals)

    @property
    def num_primitives(self) -> int:
        """Room + boxes + spheres + cylinders."""
        return 1 + len(self.box_yaw) + len(self.sphere_radius) + len(self.cyl_radius)


@dataclass
class Hits:
    """Nearest hits of N rays: t (N,) distance along the unit ray, kind (N,) KIND_*, index (N,)
    into that kind's primitives (0 for the room)."""

    t: Tensor
    kind: Tensor
    index: Tensor


def _nonzero(d: Tensor) -> Tensor:
    """Replace exact zeros (and tiny values) by ±1e-9 so slab tests never divide by zero."""
    return torch.where(d.abs() < 1e-9, torch.where(d < 0, -1e-9, 1e-9).to(d.dtype), d)


def _to_box_frame(v: Tensor, yaw: Tensor) -> Tensor:
    """Rotate world vectors (..., Nb, 3) into the frames of boxes with yaw (Nb,) (inverse yaw rotation)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    x, y, z = v.unbind(-1)
    return torch.stack([c * x + s * y, -s * x + c * y, z], dim=-1)


def _from_box_frame(v: Tensor, yaw: Tensor) -> Tensor:
    c, s = torch.cos(yaw), torch.sin(yaw)
    x, y, z = v.unbind(-1)
    return torch.stack([c * x - s * y, s * x + c * y, z], dim=-1)


def intersect_room(geom: RoomGeometry, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Exit distance of rays o, d (N, 3) from inside the room: returns t (N,) and face (N,) in 0..5."""
    inv = 1.0 / _nonzero(d)
    t_exit = torch.maximum((geom.room_max - o) * inv, (geom.room_min - o) * inv)  # (N, 3)
    t, axis = t_exit.min(-1)
    positive = torch.gather(d, 1, axis[:, None])[:, 0] > 0
    return t, 2 * axis + positive.long()


def intersect_boxes(geom: RoomGeometry, o: Tensor, d: Tensor) -> Tensor:
    """Entry distance into each box, (N, Nb), inf where missed (slab test in the box frame)."""
    if len(geom.box_yaw) == 0:
        return o.new_empty(o.shape[0], 0)
    ol = _to_box_frame(o[:, None, :] - geom.box_center, geom.box_yaw)
    dl = _to_box_frame(d[:, None, :].expand_as(ol), geom.box_yaw)
    inv = 1.0 / _nonzero(dl)
    t1 = (-geom.box_half - ol) * inv
    t2 = (geom.box_half - ol) * inv
    t_near = torch.minimum(t1, t2).amax(-1)
    t_far = torch.maximum(t1, t2).amin(-1)
    hit = (t_near <= t_far) & (t_near > HIT_EPS)
    return torch.where(hit, t_near, torch.full_like(t_near, math.inf))


def intersect_spheres(geom: RoomGeometry, o: Tensor, d: Tensor) -> Tensor:
    """Entry distance into each sphere, (N, Ns), inf where missed."""
    if len(geom.sphere_radius) == 0:
        return o.new_empty(o.shape[0], 0)
    oc = o[:, None, :] - geom.sphere_center
    b = (oc * d[:, None, :]).sum(-1)
    c = (oc * oc).sum(-1) - geom.sphere_radius**2
    disc = b * b - c
    t = -b - torch.sqrt(disc.clamp_min(0))
    hit = (disc > 0) & (t > HIT_EPS)
    return torch.where(hit, t, torch.full_like(t, math.inf))


def intersect_cylinders(geom: RoomGeometry, o: Tensor, d: Tensor) -> Tensor:
    """Entry distance into each vertical capped cylinder, (N, Nc), inf where missed.

    Seen from outside, the entry point is on the side or on the cap facing the ray origin.
    """
    if len(geom.cyl_radius) == 0:
        return o.new_empty(o.shape[0], 0)
    oc = o[:, None, :] - geom.cyl_center  # (N, Nc, 3)
    dx, dy, dz = (c[:, None] for c in d.unbind(-1))
    ox, oy, oz = oc.unbind(-1)
    r2, hh = geom.cyl_radius**2, geom.cyl_half_height
    a = dx * dx + dy * dy
    b = ox * dx + oy * dy
    c = ox * ox + oy * oy - r2
    disc = b * b - a * c
    ts = (-b - torch.sqrt(disc.clamp_min(0))) / a.clamp_min(1e-12)
    side = (disc > 0) & (a > 1e-10) & (ts > HIT_EPS) & ((oz + ts * dz).abs() <= hh)
    zc = torch.where(oz > 0, hh, -hh)
    tc = (zc - oz) / _nonzero(dz)
    xc, yc = ox + tc * dx, oy + tc * dy
    cap = (xc * xc + yc * yc <= r2) & (tc > HIT_EPS)
    inf = torch.full_like(ts, math.inf)
    return torch.minimum(torch.where(side, ts, inf), torch.where(cap, tc, inf))


def intersect(geom: RoomGeometry, o: Tensor, d: Tensor) -> tuple[Hits, Tensor]:
    """Nearest hit of each ray o, d (N, 3) (d unit, origins inside the room, outside all objects).

    Returns the :class:`Hits` and the room face index (N,) (valid where kind is KIND_ROOM).
    """
    t_room, face = intersect_room(geom, o, d)
    parts = [
        t_room[:, None],
        intersect_boxes(geom, o, d),
        intersect_spheres(geom, o, d),
        intersect_cylinders(geom, o, d),
    ]
    t, j = torch.cat(parts, dim=1).min(dim=1)
    sizes = torch.tensor([p.shape[1] for p in parts], device=o.device)
    starts = torch.cumsum(sizes, 0) - sizes
    kind = torch.bucketize(j, starts, right=True) - 1
    return Hits(t, kind, j - starts[kind]), face


def _face_uv(p: Tensor, n: Tensor) -> Tensor:
    """Surface coordinates in metres (u, row) on an axis-aligned face with normal n (M, 3).

    Vertical faces: u runs to the right of a viewer facing the face (z × n), row runs downwards, so
    photos appear upright and unmirrored; horizontal faces: (x, y).
    """
    horizontal = n[:, 2].abs() > 0.5
    u = torch.where(horizontal, p[:, 0], -n[:, 1] * p[:, 0] + n[:, 0] * p[:, 1])
    row = torch.where(horizontal, p[:, 1], -p[:, 2])
    return torch.stack([u, row], -1)


@dataclass
class SurfacePoints:
    """Attributes of M hit points: p (M, 3) world position, normal (M, 3) unit facing the ray origin,
    tex (M,) texture index, uv (M, 2) texture coordinates in repeats, texel (M,) texel size in metres."""

    p: Tensor
    normal: Tensor
    tex: Tensor
    uv: Tensor
    texel: Tensor


def surface_points(geom: RoomGeometry, o: Tensor, d: Tensor, hits: Hits, face: Tensor) -> SurfacePoints:
    """Position, normal and texture coordinates at the nearest hits (N rays)."""
    n_rays = o.shape[0]
    p = o + hits.t[:, None] * d
    normal = torch.zeros_like(p)
    uvm = torch.zeros(n_rays, 2, dtype=p.dtype, device=p.device)  # metres along the surface
    tex = torch.zeros(n_rays, dtype=torch.long, device=p.device)
    tile = torch.ones(n_rays, 2, dtype=p.dtype, device=p.device)
    uvoff = torch.zeros(n_rays, 2, dtype=p.dtype, device=p.device)

    sel = (hits.kind == KIND_ROOM).nonzero()[:, 0]
    if len(sel):
        f = face[sel]
        axis = f // 2
        n = torch.zeros(len(sel), 3, dtype=p.dtype, device=p.device)
        # Faces on the max side (odd) face the room centre along -axis.
        n.scatter_(1, axis[:, None], torch.where(f % 2 == 1, -1.0, 1.0).to(p.dtype)[:, None])
        pl = p[sel] - 0.5 * (geom.room_min + geom.room_max)
        normal[sel], uvm[sel] = n, _face_uv(pl, n)
        tex[sel], tile[sel], uvoff[sel] = geom.room_tex[f], geom.room_tile[f], geom.room_uvoff[f]

    sel = (hits.kind == KIND_BOX).nonzero()[:, 0]
    if len(sel):
        k = hits.index[sel]
        yaw, half = geom.box_yaw[k], geom.box_half[k]
        pl = _to_box_frame(p[sel] - geom.box_center[k], yaw)
        axis = (pl.abs() / half).argmax(-1)
        n = torch.zeros_like(pl)
        n.scatter_(1, axis[:, None], torch.sign(torch.gather(pl, 1, axis[:, None])))
        normal[sel], uvm[sel] = _from_box_frame(n, yaw), _face_uv(pl, n)
        tex[sel], tile[sel], uvoff[sel] = geom.box_tex[k], geom.box_tile[k], geom.box_uvoff[k]

    sel = (hits.kind == KIND_SPHERE).nonzero()[:, 0]
    if len(sel):
        k = hits.index[sel]
        r = geom.sphere_radius[k]
        pl = p[sel] - geom.sphere_center[k]
        n = pl / r[:, None]
        normal[sel] = n
        # Longitude × latitude in metres; the tile along u divides the circumference (no seam).
        uvm[sel] = torch.stack([torch.atan2(n[:, 1], n[:, 0]) * r, torch.acos(n[:, 2].clamp(-1, 1)) * r], -1)
        tex[sel], tile[sel], uvoff[sel] = geom.sphere_tex[k], geom.sphere_tile[k], geom.sphere_uvoff[k]

    sel = (hits.kind == KIND_CYLINDER).nonzero()[:, 0]
    if len(sel):
        k = hits.index[sel]
        r, hh = geom.cyl_radius[k], geom.cyl_half_height[k]
        pl = p[sel] - geom.cyl_center[k]
        rxy = torch.sqrt(pl[:, 0] ** 2 + pl[:, 1] ** 2)
        on_cap = pl[:, 2].abs() / hh > rxy / r
        side_n = torch.stack(
            [pl[:, 0] / rxy.clamp_min(1e-9), pl[:, 1] / rxy.clamp_min(1e-9), torch.zeros_like(rxy)], -1
        )
        cap_n = torch.stack([torch.zeros_like(rxy), torch.zeros_like(rxy), torch.sign(pl[:, 2])], -1)
        normal[sel] = torch.where(on_cap[:, None], cap_n, side_n)
        side_uv = torch.stack([torch.atan2(pl[:, 1], pl[:, 0]) * r, -pl[:, 2]], -1)
        uvm[sel] = torch.where(on_cap[:, None], pl[:, :2], side_uv)
        tex[sel], tile[sel], uvoff[sel] = geom.cyl_tex[k], geom.cyl_tile[k], geom.cyl_uvoff[k]

    uv = uvm / tile + uvoff
    texel = torch.sqrt(tile[:, 0] * tile[:, 1]) / geom.textures.shape[-1]
    return SurfacePoints(p, normal, tex, uv, texel)


# ---- textures --------------------------------------------------------------------------------


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


# ---- shading and rendering -------------------------------------------------------------------


def shade(geom: RoomGeometry, pts: SurfacePoints, albedo: Tensor) -> Tensor:
    """Lambertian shading (ambient + point light + directional fill), (M, 3) in [0, 1]."""
    to_light = geom.light_pos - pts.p
    dist = to_light.norm(dim=-1).clamp_min(1e-6)
    cos_p = ((pts.normal * to_light).sum(-1) / dist).clamp_min(0)
    point = geom.light_power * cos_p / (1 + (dist / geom.light_range) ** 2)
    fill = geom.fill_power * (-(pts.normal * geom.fill_dir).sum(-1)).clamp_min(0)
    return (albedo * (geom.ambient + point + fill)[:, None]).clamp(0, 1)


def render_rays(
    geom: RoomGeometry, atlases: list[Tensor], o: Tensor, d: Tensor, pixel_angle: Tensor
) -> tuple[Tensor, Tensor]:
    """Colour (N, 3) and hit distance t (N,) of rays o, d (N, 3); pixel_angle (N,) radians per pixel
    (sets the texture mip level from the pixel footprint)."""
    hits, face = intersect(geom, o, d)
    pts = surface_points(geom, o, d, hits, face)
    cos = (pts.normal * d).sum(-1).abs().clamp_min(0.05)
    # Footprint of a pixel on the surface (geometric mean of its two axes) in texels.
    footprint = hits.t * pixel_angle / torch.sqrt(cos)
    lod = torch.log2((footprint / pts.texel).clamp_min(1e-6))
    albedo = sample_textures(atlases, pts.tex, pts.uv, lod)
    return shade(geom, pts, albedo), hits.t


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
    for i in range(0, n, step):
        rgb[i : i + step], t[i : i + step] = render_rays(
            geom, atlases, o[i : i + step], d[i : i + step], pixel_angle[i : i + step]
        )
    images = rgb.view(views, hs, ws, 3).permute(0, 3, 1, 2)
    depth = t.view(views, hs, ws) * cos_axis
    if s > 1:
        images = F.avg_pool2d(images, s)
        depth = F.avg_pool2d(depth[:, None], s)[:, 0]
    return images.contiguous(), depth.contiguous()
