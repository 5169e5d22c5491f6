"""Scene style 2 (see :mod:`ilrm.data.procedural`): room shapes, furnishing within a primitive budget
and lighting, from its own random streams (layout, lights, surfaces); the trajectory and the texture
generators are shared with style 1."""

from __future__ import annotations

import math

import numpy as np
import torch

from .config import STREAM_LAYOUT2, STREAM_LIGHT2, STREAM_PATH, STREAM_SURFACE2, ProceduralConfig, ProceduralScene
from .furniture_style2 import (
    AGAINST_WALL2,
    KINDS2,
    MODES2,
    PARTS2,
    Builder,
    build_piece,
    log_uniform,
    piece_half,
    small_item,
)
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
from .lighting_style2 import design_lights, expose, luma, shadow_casting_boxes, surface_properties
from .materials import CEILING2, DOOR, FABRIC2, FLOOR2, OBJECT2, SHADE2, TRIM, WALL2, Materials
from .trajectory import camera_trajectory


def _place_furniture_style2(
    rng: np.random.RandomState, layout: Layout, mats: Materials, max_objects: int, height: float, mode: str
) -> Builder:
    """Style 2 furnishing: windows, doors and skirting first (they shape the lighting), then pieces
    of the layout mode's density and size, small things on their tops and on the floor, wall shelves
    and pictures, all within the primitive budget. Returns the builder (lamps, windows, emissive
    textures)."""
    b = Builder(rng, layout, mats)
    U = rng.uniform
    lo, hi = layout.room_min, layout.room_max
    density, scale, per_top, on_floor = MODES2[mode]

    def wall_range(wall: int) -> tuple[float, float]:
        along = 1 if wall < 2 else 0
        return lo[along], hi[along]

    for _ in range(rng.choice(4, p=[0.3, 0.35, 0.23, 0.12])):  # windows: sunlight comes through them
        wall = rng.randint(4)
        a_lo, a_hi = wall_range(wall)
        w = min(U(0.7, 2.0), a_hi - a_lo - 0.6)
        z0 = U(0.5, 1.0)
        z1 = min(z0 + U(1.0, 1.7), height - 0.15)
        pos = U(a_lo + 0.3 + w / 2, a_hi - 0.3 - w / 2)
        if w < 0.5 or z1 - z0 < 0.6 or not b.wall_free(wall, pos - w / 2, pos + w / 2, z0, z1):
            continue
        tex = mats.named("window")
        b.emissive[tex] = "window"
        wall_panel(layout, wall, pos, w, (z0 + z1) / 2, z1 - z0, 0.02, tex, (w, z1 - z0), np.array([0.5, 0.5]))
        b.windows.append((wall, pos - w / 2, pos + w / 2, z0, z1))
        b.spans.append((wall, pos - w / 2, pos + w / 2, z0, z1))
    for _ in range(rng.randint(0, 3)):  # doors
        wall = rng.randint(4)
        a_lo, a_hi = wall_range(wall)
        w, h = U(0.75, 1.0), min(U(1.95, 2.15), height - 0.15)
        if a_hi - a_lo < w + 0.4:
            continue
        pos = U(a_lo + 0.2 + w / 2, a_hi - 0.2 - w / 2)
        if b.wall_free(wall, pos - w / 2, pos + w / 2, 0.0, h):
            tex, tile = mats.pick(DOOR)
            wall_panel(layout, wall, pos, w, h / 2, h, 0.04, tex, (tile, tile), random_uvoff(rng))
            b.spans.append((wall, pos - w / 2, pos + w / 2, 0.0, h))
    if rng.rand() < 0.55:  # skirting boards
        tex, tile = mats.pick(TRIM)
        bh = U(0.06, 0.14)
        for wall in range(4):
            a_lo, a_hi = wall_range(wall)
            wall_panel(
                layout, wall, 0.5 * (a_lo + a_hi), a_hi - a_lo, bh / 2, bh, 0.015, tex, (tile, tile), random_uvoff(rng)
            )

    area = float(np.prod(hi[:2] - lo[:2]))
    count = min(max_objects, max(1, round(area / 4 * U(*density))))
    kinds = list(KINDS2)
    weights = np.array([KINDS2[k] for k in kinds])
    for _ in range(count):
        kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
        if not b.room_for(PARTS2[kind]):
            continue
        k = U(*scale)
        for _attempt in range(25):
            half = piece_half(rng, kind, height, k)
            center, yaw = random_floor_spot(rng, layout, half[:2], AGAINST_WALL2.get(kind, 0.35))
            round_ = kind in ("sphere", "cylinder", "round_table", "floor_lamp", "plant")
            if layout.fits(center, half[:2], yaw, round_):
                break
        else:
            continue
        layout.claim(center, half[:2], round_)
        build_piece(b, kind, center, half, yaw, height)

    for top, half_xy, yaw in b.tops:  # small things on cabinets, tables and counters
        for _ in range(rng.randint(per_top[0], per_top[1] + 1)):
            if not b.room_for(3):
                break
            off = np.array([U(-0.7, 0.7) * half_xy[0], U(-0.7, 0.7) * half_xy[1], 0.0])
            free = float(min(half_xy[0] - abs(off[0]), half_xy[1] - abs(off[1])))
            if free > 0.03:
                small_item(b, local_to_world(top, yaw, off), yaw, free, height)
    for _ in range(rng.randint(on_floor[0], on_floor[1] + 1)):  # clutter on the floor
        r = log_uniform(rng, 0.06, 0.25)
        center, yaw = random_floor_spot(rng, layout, np.array([r, r]), 0.5)
        if b.room_for(3) and layout.fits(center, np.array([r, r]), yaw, True):
            layout.claim(center, np.array([r, r]), True)
            small_item(b, center, yaw, r, height)

    for _ in range(rng.randint(0, 4)):  # wall shelves (sometimes with books) and wall cabinets
        wall = rng.randint(4)
        a_lo, a_hi = wall_range(wall)
        w = min(U(0.5, 1.5), a_hi - a_lo - 0.4)
        board = rng.rand() < 0.5
        h = U(0.03, 0.05) if board else U(0.3, 0.7)
        zc = min(U(0.9, 1.9), height - 0.3 - h / 2)
        pos = U(a_lo + 0.2 + w / 2, a_hi - 0.2 - w / 2)
        if not (b.room_for(2) and b.wall_free(wall, pos - w / 2, pos + w / 2, zc - h / 2, zc + h / 2 + 0.25)):
            continue
        depth = U(0.2, 0.35)
        wall_panel(layout, wall, pos, w, zc, h, depth, *b.material(OBJECT2, U(0.4, 1.0), 0.5, "frame"))
        b.spans.append((wall, pos - w / 2, pos + w / 2, zc - h / 2, zc + h / 2 + (0.25 if board else 0.0)))
        if board and rng.rand() < 0.6:
            rw, rh = w * U(0.25, 0.45), U(0.08, 0.12)
            shift = U(-1, 1) * (w / 2 - rw)
            wall_panel(
                layout,
                wall,
                pos + shift,
                2 * rw,
                zc + h / 2 + rh,
                2 * rh,
                depth * U(0.6, 0.9),
                mats.named("books"),
                (2 * rw, 2 * rh),
                np.array([0.5, 0.5]),
            )
    for _ in range(rng.randint(0, 7)):  # pictures, shown once and upright
        wall = rng.randint(4)
        a_lo, a_hi = wall_range(wall)
        w, h = min(U(0.35, 1.3), a_hi - a_lo - 0.4), U(0.3, 1.0)
        zc = min(U(1.2, 1.9), height - 0.1 - h / 2)
        pos = U(a_lo + 0.2 + w / 2, a_hi - 0.2 - w / 2)
        if b.room_for(1) and b.wall_free(wall, pos - w / 2, pos + w / 2, zc - h / 2, zc + h / 2):
            wall_panel(layout, wall, pos, w, zc, h, 0.03, mats.picture(), (w, h), np.array([0.5, 0.5]))
            b.spans.append((wall, pos - w / 2, pos + w / 2, zc - h / 2, zc + h / 2))
    if rng.rand() < 0.35:  # a rug (flat, so the walk may cross it)
        half = np.array([U(0.6, 1.6), U(0.4, 1.1), 0.005])
        half[:2] = np.minimum(half[:2], 0.5 * (hi[:2] - lo[:2]) - 0.3)
        center = np.array([U(lo[0] + half[0], hi[0] - half[0]), U(lo[1] + half[1], hi[1] - half[1]), 0.005])
        layout.box(center, half, 0.0, *b.material(FABRIC2, U(0.4, 1.0)))
    return b


def _room_style2(rng: np.random.RandomState) -> tuple[np.ndarray, str]:
    """Room size (3,) and layout mode: ordinary rooms, long narrow ones (corridors, galleries),
    large high halls and small low rooms; layouts open, normal or cluttered."""
    shape = ("standard", "long", "hall", "small")[rng.choice(4, p=[0.5, 0.2, 0.15, 0.15])]
    U = rng.uniform
    if shape == "standard":
        size = np.array([U(3.5, 9.0), U(3.5, 9.0), U(2.4, 3.2)])
    elif shape == "long":
        size = np.array([U(2.8, 4.2), U(7.0, 12.0), U(2.4, 3.0)])
        if rng.rand() < 0.5:
            size[:2] = size[1::-1]
    elif shape == "hall":
        size = np.array([U(8.0, 12.0), U(7.0, 11.0), U(3.0, 4.2)])
    else:
        size = np.array([U(2.8, 4.0), U(3.0, 4.5), U(2.3, 2.6)])
    mode = ("open", "normal", "cluttered")[rng.choice(3, p=[0.3, 0.4, 0.3])]
    return size, mode


def make_scene_style2(seed: int, cfg: ProceduralConfig) -> ProceduralScene:
    """Style 2 (see the module docstring): own random streams for layout, lights and surfaces; the
    trajectory and texture generators are shared with style 1."""
    rng = np.random.RandomState([seed, STREAM_LAYOUT2])
    size, mode = _room_style2(rng)
    room_min = np.array([-size[0] / 2, -size[1] / 2, 0.0])
    room_max = np.array([size[0] / 2, size[1] / 2, size[2]])
    hfov = math.radians(rng.uniform(*cfg.hfov_deg))

    mats = Materials(rng, cfg.photo_textures)
    wall = mats.pick(WALL2)
    walls = [wall] * 4
    if rng.rand() < 0.35:  # an accent wall
        walls[rng.randint(4)] = mats.pick(WALL2)
    room = [*walls, mats.pick(FLOOR2), mats.pick(CEILING2)]
    room_uvoff = np.stack([random_uvoff(rng) for _ in range(6)])

    c2w, path_xy = camera_trajectory(np.random.RandomState([seed, STREAM_PATH]), room_min, room_max, cfg.frame_spacing)
    layout = Layout(room_min, room_max, path_xy)
    builder = _place_furniture_style2(rng, layout, mats, cfg.max_objects, size[2], mode)
    lights = design_lights(np.random.RandomState([seed, STREAM_LIGHT2]), layout, builder, size[2])
    if lights.fixture is not None:  # the pendant shade (drawn from the layout stream, after furniture)
        centre, r, hh = lights.fixture
        builder.cylinder(centre, 0.0, [0, 0, 0], r, hh, builder.material(SHADE2, rng.uniform(0.3, 0.6)))

    textures, tex_t = texture_stack(seed, mats.kinds, texture_size_for(cfg))
    expose(lights, room_min, room_max, textures[wall[0]].reshape(-1, 3).mean(0).astype(np.float64))
    gloss, emit = surface_properties(np.random.RandomState([seed, STREAM_SURFACE2]), mats.kinds, builder.emissive)
    windows = [
        (0 if w < 2 else 1, (room_min if w % 2 == 0 else room_max)[0 if w < 2 else 1], a0, a1, z0, z1)
        for w, a0, a1, z0, z1 in builder.windows
    ]
    f32 = lambda x: torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float32)  # noqa: E731
    geometry = RoomGeometry(
        **shape_fields(room_min, room_max, room, room_uvoff, layout, tex_t),
        # Model-1 fields, filled for reference only (lighting 2 does not read them).
        light_pos=f32(lights.pos[0]),
        light_power=luma(lights.rgb[0]),
        light_range=float(lights.range_[0]),
        fill_dir=f32(lights.fill_dir),
        fill_power=luma(lights.fill_rgb),
        ambient=luma(lights.ambient_rgb),
        lighting=2,
        lights_pos=f32(lights.pos),
        lights_rgb=f32(lights.rgb),
        lights_range=f32(lights.range_),
        fill_rgb=f32(lights.fill_rgb),
        sun_rgb=f32(lights.sun_rgb),
        windows=f32(np.array(windows, dtype=np.float64).reshape(-1, 6)),
        ambient_rgb=f32(lights.ambient_rgb),
        ao_strength=lights.ao_strength,
        ao_radius=lights.ao_radius,
        bounce=lights.bounce,
        shininess=lights.shininess,
        tex_gloss=f32(gloss),
        tex_emit=f32(emit),
        shadows=lights.shadows,
        shadow_boxes=torch.tensor(shadow_casting_boxes(layout.boxes, room_min, room_max), dtype=torch.long),
    )
    return ProceduralScene(seed, geometry, torch.from_numpy(c2w), hfov, list(mats.kinds))
