"""Procedural indoor walk-throughs: endless RealEstate10K-like scenes, deterministic by seed, no download.

A scene (:func:`make_scene`) is a room (axis-aligned box, 3.5-9 m wide and deep, 2.4-3.2 m high) with
textured walls, floor and ceiling, furniture built from boxes (cabinets, tables, sofas), spheres and
cylinders, pictures on the walls and sometimes a rug. Textures are photos bundled with scikit-image
and procedural patterns (:mod:`ilrm.data.textures`), with sizes in metres. A camera walks through the
room like a handheld phone: a smooth spline through random waypoints that keeps clear of the
furniture, ~1.5 m high, looking roughly along the walking direction with slow yaw turns and small
pitch/roll wobble; frames are spaced ``frame_spacing`` metres apart along the path.

``ProceduralConfig.scene_style`` picks the generator. Style 1 (the default, used by the held-out
benchmarks) is the above, lit by one point light, a fill and ambient, without shadows. Style 2 varies
what style 1 keeps fixed, so that a model trained on it sees more of what real photos show:

- rooms: ordinary, long and narrow (aspect 2-4), large high halls (up to 12 m, 4.2 m high), small
  low rooms; layouts open (a few large pieces), normal or cluttered (many smaller pieces, several
  items per table top, things on the floor), within a primitive budget that bounds render time;
- furniture: cabinets with boxes stacked on them, piles of boxes, tables with thin square or round
  legs, round pedestal tables, chairs, sofas, bookshelves with rows of books, wardrobes, beds,
  counters, floor lamps with glowing shades, potted plants, spheres and cylinders from thin poles to
  floor-to-ceiling columns; windows, doors, wall shelves with books, pictures, rugs;
- textures: the style 1 patterns plus parquet, mosaic, plaid, weave, terrazzo, concrete, damask,
  plain lacquer (near-black to pale), foliage, and window and book-spine images;
- lighting (:mod:`ilrm.data.raycast` model 2): 1-3 point lights (a ceiling light, usually under a
  pendant shade, plus floor lamps, more ceiling lights or wall sconces) with warm to cool white or
  tinted colours and their own fall-off ranges, a skylight fill and often sunlight through the
  windows (sun patches), coloured ambient tinted by the walls with extra bounce onto the ceiling,
  darkened room edges and corners, highlights on glossy materials, emissive windows and shades, hard
  shadows of the ceiling light in most rooms; then a camera-like white balance and auto exposure.

Style 2 draws from its own random streams (layout, lights, surface properties), so style 1 scenes
are bit-identical to those from before style 2 existed; a style 2 scene has nothing in common with
the style 1 scene of the same seed.

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
from .textures import MATERIAL_PHOTOS, PICTURE_PHOTOS, make_texture, random_colour

TRAIN_SEED_LIMIT = 10**9  # training scenes are seeds [0, TRAIN_SEED_LIMIT)
TEST_SEED_START = TRAIN_SEED_LIMIT  # held-out scenes are seeds [TEST_SEED_START, TEST_SEED_START + n)
NUM_TEST_SCENES = 100  # default size of the held-out set
DEFAULT_TRAIN_SCENES = 10**6  # default length of the training split (any window of the range works)
PLACEMENTS = ("between", "random", "beyond")
SCENE_STYLES = (1, 2)  # see ProceduralConfig.scene_style

# Random streams per scene: RandomState([seed, stream]) (RandomState: numpy keeps its output fixed).
_STREAM_LAYOUT, _STREAM_PATH, _STREAM_VIEWS, _STREAM_TEXTURE0 = 1, 2, 3, 1000
# Style 2 only (style 1 never draws from these, so its scenes stay as they were): room and furniture,
# lights, per-texture surface properties (highlights, emission).
_STREAM_LAYOUT2, _STREAM_LIGHT2, _STREAM_SURFACE2 = 7, 8, 9


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
    scene_style: which scene generator :func:`make_scene` uses. 1 (default): the original rooms,
        one white-ish point light, no shadows (the held-out benchmarks are style 1 and must not
        change). 2: more varied rooms: room shapes (long rooms, halls, small rooms), open or
        cluttered layouts, more furniture shapes and textures, windows, coloured lights with
        shadows, highlights and darkened corners (see the module docstring). Style 2 scenes of a
        seed are unrelated to style 1 scenes of the same seed.
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
    scene_style: int = 1

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
        if self.scene_style not in SCENE_STYLES:
            raise ILRMInputError(f"scene_style must be one of {SCENE_STYLES}, got {self.scene_style!r}")


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
    # Patterns that only style 2 picks.
    "parquet": (0.8, 2.0),
    "mosaic": (0.3, 1.0),
    "plaid": (0.3, 1.2),
    "weave": (0.1, 0.4),
    "terrazzo": (0.6, 2.0),
    "concrete": (1.0, 3.0),
    "damask": (0.4, 1.2),
    "lacquer": (1.0, 3.0),
    "foliage": (0.2, 0.6),
}
# Style 2 materials: the style 1 tables plus the new patterns, and plain coats ("lacquer", from
# near-black to pale) that real furniture and walls often have.
_FLOOR2 = {
    "wood": 3.0,
    "parquet": 2.0,
    "tiles": 1.5,
    "carpet": 1.2,
    "marble": 0.8,
    "terrazzo": 0.8,
    "concrete": 0.8,
    "mosaic": 0.4,
    "checker": 0.4,
    "plaster": 0.3,
    "photo": 0.4,
}
_WALL2 = {
    "paint": 4.0,
    "plaster": 2.0,
    "lacquer": 0.8,
    "concrete": 0.8,
    "stripes": 0.8,
    "damask": 0.8,
    "bricks": 0.8,
    "dots": 0.4,
    "tiles": 0.4,
    "wood": 0.4,
    "mosaic": 0.2,
    "marble": 0.2,
    "plaid": 0.1,
}
_CEILING2 = {"paint": 5.0, "plaster": 2.0, "concrete": 0.6, "wood": 0.5, "tiles": 0.3}
_OBJECT2 = {
    "lacquer": 2.5,
    "wood": 2.0,
    "photo": 2.0,
    "noise": 1.0,
    "marble": 0.8,
    "checker": 0.6,
    "stripes": 0.6,
    "terrazzo": 0.5,
    "gradient": 0.4,
    "tiles": 0.4,
    "concrete": 0.4,
    "dots": 0.4,
    "plaid": 0.4,
    "weave": 0.4,
    "mosaic": 0.3,
    "bricks": 0.2,
}
_FABRIC2 = {
    "weave": 2.0,
    "noise": 1.5,
    "carpet": 1.5,
    "lacquer": 1.2,
    "plaid": 1.0,
    "stripes": 0.7,
    "checker": 0.4,
    "dots": 0.4,
    "damask": 0.3,
    "photo": 0.4,
}
_FRAME2 = {"wood": 3.0, "lacquer": 2.0, "parquet": 0.3, "marble": 0.3, "concrete": 0.2}  # furniture frames
_SHADE2 = {"lacquer": 2.0, "weave": 1.0, "plaster": 1.0, "paint": 1.0}  # lamp shades
_POT2 = {"lacquer": 2.0, "terrazzo": 1.0, "concrete": 1.0, "marble": 0.5, "mosaic": 0.3}
_FOLIAGE2 = {"foliage": 1.0}
# Highlight strength range per texture kind (style 2): polished stone, glaze and lacquer shine,
# fabric and plaster do not. Kinds not listed get _GLOSS_DEFAULT.
_GLOSS = {
    "marble": (0.2, 0.6),
    "tiles": (0.2, 0.5),
    "mosaic": (0.2, 0.5),
    "lacquer": (0.05, 0.6),
    "terrazzo": (0.1, 0.4),
    "wood": (0.03, 0.3),
    "parquet": (0.05, 0.35),
    "picture": (0.1, 0.3),  # glass in front of a print
    "window": (0.1, 0.3),
    "checker": (0.0, 0.25),
    "gradient": (0.0, 0.25),
    "foliage": (0.0, 0.15),
}
_GLOSS_DEFAULT = (0.0, 0.05)


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
            floor = table is _FLOOR or table is _FLOOR2
            pool = MATERIAL_PHOTOS if floor else MATERIAL_PHOTOS + PICTURE_PHOTOS
            photo = pool[self.rng.randint(len(pool))]
            name = f"photo:{photo}" if self.photos else "noise"
        return self._add(name), tile

    def picture(self) -> int:
        photo = PICTURE_PHOTOS[self.rng.randint(len(PICTURE_PHOTOS))]
        return self._add(f"picture:{photo}" if self.photos else "noise")

    def named(self, kind: str) -> int:
        """A new texture of the given kind (e.g. "window", "books": images shown once)."""
        return self._add(kind)


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


def _random_floor_spot(
    rng: np.random.RandomState, layout: _Layout, half_xy: np.ndarray, p_wall: float = 0.55
) -> tuple[np.ndarray, float]:
    """A centre (3,) on the floor and a yaw: against a random wall (back to it, with probability
    ``p_wall``) or anywhere."""
    lo, hi = layout.room_min, layout.room_max
    if rng.rand() < p_wall:
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


# ---- style 2: varied rooms, furniture and lighting ----------------------------------------------

# Layout modes (style 2): pieces per 4 m² of floor, size scale of the pieces, (min, max) small items
# per cabinet/table top and (min, max) small items on the floor. Open rooms have a few large pieces,
# cluttered ones many small things.
_MODES2 = {
    "open": ((0.3, 0.6), (1.0, 1.25), (0, 1), (0, 0)),
    "normal": ((0.7, 1.2), (0.8, 1.1), (0, 2), (0, 3)),
    "cluttered": ((1.2, 2.0), (0.55, 0.9), (1, 3), (3, 8)),
}
_KINDS2 = {  # furniture piece: weight
    "cabinet": 2.5,
    "table": 1.5,
    "chair": 1.2,
    "sofa": 1.0,
    "plant": 1.0,
    "sphere": 1.0,
    "cylinder": 1.0,
    "bookshelf": 0.9,
    "stack": 0.8,
    "round_table": 0.8,
    "floor_lamp": 0.8,
    "wardrobe": 0.6,
    "bed": 0.5,
    "counter": 0.5,
}
_AGAINST_WALL2 = {"bookshelf": 0.95, "wardrobe": 0.95, "bed": 0.95, "counter": 0.9, "sofa": 0.8, "cabinet": 0.6}
# At most this many primitives per room (the pendant shade may add one): ray-casting cost grows
# linearly with the count. With it, style 2 averages ~37 primitives against style 1's ~31 and, with
# the shadow rays, renders in ~1.3× style 1's time on the CPU.
_PRIMITIVE_BUDGET2 = 50


class _Builder:
    """Adds style 2 furniture to a layout. Parts are given in a piece's frame (origin on the floor at
    the piece's centre, rotated by its yaw); materials are (tex, tile, uvoff)."""

    def __init__(self, rng: np.random.RandomState, layout: _Layout, mats: _Materials) -> None:
        self.rng, self.layout, self.mats = rng, layout, mats
        self.shared: dict[str, tuple[int, float]] = {}
        self.tops: list[tuple[np.ndarray, np.ndarray, float]] = []  # (top centre, half xy, yaw)
        self.lamps: list[np.ndarray] = []  # centres of floor-lamp shades (where a light may go)
        self.emissive: dict[int, str] = {}  # texture index -> "window" or "shade"
        self.windows: list[tuple[int, float, float, float, float]] = []  # (wall, a0, a1, z0, z1)
        self.spans: list[tuple[int, float, float, float, float]] = []  # occupied wall rectangles

    @property
    def count(self) -> int:
        """Primitives placed so far."""
        return len(self.layout.boxes) + len(self.layout.spheres) + len(self.layout.cylinders)

    def room_for(self, parts: int) -> bool:
        return self.count + parts <= _PRIMITIVE_BUDGET2

    def material(self, table: dict[str, float], scale: float = 1.0, share: float = 0.0, key: str = "") -> tuple:
        """A texture from ``table``; with probability ``share`` the room's earlier texture under ``key``
        instead (matching furniture, and fewer textures to generate)."""
        if key and key in self.shared and self.rng.rand() < share:
            tex, tile = self.shared[key]
        else:
            tex, tile = self.mats.pick(table, scale)
            if key:
                self.shared.setdefault(key, (tex, tile))
        return tex, (tile, tile), _uvoff(self.rng)

    def box(self, center: np.ndarray, yaw: float, off, half, mat: tuple) -> None:
        self.layout.box(_local_to_world(center, yaw, np.asarray(off, float)), half, yaw, *mat)

    def cylinder(self, center: np.ndarray, yaw: float, off, r: float, hh: float, mat: tuple) -> None:
        tex, (_, tile), uv = mat
        n_u = max(1, round(2 * math.pi * r / tile))  # whole repeats around: no seam
        pos = _local_to_world(center, yaw, np.asarray(off, float))
        self.layout.cylinders.append((pos, r, hh, tex, (2 * math.pi * r / n_u, tile), uv))

    def sphere(self, pos: np.ndarray, r: float, mat: tuple) -> None:
        tex, (_, tile), uv = mat
        n_u = max(1, round(2 * math.pi * r / tile))
        self.layout.spheres.append((np.asarray(pos, float), r, tex, (2 * math.pi * r / n_u, tile), uv))

    def wall_free(self, wall: int, a0: float, a1: float, z0: float, z1: float) -> bool:
        """No door, window or picture already covers this rectangle of the wall (5 cm apart)."""
        return all(
            w != wall or a1 + 0.05 < b0 or b1 + 0.05 < a0 or z1 + 0.05 < y0 or y1 + 0.05 < z0
            for w, b0, b1, y0, y1 in self.spans
        )


def _log_uniform(rng: np.random.RandomState, lo: float, hi: float) -> float:
    """Log-uniform in [lo, hi]: as many small as large sizes."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _piece_half(rng: np.random.RandomState, kind: str, height: float, k: float) -> np.ndarray:
    """Half extents (along the wall, away from it, vertical) of a style 2 piece's bounding box."""
    U = rng.uniform
    if kind == "cabinet":
        return np.array([U(0.2, 0.8) * k, U(0.2, 0.45) * k, U(0.2, min(0.9, height / 2 - 0.2)) * k])
    if kind == "stack":
        return np.array([U(0.2, 0.45) * k, U(0.2, 0.4) * k, 0.0])
    if kind == "table":
        return np.array([U(0.4, 0.95) * k, U(0.3, 0.55) * k, U(0.36, 0.4)])
    if kind == "round_table":
        r = U(0.3, 0.6) * k
        return np.array([r, r, U(0.36, 0.4)])
    if kind == "chair":
        w = U(0.2, 0.27)
        return np.array([w, w, 0.45])
    if kind == "sofa":
        return np.array([U(0.7, 1.25) * k, U(0.4, 0.5), 0.45])
    if kind == "bookshelf":
        return np.array([U(0.35, 0.9) * k, U(0.14, 0.2), min(U(0.8, 1.1), height / 2 - 0.15)])
    if kind == "wardrobe":
        return np.array([U(0.4, 1.0) * k, U(0.28, 0.33), min(U(0.85, 1.1), height / 2 - 0.1)])
    if kind == "bed":
        return np.array([U(0.45, 0.9), U(0.95, 1.05), 0.3])
    if kind == "counter":
        return np.array([U(0.6, 1.5) * k, U(0.28, 0.33), 0.46])
    if kind == "floor_lamp":
        r = U(0.15, 0.25)
        return np.array([r, r, min(U(0.65, 0.85), height / 2 - 0.35)])
    if kind == "plant":
        r = U(0.12, 0.3) * k
        return np.array([1.5 * r, 1.5 * r, r])  # foliage up to 1.5× the pot radius
    if kind == "sphere":
        r = _log_uniform(rng, 0.08, 0.6)
        return np.array([r, r, r])
    r = _log_uniform(rng, 0.05, 0.45)  # cylinder: a thin pole to a wide drum, sometimes a column
    hh = height / 2 - 0.001 if rng.rand() < 0.2 else U(0.1, min(1.1, height / 2 - 0.05))
    return np.array([r, r, hh])


_PARTS2 = {  # primitives of each piece at most (for the budget)
    "cabinet": 2,
    "stack": 4,
    "table": 5,
    "round_table": 3,
    "chair": 6,
    "sofa": 4,
    "bookshelf": 12,
    "wardrobe": 1,
    "bed": 5,
    "counter": 2,
    "floor_lamp": 3,
    "plant": 3,
    "sphere": 1,
    "cylinder": 1,
}


def _build_piece(b: _Builder, kind: str, c: np.ndarray, half: np.ndarray, yaw: float, height: float) -> None:
    """Add the primitives of one style 2 piece standing on the floor at ``c`` (3,)."""
    rng, U = b.rng, b.rng.uniform
    if kind == "cabinet":
        mat = b.material(_OBJECT2, U(0.4, 1.0), 0.3, "cabinet")
        b.box(c, yaw, [0, 0, half[2]], half, mat)
        top = 2 * half[2]
        if rng.rand() < 0.35 and top < height - 0.9:  # a smaller box stacked on it
            h2 = np.array([half[0] * U(0.5, 0.95), half[1] * U(0.6, 0.95), U(0.1, 0.35)])
            off = [U(-1, 1) * (half[0] - h2[0]), U(-1, 1) * (half[1] - h2[1]), top + h2[2]]
            b.box(c, yaw, off, h2, b.material(_OBJECT2, U(0.4, 1.0), 0.5, "cabinet"))
            b.tops.append((_local_to_world(c, yaw, np.array([off[0], off[1], top + 2 * h2[2]])), h2[:2], yaw))
        else:
            b.tops.append((c + [0, 0, top], half[:2], yaw))
    elif kind == "stack":  # moving boxes, each a little smaller and turned
        z = 0.0
        for i in range(rng.randint(2, 5)):
            h = np.array([half[0] * U(0.6, 1.0), half[1] * U(0.6, 1.0), U(0.1, 0.25)]) * (0.85**i)
            if z + 2 * h[2] > height - 0.6:
                break
            turn = U(-0.25, 0.25) if i else 0.0
            h[:2] /= abs(math.cos(turn)) + abs(math.sin(turn))  # stays inside the claimed footprint
            b.box(c, yaw + turn, [0, 0, z + h[2]], h, b.material(_OBJECT2, U(0.3, 0.8), 0.7, "stack"))
            z += 2 * h[2]
    elif kind == "table":
        frame = b.material(_FRAME2, U(0.4, 1.0), 0.6, "frame")
        top_mat = frame if rng.rand() < 0.7 else b.material(_OBJECT2, U(0.4, 1.0))
        h, t = 2 * half[2], U(0.015, 0.035)
        b.box(c, yaw, [0, 0, h - t], [half[0], half[1], t], top_mat)
        leg, inset, round_legs = U(0.012, 0.03), U(0.03, 0.1), rng.rand() < 0.5
        for sx in (-1, 1):
            for sy in (-1, 1):
                off = [sx * (half[0] - inset), sy * (half[1] - inset), (h - 2 * t) / 2]
                if round_legs:
                    b.cylinder(c, yaw, off, leg, (h - 2 * t) / 2, frame)
                else:
                    b.box(c, yaw, off, [leg, leg, (h - 2 * t) / 2], frame)
        b.tops.append((c + [0, 0, h], half[:2], yaw))
    elif kind == "round_table":
        frame = b.material(_FRAME2, U(0.4, 1.0), 0.6, "frame")
        r, h, t = half[0], 2 * half[2], U(0.015, 0.03)
        b.cylinder(c, yaw, [0, 0, h - t], r, t, frame if rng.rand() < 0.6 else b.material(_OBJECT2, U(0.3, 0.8)))
        b.cylinder(c, yaw, [0, 0, (h - 2 * t) / 2], U(0.025, 0.06), (h - 2 * t) / 2, frame)
        b.cylinder(c, yaw, [0, 0, 0.012], r * U(0.35, 0.6), 0.012, frame)
        b.tops.append((c + [0, 0, h], half[:2] * 0.7, yaw))
    elif kind == "chair":
        frame = b.material(_FRAME2, U(0.4, 1.0), 0.7, "frame")
        seat = frame if rng.rand() < 0.5 else b.material(_FABRIC2, U(0.3, 0.8), 0.6, "fabric")
        w, sh, t = half[0], U(0.42, 0.48), 0.025
        b.box(c, yaw, [0, 0, sh - t], [w, w, t], seat)
        bh = U(0.18, 0.3)
        b.box(c, yaw, [0, -w + 0.02, sh + bh], [w, 0.02, bh], seat)  # the back, at local -y
        leg, round_legs = U(0.01, 0.022), rng.rand() < 0.5
        for sx in (-1, 1):
            for sy in (-1, 1):
                off = [sx * (w - 0.03), sy * (w - 0.03), (sh - 2 * t) / 2]
                if round_legs:
                    b.cylinder(c, yaw, off, leg, (sh - 2 * t) / 2, frame)
                else:
                    b.box(c, yaw, off, [leg, leg, (sh - 2 * t) / 2], frame)
    elif kind == "sofa":
        mat = b.material(_FABRIC2, U(0.4, 1.0), 0.5, "fabric")
        seat_h, back_h, arm_h = U(0.38, 0.46), U(0.7, 0.95), U(0.5, 0.68)
        arm_w, back_d = U(0.1, 0.22), U(0.15, 0.25)
        for off, h in [
            ([0, 0, seat_h / 2], [half[0], half[1], seat_h / 2]),
            ([0, -half[1] + back_d / 2, back_h / 2], [half[0], back_d / 2, back_h / 2]),
            ([-half[0] + arm_w / 2, 0, arm_h / 2], [arm_w / 2, half[1], arm_h / 2]),
            ([half[0] - arm_w / 2, 0, arm_h / 2], [arm_w / 2, half[1], arm_h / 2]),
        ]:
            b.box(c, yaw, off, h, mat)
    elif kind == "bookshelf":  # frame, boards and rows of books (one box each, a "books" texture)
        frame = b.material(_FRAME2, U(0.4, 1.0), 0.5, "frame")
        w, d, hh = half
        b.box(c, yaw, [0, -d + 0.01, hh], [w, 0.01, hh], frame)
        for sx in (-1, 1):
            b.box(c, yaw, [sx * (w - 0.015), 0, hh], [0.015, d, hh], frame)
        n = rng.randint(2, 5)
        pitch = (2 * hh - 0.03) / n
        spines = [b.mats.named("books") for _ in range(min(2, n))]
        for i in range(n + 1):
            b.box(c, yaw, [0, 0, 0.015 + i * pitch], [w - 0.03, d, 0.015], frame)
            if i < n and rng.rand() < 0.8:
                rw, rd = (w - 0.03) * U(0.4, 0.95), U(0.08, d - 0.01)
                rh = min(U(0.09, 0.15), pitch / 2 - 0.02)
                x = U(-1, 1) * (w - 0.03 - rw)
                tex = spines[i % len(spines)]
                b.box(
                    c,
                    yaw,
                    [x, -d + 0.02 + rd, 0.03 + i * pitch + rh],
                    [rw, rd, rh],
                    (tex, (2 * rw, 2 * rh), np.array([0.5, 0.5])),
                )
    elif kind == "wardrobe":
        b.box(c, yaw, [0, 0, half[2]], half, b.material(_FRAME2, U(0.5, 1.2), 0.5, "frame"))
    elif kind == "bed":
        frame = b.material(_FRAME2, U(0.4, 1.0), 0.5, "frame")
        w, ln = half[0], half[1]
        base_h, mat_h = U(0.12, 0.25), U(0.08, 0.14)
        b.box(c, yaw, [0, 0, base_h / 2], [w, ln, base_h / 2], frame)
        b.box(
            c,
            yaw,
            [0, 0.02, base_h + mat_h / 2],
            [w - 0.02, ln - 0.03, mat_h / 2],
            b.material(_FABRIC2, U(0.3, 0.9), 0.3, "fabric"),
        )
        head = U(0.45, 0.6)
        b.box(c, yaw, [0, -ln + 0.03, head], [w, 0.03, head], frame)  # headboard at local -y
        pillow = b.material(_FABRIC2, U(0.2, 0.5))
        n = 1 if w < 0.6 else 2
        for i in range(n):
            x = 0.0 if n == 1 else (i - 0.5) * w
            b.box(c, yaw, [x, -ln + 0.3, base_h + mat_h + 0.05], [min(0.35, 0.8 * w / n), 0.18, 0.05], pillow)
    elif kind == "counter":
        b.box(c, yaw, [0, 0, 0.44], [half[0], half[1], 0.44], b.material(_FRAME2, U(0.4, 1.0), 0.4, "frame"))
        top = b.material({"marble": 2.0, "lacquer": 1.0, "terrazzo": 1.0, "wood": 1.0}, U(0.5, 1.2))
        b.box(c, yaw, [0, 0.01, 0.9], [half[0] + 0.01, half[1] + 0.01, 0.02], top)
        b.tops.append((c + [0, 0, 0.92], half[:2], yaw))
    elif kind == "floor_lamp":  # base, thin pole, glowing shade (a light may go inside it)
        frame = b.material(_FRAME2, U(0.3, 0.8), 0.5, "frame")
        r, top = half[0], 2 * half[2]
        b.cylinder(c, yaw, [0, 0, 0.015], r * U(0.6, 1.0), 0.015, frame)
        shade_hh = U(0.1, 0.2)
        b.cylinder(c, yaw, [0, 0, (top - shade_hh) / 2 + 0.015], U(0.008, 0.018), (top - shade_hh) / 2 - 0.015, frame)
        shade = b.material(_SHADE2, U(0.3, 0.6))
        b.emissive[shade[0]] = "shade"
        b.cylinder(c, yaw, [0, 0, top], r, shade_hh, shade)
        b.lamps.append(c + [0, 0, top])
    elif kind == "plant":  # pot and one or two balls of leaves
        r_f = half[0]
        r_p, pot_hh = r_f / 1.5, U(0.1, 0.3)
        b.cylinder(c, yaw, [0, 0, pot_hh], r_p, pot_hh, b.material(_POT2, U(0.3, 0.8)))
        leaves = b.material(_FOLIAGE2, U(0.5, 1.0), 0.7, "foliage")
        rf = r_f * U(0.8, 1.0)
        b.sphere(c + [0, 0, 2 * pot_hh + 0.8 * rf], rf, leaves)
        if rng.rand() < 0.4:
            r2 = rf * U(0.5, 0.8)
            b.sphere(c + [U(-0.3, 0.3) * rf, U(-0.3, 0.3) * rf, 2 * pot_hh + 1.5 * rf + 0.5 * r2], r2, leaves)
    elif kind == "sphere":
        b.sphere(c + [0, 0, half[0]], half[0], b.material(_OBJECT2, U(0.3, 1.0)))
    else:
        b.cylinder(c, yaw, [0, 0, half[2]], half[0], half[2], b.material(_OBJECT2, U(0.3, 1.0)))


def _small_item(b: _Builder, spot: np.ndarray, yaw: float, room: float, height: float) -> None:
    """A small thing standing at ``spot`` (3,) with ``room`` metres of free radius: a ball, a vase or
    cup, a book or box, or a short stack of them."""
    rng, U = b.rng, b.rng.uniform
    size = min(room, _log_uniform(rng, 0.03, 0.2))
    if spot[2] + 3 * size > height - 0.2:
        return
    choice = rng.randint(4)
    if choice == 0:
        b.sphere(spot + [0, 0, size], size, b.material(_OBJECT2, U(0.2, 0.6)))
    elif choice == 1:
        hh = U(0.5, 2.5) * size
        b.cylinder(spot, 0.0, [0, 0, hh], size * U(0.4, 1.0), hh, b.material(_OBJECT2, U(0.2, 0.6), 0.3, "small"))
    else:
        z = 0.0
        for _ in range(1 if choice == 2 else rng.randint(2, 4)):
            h = np.array([size, size * U(0.5, 1.0), U(0.015, 0.08)])
            b.box(spot, yaw + U(-0.5, 0.5), [0, 0, z + h[2]], h, b.material(_OBJECT2, 0.3, 0.4, "small"))
            z += 2 * h[2]


def _place_furniture_style2(
    rng: np.random.RandomState, layout: _Layout, mats: _Materials, max_objects: int, height: float, mode: str
) -> _Builder:
    """Style 2 furnishing: windows, doors and skirting first (they shape the lighting), then pieces
    of the layout mode's density and size, small things on their tops and on the floor, wall shelves
    and pictures, all within the primitive budget. Returns the builder (lamps, windows, emissive
    textures)."""
    b = _Builder(rng, layout, mats)
    U = rng.uniform
    lo, hi = layout.room_min, layout.room_max
    density, scale, per_top, on_floor = _MODES2[mode]

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
        _wall_panel(layout, wall, pos, w, (z0 + z1) / 2, z1 - z0, 0.02, tex, (w, z1 - z0), np.array([0.5, 0.5]))
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
            tex, tile = mats.pick(_DOOR)
            _wall_panel(layout, wall, pos, w, h / 2, h, 0.04, tex, (tile, tile), _uvoff(rng))
            b.spans.append((wall, pos - w / 2, pos + w / 2, 0.0, h))
    if rng.rand() < 0.55:  # skirting boards
        tex, tile = mats.pick(_TRIM)
        bh = U(0.06, 0.14)
        for wall in range(4):
            a_lo, a_hi = wall_range(wall)
            _wall_panel(
                layout, wall, 0.5 * (a_lo + a_hi), a_hi - a_lo, bh / 2, bh, 0.015, tex, (tile, tile), _uvoff(rng)
            )

    area = float(np.prod(hi[:2] - lo[:2]))
    count = min(max_objects, max(1, round(area / 4 * U(*density))))
    kinds = list(_KINDS2)
    weights = np.array([_KINDS2[k] for k in kinds])
    for _ in range(count):
        kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
        if not b.room_for(_PARTS2[kind]):
            continue
        k = U(*scale)
        for _attempt in range(25):
            half = _piece_half(rng, kind, height, k)
            center, yaw = _random_floor_spot(rng, layout, half[:2], _AGAINST_WALL2.get(kind, 0.35))
            round_ = kind in ("sphere", "cylinder", "round_table", "floor_lamp", "plant")
            if layout.fits(center, half[:2], yaw, round_):
                break
        else:
            continue
        layout.claim(center, half[:2], round_)
        _build_piece(b, kind, center, half, yaw, height)

    for top, half_xy, yaw in b.tops:  # small things on cabinets, tables and counters
        for _ in range(rng.randint(per_top[0], per_top[1] + 1)):
            if not b.room_for(3):
                break
            off = np.array([U(-0.7, 0.7) * half_xy[0], U(-0.7, 0.7) * half_xy[1], 0.0])
            free = float(min(half_xy[0] - abs(off[0]), half_xy[1] - abs(off[1])))
            if free > 0.03:
                _small_item(b, _local_to_world(top, yaw, off), yaw, free, height)
    for _ in range(rng.randint(on_floor[0], on_floor[1] + 1)):  # clutter on the floor
        r = _log_uniform(rng, 0.06, 0.25)
        center, yaw = _random_floor_spot(rng, layout, np.array([r, r]), 0.5)
        if b.room_for(3) and layout.fits(center, np.array([r, r]), yaw, True):
            layout.claim(center, np.array([r, r]), True)
            _small_item(b, center, yaw, r, height)

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
        _wall_panel(layout, wall, pos, w, zc, h, depth, *b.material(_OBJECT2, U(0.4, 1.0), 0.5, "frame"))
        b.spans.append((wall, pos - w / 2, pos + w / 2, zc - h / 2, zc + h / 2 + (0.25 if board else 0.0)))
        if board and rng.rand() < 0.6:
            rw, rh = w * U(0.25, 0.45), U(0.08, 0.12)
            shift = U(-1, 1) * (w / 2 - rw)
            _wall_panel(
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
            _wall_panel(layout, wall, pos, w, zc, h, 0.03, mats.picture(), (w, h), np.array([0.5, 0.5]))
            b.spans.append((wall, pos - w / 2, pos + w / 2, zc - h / 2, zc + h / 2))
    if rng.rand() < 0.35:  # a rug (flat, so the walk may cross it)
        half = np.array([U(0.6, 1.6), U(0.4, 1.1), 0.005])
        half[:2] = np.minimum(half[:2], 0.5 * (hi[:2] - lo[:2]) - 0.3)
        center = np.array([U(lo[0] + half[0], hi[0] - half[0]), U(lo[1] + half[1], hi[1] - half[1]), 0.005])
        layout.box(center, half, 0.0, *b.material(_FABRIC2, U(0.4, 1.0)))
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


# ---- style 2 lighting ---------------------------------------------------------------------------


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.2126, 0.7152, 0.0722]))


def _kelvin(t: float) -> np.ndarray:
    """Approximate RGB (3,) of a black body at ``t`` kelvin (Tanner Helland's fit), unit luminance:
    warm bulbs ~2700 K, daylight ~5500-6500 K, overcast sky ~7000-10000 K."""
    t = t / 100
    r = 1.0 if t <= 66 else 1.29293 * (t - 60) ** -0.1332047592
    g = 0.39008 * math.log(t) - 0.63184 if t <= 66 else 1.12989 * (t - 60) ** -0.0755148492
    b = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.54321 * math.log(t - 10) - 1.19625)
    rgb = np.clip(np.array([r, g, b]), 0.0, 1.0)
    return rgb / _luma(rgb)


def _bulb_colour(rng: np.random.RandomState, tint: float) -> np.ndarray:
    """A lamp's colour: mostly warm, sometimes cool white, with probability ``tint`` a coloured bulb."""
    rgb = _kelvin(rng.uniform(2500, 3600) if rng.rand() < 0.6 else rng.uniform(3600, 7000))
    if rng.rand() < tint:
        rgb = rgb * random_colour(rng, sat=(0.2, 0.55), val=(1.0, 1.0))
    return rgb / _luma(rgb)


def _clear_of_objects(layout: _Layout, pos: np.ndarray, margin: float) -> bool:
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
class _Lights2:
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


def _design_lights(rng: np.random.RandomState, layout: _Layout, b: _Builder, height: float) -> _Lights2:
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
        fill_rgb = _kelvin(U(6500, 10000)) * U(0.1, 0.4)  # skylight
        sun_rgb = _kelvin(U(3000, 5800)) * U(0.3, 1.0) if rng.rand() < 0.65 else np.zeros(3)
    else:
        fill_dir = np.array([U(-1, 1), U(-1, 1), -U(0.5, 1.5)])
        fill_rgb = _kelvin(U(4000, 6500)) * U(0.05, 0.3)
        sun_rgb = np.zeros(3)
    rgb_arr = np.stack(rgb)
    ambient = rgb_arr.mean(0) / _luma(rgb_arr.mean(0)) * U(0.12, 0.5)
    return _Lights2(
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
        shininess=_log_uniform(rng, 8.0, 96.0),
        shadows=bool(rng.rand() < 0.8),
        exposure=U(0.6, 1.0),
        white_balance=U(0.4, 0.9),
        fixture=fixture,
    )


def _expose(lights: _Lights2, room_min: np.ndarray, room_max: np.ndarray, wall_rgb: np.ndarray) -> float:
    """Tint the ambient light by the wall colour (light bounced off the walls), then white-balance and
    scale all lights like a camera's auto exposure, so that the mean irradiance over probe points on
    the floor, walls and ceiling has the scene's exposure: no black or blown-out rooms however many
    and how strong the lights are. Modifies ``lights``; returns the scale factor."""
    lights.ambient_rgb = lights.ambient_rgb * (0.65 + 0.35 * wall_rgb / max(_luma(wall_rgb), 1e-3))
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
    gain = (_luma(mean) / np.maximum(mean, 1e-6)) ** lights.white_balance
    gain *= lights.exposure / _luma(mean * gain)
    lights.rgb, lights.fill_rgb, lights.ambient_rgb = (
        lights.rgb * gain,
        lights.fill_rgb * gain,
        lights.ambient_rgb * gain,
    )
    lights.sun_rgb = lights.sun_rgb * gain * lights.exposure
    return float(_luma(gain))


def _surface_properties(
    rng: np.random.RandomState, kinds: list[str], emissive: dict[int, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Highlight strength and emission per texture (S,), from its kind (see _GLOSS)."""
    scale = rng.uniform(0.3, 1.0)
    gloss, emit = np.zeros(len(kinds)), np.zeros(len(kinds))
    for i, kind in enumerate(kinds):
        gloss[i] = scale * rng.uniform(*_GLOSS.get(kind.split(":")[0], _GLOSS_DEFAULT))
        if i in emissive:
            emit[i] = rng.uniform(0.8, 1.6) if emissive[i] == "window" else rng.uniform(0.3, 0.8)
    return gloss, emit


def _shadow_boxes(boxes: list[tuple], room_min: np.ndarray, room_max: np.ndarray) -> list[int]:
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


def _texture_stack(seed: int, kinds: list[str], tex_size: int) -> tuple[list[np.ndarray], Tensor]:
    """The scene's textures, one random stream each: float arrays (T, T, 3) and the uint8 stack
    (S, 3, T, T) (8-bit like photos: 4× smaller when scenes travel from DataLoader workers)."""
    textures = [
        make_texture(kind, np.random.RandomState([seed, _STREAM_TEXTURE0 + i]), tex_size)
        for i, kind in enumerate(kinds)
    ]
    tex_u8 = np.round(np.stack(textures) * 255.0).astype(np.uint8)
    return textures, torch.from_numpy(tex_u8).permute(0, 3, 1, 2).contiguous()


def _shape_fields(
    room_min: np.ndarray, room_max: np.ndarray, room: list, room_uvoff: np.ndarray, layout: _Layout, tex_t: Tensor
) -> dict[str, Tensor]:
    """The RoomGeometry fields of the room, its primitives and textures (everything but lighting)."""
    L = torch.long
    b, s, cy = layout.boxes, layout.spheres, layout.cylinders
    return dict(
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
    )


def _texture_size(cfg: ProceduralConfig) -> int:
    return cfg.texture_size or min(512, max(64, 1 << (max(cfg.height, cfg.width) - 1).bit_length()))


def make_scene(seed: int, config: ProceduralConfig | None = None) -> ProceduralScene:
    """The room, textures and camera trajectory of ``seed`` (CPU; same result on every machine),
    built by the generator ``config.scene_style`` (see :class:`ProceduralConfig`)."""
    cfg = config or ProceduralConfig()
    if not 0 <= seed < 2**32:
        raise ILRMInputError(f"seed must be in [0, 2**32), got {seed}")
    if cfg.scene_style == 2:
        return _make_scene_style2(seed, cfg)
    # Style 1: the draws below must stay exactly as they are (held-out benchmarks are style 1).
    rng = np.random.RandomState([seed, _STREAM_LAYOUT])
    size = np.array([rng.uniform(3.5, 9.0), rng.uniform(3.5, 9.0), rng.uniform(2.4, 3.2)])
    room_min = np.array([-size[0] / 2, -size[1] / 2, 0.0])
    room_max = np.array([size[0] / 2, size[1] / 2, size[2]])
    hfov = math.radians(rng.uniform(*cfg.hfov_deg))
    tex_size = _texture_size(cfg)

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
    _, tex_t = _texture_stack(seed, mats.kinds, tex_size)
    geometry = RoomGeometry(
        **_shape_fields(room_min, room_max, room, room_uvoff, layout, tex_t),
        light_pos=torch.tensor(light_pos, dtype=torch.float32),
        light_power=float(rng.uniform(0.45, 0.75)),  # keyword arguments are evaluated in order
        light_range=float(rng.uniform(2.0, 4.0)),
        fill_dir=torch.tensor(fill / np.linalg.norm(fill), dtype=torch.float32),
        fill_power=float(rng.uniform(0.15, 0.35)),
        ambient=float(rng.uniform(0.25, 0.4)),
    )
    return ProceduralScene(seed, geometry, torch.from_numpy(c2w), hfov, list(mats.kinds))


def _make_scene_style2(seed: int, cfg: ProceduralConfig) -> ProceduralScene:
    """Style 2 (see the module docstring): own random streams for layout, lights and surfaces; the
    trajectory and texture generators are shared with style 1."""
    rng = np.random.RandomState([seed, _STREAM_LAYOUT2])
    size, mode = _room_style2(rng)
    room_min = np.array([-size[0] / 2, -size[1] / 2, 0.0])
    room_max = np.array([size[0] / 2, size[1] / 2, size[2]])
    hfov = math.radians(rng.uniform(*cfg.hfov_deg))

    mats = _Materials(rng, cfg.photo_textures)
    wall = mats.pick(_WALL2)
    walls = [wall] * 4
    if rng.rand() < 0.35:  # an accent wall
        walls[rng.randint(4)] = mats.pick(_WALL2)
    room = [*walls, mats.pick(_FLOOR2), mats.pick(_CEILING2)]
    room_uvoff = np.stack([_uvoff(rng) for _ in range(6)])

    c2w, path_xy = _trajectory(np.random.RandomState([seed, _STREAM_PATH]), room_min, room_max, cfg.frame_spacing)
    layout = _Layout(room_min, room_max, path_xy)
    builder = _place_furniture_style2(rng, layout, mats, cfg.max_objects, size[2], mode)
    lights = _design_lights(np.random.RandomState([seed, _STREAM_LIGHT2]), layout, builder, size[2])
    if lights.fixture is not None:  # the pendant shade (drawn from the layout stream, after furniture)
        centre, r, hh = lights.fixture
        builder.cylinder(centre, 0.0, [0, 0, 0], r, hh, builder.material(_SHADE2, rng.uniform(0.3, 0.6)))

    textures, tex_t = _texture_stack(seed, mats.kinds, _texture_size(cfg))
    _expose(lights, room_min, room_max, textures[wall[0]].reshape(-1, 3).mean(0).astype(np.float64))
    gloss, emit = _surface_properties(np.random.RandomState([seed, _STREAM_SURFACE2]), mats.kinds, builder.emissive)
    windows = [
        (0 if w < 2 else 1, (room_min if w % 2 == 0 else room_max)[0 if w < 2 else 1], a0, a1, z0, z1)
        for w, a0, a1, z0, z1 in builder.windows
    ]
    f32 = lambda x: torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float32)  # noqa: E731
    geometry = RoomGeometry(
        **_shape_fields(room_min, room_max, room, room_uvoff, layout, tex_t),
        # Model-1 fields, filled for reference only (lighting 2 does not read them).
        light_pos=f32(lights.pos[0]),
        light_power=_luma(lights.rgb[0]),
        light_range=float(lights.range_[0]),
        fill_dir=f32(lights.fill_dir),
        fill_power=_luma(lights.fill_rgb),
        ambient=_luma(lights.ambient_rgb),
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
        shadow_boxes=torch.tensor(_shadow_boxes(layout.boxes, room_min, room_max), dtype=torch.long),
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
