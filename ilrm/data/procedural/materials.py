"""Texture-kind tables of each surface role (walls, floors, furniture...) for both scene styles, tile
sizes in metres, highlight strengths, and :class:`Materials`, which draws a scene's texture kinds."""

from __future__ import annotations

import numpy as np

from .textures import MATERIAL_PHOTOS, PICTURE_PHOTOS

FLOOR = {"wood": 4.0, "tiles": 2.0, "carpet": 1.5, "marble": 1.0, "checker": 0.6, "plaster": 0.4, "photo": 0.5}
WALL = {
    "paint": 4.0,
    "plaster": 2.0,
    "stripes": 1.2,
    "bricks": 1.0,
    "dots": 0.6,
    "tiles": 0.5,
    "wood": 0.4,
    "marble": 0.3,
}
CEILING = {"paint": 5.0, "plaster": 2.0, "wood": 0.5, "tiles": 0.4}
OBJECT = {
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
TRIM = {"wood": 2.0, "paint": 2.0, "marble": 0.5}
DOOR = {"wood": 3.0, "paint": 2.0, "plaster": 0.5, "stripes": 0.3}
FABRIC = {"noise": 2.0, "carpet": 2.0, "stripes": 1.0, "checker": 0.7, "dots": 0.5, "photo": 0.5}
# Metres per texture repeat.
TILE = {
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
FLOOR2 = {
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
WALL2 = {
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
CEILING2 = {"paint": 5.0, "plaster": 2.0, "concrete": 0.6, "wood": 0.5, "tiles": 0.3}
OBJECT2 = {
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
FABRIC2 = {
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
FRAME2 = {"wood": 3.0, "lacquer": 2.0, "parquet": 0.3, "marble": 0.3, "concrete": 0.2}  # furniture frames
SHADE2 = {"lacquer": 2.0, "weave": 1.0, "plaster": 1.0, "paint": 1.0}  # lamp shades
POT2 = {"lacquer": 2.0, "terrazzo": 1.0, "concrete": 1.0, "marble": 0.5, "mosaic": 0.3}
FOLIAGE2 = {"foliage": 1.0}
# Highlight strength range per texture kind (style 2): polished stone, glaze and lacquer shine,
# fabric and plaster do not. Kinds not listed get GLOSS_DEFAULT.
GLOSS = {
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
GLOSS_DEFAULT = (0.0, 0.05)


class Materials:
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
        tile = self.rng.uniform(*TILE[name]) * scale
        if name == "photo":
            floor = table is FLOOR or table is FLOOR2
            pool = MATERIAL_PHOTOS if floor else MATERIAL_PHOTOS + PICTURE_PHOTOS
            photo = pool[self.rng.randint(len(pool))]
            name = f"photo:{photo}" if self.photos else "noise"
        return self._add(name), tile

    def picture(self) -> int:
        """A new picture texture (a photo shown once; noise without photos)."""
        photo = PICTURE_PHOTOS[self.rng.randint(len(PICTURE_PHOTOS))]
        return self._add(f"picture:{photo}" if self.photos else "noise")

    def named(self, kind: str) -> int:
        """A new texture of the given kind (e.g. "window", "books": images shown once)."""
        return self._add(kind)
