"""What a procedural example looks like (:class:`ProceduralConfig`), the seed splits, the per-scene
random streams, and the scene type (:class:`ProceduralScene`: a room and a camera trajectory)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ...errors import ILRMInputError
from .geometry import RoomGeometry

TRAIN_SEED_LIMIT = 10**9  # training scenes are seeds [0, TRAIN_SEED_LIMIT)
TEST_SEED_START = TRAIN_SEED_LIMIT  # held-out scenes are seeds [TEST_SEED_START, TEST_SEED_START + n)
NUM_TEST_SCENES = 100  # default size of the held-out set
DEFAULT_TRAIN_SCENES = 10**6  # default length of the training split (any window of the range works)
PLACEMENTS = ("between", "random", "beyond")
SCENE_STYLES = (1, 2)  # see ProceduralConfig.scene_style

# Random streams per scene: RandomState([seed, stream]) (RandomState: numpy keeps its output fixed).
STREAM_LAYOUT, STREAM_PATH, STREAM_VIEWS, STREAM_TEXTURE0 = 1, 2, 3, 1000
# Style 2 only (style 1 never draws from these, so its scenes stay as they were): room and furniture,
# lights, per-texture surface properties (highlights, emission).
STREAM_LAYOUT2, STREAM_LIGHT2, STREAM_SURFACE2 = 7, 8, 9


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
