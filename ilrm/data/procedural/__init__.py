"""Procedural indoor walk-throughs: endless RealEstate10K-like scenes, deterministic by seed, no download.

A scene (:func:`make_scene`) is a room (axis-aligned box, 3.5-9 m wide and deep, 2.4-3.2 m high) with
textured walls, floor and ceiling, furniture built from boxes (cabinets, tables, sofas), spheres and
cylinders, pictures on the walls and sometimes a rug. Textures are photos bundled with scikit-image
and procedural patterns (:mod:`.textures`), with sizes in metres. A camera walks through the
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
- lighting (:mod:`.shading` model 2): 1-3 point lights (a ceiling light, usually under a
  pendant shade, plus floor lamps, more ceiling lights or wall sconces) with warm to cool white or
  tinted colours and their own fall-off ranges, a skylight fill and often sunlight through the
  windows (sun patches), coloured ambient tinted by the walls with extra bounce onto the ceiling,
  darkened room edges and corners, highlights on glossy materials, emissive windows and shades, hard
  shadows of the ceiling light in most rooms; then a camera-like white balance and auto exposure.

Style 2 draws from its own random streams (layout, lights, surface properties), so style 1 scenes
are bit-identical to those from before style 2 existed; a style 2 scene has nothing in common with
the style 1 scene of the same seed.

Ground-truth images are ray-cast exactly (:mod:`.raycast`), not rendered by the splatting
renderer the model is judged with. Seeds ``[0, TRAIN_SEED_LIMIT)`` are training scenes; the held-out
test set is ``[TEST_SEED_START, TEST_SEED_START + n)``. Scene layout, textures, trajectory and view
choice come from ``numpy.random.RandomState`` streams seeded by (seed, stream), computed on the CPU in
float64, so they do not depend on the device; only the ray casting runs on the chosen device (results
agree across devices to float32 rounding).

World axes: z up, floor at z = 0; cameras are OpenCV c2w (x right, y down, z forward).

Modules, lower to higher (each imports only those above it):
``textures`` patterns and photos; ``geometry`` primitives and ray intersection; ``shading`` lighting
models; ``raycast`` rendering views; ``config`` the config, seeds, streams and scene type;
``materials`` texture tables; ``trajectory`` the camera walk; ``layout`` furnishing helpers;
``furniture_style2``, ``lighting_style2``, ``scene_style2`` style 2; ``scene`` style 1 and
:func:`make_scene`; ``views`` view plans, examples and the dataset.
"""

from .config import (
    DEFAULT_TRAIN_SCENES,
    NUM_TEST_SCENES,
    PLACEMENTS,
    SCENE_STYLES,
    TEST_SEED_START,
    TRAIN_SEED_LIMIT,
    ProceduralConfig,
    ProceduralScene,
    scene_id,
)
from .geometry import RoomGeometry
from .raycast import render_views
from .scene import make_scene
from .views import (
    ProceduralScenes,
    ViewPlan,
    make_example,
    plan_example,
    render_plan,
    render_plans,
    render_scene,
    sample_view_indices,
)

__all__ = [
    "DEFAULT_TRAIN_SCENES",
    "NUM_TEST_SCENES",
    "PLACEMENTS",
    "SCENE_STYLES",
    "TEST_SEED_START",
    "TRAIN_SEED_LIMIT",
    "ProceduralConfig",
    "ProceduralScene",
    "ProceduralScenes",
    "RoomGeometry",
    "ViewPlan",
    "make_example",
    "make_scene",
    "plan_example",
    "render_plan",
    "render_plans",
    "render_scene",
    "render_views",
    "sample_view_indices",
    "scene_id",
]
