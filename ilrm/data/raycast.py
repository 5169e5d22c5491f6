"""Exact ray casting of textured rooms in torch (ground truth for the procedural scenes).

A :class:`RoomGeometry` is the inside of an axis-aligned room (seen from within) plus boxes (rotated
about the vertical axis), spheres and vertical capped cylinders. World axes: z up, the floor at
``z = room_min[2]``. Every surface has a texture index, a tile size in metres (so textures have a
real-world scale) and a texture offset. Rays are intersected analytically with every primitive at
once (batched over rays × primitives, chunked to bound memory), the nearest hit is kept, its texture
is looked up with trilinear mip-mapping (``grid_sample`` on a padded texture atlas per mip level, so
distant textures do not alias) and shaded.

Two lighting models (``RoomGeometry.lighting``):

1. Lambertian: ambient + a point light under the ceiling + a directional fill light, no shadows
   (procedural ``scene_style`` 1; unchanged, so those images stay bit-identical).
2. Extended (``scene_style`` 2): coloured ambient darkened near the room's edges and corners (a cheap
   ambient-occlusion stand-in computed from the distances to the six room planes), 1-3 coloured point
   lights with their own fall-off range, a coloured directional fill, sunlight that only lands where
   a ray towards the sun leaves through a window rectangle (sun patches on floor and furniture; no
   occlusion test), a Blinn-Phong highlight scaled per texture (``tex_gloss``), emission per texture
   (``tex_emit``: windows, lamp shades), a soft shoulder instead of a hard clip at white
   (:func:`tone_shoulder`) and optionally hard shadows of the first point light: one
   shadow ray per lit pixel, tested against the boxes in ``shadow_boxes`` (thin panels flush with a
   wall cannot cast a visible shadow and are left out, which keeps the cost down), spheres and
   cylinders.

Antialiasing of geometric edges is by supersampling (``supersample=s`` casts s×s rays per pixel and
averages); the default 1 keeps it fast, and the mip-mapping already removes texture aliasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

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

    Extended lighting (used when ``lighting == 2``; the defaults leave model 1 unchanged; see the
    module docstring): lights_pos (L, 3), lights_rgb (L, 3) colour × power, lights_range (L,) metres;
    fill_rgb (3,) colour × power of the fill along ``fill_dir``; sun_rgb (3,) sunlight along
    ``fill_dir`` through the windows (W, 6) rows ``(axis, plane, a0, a1, z0, z1)``: the rectangle
    ``a0 ≤ x_other ≤ a1, z0 ≤ z ≤ z1`` in the wall plane ``x_axis = plane`` (axis 0 or 1);
    ambient_rgb (3,), scaled by (1 + bounce · max(0, -n_z)) (floor bounce onto ceilings and
    undersides); ao_strength, ao_radius (metres) of the darkening near room edges; shininess
    (Blinn-Phong exponent); tex_gloss (S,) and tex_emit (S,) highlight and emission per texture;
    shadows: cast hard shadows of ``lights_pos[0]`` from the boxes ``shadow_boxes`` (K,) (indices),
    all spheres and all cylinders.
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
    lighting: int = 1
    lights_pos: Tensor = field(default_factory=lambda: torch.zeros(0, 3))
    lights_rgb: Tensor = field(default_factory=lambda: torch.zeros(0, 3))
    lights_range: Tensor = field(default_factory=lambda: torch.ones(0))
    fill_rgb: Tensor = field(default_factory=lambda: torch.zeros(3))
    sun_rgb: Tensor = field(default_factory=lambda: torch.zeros(3))
    windows: Tensor = field(default_factory=lambda: torch.zeros(0, 6))
    ambient_rgb: Tensor = field(default_factory=lambda: torch.zeros(3))
    ao_strength: float = 0.0
    ao_radius: float = 0.5
    bounce: float = 0.0
    shininess: float = 32.0
    tex_gloss: Tensor = field(default_factory=lambda: torch.zeros(0))
    tex_emit: Tensor = field(default_factory=lambda: torch.zeros(0))
    shadows: bool = False
    shadow_boxes: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

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


def shadow_casters(geom: RoomGeometry) -> RoomGeometry:
    """The geometry that shadow rays are tested against: only the boxes in ``geom.shadow_boxes``."""
    k = geom.shadow_boxes
    return replace(geom, box_center=geom.box_center[k], box_half=geom.box_half[k], box_yaw=geom.box_yaw[k])


def _blocked_from_light(casters: RoomGeometry, light: Tensor, d: Tensor, limit: Tensor) -> Tensor:
    """Whether rays leaving the point ``light`` (3,) along d (M, 3) (unit) hit a caster before
    ``limit`` (M,) metres.

    Shadow rays are cast from the light towards the surface points: all share one origin, so every
    origin-dependent term is a per-primitive constant and each test costs a few (M, K) operations
    (a third of :func:`intersect`'s per-primitive work). The light is outside every caster, so an
    interval that ends in front of it (t_far > 0) starts in front of it too. A light lying exactly on
    a box's face plane would give NaN there (treated as unblocked); it has probability zero.
    """
    blocked = torch.zeros(len(d), dtype=torch.bool, device=d.device)
    lim = limit[:, None]
    dx, dy, dz = d[:, :1], d[:, 1:2], d[:, 2:3]
    if len(casters.box_yaw):
        c, s = torch.cos(casters.box_yaw), torch.sin(casters.box_yaw)
        ol = _to_box_frame(light - casters.box_center, casters.box_yaw)  # (K, 3)
        half = casters.box_half
        t_near = t_far = None
        for da, a in ((dx * c + dy * s, 0), (dy * c - dx * s, 1), (dz, 2)):
            inv = 1.0 / da
            t1, t2 = (-half[:, a] - ol[:, a]) * inv, (half[:, a] - ol[:, a]) * inv
            lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
            t_near = lo if t_near is None else torch.maximum(t_near, lo)
            t_far = hi if t_far is None else torch.minimum(t_far, hi)
        blocked |= ((t_near <= t_far) & (t_far > 0) & (t_near < lim)).any(dim=1)
    if len(casters.sphere_radius):
        oc = light - casters.sphere_center  # (K, 3)
        b = d @ oc.T  # (M, K)
        disc = b * b - ((oc * oc).sum(-1) - casters.sphere_radius**2)
        root = torch.sqrt(disc.clamp_min(0))
        blocked |= ((disc > 0) & (root - b > 0) & (-b - root < lim)).any(dim=1)
    if len(casters.cyl_radius):
        oc = light - casters.cyl_center
        hh = casters.cyl_half_height
        a = (dx * dx + dy * dy).clamp_min(1e-12)  # (M, 1)
        b = d[:, :2] @ oc[:, :2].T
        disc = b * b - a * ((oc[:, :2] ** 2).sum(-1) - casters.cyl_radius**2)
        root = torch.sqrt(disc.clamp_min(0))
        inv = 1.0 / dz
        z1, z2 = (-hh - oc[:, 2]) * inv, (hh - oc[:, 2]) * inv
        t_near = torch.maximum((-b - root) / a, torch.minimum(z1, z2))
        t_far = torch.minimum((root - b) / a, torch.maximum(z1, z2))
        blocked |= ((disc > 0) & (t_near <= t_far) & (t_far > 0) & (t_near < lim)).any(dim=1)
    return blocked


def light_visibility(casters: RoomGeometry, p: Tensor, normal: Tensor, light: Tensor) -> Tensor:
    """1 where the point light ``light`` (3,) is seen from the points p (M, 3) (normals (M, 3)), else 0.

    One shadow ray per point, cast only where the surface faces the light (elsewhere the light adds
    nothing anyway); it stops 1 mm short of the point so that the point's own primitive does not
    count. The light must be outside every caster (the scene generator makes sure of that).
    """
    to_point = p - light
    dist = to_point.norm(dim=-1).clamp_min(1e-6)
    d = to_point / dist[:, None]
    vis = torch.ones_like(dist)
    sel = ((normal * d).sum(-1) < 0).nonzero()[:, 0]
    if len(sel) == 0 or casters.num_primitives == 1:
        return vis
    vis[sel] = (~_blocked_from_light(casters, light, d[sel], dist[sel] - 1e-3)).to(vis.dtype)
    return vis


def shade_extended(geom: RoomGeometry, pts: SurfacePoints, albedo: Tensor, d: Tensor, vis0: Tensor | None) -> Tensor:
    """Lighting model 2 (see the module docstring), (M, 3) in [0, 1].

    d (M, 3): ray directions (for the highlights); vis0 (M,): visibility of the first point light
    (None: no shadows).
    """
    p, n = pts.p, pts.normal
    # Darkening near room edges: each room plane contributes exp(-distance / radius), weighted by how
    # much the surface faces it (0 for a surface parallel to and facing away from the plane, e.g.
    # the floor itself or a rug; 1 for the back of a cabinet facing the wall; 0.5 where a wall meets
    # the floor). A stand-in for the occlusion of indirect light in corners, behind and under things.
    lo = (p - geom.room_min).clamp_min(0)
    hi = (geom.room_max - p).clamp_min(0)
    r = geom.ao_radius
    occlusion = ((0.5 - 0.5 * n) * torch.exp(-lo / r) + (0.5 + 0.5 * n) * torch.exp(-hi / r)).sum(-1)
    ao = (1 - geom.ao_strength * occlusion).clamp(0.25, 1.0)[:, None]
    cos_fill = (-(n * geom.fill_dir).sum(-1)).clamp_min(0)[:, None]
    # Ceilings and undersides get extra ambient: light bounced off the floor (lamps hang close to
    # the ceiling in style 2, which would otherwise leave it dark).
    up = 1 + geom.bounce * (-n[:, 2:3]).clamp_min(0)
    irradiance = ao * (geom.ambient_rgb * up + cos_fill * geom.fill_rgb)

    to_light = geom.lights_pos[None] - p[:, None]  # (M, L, 3)
    dist = to_light.norm(dim=-1).clamp_min(1e-6)
    ldir = to_light / dist[..., None]
    cos = (n[:, None] * ldir).sum(-1).clamp_min(0)  # (M, L)
    weight = cos / (1 + (dist / geom.lights_range) ** 2)
    if vis0 is not None:
        weight = torch.cat([weight[:, :1] * vis0[:, None], weight[:, 1:]], dim=1)
    irradiance = irradiance + weight @ geom.lights_rgb
    # Blinn-Phong highlight, energy-normalised so that sharper highlights are brighter.
    half = ldir - d[:, None]
    half = half / half.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    nh = (n[:, None] * half).sum(-1).clamp(0, 1)
    spec = (weight * nh**geom.shininess * ((geom.shininess + 8) / 8)) @ geom.lights_rgb

    if len(geom.windows):  # sunlight through the window rectangles
        f = geom.fill_dir
        axis = geom.windows[:, 0].long()  # (W,)
        p_axis, p_along = p[:, axis], p[:, 1 - axis]  # (M, W)
        f_axis = torch.where(f[axis].abs() < 1e-6, torch.full_like(f[axis], 1e-6), f[axis])
        s = (p_axis - geom.windows[:, 1]) / f_axis  # distance towards the sun to the wall plane
        a = p_along - s * f[1 - axis]
        z = p[:, 2:3] - s * f[2]
        w = geom.windows
        edge = 0.03  # metres of soft edge: no aliased staircase on the sun patch
        inside = (
            ((a - w[:, 2]) / edge).clamp(0, 1)
            * ((w[:, 3] - a) / edge).clamp(0, 1)
            * ((z - w[:, 4]) / edge).clamp(0, 1)
            * ((w[:, 5] - z) / edge).clamp(0, 1)
            * (s > 0)
        )
        irradiance = irradiance + cos_fill * inside.amax(dim=1, keepdim=True) * geom.sun_rgb

    gloss, emit = geom.tex_gloss[pts.tex][:, None], geom.tex_emit[pts.tex][:, None]
    return tone_shoulder(albedo * (irradiance + emit) + gloss * spec)


def tone_shoulder(x: Tensor, knee: float = 0.8) -> Tensor:
    """Identity up to ``knee``, then an exponential roll-off towards 1 (same slope at the knee): like a
    camera's tone curve, bright lamps, sun patches and highlights keep some gradation instead of
    clipping to flat white areas. Output in [0, 1] (1 only where float32 rounds up)."""
    x = x.clamp_min(0)
    w = 1.0 - knee
    return torch.where(x < knee, x, knee + w * (1 - torch.exp((knee - x) / w)))


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
