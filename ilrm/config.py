"""Model configuration: one frozen dataclass; every difference between released models is a field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ILRMInputError
from .jsonconfig import JsonConfig

# Per-pixel ray/colour features a token can be built from; each name maps to 3 channels.
#   "rgb": 2·rgb − 1,  "o": ray origin (camera centre),  "d": unit ray direction,  "m": Plücker moment o × d
FEATURES = ("rgb", "o", "d", "m")
ARCHITECTURES = ("ilrm", "full-attention")
_CHOICES = {
    "scale_clamp": ("hard", "soft"),
    "depth_mode": ("sigmoid", "disparity"),
    "scale_mode": ("absolute", "footprint"),
    "color_init": ("zero", "image"),
}


@dataclass(frozen=True)
class ILRMConfig(JsonConfig):
    """Hyper-parameters of an iLRM (or of the full-attention baseline, ``arch="full-attention"``).

    The two released models ("re10k" = authors' ``main`` branch, "dl3dv-wide" = ``wide`` branch)
    differ only in field values; see :meth:`preset`.
    """

    # ffgs (the neutral inference API, ilrm/integrations/ffgs.py) stores its loader's keys beside ours.
    foreign_keys: ClassVar[frozenset[str]] = frozenset({"model_type", "auto_map"})

    arch: str = "ilrm"
    # transformer
    width: int = 768
    depth: int = 24
    head_dim: int = 64
    mlp_ratio: int = 4
    norm_eps: float = 1e-5
    # tokenizers
    patch_size: int = 8
    image_features: tuple[str, ...] = ("rgb", "m", "d")
    viewpoint_features: tuple[str, ...] = ("m", "d")
    viewpoint_factor: int = 1  # viewpoint tokens live on an (H/f, W/f) ray grid
    uplift_factor: int = 1  # queries per viewpoint token in the read (cross-attention) blocks
    # Gaussian head / decoding. The defaults are the authors' formulas (their weights need them);
    # DECODING_FROM_SCRATCH below is what our own models train with. See ilrm.gaussians.decode_gaussians.
    sh_degree: int = 0
    head_offset: bool = False  # predict a sub-pixel ray offset (2 channels first)
    # "sigmoid": depth = sigmoid(x) * depth_max (authors); "disparity": 1/depth is sigmoid(x + depth_bias)
    # between 1/depth_near and 1/depth_far, so depths start near the cameras, not at depth_max / 2.
    # x is the mean of the 3 "xyz" head channels.
    depth_mode: str = "sigmoid"
    depth_max: float = 500.0
    depth_near: float = 0.2
    depth_far: float = 200.0
    depth_bias: float = 0.0
    # "absolute": log-scale s + scale_shift in world units (authors); "footprint": in units of the
    # pixel footprint depth / focal at the Gaussian's depth on the Gaussian grid (scale-free scenes).
    scale_mode: str = "absolute"
    scale_shift: float = -6.9
    scale_log_max: float = -1.2
    # "hard": exp(min(s + scale_shift, scale_log_max)), as the authors' weights expect; a scale at the cap
    # gets no gradient and cannot shrink again. "soft": the cap as a softplus (same values far below
    # it, a gradient everywhere), for training from scratch.
    scale_clamp: str = "hard"
    opacity_shift: float = -2.0  # opacity = sigmoid(a + opacity_shift)
    # "zero": colour = SH DC from the head alone (authors); "image": the head predicts a residual on
    # the input pixel's colour (averaged over the Gaussian's grid cell), so training starts from the photo.
    color_init: str = "zero"
    # rendering and data conventions the weights were trained with
    near: float = 0.01
    far: float = 500.0
    image_height: int = 256
    image_width: int = 256
    num_views: int = 2
    # every view count seen in training when it varied per step (num_views is then the largest);
    # empty: trained with num_views only
    trained_views: tuple[int, ...] = ()
    # every input size (H, W) seen in training; empty: not declared (read from
    # extra["training"]["image_sizes"] when a checkpoint recorded it there). The input size follows
    # it (ilrm.pipeline.model_input_size): the trained short side, and the photo's aspect clamped to
    # the trained aspects, so a square-only model gets a square centre crop.
    trained_sizes: tuple[tuple[int, int], ...] = ()
    pose_scale_before_recentre: bool = False  # the RE10K code's normalisation quirk (SPEC)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form metadata (not used by the model)

    def __post_init__(self) -> None:
        # JSON gives lists; keep tuples so configs compare equal after a round trip.
        for name in ("image_features", "viewpoint_features", "trained_views"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "trained_sizes", tuple(tuple(int(v) for v in hw) for hw in self.trained_sizes))
        if any(len(hw) != 2 or min(hw) < 1 for hw in self.trained_sizes):
            raise ILRMInputError(f"trained_sizes must be (height, width) pairs, got {self.trained_sizes}")
        if self.arch not in ARCHITECTURES:
            raise ILRMInputError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        for name in ("image_features", "viewpoint_features"):
            feats = getattr(self, name)
            bad = [f for f in feats if f not in FEATURES]
            if bad or not feats or len(set(feats)) != len(feats):
                raise ILRMInputError(f"{name} must be distinct names from {FEATURES}, got {feats}")
        if "rgb" not in self.image_features:
            raise ILRMInputError("image_features must include 'rgb'")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ILRMInputError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0 < self.depth_near < self.depth_far:
            raise ILRMInputError(f"need 0 < depth_near < depth_far, got {self.depth_near}, {self.depth_far}")
        if "rgb" in self.viewpoint_features:
            raise ILRMInputError("viewpoint_features are rays only; remove 'rgb'")
        if self.width % self.head_dim:
            raise ILRMInputError(f"width {self.width} is not a multiple of head_dim {self.head_dim}")
        for name in ("depth", "patch_size", "viewpoint_factor", "uplift_factor", "num_views"):
            if getattr(self, name) < 1:
                raise ILRMInputError(f"{name} must be >= 1")
        if not 0 <= self.sh_degree <= 4:
            raise ILRMInputError("sh_degree must be in 0..4")

    def trained_with(self, num_views: int) -> bool:
        """Whether training saw ``num_views`` input views."""
        return num_views in (self.trained_views or (self.num_views,))

    @property
    def input_sizes(self) -> tuple[tuple[int, int], ...]:
        """The (H, W) sizes this model was trained at: :attr:`trained_sizes`, else the checkpoint's
        recorded ``extra["training"]["image_sizes"]`` (e.g. "256x256 and 256x448"), else () (unknown)."""
        if self.trained_sizes:
            return self.trained_sizes
        recorded = (self.extra.get("training") or {}).get("image_sizes") if isinstance(self.extra, dict) else None
        return parse_sizes(recorded) if recorded else ()

    def describe_sizes(self) -> str:
        """E.g. "256×256 only (square crop)" or "256×256, 256×448 (aspect kept between 1:1 and 1.75:1)"."""
        sizes = self.input_sizes
        if not sizes:
            return f"{self.image_width}×{self.image_height} (trained sizes not recorded; the aspect is kept)"
        text = ", ".join(f"{w}×{h}" for h, w in sizes) + " (W×H)"
        lo, hi = aspect_range(sizes)
        if hi == lo == 1.0:
            return f"{text} only (photos are centre-cropped to a square)"
        if hi == lo:
            return f"{text} only (photos are centre-cropped to {hi:.3g}:1)"
        return f"{text} (the photo's aspect is kept between {lo:.3g}:1 and {hi:.3g}:1)"

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def num_heads(self) -> int:
        return self.width // self.head_dim

    @property
    def gaussian_factor(self) -> int:
        """Gaussians are predicted on the (H/g, W/g) grid: the viewpoint grid for iLRM, pixels for the baseline."""
        return self.viewpoint_factor if self.arch == "ilrm" else 1

    @property
    def sh_coeffs(self) -> int:
        return (self.sh_degree + 1) ** 2

    @property
    def gaussian_channels(self) -> int:
        """Channels per Gaussian in the head output: [offset(2)], xyz(3), sh(3K), scale(3), rot(4), opacity(1)."""
        return (2 if self.head_offset else 0) + 3 + 3 * self.sh_coeffs + 3 + 4 + 1

    @property
    def image_in_channels(self) -> int:
        return 3 * len(self.image_features) * self.patch_size**2

    @property
    def viewpoint_in_channels(self) -> int:
        return 3 * len(self.viewpoint_features) * self.patch_size**2

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this."""
        return self.patch_size * self.viewpoint_factor

    # ---- serialisation -------------------------------------------------------------------

    def replace(self, **changes: Any) -> ILRMConfig:
        return dataclasses.replace(self, **changes)

    # ---- presets -------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ILRMConfig:
        """Named configurations: "re10k", "dl3dv-wide", "tiny" (and "<name>-full" for the baseline)."""
        base_name = name.removesuffix("-full")
        if base_name not in PRESETS:
            raise ILRMInputError(f"unknown preset {name!r}; choose one of {preset_names()}")
        cfg = cls(**PRESETS[base_name])
        if name.endswith("-full"):
            cfg = cfg.replace(arch="full-attention")
        return cfg.replace(**overrides) if overrides else cfg


_WIDE = dict(
    image_features=("o", "d", "m", "rgb"),
    viewpoint_features=("o", "d", "m"),
    viewpoint_factor=2,
    uplift_factor=2,
    head_offset=True,
    far=1e6,
    image_height=544,
    image_width=960,
    num_views=32,
)

# Decoding for models trained from scratch on normalised scenes (largest context camera coordinate
# = 1): depths start about 3.5 units out inside [0.2, 200], scales at one grid-pixel footprint with
# a soft cap at e^4 footprints. Values from the ablation in docs/results/decoding.md.
DECODING_FROM_SCRATCH: dict[str, Any] = dict(
    depth_mode="disparity",
    depth_near=0.2,
    depth_far=200.0,
    depth_bias=-2.8,
    scale_mode="footprint",
    scale_shift=0.0,
    scale_log_max=4.0,
    scale_clamp="soft",
    opacity_shift=-2.0,
    color_init="zero",
)

PRESETS: dict[str, dict[str, Any]] = {
    # The released RE10K weights were trained with the scale-before-recentre quirk (SPEC).
    "re10k": dict(pose_scale_before_recentre=True, trained_sizes=((256, 256),)),
    "dl3dv-wide": dict(_WIDE, trained_sizes=((544, 960),)),
    # Same structure as dl3dv-wide, small enough for CPU inference and quick training from scratch.
    # Our tiny/small runs draw 256×256 or 256×448 per step (checkpoints/ilrm-tiny-procedural).
    "tiny": dict(_WIDE, **DECODING_FROM_SCRATCH, width=256, depth=8, image_height=256, image_width=256,
                 num_views=2, far=500.0, trained_sizes=((256, 256), (256, 448))),
    # Between tiny and the released models: 16.7 M parameters, 33.5 MB in bf16 (the repository allows 40 MB).
    "small": dict(_WIDE, **DECODING_FROM_SCRATCH, width=320, depth=12, image_height=256, image_width=256,
                  num_views=2, far=500.0, trained_sizes=((256, 256), (256, 448))),
}


def parse_sizes(text: Any) -> tuple[tuple[int, int], ...]:
    """(H, W) pairs from "256x256 and 256x448" / "256×448" / [[256, 448], ...]; () when unreadable."""
    import re

    if isinstance(text, (list, tuple)):
        try:
            return tuple((int(h), int(w)) for h, w in text)
        except (TypeError, ValueError):
            return ()
    return tuple((int(h), int(w)) for h, w in re.findall(r"(\d+)\s*[x×]\s*(\d+)", str(text)))


def aspect_range(sizes: tuple[tuple[int, int], ...]) -> tuple[float, float]:
    """(smallest, largest) long/short side ratio among ``sizes``."""
    ratios = [max(h, w) / min(h, w) for h, w in sizes]
    return min(ratios), max(ratios)


def preset_names() -> list[str]:
    return sorted(PRESETS) + sorted(f"{n}-full" for n in PRESETS)
