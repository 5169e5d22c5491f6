"""Style 2 furniture: layout modes, piece kinds and their sizes (:func:`piece_half`), and the
:class:`Builder` that adds each piece's primitives (:func:`build_piece`, :func:`small_item`)."""

from __future__ import annotations

import math

import numpy as np

from .layout import Layout, local_to_world, random_uvoff
from .materials import FABRIC2, FOLIAGE2, FRAME2, OBJECT2, POT2, SHADE2, Materials

# Layout modes (style 2): pieces per 4 m² of floor, size scale of the pieces, (min, max) small items
# per cabinet/table top and (min, max) small items on the floor. Open rooms have a few large pieces,
# cluttered ones many small things.
MODES2 = {
    "open": ((0.3, 0.6), (1.0, 1.25), (0, 1), (0, 0)),
    "normal": ((0.7, 1.2), (0.8, 1.1), (0, 2), (0, 3)),
    "cluttered": ((1.2, 2.0), (0.55, 0.9), (1, 3), (3, 8)),
}
KINDS2 = {  # furniture piece: weight
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
AGAINST_WALL2 = {"bookshelf": 0.95, "wardrobe": 0.95, "bed": 0.95, "counter": 0.9, "sofa": 0.8, "cabinet": 0.6}
# At most this many primitives per room (the pendant shade may add one): ray-casting cost grows
# linearly with the count. With it, style 2 averages ~37 primitives against style 1's ~31 and, with
# the shadow rays, renders in ~1.3× style 1's time on the CPU.
_PRIMITIVE_BUDGET2 = 50


class Builder:
    """Adds style 2 furniture to a layout. Parts are given in a piece's frame (origin on the floor at
    the piece's centre, rotated by its yaw); materials are (tex, tile, uvoff)."""

    def __init__(self, rng: np.random.RandomState, layout: Layout, mats: Materials) -> None:
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
        """Whether ``parts`` more primitives fit in the room's primitive budget."""
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
        return tex, (tile, tile), random_uvoff(self.rng)

    def box(self, center: np.ndarray, yaw: float, off, half, mat: tuple) -> None:
        self.layout.box(local_to_world(center, yaw, np.asarray(off, float)), half, yaw, *mat)

    def cylinder(self, center: np.ndarray, yaw: float, off, r: float, hh: float, mat: tuple) -> None:
        tex, (_, tile), uv = mat
        n_u = max(1, round(2 * math.pi * r / tile))  # whole repeats around: no seam
        pos = local_to_world(center, yaw, np.asarray(off, float))
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


def log_uniform(rng: np.random.RandomState, lo: float, hi: float) -> float:
    """Log-uniform in [lo, hi]: as many small as large sizes."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def piece_half(rng: np.random.RandomState, kind: str, height: float, k: float) -> np.ndarray:
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
        r = log_uniform(rng, 0.08, 0.6)
        return np.array([r, r, r])
    r = log_uniform(rng, 0.05, 0.45)  # cylinder: a thin pole to a wide drum, sometimes a column
    hh = height / 2 - 0.001 if rng.rand() < 0.2 else U(0.1, min(1.1, height / 2 - 0.05))
    return np.array([r, r, hh])


PARTS2 = {  # primitives of each piece at most (for the budget)
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


def build_piece(b: Builder, kind: str, c: np.ndarray, half: np.ndarray, yaw: float, height: float) -> None:
    """Add the primitives of one style 2 piece standing on the floor at ``c`` (3,)."""
    rng, U = b.rng, b.rng.uniform
    if kind == "cabinet":
        mat = b.material(OBJECT2, U(0.4, 1.0), 0.3, "cabinet")
        b.box(c, yaw, [0, 0, half[2]], half, mat)
        top = 2 * half[2]
        if rng.rand() < 0.35 and top < height - 0.9:  # a smaller box stacked on it
            h2 = np.array([half[0] * U(0.5, 0.95), half[1] * U(0.6, 0.95), U(0.1, 0.35)])
            off = [U(-1, 1) * (half[0] - h2[0]), U(-1, 1) * (half[1] - h2[1]), top + h2[2]]
            b.box(c, yaw, off, h2, b.material(OBJECT2, U(0.4, 1.0), 0.5, "cabinet"))
            b.tops.append((local_to_world(c, yaw, np.array([off[0], off[1], top + 2 * h2[2]])), h2[:2], yaw))
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
            b.box(c, yaw + turn, [0, 0, z + h[2]], h, b.material(OBJECT2, U(0.3, 0.8), 0.7, "stack"))
            z += 2 * h[2]
    elif kind == "table":
        frame = b.material(FRAME2, U(0.4, 1.0), 0.6, "frame")
        top_mat = frame if rng.rand() < 0.7 else b.material(OBJECT2, U(0.4, 1.0))
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
        frame = b.material(FRAME2, U(0.4, 1.0), 0.6, "frame")
        r, h, t = half[0], 2 * half[2], U(0.015, 0.03)
        b.cylinder(c, yaw, [0, 0, h - t], r, t, frame if rng.rand() < 0.6 else b.material(OBJECT2, U(0.3, 0.8)))
        b.cylinder(c, yaw, [0, 0, (h - 2 * t) / 2], U(0.025, 0.06), (h - 2 * t) / 2, frame)
        b.cylinder(c, yaw, [0, 0, 0.012], r * U(0.35, 0.6), 0.012, frame)
        b.tops.append((c + [0, 0, h], half[:2] * 0.7, yaw))
    elif kind == "chair":
        frame = b.material(FRAME2, U(0.4, 1.0), 0.7, "frame")
        seat = frame if rng.rand() < 0.5 else b.material(FABRIC2, U(0.3, 0.8), 0.6, "fabric")
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
        mat = b.material(FABRIC2, U(0.4, 1.0), 0.5, "fabric")
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
        frame = b.material(FRAME2, U(0.4, 1.0), 0.5, "frame")
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
        b.box(c, yaw, [0, 0, half[2]], half, b.material(FRAME2, U(0.5, 1.2), 0.5, "frame"))
    elif kind == "bed":
        frame = b.material(FRAME2, U(0.4, 1.0), 0.5, "frame")
        w, ln = half[0], half[1]
        base_h, mat_h = U(0.12, 0.25), U(0.08, 0.14)
        b.box(c, yaw, [0, 0, base_h / 2], [w, ln, base_h / 2], frame)
        b.box(
            c,
            yaw,
            [0, 0.02, base_h + mat_h / 2],
            [w - 0.02, ln - 0.03, mat_h / 2],
            b.material(FABRIC2, U(0.3, 0.9), 0.3, "fabric"),
        )
        head = U(0.45, 0.6)
        b.box(c, yaw, [0, -ln + 0.03, head], [w, 0.03, head], frame)  # headboard at local -y
        pillow = b.material(FABRIC2, U(0.2, 0.5))
        n = 1 if w < 0.6 else 2
        for i in range(n):
            x = 0.0 if n == 1 else (i - 0.5) * w
            b.box(c, yaw, [x, -ln + 0.3, base_h + mat_h + 0.05], [min(0.35, 0.8 * w / n), 0.18, 0.05], pillow)
    elif kind == "counter":
        b.box(c, yaw, [0, 0, 0.44], [half[0], half[1], 0.44], b.material(FRAME2, U(0.4, 1.0), 0.4, "frame"))
        top = b.material({"marble": 2.0, "lacquer": 1.0, "terrazzo": 1.0, "wood": 1.0}, U(0.5, 1.2))
        b.box(c, yaw, [0, 0.01, 0.9], [half[0] + 0.01, half[1] + 0.01, 0.02], top)
        b.tops.append((c + [0, 0, 0.92], half[:2], yaw))
    elif kind == "floor_lamp":  # base, thin pole, glowing shade (a light may go inside it)
        frame = b.material(FRAME2, U(0.3, 0.8), 0.5, "frame")
        r, top = half[0], 2 * half[2]
        b.cylinder(c, yaw, [0, 0, 0.015], r * U(0.6, 1.0), 0.015, frame)
        shade_hh = U(0.1, 0.2)
        b.cylinder(c, yaw, [0, 0, (top - shade_hh) / 2 + 0.015], U(0.008, 0.018), (top - shade_hh) / 2 - 0.015, frame)
        shade = b.material(SHADE2, U(0.3, 0.6))
        b.emissive[shade[0]] = "shade"
        b.cylinder(c, yaw, [0, 0, top], r, shade_hh, shade)
        b.lamps.append(c + [0, 0, top])
    elif kind == "plant":  # pot and one or two balls of leaves
        r_f = half[0]
        r_p, pot_hh = r_f / 1.5, U(0.1, 0.3)
        b.cylinder(c, yaw, [0, 0, pot_hh], r_p, pot_hh, b.material(POT2, U(0.3, 0.8)))
        leaves = b.material(FOLIAGE2, U(0.5, 1.0), 0.7, "foliage")
        rf = r_f * U(0.8, 1.0)
        b.sphere(c + [0, 0, 2 * pot_hh + 0.8 * rf], rf, leaves)
        if rng.rand() < 0.4:
            r2 = rf * U(0.5, 0.8)
            b.sphere(c + [U(-0.3, 0.3) * rf, U(-0.3, 0.3) * rf, 2 * pot_hh + 1.5 * rf + 0.5 * r2], r2, leaves)
    elif kind == "sphere":
        b.sphere(c + [0, 0, half[0]], half[0], b.material(OBJECT2, U(0.3, 1.0)))
    else:
        b.cylinder(c, yaw, [0, 0, half[2]], half[0], half[2], b.material(OBJECT2, U(0.3, 1.0)))


def small_item(b: Builder, spot: np.ndarray, yaw: float, room: float, height: float) -> None:
    """A small thing standing at ``spot`` (3,) with ``room`` metres of free radius: a ball, a vase or
    cup, a book or box, or a short stack of them."""
    rng, U = b.rng, b.rng.uniform
    size = min(room, log_uniform(rng, 0.03, 0.2))
    if spot[2] + 3 * size > height - 0.2:
        return
    choice = rng.randint(4)
    if choice == 0:
        b.sphere(spot + [0, 0, size], size, b.material(OBJECT2, U(0.2, 0.6)))
    elif choice == 1:
        hh = U(0.5, 2.5) * size
        b.cylinder(spot, 0.0, [0, 0, hh], size * U(0.4, 1.0), hh, b.material(OBJECT2, U(0.2, 0.6), 0.3, "small"))
    else:
        z = 0.0
        for _ in range(1 if choice == 2 else rng.randint(2, 4)):
            h = np.array([size, size * U(0.5, 1.0), U(0.015, 0.08)])
            b.box(spot, yaw + U(-0.5, 0.5), [0, 0, z + h[2]], h, b.material(OBJECT2, 0.3, 0.4, "small"))
            z += 2 * h[2]
