"""Shading of ray-cast surface points: two lighting models (``RoomGeometry.lighting``).

1. Lambertian (:func:`shade`): ambient + a point light under the ceiling + a directional fill light,
   no shadows (procedural ``scene_style`` 1; unchanged, so those images stay bit-identical).
2. Extended (:func:`shade_extended`, ``scene_style`` 2): coloured ambient darkened near the room's
   edges and corners (a cheap ambient-occlusion stand-in computed from the distances to the six room
   planes), 1-3 coloured point lights with their own fall-off range, a coloured directional fill,
   sunlight that only lands where a ray towards the sun leaves through a window rectangle (sun
   patches on floor and furniture; no occlusion test), a Blinn-Phong highlight scaled per texture
   (``tex_gloss``), emission per texture (``tex_emit``: windows, lamp shades), a soft shoulder instead
   of a hard clip at white (:func:`tone_shoulder`) and optionally hard shadows of the first point
   light (:func:`light_visibility`): one shadow ray per lit pixel, tested against the boxes in
   ``shadow_boxes`` (thin panels flush with a wall cannot cast a visible shadow and are left out,
   which keeps the cost down), spheres and cylinders.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from .geometry import RoomGeometry, SurfacePoints, to_box_frame


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
        ol = to_box_frame(light - casters.box_center, casters.box_yaw)  # (K, 3)
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
