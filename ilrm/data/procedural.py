"""Procedural indoor walk-throughs: endless RealEstate10K-like scenes, deterministic by seed, no download.

A scene (:func:`make_scene`) is a room (axis-aligned box, 3.5-9 m wide and deep, 2.4-3.2 m high) with
textured walls, floor and ceiling, furniture built from boxes (cabinets, tables, sofas), spheres and
cylinders, pictures on the walls and sometimes a rug. Textures are photos bundled with scikit-image
and procedural patterns (:mod:`ilrm.data.textures`), with sizes in metres. A camera walks through the
room like a handheld phone: a smooth spline through random waypoints that keeps clear of the
furniture, ~1.5 m high, looking roughly along the walking direction with slow yaw turns and small
pitch/roll wobble; frames are spaced ``frame_spacing`` metres apart along the path.

Ground-truth images are ray-cast exactly (:mod:`ilrm.data.raycast`), not rendered by the splatting
renderer the model is judged with. Seeds ``[0, TRAIN_SEED_LIMIT)`` are training scenes; the held-out
test set is ``[TEST_SEED_START, TEST_SEED_START + n)``. Scene layout, textures, trajectory and view
choice come from ``numpy.random.RandomState`` streams seeded by (seed, stream), computed on the CPU in
float64, so they do not depend on the device; only the ray casting runs on the chosen device (results
agree across devices to float32 rounding).

World axes: z up, floor at z = 0; cameras are OpenCV c2w (x right, y down, z forward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..cameras import Views, normalize_poses
from ..errors import ILRMInputError
from .example import Example, collate
from .raycast import RoomGeometry, render_views
from .textures import MATERIAL_PHOTOS, PICTURE_PHOTOS, make_texture

TRAIN_SEED_LIMIT = 10**9  # training scenes are seeds [0, TRAIN_SEED_LIMIT)
TEST_SEED_START = TRAIN_SEED_LIMIT  # held-out scenes are seeds [TEST_SEED_START, TEST_SEED_START + n)
NUM_TEST_SCENES = 100  # default size of the held-out set
DEFAULT_TRAIN_SCENES = 10**6  # default length of the training split (any window of the range works)
PLACEMENTS = ("between", "random", "beyond")

# Random streams per scene: RandomState([seed, stream]) (RandomState: numpy keeps its output fixed).
_STREAM_LAYOUT, _STREAM_PATH, _STREAM_VIEWS, _STREAM_TEXTURE0 = 1, 2, 3, 1000


@dataclass(frozen=True)
class ProceduralConfig:
    """What a procedural example looks like.

    height, width: rendered image size in pixels.
    num_context, num_target: views per example (context ≥ 1; 2 and 8 are the usual choices).
    context_gap: (min, max) frames between the first and the last context view (inclusive range);
        with ``frame_spacing`` metres per frame this is the walking distance between them, i.e. the
        baseline (default 15-50 frames = 0.6-2.0 m of path).
    target_placement: "between" (targets in the context span),
        "random" (anywhere on the trajectory) or "beyond" (outside the span, up to half a gap away:
        extrapolation; falls back to "between" when the span touches both ends of the trajectory).
        Targets avoid the context frames whenever enough other frames are available (a target that
        repeats an input image would flatter the metrics).
    frame_spacing: metres of path between consecutive frames (0.04 ≈ a 30 fps video walked at 1.2 m/s).
    hfov_deg: range of the horizontal field of view (drawn once per scene).
    texture_size: texels per side of every texture (power of two); None picks the power of two
        ≥ max(height, width), clamped to [64, 512] (finer texels would be averaged away by mip-mapping).
    photo_textures: use scikit-image photos as well as procedural patterns.
    max_objects: upper bound on furniture pieces (tables and sofas count once; rooms get about one
        per 4 m² of floor).
    supersample: rays per pixel per axis (1 = fast; 2-3 antialias geometric edges).
    """

    height: int = 256
    width: int = 256
    num_context: int = 2
    num_target: int = 4
    context_gap: tuple[int, int] = (15, 50)
    target_placement: str = "between"
    frame_spacing: float = 0.04
    hfov_deg: tuple[float, float] = (50.0, 70.0)
    texture_size: int | None = None
    photo_textures: bool = True
    max_objects: int = 16
    supersample: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "context_gap", tuple(int(g) for g in self.context_gap))
        object.__setattr__(self, "hfov_deg", tuple(float(g) for g in self.hfov_deg))
        if self.height <= 0 or self.width <= 0:
            raise ILRMInputError(f"height and width must be positive, got {self.height}×{self.width}")
        if self.num_context < 1 or self.num_target < 0:
            raise ILRMInputError("num_context must be >= 1 and num_target >= 0")
        lo, hi = self.context_gap
        if not 0 <= lo <= hi:
            raise ILRMInputError(f"context_gap must be (min, max) with 0 <= min <= max, got {self.context_gap}")
        if self.target_placement not in PLACEMENTS:
            raise ILRMInputError(f"target_placement must be one of {PLACEMENTS}, got {self.target_placement!r}")
        if not 0 < self.hfov_deg[0] <= self.hfov_deg[1] < 180:
            raise ILRMInputError(f"hfov_deg must be (min, max) inside (0, 180), got {self.hfov_deg}")
        t = self.texture_size
        if t is not None and (t < 8 or t & (t - 1)):
            raise ILRMInputError(f"texture_size must be a power of two >= 8, got {t}")
        if self.frame_spacing <= 0 or self.supersample < 1 or self.max_objects < 0:
            raise ILRMInputError("frame_spacing must be > 0, supersample >= 1 and max_objects >= 0")


@dataclass
class ProceduralScene:
    """A room and a camera trajectory through it.

    geometry: the room (CPU tensors). c2w: (F, 4, 4) float64 OpenCV camera-to-world per frame (metres,
    z up). hfov: horizontal field of view in radians. texture_kinds: what each texture is (debugging).
    """

    seed: int
    geometry: RoomGeometry
    c2w: Tensor
    hfov: float
    texture_kinds: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.c2w.shape[0]

    def intrinsics(self, height: int, width: int) -> Tensor:
        """(3, 3) float32 pixel intrinsics: square pixels, principal point at the image centre."""
        f = 0.5 * width / math.tan(0.5 * self.hfov)
        return torch.tensor([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]], dtype=torch.float32)


def scene_id(seed: int) -> str:
    """``"proc-000123"`` for seed 123."""
    return f"proc-{seed:06d}"


# ---- materials ---------------------------------------------------------------------------------

_FLOOR = {"wood": 4.0, "tiles": 2.0, "carpet": 1.5, "marble": 1.0, "checker": 0.6, "plaster": 0.4, "photo": 0.5}
_WALL = {
    "paint": 4.0,
    "plaster": 2.0,
    "stripes": 1.2,
    "bricks": 1.0,
    "dots": 0.6,
    "tiles": 0.5,
    "wood": 0.4,
    "marble": 0.3,
}
_CEILING = {"paint": 5.0, "plaster": 2.0, "wood": 0.5, "tiles": 0.4}
_OBJECT = {
    "wood": 2.0,
    "noise": 1.5,
    "checker": 1.0,
    "stripes": 1.0,
    "marble": 1.0,
    "gradient": 0.6,
    "carpet": 0.6,
    "tiles": 0.6,
    "dots": 0.5,
    "bricks": 0.4,
    "photo": 2.5,
}
_TRIM = {"wood": 2.0, "paint": 2.0, "marble": 0.5}
_DOOR = {"wood": 3.0, "paint": 2.0, "plaster": 0.5, "stripes": 0.3}
_FABRIC = {"noise": 2.0, "carpet": 2.0, "stripes": 1.0, "checker": 0.7, "dots": 0.5, "photo": 0.5}
# Metres per texture repeat.
_TILE = {
    "paint": (1.5, 3.0),
    "plaster": (1.0, 3.0),
    "carpet": (0.8, 2.0),
    "wood": (0.8, 2.0),
    "tiles": (0.5, 1.6),
    "checker": (0.4, 1.6),
    "stripes": (0.6, 2.0),
    "dots": (0.5, 1.5),
    "bricks": (0.8, 1.8),
    "gradient": (0.5, 2.0),
    "marble": (0.6, 2.0),
    "noise": (0.5, 2.0),
    "photo": (0.5, 1.5),
}


class _Materials:
    """Collects the texture kinds of a scene; textures are generated afterwards, one stream each."""

    def __init__(self, rng: np.random.RandomState, photos: bool) -> None:
        self.rng, self.photos, self.kinds = rng, photos, []

    def _add(self, kind: str) -> int:
        self.kinds.append(kind)
        return len(self.kinds) - 1

    def pick(self, table: dict[str, float], scale: float = 1.0) -> tuple[int, float]:
        """A new texture drawn from ``table``: (texture index, tile size in metres)."""
        names = list(table)
        w = np.array([table[n] for n in names])
        name = names[self.rng.choice(len(names), p=w / w.sum())]
        tile = self.rng.uniform(*_TILE[name]) * scale
        if name == "photo":
            pool = MATERIAL_PHOTOS + PICTURE_PHOTOS if table is not _FLOOR else MATERIAL_PHOTOS
            photo = pool[self.rng.randint(len(pool))]
            name = f"photo:{photo}" if self.photos else "noise"
        return self._add(name), tile

    def picture(self) -> int:
        photo = PICTURE_PHOTOS[self.rng.randint(len(PICTURE_PHOTOS))]
        return self._add(f"picture:{photo}" if self.photos else "noise")


# ---- camera path -----------------------------------------------------------------------------


def _catmull_rom(points: np.ndarray, samples: int = 64) -> np.ndarray:
    """Uniform Catmull-Rom spline through (K, 2) points (ends duplicated), (≈K·samples, 2)."""
    p = np.concatenate([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
        )
    out.append(points[-1:])
    return np.concatenate(out)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a 1-D signal (sigma in samples, edges held constant)."""
    if sigma < 0.5 or len(x) < 2:
        return x
    r = int(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return np.convolve(np.pad(x, r, mode="edge"), k / k.sum(), mode="valid")


def _wobble(
    rng: np.random.RandomState, s: np.ndarray, amplitude: float, wavelength: tuple[float, float], n: int = 2
) -> np.ndarray:
    """Smooth random wiggle along arc length s: a sum of n sinusoids of the given amplitude each."""
    out = np.zeros_like(s)
    for _ in range(n):
        out += amplitude * np.sin(2 * np.pi * s / rng.uniform(*wavelength) + rng.uniform(0, 2 * np.pi))
    return out


def _camera_path(
    rng: np.random.RandomState, lo: np.ndarray, hi: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Walk through the floor rectangle [lo, hi] (2,): positions (F, 2) and arc length (F,)."""
    target = rng.uniform(5.0, 12.0)
    pts = [rng.uniform(lo, hi)]
    length = 0.0
    while (length < target or len(pts) < 3) and len(pts) < 12:
        for _ in range(20):
            q = rng.uniform(lo, hi)
            step = q - pts[-1]
            if np.linalg.norm(step) < 1.0:
                continue
            if len(pts) < 2:
                break
            prev = pts[-1] - pts[-2]
            # No U-turns: they make cusps in the spline.
            if step @ prev > -0.5 * np.linalg.norm(step) * np.linalg.norm(prev):
                break
        length += float(np.linalg.norm(q - pts[-1]))
        pts.append(q)
    dense = _catmull_rom(np.stack(pts))
    dense = np.clip(dense, lo - 0.3, hi + 0.3)  # the spline may overshoot its waypoints a little
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    s = np.arange(int(arc[-1] / spacing) + 1) * spacing
    xy = np.stack([np.interp(s, arc, dense[:, 0]), np.interp(s, arc, dense[:, 1])], -1)
    return xy, s


def _look_at_c2w(pos: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """OpenCV c2w (F, 4, 4) from positions (F, 3) and yaw/pitch/roll (F,) in a z-up world."""
    f = np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)], -1)
    right = np.cross(f, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(f, right)
    c, s = np.cos(roll)[:, None], np.sin(roll)[:, None]
    right, down = c * right + s * down, -s * right + c * down
    out = np.zeros((len(pos), 4, 4))
    out[:, :3, 0], out[:, :3, 1], out[:, :3, 2], out[:, :3, 3] = right, down, f, pos
    out[:, 3, 3] = 1.0
    return out


def _trajectory(
    rng: np.random.RandomState, room_min: np.ndarray, room_max: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Handheld walk: c2w (F, 4, 4) and the floor positions (F, 2)."""
    # Keep the walk in the middle of the room, leaving a ring along the walls for furniture.
    margin = np.maximum(0.8, 0.22 * (room_max[:2] - room_min[:2]))
    xy, s = _camera_path(rng, room_min[:2] + margin, room_max[:2] - margin, spacing)
    tangent = np.gradient(xy, axis=0) if len(xy) > 1 else np.array([[1.0, 0.0]])
    heading = tangent / np.linalg.norm(tangent, axis=-1, keepdims=True).clip(1e-9)
    # People filming a room look across it rather than into the nearest wall: among directions
    # within ±80° of the (smoothed) walking direction, find the one that sees farthest to a wall,
    # blend it with the walking direction (per-scene weight), then smooth the blended vectors
    # (robust where the two disagree) into a slowly turning yaw.
    walk = np.arctan2(_smooth(heading[:, 1], 0.6 / spacing), _smooth(heading[:, 0], 0.6 / spacing))
    cand = walk[:, None] + np.radians(np.linspace(-80.0, 80.0, 33))[None, :]
    cx, cy = np.cos(cand), np.sin(cand)
    with np.errstate(divide="ignore"):
        tx = np.where(cx > 0, room_max[0] - xy[:, :1], room_min[0] - xy[:, :1]) / cx
        ty = np.where(cy > 0, room_max[1] - xy[:, 1:], room_min[1] - xy[:, 1:]) / cy
    free = np.minimum(np.abs(tx), np.abs(ty))
    best = cand[np.arange(len(cand)), np.argmax(np.minimum(free, 6.0) - 0.3 * np.abs(cand - walk[:, None]), axis=1)]
    w = rng.uniform(0.3, 0.9)
    blend = (1 - w) * heading + w * np.stack([np.cos(best), np.sin(best)], -1)
    sigma = 0.6 / spacing
    target = np.arctan2(_smooth(blend[:, 1], sigma), _smooth(blend[:, 0], sigma))
    # Turn towards the target direction at a bounded rate (a person turning around takes a few
    # steps), then soften the corners of the rate limit.
    heading = np.empty_like(target)
    heading[0] = target[0]
    max_step = math.radians(45.0) * spacing
    for i in range(1, len(target)):
        delta = (target[i] - heading[i - 1] + math.pi) % (2 * math.pi) - math.pi
        heading[i] = heading[i - 1] + np.clip(delta, -max_step, max_step)
    heading = _smooth(heading, 0.2 / spacing)
    look = rng.uniform(-0.35, 0.35) + rng.uniform(0.0, 0.35) * np.sin(
        2 * np.pi * s / rng.uniform(4, 10) + rng.uniform(0, 6.3)
    )
    yaw = heading + look + _wobble(rng, s, 0.004, (0.2, 0.6), 3)
    pitch = rng.uniform(-0.25, 0.05) + _wobble(rng, s, 0.03, (2.0, 5.0)) + _wobble(rng, s, 0.004, (0.2, 0.6), 3)
    roll = rng.uniform(-0.03, 0.03) + _wobble(rng, s, 0.01, (2.0, 5.0)) + _wobble(rng, s, 0.003, (0.2, 0.6), 3)
    z = rng.uniform(1.35, 1.65) + 0.012 * np.sin(2 * np.pi * s / rng.uniform(0.6, 0.8) + rng.uniform(0, 6.3))
    pos = np.concatenate([xy, z[:, None]], -1)
    return _look_at_c2w(pos, yaw, pitch, roll), xy


# ---- furniture -------------------------------------------------------------------------------


class _Layout:
    """Accumulates primitives (numpy, metres) and checks clearances while placing furniture."""

    def __init__(self, room_min: np.ndarray, room_max: np.ndarray, path_xy: np.ndarray, clearance: float = 0.45):
        self.room_min, self.room_max, self.path, self.clearance = room_min, room_max, path_xy, clearance
        self.boxes: list[tuple] = []  # (center, half, yaw, tex, tile, uvoff)
        self.spheres: list[tuple] = []  # (center, radius, tex, tile, uvoff)
        self.cylinders: list[tuple] = []  # (center, radius, half_height, tex, tile, uvoff)
        self.footprints: list[tuple[np.ndarray, float]] = []  # bounding circles of floor objects

    @staticmethod
    def _rect_distance(pts: np.ndarray, center: np.ndarray, half: np.ndarray, yaw: float) -> np.ndarray:
        c, s = math.cos(yaw), math.sin(yaw)
        rel = pts - center[:2]
        local = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], -1)
        return np.linalg.norm(np.maximum(np.abs(local) - half[:2], 0.0), axis=-1)

    def fits(self, center: np.ndarray, half_xy: np.ndarray, yaw: float, round_: bool = False) -> bool:
        """A floor footprint (rectangle, or circle of radius half_xy[0]) is inside the room, clear of
        the camera path and of other floor objects."""
        c, s = math.cos(yaw), math.sin(yaw)
        ext = np.array([abs(c) * half_xy[0] + abs(s) * half_xy[1], abs(s) * half_xy[0] + abs(c) * half_xy[1]])
        if round_:
            ext = np.array([half_xy[0], half_xy[0]])
        if np.any(center[:2] - ext < self.room_min[:2] + 0.01) or np.any(center[:2] + ext > self.room_max[:2] - 0.01):
            return False
        if round_:
            dist = np.linalg.norm(self.path - center[:2], axis=-1) - half_xy[0]
        else:
            dist = self._rect_distance(self.path, center, half_xy, yaw)
        if dist.min() < self.clearance:
            return False
        radius = float(np.linalg.norm(half_xy)) if not round_ else float(half_xy[0])
        return all(np.linalg.norm(center[:2] - c2) >= radius + r2 + 0.05 for c2, r2 in self.footprints)

    def claim(self, center: np.ndarray, half_xy: np.ndarray, round_: bool = False) -> None:
        self.footprints.append((center[:2].copy(), float(half_xy[0]) if round_ else float(np.linalg.norm(half_xy))))

    def box(self, center, half, yaw, tex, tile, uvoff) -> None:
        self.boxes.append((np.asarray(center, float), np.asarray(half, float), float(yaw), tex, tile, uvoff))


def _random_floor_spot(rng: np.random.RandomState, layout: _Layout, half_xy: np.ndarray) -> tuple[np.ndarray, float]:
    """A centre (3,) on the floor and a yaw: against a random wall (back to it) or anywhere."""
    lo, hi = layout.room_min, layout.room_max
    if rng.rand() < 0.55:
        wall = rng.randint(4)
        gap = rng.uniform(0.01, 0.1)
        if wall < 2:  # x walls: the object's local y axis runs along the wall
            x = lo[0] + gap + half_xy[1] if wall == 0 else hi[0] - gap - half_xy[1]
            y = rng.uniform(lo[1] + half_xy[0], hi[1] - half_xy[0]) if hi[1] - lo[1] > 2 * half_xy[0] else 0.0
            yaw = -math.pi / 2 if wall == 0 else math.pi / 2
        else:
            y = lo[1] + gap + half_xy[1] if wall == 2 else hi[1] - gap - half_xy[1]
            x = rng.uniform(lo[0] + half_xy[0], hi[0] - half_xy[0]) if hi[0] - lo[0] > 2 * half_xy[0] else 0.0
            yaw = 0.0 if wall == 2 else math.pi
        return np.array([x, y, 0.0]), yaw
    yaw = 0.0 if rng.rand() < 0.4 else rng.uniform(0, math.pi)
    return np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]), 0.0]), yaw


def _local_to_world(center: np.ndarray, yaw: float, offset: np.ndarray) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return center + np.array([c * offset[0] - s * offset[1], s * offset[0] + c * offset[1], offset[2]])


def _uvoff(rng: np.random.RandomState) -> np.ndarray:
    return rng.uniform(0, 1, 2)


def _place_furniture(
    rng: np.random.RandomState, layout: _Layout, mats: _Materials, max_objects: int, height: float
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
            center, yaw = _random_floor_spot(rng, layout, half[:2])
            round_ = kind in ("sphere", "cylinder")
            if layout.fits(center, half[:2], yaw, round_):
                break
        else:
            continue
        layout.claim(center, half[:2], round_)
        if kind == "box":
            tex, tile = mats.pick(_OBJECT, rng.uniform(0.4, 1.0))
            layout.box(center + [0, 0, half[2]], half, yaw, tex, (tile, tile), _uvoff(rng))
            tops.append((center + [0, 0, 2 * half[2]], half[:2], yaw))
        elif kind == "table":
            tex, tile = mats.pick(_OBJECT, rng.uniform(0.4, 1.0))
            uv = _uvoff(rng)
            top_half = np.array([half[0], half[1], 0.02])
            h = 2 * half[2]
            layout.box(center + [0, 0, h - 0.02], top_half, yaw, tex, (tile, tile), uv)
            leg = 0.03
            for sx in (-1, 1):
                for sy in (-1, 1):
                    off = np.array([sx * (half[0] - 0.06), sy * (half[1] - 0.06), (h - 0.04) / 2])
                    layout.box(
                        _local_to_world(center, yaw, off), [leg, leg, (h - 0.04) / 2], yaw, tex, (tile, tile), uv
                    )
            tops.append((center + [0, 0, h], half[:2], yaw))
        elif kind == "sofa":
            tex, tile = mats.pick(_FABRIC, rng.uniform(0.4, 1.0))
            uv = _uvoff(rng)
            seat_h, back_h, arm_h, arm_w, back_d = 0.42, 0.85, 0.62, 0.16, 0.2
            # Local +y points away from the wall (see _random_floor_spot), so the back sits at -y.
            parts = [
                ([0, 0, seat_h / 2], [half[0], half[1], seat_h / 2]),
                ([0, -half[1] + back_d / 2, back_h / 2], [half[0], back_d / 2, back_h / 2]),
                ([-half[0] + arm_w / 2, 0, arm_h / 2], [arm_w / 2, half[1], arm_h / 2]),
                ([half[0] - arm_w / 2, 0, arm_h / 2], [arm_w / 2, half[1], arm_h / 2]),
            ]
            for off, h in parts:
                layout.box(_local_to_world(center, yaw, np.array(off, float)), h, yaw, tex, (tile, tile), uv)
        elif kind == "sphere":
            _add_sphere(rng, layout, mats, center + [0, 0, half[0]], half[0])
        else:
            _add_cylinder(rng, layout, mats, center + [0, 0, half[2]], half[0], half[2])

    for top, half_xy, yaw in tops:  # small things on cabinets and tables
        if rng.rand() < 0.5:
            continue
        off = np.array([rng.uniform(-0.6, 0.6) * half_xy[0], rng.uniform(-0.6, 0.6) * half_xy[1], 0.0])
        spot = _local_to_world(top, yaw, off)
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
            tex, tile = mats.pick(_OBJECT, 0.3)
            layout.box(spot + [0, 0, h[2]], h, yaw + rng.uniform(-0.5, 0.5), tex, (tile, tile), _uvoff(rng))

    if rng.rand() < 0.35:  # a rug (flat, so the walk may cross it)
        lo, hi = layout.room_min, layout.room_max
        half = np.array([rng.uniform(0.6, 1.5), rng.uniform(0.4, 1.0), 0.005])
        half[:2] = np.minimum(half[:2], 0.5 * (hi[:2] - lo[:2]) - 0.3)
        center = np.array(
            [rng.uniform(lo[0] + half[0], hi[0] - half[0]), rng.uniform(lo[1] + half[1], hi[1] - half[1]), 0.005]
        )
        tex, tile = mats.pick(_FABRIC, rng.uniform(0.4, 1.0))
        layout.box(center, half, 0.0, tex, (tile, tile), _uvoff(rng))

    lo, hi = layout.room_min, layout.room_max
    if rng.rand() < 0.5:  # skirting boards: a thin strip along every wall
        tex, tile = mats.pick(_TRIM)
        bh = rng.uniform(0.06, 0.14)
        for wall in range(4):
            along = 1 if wall < 2 else 0
            _wall_panel(
                layout,
                wall,
                0.5 * (lo[along] + hi[along]),
                hi[along] - lo[along],
                bh / 2,
                bh,
                0.015,
                tex,
                (tile, tile),
                _uvoff(rng),
            )
    for _ in range(rng.randint(0, 3)):  # doors
        wall = rng.randint(4)
        along = 1 if wall < 2 else 0
        w, h = rng.uniform(0.75, 1.0), min(rng.uniform(1.95, 2.15), height - 0.15)
        if hi[along] - lo[along] < w + 0.4:
            continue
        pos = rng.uniform(lo[along] + 0.2 + w / 2, hi[along] - 0.2 - w / 2)
        tex, tile = mats.pick(_DOOR)
        _wall_panel(layout, wall, pos, w, h / 2, h, 0.04, tex, (tile, tile), _uvoff(rng))
    for _ in range(rng.randint(0, 4)):  # shelves and wall cabinets
        wall = rng.randint(4)
        along = 1 if wall < 2 else 0
        w = min(rng.uniform(0.5, 1.5), hi[along] - lo[along] - 0.4)
        h = rng.uniform(0.03, 0.05) if rng.rand() < 0.5 else rng.uniform(0.3, 0.7)
        zc = min(rng.uniform(0.9, 1.9), height - 0.1 - h / 2)
        pos = rng.uniform(lo[along] + 0.2 + w / 2, hi[along] - 0.2 - w / 2)
        tex, tile = mats.pick(_OBJECT, rng.uniform(0.4, 1.0))
        _wall_panel(layout, wall, pos, w, zc, h, rng.uniform(0.2, 0.35), tex, (tile, tile), _uvoff(rng))
    for _ in range(rng.randint(0, 7)):  # pictures, shown once and upright
        wall = rng.randint(4)
        along = 1 if wall < 2 else 0
        w, h = min(rng.uniform(0.35, 1.3), hi[along] - lo[along] - 0.4), rng.uniform(0.3, 1.0)
        zc = min(rng.uniform(1.2, 1.9), height - 0.1 - h / 2)
        pos = rng.uniform(lo[along] + 0.2 + w / 2, hi[along] - 0.2 - w / 2)
        _wall_panel(layout, wall, pos, w, zc, h, 0.03, mats.picture(), (w, h), np.array([0.5, 0.5]))


def _wall_panel(
    layout: _Layout, wall: int, pos: float, width: float, zc: float, height: float, thick: float, tex: int, tile, uvoff
) -> None:
    """A thin box flat against wall 0..3 (-x, +x, -y, +y), centred at ``pos`` along it and ``zc`` high."""
    lo, hi = layout.room_min, layout.room_max
    axis = 0 if wall < 2 else 1
    along = 1 - axis
    center, half = np.zeros(3), np.zeros(3)
    center[along], center[2] = pos, zc
    center[axis] = lo[axis] + thick / 2 if wall % 2 == 0 else hi[axis] - thick / 2
    half[axis], half[along], half[2] = thick / 2, width / 2, height / 2
    layout.box(center, half, 0.0, tex, tile, uvoff)


def _add_sphere(rng: np.random.RandomState, layout: _Layout, mats: _Materials, center: np.ndarray, r: float) -> None:
    tex, tile = mats.pick(_OBJECT, rng.uniform(0.3, 1.0))
    n_u = max(1, round(2 * math.pi * r / tile))  # whole repeats around the equator: no seam
    layout.spheres.append((center, r, tex, (2 * math.pi * r / n_u, tile), _uvoff(rng)))


def _add_cylinder(
    rng: np.random.RandomState, layout: _Layout, mats: _Materials, center: np.ndarray, r: float, hh: float
) -> None:
    tex, tile = mats.pick(_OBJECT, rng.uniform(0.3, 1.0))
    n_u = max(1, round(2 * math.pi * r / tile))
    layout.cylinders.append((center, r, hh, tex, (2 * math.pi * r / n_u, tile), _uvoff(rng)))


def _stack(items: list[tuple], col: int, width: int | None, dtype=torch.float32) -> Tensor:
    if not items:
        return torch.zeros((0,) if width is None else (0, width), dtype=dtype)
    return torch.tensor(np.array([np.asarray(it[col], dtype=np.float64) for it in items]), dtype=dtype)


# ---- scenes ----------------------------------------------------------------------------------


def make_scene(seed: int, config: ProceduralConfig | None = None) -> ProceduralScene:
    """The room, textures and camera trajectory of ``seed`` (CPU; same result on every machine)."""
    cfg = config or ProceduralConfig()
    if not 0 <= seed < 2**32:
        raise ILRMInputError(f"seed must be in [0, 2**32), got {seed}")
    rng = np.random.RandomState([seed, _STREAM_LAYOUT])
    size = np.array([rng.uniform(3.5, 9.0), rng.uniform(3.5, 9.0), rng.uniform(2.4, 3.2)])
    room_min = np.array([-size[0] / 2, -size[1] / 2, 0.0])
    room_max = np.array([size[0] / 2, size[1] / 2, size[2]])
    hfov = math.radians(rng.uniform(*cfg.hfov_deg))
    tex_size = cfg.texture_size or min(512, max(64, 1 << (max(cfg.height, cfg.width) - 1).bit_length()))

    mats = _Materials(rng, cfg.photo_textures)
    wall_tex, wall_tile = mats.pick(_WALL)
    walls = [(wall_tex, wall_tile)] * 4
    if rng.rand() < 0.3:  # an accent wall
        walls[rng.randint(4)] = mats.pick(_WALL)
    floor = mats.pick(_FLOOR)
    ceiling = mats.pick(_CEILING)
    room = [*walls, floor, ceiling]
    room_uvoff = np.stack([_uvoff(rng) for _ in range(6)])

    c2w, path_xy = _trajectory(np.random.RandomState([seed, _STREAM_PATH]), room_min, room_max, cfg.frame_spacing)
    layout = _Layout(room_min, room_max, path_xy)
    _place_furniture(rng, layout, mats, cfg.max_objects, size[2])

    # A lamp hanging well below the ceiling lights the ceiling too (a stand-in for bounce light).
    light_pos = np.array(
        [rng.uniform(-0.25, 0.25) * size[0], rng.uniform(-0.25, 0.25) * size[1], size[2] - rng.uniform(0.6, 0.9)]
    )
    fill = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.5, 1.5)])

    textures = [
        make_texture(kind, np.random.RandomState([seed, _STREAM_TEXTURE0 + i]), tex_size)
        for i, kind in enumerate(mats.kinds)
    ]
    # Stored as 8-bit like photos: 4× smaller when scenes travel from DataLoader workers.
    tex_u8 = np.round(np.stack(textures) * 255.0).astype(np.uint8)
    tex_t = torch.from_numpy(tex_u8).permute(0, 3, 1, 2).contiguous()

    L = torch.long
    b, s, cy = layout.boxes, layout.spheres, layout.cylinders
    geometry = RoomGeometry(
        room_min=torch.tensor(room_min, dtype=torch.float32),
        room_max=torch.tensor(room_max, dtype=torch.float32),
        room_tex=torch.tensor([t for t, _ in room], dtype=L),
        room_tile=torch.tensor([[tile, tile] for _, tile in room], dtype=torch.float32),
        room_uvoff=torch.tensor(room_uvoff, dtype=torch.float32),
        box_center=_stack(b, 0, 3),
        box_half=_stack(b, 1, 3),
        box_yaw=_stack(b, 2, None),
        box_tex=_stack(b, 3, None, L),
        box_tile=_stack(b, 4, 2),
        box_uvoff=_stack(b, 5, 2),
        sphere_center=_stack(s, 0, 3),
        sphere_radius=_stack(s, 1, None),
        sphere_tex=_stack(s, 2, None, L),
        sphere_tile=_stack(s, 3, 2),
        sphere_uvoff=_stack(s, 4, 2),
        cyl_center=_stack(cy, 0, 3),
        cyl_radius=_stack(cy, 1, None),
        cyl_half_height=_stack(cy, 2, None),
        cyl_tex=_stack(cy, 3, None, L),
        cyl_tile=_stack(cy, 4, 2),
        cyl_uvoff=_stack(cy, 5, 2),
        textures=tex_t,
        light_pos=torch.tensor(light_pos, dtype=torch.float32),
        light_power=float(rng.uniform(0.45, 0.75)),
        light_range=float(rng.uniform(2.0, 4.0)),
        fill_dir=torch.tensor(fill / np.linalg.norm(fill), dtype=torch.float32),
        fill_power=float(rng.uniform(0.15, 0.35)),
        ambient=float(rng.uniform(0.25, 0.4)),
    )
    return ProceduralScene(seed, geometry, torch.from_numpy(c2w), hfov, list(mats.kinds))


def render_scene(
    scene: ProceduralScene | RoomGeometry,
    K: Tensor,
    c2w: Tensor,
    height: int,
    width: int,
    device: torch.device | str | None = None,
    supersample: int = 1,
) -> tuple[Tensor, Tensor]:
    """Ray-cast views of a scene.

    K: (V, 3, 3) or (3, 3) pixels; c2w: (V, 4, 4) OpenCV, in the scene's world frame (metres).
    Returns images (V, 3, H, W) in [0, 1] and z-depth (V, H, W) in metres, float32 on ``device``
    (default: c2w's device). See :func:`ilrm.data.raycast.render_views`.
    """
    geom = scene.geometry if isinstance(scene, ProceduralScene) else scene
    return render_views(geom, K, c2w, height, width, device=device, supersample=supersample)


# ---- view sampling ---------------------------------------------------------------------------


def sample_view_indices(
    num_frames: int,
    num_context: int,
    num_target: int,
    context_gap: tuple[int, int],
    placement: str,
    rng: np.random.RandomState,
) -> tuple[list[int], list[int]]:
    """ "N random context views + M targets" on a trajectory of ``num_frames`` frames.

    The gap between the first and the last context frame is uniform in ``context_gap`` (clipped to
    the trajectory, and at least num_context - 1); the first frame is uniform so the span fits; the
    other N - 2 context frames are distinct and uniform inside the span. Targets (distinct when
    possible, and not context frames when enough others exist) follow ``placement`` (see
    :class:`ProceduralConfig`). Returns sorted (context, target).
    """
    if num_frames < num_context:
        raise ILRMInputError(f"a trajectory of {num_frames} frames cannot give {num_context} context views")
    if placement not in PLACEMENTS:
        raise ILRMInputError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    hi = min(context_gap[1], num_frames - 1)
    lo = min(max(context_gap[0], num_context - 1), hi)
    gap = rng.randint(lo, hi + 1)
    first = rng.randint(0, num_frames - gap)
    last = first + gap
    inner = rng.choice(np.arange(first + 1, last), num_context - 2, replace=False) if num_context > 2 else []
    context = sorted({first, last, *(int(i) for i in inner)}) if num_context > 1 else [first]
    between = np.arange(first, last + 1)
    if placement == "random":
        pool = np.arange(num_frames)
    elif placement == "beyond":
        reach = max(1, gap // 2)
        pool = np.concatenate(
            [np.arange(max(0, first - reach), first), np.arange(last + 1, min(num_frames, last + reach + 1))]
        )
        if len(pool) == 0:
            pool = between
    else:
        pool = between
    others = np.setdiff1d(pool, context)
    if len(others) >= num_target:
        pool = others
    target = rng.choice(pool, num_target, replace=len(pool) < num_target) if num_target else []
    return context, sorted(int(t) for t in target)


# ---- examples and the dataset ------------------------------------------------------------------


@dataclass
class ViewPlan:
    """A scene and which of its frames to render: what :func:`render_plan` turns into an Example.

    Cheap to make on the CPU and to send between processes (textures are uint8), so DataLoader
    workers can build plans while the main process ray-casts them on the GPU.
    """

    scene: ProceduralScene
    context: list[int]
    target: list[int]
    # Camera augmentation and per-step image size (None: the config's size, the scene's centred camera).
    size: tuple[int, int] | None = None
    focal_scale: float = 1.0  # focal length × this (a zoom: the field of view changes)
    principal_shift: tuple[float, float] = (0.0, 0.0)  # principal point offset, fractions of (W, H)

    def intrinsics(self, config: ProceduralConfig) -> tuple[Tensor, int, int]:
        """(3, 3) pixel intrinsics of every frame of this plan, and its (height, width)."""
        h, w = self.size or (config.height, config.width)
        K = self.scene.intrinsics(h, w).clone()
        K[:2, :2] *= self.focal_scale
        K[0, 2] += self.principal_shift[0] * w
        K[1, 2] += self.principal_shift[1] * h
        return K, h, w

    def camera_key(self) -> tuple:
        """Plans with equal keys can be ray-cast in one call (same scene, intrinsics and size)."""
        return (id(self.scene), self.size, self.focal_scale, self.principal_shift)


def plan_example(
    seed: int,
    config: ProceduralConfig | None = None,
    *,
    context_gap: tuple[int, int] | None = None,
    view_stream: int = 0,
    scene: ProceduralScene | None = None,
) -> ViewPlan:
    """Scene ``seed`` and its context/target frames (``context_gap`` overrides the config's, e.g. for
    a warm-up schedule; ``view_stream`` picks another random choice of views, e.g. the epoch).
    ``scene``: the already built ``make_scene(seed, config)``, to draw several view sets from one
    scene without building it again."""
    cfg = config or ProceduralConfig()
    if scene is None:
        scene = make_scene(seed, cfg)
    elif scene.seed != seed:
        raise ValueError(f"scene {scene.seed} given for seed {seed}")
    rng = np.random.RandomState([seed, _STREAM_VIEWS, view_stream])
    gap = tuple(context_gap) if context_gap is not None else cfg.context_gap
    ctx, tgt = sample_view_indices(scene.num_frames, cfg.num_context, cfg.num_target, gap, cfg.target_placement, rng)
    return ViewPlan(scene, ctx, tgt)


def _plan_to_example(
    plan: ViewPlan, images: Tensor, depth: Tensor, K: Tensor, with_depth: bool
) -> Example | tuple[Example, Tensor, Tensor]:
    """Assemble an Example from the rendered frames ``plan.context + plan.target`` (in that order)."""
    scene, ctx, tgt = plan.scene, plan.context, plan.target
    c2w = scene.c2w[ctx + tgt]
    nc = len(ctx)
    c_c2w, t_c2w, transform = normalize_poses(c2w[:nc], c2w[nc:])
    scale = transform[0, :3].norm()  # the transform is scale × rotation on its 3×3 block
    dev = images.device
    context = Views(images[None, :nc], K[None, :nc].to(dev), c_c2w[None].float().to(dev))
    target = Views(images[None, nc:], K[None, nc:].to(dev), t_c2w[None].float().to(dev))
    example = Example(context, target, scene_id(scene.seed))
    if with_depth:
        depth = depth * scale.to(dev, torch.float32)
        return example, depth[None, :nc], depth[None, nc:]
    return example


def render_plan(
    plan: ViewPlan,
    config: ProceduralConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    with_depth: bool = False,
) -> Example | tuple[Example, Tensor, Tensor]:
    """Ray-cast a plan into an Example (batch dim 1) on ``device``.

    Poses are normalised with :func:`ilrm.cameras.normalize_poses` (the average context camera becomes
    the identity; translations scaled so the largest context coordinate is 1). With ``with_depth``
    also returns the context and target z-depths, (1, Vc, H, W) and (1, Vt, H, W), in those units.
    """
    cfg = config or ProceduralConfig()
    idx = plan.context + plan.target
    K, h, w = plan.intrinsics(cfg)
    K = K.expand(len(idx), 3, 3).contiguous()
    images, depth = render_scene(plan.scene, K, plan.scene.c2w[idx], h, w, device=device, supersample=cfg.supersample)
    return _plan_to_example(plan, images, depth, K, with_depth)


def render_plans(
    plans: list[ViewPlan], config: ProceduralConfig | None = None, *, device: torch.device | str = "cpu"
) -> Example:
    """Render several plans and stack them into one batch (see :func:`ilrm.data.example.collate`).

    Plans that share a scene object and camera (several view sets drawn from one scene) are ray-cast
    in one call over the union of their frames: fewer, larger GPU launches. Every ray is independent of the
    others, so the result equals rendering each plan on its own.
    """
    cfg = config or ProceduralConfig()
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(plans):
        groups.setdefault(p.camera_key(), []).append(i)
    examples: list[Example | None] = [None] * len(plans)
    for members in groups.values():
        scene = plans[members[0]].scene
        frames = sorted({f for i in members for f in plans[i].context + plans[i].target})
        K, h, w = plans[members[0]].intrinsics(cfg)
        K = K.expand(len(frames), 3, 3).contiguous()
        images, depth = render_scene(scene, K, scene.c2w[frames], h, w, device=device, supersample=cfg.supersample)
        row = {f: j for j, f in enumerate(frames)}
        for i in members:
            sel = torch.tensor([row[f] for f in plans[i].context + plans[i].target], device=images.device)
            examples[i] = _plan_to_example(plans[i], images[sel], depth[sel], K[sel.cpu()], False)
    return collate(examples)


def make_example(
    seed: int,
    config: ProceduralConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    context_gap: tuple[int, int] | None = None,
    view_stream: int = 0,
    with_depth: bool = False,
) -> Example | tuple[Example, Tensor, Tensor]:
    """One procedural example of scene ``seed``: :func:`plan_example` then :func:`render_plan`."""
    plan = plan_example(seed, config, context_gap=context_gap, view_stream=view_stream)
    return render_plan(plan, config, device=device, with_depth=with_depth)


class ProceduralScenes(Dataset):
    """Procedural examples as a map-style dataset: item i is scene ``first_seed + i``.

    split "train": seeds ``[start, start + num_scenes)`` inside ``[0, TRAIN_SEED_LIMIT)`` (default
    ``DEFAULT_TRAIN_SCENES`` scenes; every seed is an independent random scene, so reading items in
    order is as good as shuffling; avoid ``shuffle=True`` with huge lengths since torch's RandomSampler
    materialises a permutation). :meth:`set_epoch` changes which views are drawn in each scene.
    split "test": the fixed held-out scenes ``[TEST_SEED_START, TEST_SEED_START + num_scenes)`` (default
    ``NUM_TEST_SCENES``), with fixed views.
    device: where to ray-cast ("cpu" inside DataLoader workers; "cuda" only in the main process).
    deferred: items are :class:`ViewPlan` s instead of Examples; render a batch of them with
    :meth:`render` (e.g. ``DataLoader(ds, batch_size=B, num_workers=W, collate_fn=list)`` and then
    ``ds.render(plans)`` on the GPU: workers build scenes, the GPU ray-casts).
    """

    def __init__(
        self,
        config: ProceduralConfig | None = None,
        split: str = "train",
        *,
        num_scenes: int | None = None,
        start: int = 0,
        device: torch.device | str = "cpu",
        deferred: bool = False,
    ) -> None:
        if split not in ("train", "test"):
            raise ILRMInputError(f"split must be 'train' or 'test', got {split!r}")
        self.config = config or ProceduralConfig()
        self.split = split
        self.device = device
        self.deferred = deferred
        self.epoch = 0
        if split == "train":
            n = DEFAULT_TRAIN_SCENES if num_scenes is None else num_scenes
            if start < 0 or n < 0 or start + n > TRAIN_SEED_LIMIT:
                raise ILRMInputError(
                    f"training seeds must lie in [0, {TRAIN_SEED_LIMIT}); got start {start}, {n} scenes"
                )
            self.first_seed = start
        else:
            n = NUM_TEST_SCENES if num_scenes is None else num_scenes
            if start < 0 or n < 0 or TEST_SEED_START + start + n > 2**32:
                raise ILRMInputError(f"test scenes: start and num_scenes must be >= 0, got {start}, {n}")
            self.first_seed = TEST_SEED_START + start
        self.num_scenes = n

    def __len__(self) -> int:
        return self.num_scenes

    def seed(self, index: int) -> int:
        """The scene seed of item ``index``."""
        if not 0 <= index < self.num_scenes:
            raise IndexError(f"index {index} out of range for {self.num_scenes} scenes")
        return self.first_seed + index

    def set_epoch(self, epoch: int) -> None:
        """Draw other views of the same training scenes (no effect on the test split)."""
        self.epoch = int(epoch)

    def plan(self, index: int, *, context_gap: tuple[int, int] | None = None) -> ViewPlan:
        """Scene and frames of item ``index`` (``context_gap`` overrides the config's)."""
        stream = self.epoch if self.split == "train" else 0
        return plan_example(self.seed(index), self.config, context_gap=context_gap, view_stream=stream)

    def example(self, index: int, *, context_gap: tuple[int, int] | None = None, with_depth: bool = False):
        """Item ``index`` rendered on ``self.device`` (see :func:`render_plan`)."""
        return render_plan(
            self.plan(index, context_gap=context_gap), self.config, device=self.device, with_depth=with_depth
        )

    def render(self, plans: ViewPlan | list[ViewPlan], device: torch.device | str | None = None) -> Example:
        """Render deferred items (one plan, or a list stacked into a batch) on ``device`` (default
        ``self.device``)."""
        plans = [plans] if isinstance(plans, ViewPlan) else list(plans)
        return render_plans(plans, self.config, device=device or self.device)

    def __getitem__(self, index: int) -> Example | ViewPlan:
        return self.plan(index) if self.deferred else self.example(index)
