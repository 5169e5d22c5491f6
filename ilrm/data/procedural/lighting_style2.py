"""Style 2 lighting: lamp colours, where the lights go (:func:`design_lights`), a camera-like auto
exposure and white balance (:func:`expose`), per-texture highlights and emission, shadow casters."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .furniture_style2 import Builder, log_uniform
from .layout import Layout
from .materials import GLOSS, GLOSS_DEFAULT
from .textures import random_colour


def luma(rgb: np.ndarray) -> float:
    """Rec. 709 luminance of a linear RGB colour (3,)."""
    return float(rgb @ np.array([0.2126, 0.7152, 0.0722]))


def kelvin(t: float) -> np.ndarray:
    """Approximate RGB (3,) of a black body at ``t`` kelvin (Tanner Helland's fit), unit luminance:
    warm bulbs ~2700 K, daylight ~5500-6500 K, overcast sky ~7000-10000 K."""
    t = t / 100
    r = 1.0 if t <= 66 else 1.29293 * (t - 60) ** -0.1332047592
    g = 0.39008 * math.log(t) - 0.63184 if t <= 66 else 1.12989 * (t - 60) ** -0.0755148492
    b = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.54321 * math.log(t - 10) - 1.19625)
    rgb = np.clip(np.array([r, g, b]), 0.0, 1.0)
    return rgb / luma(rgb)


def _bulb_colour(rng: np.random.RandomState, tint: float) -> np.ndarray:
    """A lamp's colour: mostly warm, sometimes cool white, with probability ``tint`` a coloured bulb."""
    rgb = kelvin(rng.uniform(2500, 3600) if rng.rand() < 0.6 else rng.uniform(3600, 7000))
    if rng.rand() < tint:
        rgb = rgb * random_colour(rng, sat=(0.2, 0.55), val=(1.0, 1.0))
    return rgb / luma(rgb)


def _clear_of_objects(layout: Layout, pos: np.ndarray, margin: float) -> bool:
    """``pos`` (3,) lies at least ``margin`` outside every primitive's bounding box (a light must not
    sit inside a shadow caster)."""
    for c, h, yaw, *_ in layout.boxes:
        ext = np.array(
            [
                abs(math.cos(yaw)) * h[0] + abs(math.sin(yaw)) * h[1],
                abs(math.sin(yaw)) * h[0] + abs(math.cos(yaw)) * h[1],
                h[2],
            ]
        )
        if np.all(np.abs(pos - c) < ext + margin):
            return False
    for c, r, *_ in layout.spheres:
        if np.linalg.norm(pos - c) < r + margin:
            return False
    for c, r, hh, *_ in layout.cylinders:
        if np.linalg.norm((pos - c)[:2]) < r + margin and abs(pos[2] - c[2]) < hh + margin:
            return False
    return True


@dataclass
class Lights2:
    """Style 2 lighting before exposure (numpy): see :class:`RoomGeometry` for the fields."""

    pos: np.ndarray  # (L, 3)
    rgb: np.ndarray  # (L, 3)
    range_: np.ndarray  # (L,)
    fill_dir: np.ndarray
    fill_rgb: np.ndarray
    sun_rgb: np.ndarray  # relative to the exposure-normalised lighting
    ambient_rgb: np.ndarray
    ao_strength: float
    ao_radius: float
    bounce: float
    shininess: float
    shadows: bool
    exposure: float  # mean brightness the lighting is scaled to
    white_balance: float  # 0: the camera keeps the lights' colour cast, 1: neutralises it
    fixture: tuple[np.ndarray, float, float] | None  # pendant shade above the main light: centre, r, hh


def design_lights(rng: np.random.RandomState, layout: Layout, b: Builder, height: float) -> Lights2:
    """Draw the style 2 lights: a ceiling light (usually with a pendant shade above it), up to two
    more (floor lamps, ceiling lights or wall sconces), ambient, a fill and maybe sun through the
    windows."""
    U = rng.uniform
    lo, hi = layout.room_min, layout.room_max
    drop_max = min(0.9, height - 2.0)  # keeps lamp and shade above head height (the camera ≤ 1.7 m)
    main = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, height - 0.2])
    for _ in range(20):
        # At least 1 m (or a quarter of the room) from the walls: a lamp close to a wall mostly lights that wall.
        m = np.minimum(1.0, 0.25 * (hi[:2] - lo[:2]))
        cand = np.array([U(lo[0] + m[0], hi[0] - m[0]), U(lo[1] + m[1], hi[1] - m[1]), height - U(0.2, drop_max)])
        if _clear_of_objects(layout, cand, 0.3):
            main = cand
            break
    pos, rgb, rng_m = [main], [_bulb_colour(rng, 0.08)], [U(1.5, 5.0)]
    lamps = list(b.lamps)
    for _ in range(rng.choice(3, p=[0.4, 0.4, 0.2])):
        if lamps and rng.rand() < 0.75:  # inside a floor lamp's shade (no shadows from it)
            p = lamps.pop(rng.randint(len(lamps)))
            rgb.append(_bulb_colour(rng, 0.1) * U(0.2, 0.6))
            rng_m.append(U(0.8, 2.5))
        elif rng.rand() < 0.5:  # another ceiling light
            p = np.array([U(lo[0] + 0.5, hi[0] - 0.5), U(lo[1] + 0.5, hi[1] - 0.5), height - U(0.1, 0.5)])
            rgb.append(_bulb_colour(rng, 0.12) * U(0.3, 0.9))
            rng_m.append(U(1.0, 4.0))
        else:  # a wall sconce: a bright pool of light on its wall
            wall = rng.randint(4)
            axis = 0 if wall < 2 else 1
            p = np.array([U(lo[0] + 0.4, hi[0] - 0.4), U(lo[1] + 0.4, hi[1] - 0.4), U(1.7, min(2.3, height - 0.3))])
            p[axis] = lo[axis] + 0.25 if wall % 2 == 0 else hi[axis] - 0.25
            rgb.append(_bulb_colour(rng, 0.2) * U(0.2, 0.6))
            rng_m.append(U(0.6, 2.0))
        pos.append(p)
    fixture = None
    if rng.rand() < 0.8:
        r, hh = U(0.1, 0.25), U(0.02, 0.1)
        z = main[2] + 0.03 + hh
        if z + hh < height - 0.01 and _clear_of_objects(layout, np.array([main[0], main[1], z]), r + 0.05):
            fixture = (np.array([main[0], main[1], z]), r, hh)

    if b.windows and rng.rand() < 0.85:  # daylight from the first window's wall
        wall = b.windows[0][0]
        inward = np.zeros(3)
        inward[0 if wall < 2 else 1] = 1.0 if wall % 2 == 0 else -1.0
        side = np.array([-inward[1], inward[0], 0.0])
        az, el = U(-0.9, 0.9), U(0.35, 1.0)  # sun elevation 20-57°
        fill_dir = math.cos(el) * (math.cos(az) * inward + math.sin(az) * side) - np.array([0, 0, math.sin(el)])
        fill_rgb = kelvin(U(6500, 10000)) * U(0.1, 0.4)  # skylight
        sun_rgb = kelvin(U(3000, 5800)) * U(0.3, 1.0) if rng.rand() < 0.65 else np.zeros(3)
    else:
        fill_dir = np.array([U(-1, 1), U(-1, 1), -U(0.5, 1.5)])
        fill_rgb = kelvin(U(4000, 6500)) * U(0.05, 0.3)
        sun_rgb = np.zeros(3)
    rgb_arr = np.stack(rgb)
    ambient = rgb_arr.mean(0) / luma(rgb_arr.mean(0)) * U(0.12, 0.5)
    return Lights2(
        pos=np.stack(pos),
        rgb=rgb_arr,
        range_=np.array(rng_m),
        fill_dir=fill_dir / np.linalg.norm(fill_dir),
        fill_rgb=fill_rgb,
        sun_rgb=sun_rgb,
        ambient_rgb=ambient,
        ao_strength=U(0.15, 0.45),
        ao_radius=U(0.2, 0.7),
        bounce=U(0.3, 1.0),
        shininess=log_uniform(rng, 8.0, 96.0),
        shadows=bool(rng.rand() < 0.8),
        exposure=U(0.6, 1.0),
        white_balance=U(0.4, 0.9),
        fixture=fixture,
    )


def expose(lights: Lights2, room_min: np.ndarray, room_max: np.ndarray, wall_rgb: np.ndarray) -> float:
    """Tint the ambient light by the wall colour (light bounced off the walls), then white-balance and
    scale all lights like a camera's auto exposure, so that the mean irradiance over probe points on
    the floor, walls and ceiling has the scene's exposure: no black or blown-out rooms however many
    and how strong the lights are. Modifies ``lights``; returns the scale factor."""
    lights.ambient_rgb = lights.ambient_rgb * (0.65 + 0.35 * wall_rgb / max(luma(wall_rgb), 1e-3))
    c, half = (room_min + room_max) / 2, (room_max - room_min) / 2
    probes, normals = [], []
    for fx in (-0.6, 0.0, 0.6):
        for fy in (-0.6, 0.0, 0.6):
            probes.append([c[0] + fx * half[0], c[1] + fy * half[1], room_min[2]])
            normals.append([0, 0, 1])
    for axis in (0, 1):
        for sign in (-1, 1):
            p = c.copy()
            p[axis] += sign * half[axis]
            p[2] = room_min[2] + 1.2
            n = np.zeros(3)
            n[axis] = -sign
            probes.append(p)
            normals.append(n)
    probes.append([c[0], c[1], room_max[2]])
    normals.append([0, 0, -1])
    p, n = np.array(probes, float), np.array(normals, float)
    to = lights.pos[None] - p[:, None]
    dist = np.linalg.norm(to, axis=-1)
    cos = np.clip((to * n[:, None]).sum(-1) / dist, 0, None)
    e = (cos / (1 + (dist / lights.range_) ** 2)) @ lights.rgb
    e += lights.ambient_rgb + np.clip(-(n @ lights.fill_dir), 0, None)[:, None] * lights.fill_rgb
    mean = e.mean(0)
    gain = (luma(mean) / np.maximum(mean, 1e-6)) ** lights.white_balance
    gain *= lights.exposure / luma(mean * gain)
    lights.rgb, lights.fill_rgb, lights.ambient_rgb = (
        lights.rgb * gain,
        lights.fill_rgb * gain,
        lights.ambient_rgb * gain,
    )
    lights.sun_rgb = lights.sun_rgb * gain * lights.exposure
    return float(luma(gain))


def surface_properties(
    rng: np.random.RandomState, kinds: list[str], emissive: dict[int, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Highlight strength and emission per texture (S,), from its kind (see GLOSS)."""
    scale = rng.uniform(0.3, 1.0)
    gloss, emit = np.zeros(len(kinds)), np.zeros(len(kinds))
    for i, kind in enumerate(kinds):
        gloss[i] = scale * rng.uniform(*GLOSS.get(kind.split(":")[0], GLOSS_DEFAULT))
        if i in emissive:
            emit[i] = rng.uniform(0.8, 1.6) if emissive[i] == "window" else rng.uniform(0.3, 0.8)
    return gloss, emit


def shadow_casting_boxes(boxes: list[tuple], room_min: np.ndarray, room_max: np.ndarray) -> list[int]:
    """Boxes that can cast a visible shadow: all but thin panels flush with a room face (pictures,
    doors, windows, skirting, rugs), which only cost shadow-ray time."""
    keep = []
    for i, (c, h, yaw, *_) in enumerate(boxes):
        a = int(np.argmin(h))
        flush = yaw == 0.0 and (abs(c[a] - h[a] - room_min[a]) < 0.01 or abs(c[a] + h[a] - room_max[a]) < 0.01)
        if not (flush and h[a] < 0.03):
            keep.append(i)
    return keep


# ---- scenes ----------------------------------------------------------------------------------
