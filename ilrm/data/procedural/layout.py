"""A room being furnished (:class:`Layout`: primitives in metres, clearance checks), placement
helpers shared by both scene styles, and the conversion to :class:`RoomGeometry` fields and textures."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .config import STREAM_TEXTURE0, ProceduralConfig
from .textures import make_texture


class Layout:
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
        """Reserve the footprint's bounding circle (later pieces keep clear of it)."""
        self.footprints.append((center[:2].copy(), float(half_xy[0]) if round_ else float(np.linalg.norm(half_xy))))

    def box(self, center, half, yaw: float, tex: int, tile, uvoff) -> None:
        """Add a box: centre (3,), half extents (3,), yaw, texture index, tile (2,), offset (2,)."""
        self.boxes.append((np.asarray(center, float), np.asarray(half, float), float(yaw), tex, tile, uvoff))


def random_floor_spot(
    rng: np.random.RandomState, layout: Layout, half_xy: np.ndarray, p_wall: float = 0.55
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


def local_to_world(center: np.ndarray, yaw: float, offset: np.ndarray) -> np.ndarray:
    """The world point (3,) at ``offset`` (3,) in a piece's frame (origin ``center`` (3,), turned by ``yaw``)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return center + np.array([c * offset[0] - s * offset[1], s * offset[0] + c * offset[1], offset[2]])


def random_uvoff(rng: np.random.RandomState) -> np.ndarray:
    """A random texture offset (2,) in repeats (one draw of two uniforms)."""
    return rng.uniform(0, 1, 2)


def wall_panel(
    layout: Layout, wall: int, pos: float, width: float, zc: float, height: float, thick: float, tex: int, tile, uvoff
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


def _stack(items: list[tuple], col: int, width: int | None, dtype=torch.float32) -> Tensor:
    if not items:
        return torch.zeros((0,) if width is None else (0, width), dtype=dtype)
    return torch.tensor(np.array([np.asarray(it[col], dtype=np.float64) for it in items]), dtype=dtype)


def texture_stack(seed: int, kinds: list[str], tex_size: int) -> tuple[list[np.ndarray], Tensor]:
    """The scene's textures, one random stream each: float arrays (T, T, 3) and the uint8 stack
    (S, 3, T, T) (8-bit like photos: 4× smaller when scenes travel from DataLoader workers)."""
    textures = [
        make_texture(kind, np.random.RandomState([seed, STREAM_TEXTURE0 + i]), tex_size) for i, kind in enumerate(kinds)
    ]
    tex_u8 = np.round(np.stack(textures) * 255.0).astype(np.uint8)
    return textures, torch.from_numpy(tex_u8).permute(0, 3, 1, 2).contiguous()


def shape_fields(
    room_min: np.ndarray, room_max: np.ndarray, room: list, room_uvoff: np.ndarray, layout: Layout, tex_t: Tensor
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


def texture_size_for(cfg: ProceduralConfig) -> int:
    """Texels per texture side: ``cfg.texture_size``, else the power of two >= the image side, in [64, 512]."""
    return cfg.texture_size or min(512, max(64, 1 << (max(cfg.height, cfg.width) - 1).bit_length()))
