"""Scene style 1 (the held-out benchmarks' rooms) and :func:`make_scene`, which picks the style.

Style 1 draws must stay exactly as they are: its scenes are bit-identical to those from before
style 2 existed (tests/test_procedural_style2.py holds reference values)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ...errors import ILRMInputError
from .config import STREAM_LAYOUT, STREAM_PATH, ProceduralConfig, ProceduralScene
from .geometry import RoomGeometry
from .layout import (
    Layout,
    local_to_world,
    random_floor_spot,
    random_uvoff,
    shape_fields,
    texture_size_for,
    texture_stack,
    wall_panel,
)
from .materials import CEILING, DOOR, FABRIC, FLOOR, OBJECT, TRIM, WALL, Materials
from .scene_style2 import make_scene_style2
from .trajectory import camera_trajectory


def _place_furniture(
    rng: np.random.RandomState, layout: Layout, mats: Materials, max_objects: int, height: float
) -> None:
    """Cabinets, tables, sofas, balls, columns (with small items on top), a rug and wall pictures."""
    kinds = ["box", "table", "sofa", "sphere", "cylinder"]
    weights = np.array([3.0, 1.5, 1.0, 1.5, 1.5])
    tops: list[tuple[np.ndarray, np.ndarray, float]] = []  # surfaces to put small items on
    area = float(np.prod(layout.room_max[:2] - layout.room_min[:2]))
    count = min(max_objects, max(2, round(area / 4 * rng.uniform(0.7, 1.3))))
    for _ in range(count):
        kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
        for _attempt in range(25):
            if kind == "box":
                half = np.array(
                    [rng.uniform(0.15, 0.8), rng.uniform(0.15, 0.45), rng.uniform(0.15, min(1.0, height / 2 - 0.1))]
                )
            elif kind == "table":
                half = np.array([rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.5), rng.uniform(0.33, 0.4)])
            elif kind == "sofa":
                half = np.array([rng.uniform(0.7, 1.2), rng.uniform(0.4, 0.5), 0.425])
            elif kind == "sphere":
                r = rng.uniform(0.15, 0.5)
                half = np.array([r, r, r])
            else:
                r = rng.uniform(0.1, 0.4)
                half = np.array([r, r, rng.uniform(0.15, min(1.1, height / 2 - 0.05))])
            center, yaw = random_floor_spot(rng, layout, half[:2])
            round_ = kind in ("sphere", "cylinder")
            if layout.fits(center, half[:2], yaw, round_):
                break
        else:
            continue
        layout.claim(center, half[:2], round_)
        if kind == "box":
            tex, tile = mats.pick(OBJECT, rng.uniform(0.4, 1.0))
            layout.box(center + [0, 0, half[2]], half, yaw, tex, (tile, tile), random_uvoff(rng))
            tops.append((center + [0, 0, 2 * half[2]], half[:2], yaw))
        elif kind == "table":
            tex, tile = mats.pick(OBJECT, rng.uniform(0.4, 1.0))
            uv = random_uvoff(rng)
            top_half = np.array([half[0], half[1], 0.02])
            h = 2 * half[2]
            layout.box(center + [0, 0, h - 0.02], top_half, yaw, tex, (tile, tile), uv)
            leg = 0.03
            for sx in (-1, 1):
                for sy in (-1, 1):
                    off = np.array([sx * (half[0] - 0.06), sy * (half[1] - 0.06), (h - 0.04) / 2])
                    layout.box(local_to_world(center, yaw, off), [leg, leg, (h - 0.04) / 2], yaw, tex, (tile, tile), uv)
            tops.append((center + [0, 0, h], half[:2], yaw))
        elif kind == "sofa":
            tex, tile = mats.pick(FABRIC, rng.uniform(0.4, 1.0))
            uv = random_uvoff(rng)
            seat_h, back_h, arm_h, arm_w, back_d = 0.42, 0.85, 0.62, 0.16, 0.2
            # Local +y points away from the wall (see random_floor_spot), so the back sits at -y.
            parts = [
                ([0, 0, seat_h / 2], [half[0], half[1], seat_h / 2]),
                ([0, -half[1] + back_d / 2, back_h / 2], [half[0], back_d / 2, back_h / 2]),
                ([-half[0] + arm_w / 2, 0, arm_h / 2], [arm_w / 2, half[1], arm_h / 2]),
                ([half[0] - arm_w / 2, 0, arm_h / 2], [arm_w / 2, half[1], arm_h / 2]),
            ]
            for off, h in parts:
                layout.box(local_to_world(center, yaw, np.array(off, float)), h, yaw, tex, (tile, tile), uv)
        elif kind == "sphere":
            _add_sphere(rng, layout, mats, center + [0, 0, half[0]], half[0])
        else:
            _add_cylinder(rng, layout, mats, center + [0, 0, half[2]], half[0], half[2])

    for top, half_xy, yaw in tops:  # small things on cabinets and tables
        if rng.rand() < 0.5:
            continue
        off = np.array([rng.uniform(-0.6, 0.6) * half_xy[0], rng.uniform(-0.6, 0.6) * half_xy[1], 0.0])
        spot = local_to_world(top, yaw, off)
        size = min(half_xy) * rng.uniform(0.25, 0.6)
        if spot[2] + 2 * size > height - 0.2:
            continue
        choice = rng.randint(3)
        if choice == 0:
            _add_sphere(rng, layout, mats, spot + [0, 0, size], size)
        elif choice == 1:
            hh = rng.uniform(0.05, 0.25)
            _add_cylinder(rng, layout, mats, spot + [0, 0, hh], size, hh)
        else:
            h = np.array([size, size * rng.uniform(0.5, 1.0), rng.uniform(0.03, 0.2)])
            tex, tile = mats.pick(OBJECT, 0.3)
            layout.box(spot + [0, 0, h[2]], h, yaw + rng.uniform(-0.5, 0.5), tex, (tile, tile), random_uvoff(rng))

    if rng.rand() < 0.35:  # a rug (flat, so the walk may cross it)
        lo, hi = layout.room_min, layout.room_max
        half = np.array([rng.uniform(0.6, 1.5), rng.uniform(0.4, 1.0), 0.005])
        half[:2] = np.minimum(half[:2], 0.5 * (hi[:2] - lo[:2]) - 0.3)
        center = np.array(
            [rng.uniform(lo[0] + half[0], hi[0] - half[0]), rng.uniform(lo[1] + half[1], hi[1] - half[1]), 0.005]
        )
        tex, tile = mats.pick(FABRIC, rng.uniform(0.4, 1.0))
        layout.box(center, half, 0.0, tex, (tile, tile), random_uvoff(rng))

    lo, hi = layout.room_min, layout.room_max
    if rng.rand() < 0.5:  # skirting boards: a thin strip along every wall
        tex, tile = mats.pick(TRIM)
        bh = rng.uniform(0.06, 0.14)
        for wall in range(4):
            along = 1 if wall < 2 else 0
            wall_panel(
                layout,
                wall,
                0.5 * (lo[along] + hi[along]),
                hi[along] - lo[along],
                bh / 2,
                bh,
                0.015,
                tex,
                (tile, tile),
                random_uvoff(rng),
            )
    for _ in range(rng.randint(0, 3)):  # doors
        wall = rng.randint(4)
        along = 1 if wall < 2 else 0
        w, h = rng.uniform(0.75, 1.0), min(rng.uniform(1.95, 2.15), height - 0.15)
        if hi[along] - lo[along] < w + 0.4:
            continue
        pos = rng.uniform(lo[along] + 0.2 + w / 2, hi[along] - 0.2 - w / 2)
        tex, tile = mats.pick(DOOR)
        wall_panel(layout, wall, pos, w, h / 2, h, 0.04, tex, (tile, tile), random_uvoff(rng))
    for _ in range(rng.randint(0, 4)):  # shelves and wall cabinets
        wall = rng.randint(4)
        along = 1 if wall < 2 else 0
        w = min(rng.uniform(0.5, 1.5), hi[along] - lo[along] - 0.4)
        h = rng.uniform(0.03, 0.05) if rng.rand() < 0.5 else rng.uniform(0.3, 0.7)
        zc = min(rng.uniform(0.9, 1.9), height - 0.1 - h / 2)
        pos = rng.uniform(lo[along] + 0.2 + w / 2, hi[along] - 0.2 - w / 2)
        tex, tile = mats.pick(OBJECT, rng.uniform(0.4, 1.0))
        wall_panel(layout, wall, pos, w, zc, h, rng.uniform(0.2, 0.35), tex, (tile, tile), random_uvoff(rng))
    for _ in range(rng.randint(0, 7)):  # pictures, shown once and upright
        wall = rng.randint(4)
        along = 1 if wall < 2 else 0
        w, h = min(rng.uniform(0.35, 1.3), hi[along] - lo[along] - 0.4), rng.uniform(0.3, 1.0)
        zc = min(rng.uniform(1.2, 1.9), height - 0.1 - h / 2)
        pos = rng.uniform(lo[along] + 0.2 + w / 2, hi[along] - 0.2 - w / 2)
        wall_panel(layout, wall, pos, w, zc, h, 0.03, mats.picture(), (w, h), np.array([0.5, 0.5]))


def _add_sphere(rng: np.random.RandomState, layout: Layout, mats: Materials, center: np.ndarray, r: float) -> None:
    tex, tile = mats.pick(OBJECT, rng.uniform(0.3, 1.0))
    n_u = max(1, round(2 * math.pi * r / tile))  # whole repeats around the equator: no seam
    layout.spheres.append((center, r, tex, (2 * math.pi * r / n_u, tile), random_uvoff(rng)))


def _add_cylinder(
    rng: np.random.RandomState, layout: Layout, mats: Materials, center: np.ndarray, r: float, hh: float
) -> None:
    tex, tile = mats.pick(OBJECT, rng.uniform(0.3, 1.0))
    n_u = max(1, round(2 * math.pi * r / tile))
    layout.cylinders.append((center, r, hh, tex, (2 * math.pi * r / n_u, tile), random_uvoff(rng)))


def make_scene(seed: int, config: ProceduralConfig | None = None) -> ProceduralScene:
    """The room, textures and camera trajectory of ``seed`` (CPU; same result on every machine),
    built by the generator ``config.scene_style`` (see :class:`ProceduralConfig`)."""
    cfg = config or ProceduralConfig()
    if not 0 <= seed < 2**32:
        raise ILRMInputError(f"seed must be in [0, 2**32), got {seed}")
    if cfg.scene_style == 2:
        return make_scene_style2(seed, cfg)
    # Style 1: the draws below must stay exactly as they are (held-out benchmarks are style 1).
    rng = np.random.RandomState([seed, STREAM_LAYOUT])
    size = np.array([rng.uniform(3.5, 9.0), rng.uniform(3.5, 9.0), rng.uniform(2.4, 3.2)])
    room_min = np.array([-size[0] / 2, -size[1] / 2, 0.0])
    room_max = np.array([size[0] / 2, size[1] / 2, size[2]])
    hfov = math.radians(rng.uniform(*cfg.hfov_deg))
    tex_size = texture_size_for(cfg)

    mats = Materials(rng, cfg.photo_textures)
    wall_tex, wall_tile = mats.pick(WALL)
    walls = [(wall_tex, wall_tile)] * 4
    if rng.rand() < 0.3:  # an accent wall
        walls[rng.randint(4)] = mats.pick(WALL)
    floor = mats.pick(FLOOR)
    ceiling = mats.pick(CEILING)
    room = [*walls, floor, ceiling]
    room_uvoff = np.stack([random_uvoff(rng) for _ in range(6)])

    c2w, path_xy = camera_trajectory(np.random.RandomState([seed, STREAM_PATH]), room_min, room_max, cfg.frame_spacing)
    layout = Layout(room_min, room_max, path_xy)
    _place_furniture(rng, layout, mats, cfg.max_objects, size[2])

    # A lamp hanging well below the ceiling lights the ceiling too (a stand-in for bounce light).
    light_pos = np.array(
        [rng.uniform(-0.25, 0.25) * size[0], rng.uniform(-0.25, 0.25) * size[1], size[2] - rng.uniform(0.6, 0.9)]
    )
    fill = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.5, 1.5)])
    _, tex_t = texture_stack(seed, mats.kinds, tex_size)
    geometry = RoomGeometry(
        **shape_fields(room_min, room_max, room, room_uvoff, layout, tex_t),
        light_pos=torch.tensor(light_pos, dtype=torch.float32),
        light_power=float(rng.uniform(0.45, 0.75)),  # keyword arguments are evaluated in order
        light_range=float(rng.uniform(2.0, 4.0)),
        fill_dir=torch.tensor(fill / np.linalg.norm(fill), dtype=torch.float32),
        fill_power=float(rng.uniform(0.15, 0.35)),
        ambient=float(rng.uniform(0.25, 0.4)),
    )
    return ProceduralScene(seed, geometry, torch.from_numpy(c2w), hfov, list(mats.kinds))
