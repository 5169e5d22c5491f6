"""Rooms as analytic primitives, and exact ray intersection with them, in torch.

A :class:`RoomGeometry` is the inside of an axis-aligned room (seen from within) plus boxes (rotated
about the vertical axis), spheres and vertical capped cylinders. World axes: z up, the floor at
``z = room_min[2]``. Every surface has a texture index, a tile size in metres (so textures have a
real-world scale) and a texture offset. Rays are intersected analytically with every primitive at
once (batched over rays × primitives; callers chunk the rays to bound memory) and the nearest hit is
kept (:func:`intersect`); :func:`surface_points` gives its position, normal and texture coordinates.
Shading is in :mod:`.shading`, rendering views in :mod:`.raycast`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

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
    ``*random_uvoff`` (N, 2) texture offset in repeats (0.5 centres a texture shown once).
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


def to_box_frame(v: Tensor, yaw: Tensor) -> Tensor:
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
    ol = to_box_frame(o[:, None, :] - geom.box_center, geom.box_yaw)
    dl = to_box_frame(d[:, None, :].expand_as(ol), geom.box_yaw)
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
        pl = to_box_frame(p[sel] - geom.box_center[k], yaw)
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
