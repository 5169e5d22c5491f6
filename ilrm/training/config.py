"""The training run's settings: :class:`TrainConfig`, a frozen, validated, JSON-serialisable
dataclass saved as ``train_config.json`` in the run folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..config import ILRMConfig
from ..data.procedural import ProceduralConfig
from ..errors import ILRMInputError
from ..jsonconfig import JsonConfig
from .augment import parse_size
from .checkpointing import EXPORT_DTYPES
from .data import parse_data_source

PRECISIONS = ("auto", "bf16", "fp32")
# Context gap (frames between the outer context views) when TrainConfig.context_gap is None.
DEFAULT_GAPS = {"procedural": ProceduralConfig().context_gap, "re10k": (45, 192), "dl3dv": (45, 192)}


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Everything a training run needs; JSON-serialisable (:meth:`to_json`), saved in the run folder.

    Model: ``preset`` (an :meth:`ILRMConfig.preset` name; ``"<name>-full"`` trains the full-attention
    baseline) with ``model_overrides`` (ILRMConfig fields, e.g. ``{"width": 128, "depth": 4}``).
    Data: ``data`` is ``"procedural"``, ``"re10k:<root>"`` or ``"dl3dv:<root>"``; images ``height`` ×
    ``width``; ``num_context`` input views and ``num_target`` supervision views per scene;
    ``context_gap`` (min, max) frames between the outer context views (None: the source's default),
    optionally warming up from ``initial_context_gap`` over ``gap_warmup_steps``; ``train_scenes``:
    number of distinct procedural training scenes (None: 10⁶); ``samples_per_scene`` consecutive
    samples draw different views of one procedural scene (more data per CPU second on a GPU, see
    :class:`ilrm.training.data.ProceduralTrainSet`); ``supervise_context`` also renders
    the context views into the loss.
    Batch: ``batch_size`` scenes per process per micro-batch, ``grad_accum`` micro-batches per step
    (global batch = batch_size · grad_accum · world size).
    Optimisation: ``steps`` optimiser steps, peak ``lr`` after ``warmup_steps`` linear warm-up steps,
    cosine decay to ``min_lr`` at ``steps``; AdamW ``betas``, ``weight_decay`` (matrices only);
    ``grad_clip`` (max global grad norm; 0 disables); ``precision`` "auto" (bf16 autocast on CUDA,
    fp32 on CPU), "bf16" or "fp32"; ``lpips_weight`` (0: MSE only); ``gradient_checkpointing``.
    Run: ``checkpoint_every`` / ``log_every`` / ``eval_every`` steps (0 disables eval), keeping the
    newest ``keep_checkpoints``; evaluation on ``eval_scenes`` held-out procedural scenes with
    ``eval_num_target`` targets; ``seed``; ``num_workers`` data-loader workers per process;
    ``data_device`` where procedural scenes are ray-cast ("auto": the training device; with workers
    on an accelerator, workers build the scenes and the main process ray-casts them); ``device`` ("auto", "cpu", "cuda"); ``out_dir``; ``time_limit_s``:
    stop cleanly (checkpoint, no export) before this many seconds of this invocation; ``stop_after``:
    stop the same way once this step is done (the schedule still runs to ``steps``: a run cut into
    segments of known length, or compared with another over its first steps);
    ``export_dtype`` of the final model ("float32", "bfloat16", "float16").
    """

    preset: str = "tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: str = "procedural"
    height: int = 256
    width: int = 256
    num_context: int = 2
    num_target: int = 4
    context_gap: tuple[int, int] | None = None
    initial_context_gap: tuple[int, int] | None = None
    gap_warmup_steps: int = 0
    train_scenes: int | None = None
    samples_per_scene: int = 1
    supervise_context: bool = False
    batch_size: int = 4
    grad_accum: int = 1
    steps: int = 10_000
    lr: float = 4e-4
    warmup_steps: int = 500
    min_lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    precision: str = "auto"
    lpips_weight: float = 0.0
    gradient_checkpointing: bool = False
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 20
    eval_every: int = 0
    eval_scenes: int = 8
    eval_num_target: int = 4
    seed: int = 0
    num_workers: int = 0
    data_device: str = "auto"
    device: str = "auto"
    out_dir: str = "runs/train"
    time_limit_s: float | None = None
    stop_after: int | None = None
    export_dtype: str = "float32"
    # recipe for generalisation (procedural data)
    view_choices: tuple[int, ...] | None = None
    sizes: tuple[str, ...] | None = None
    camera_aug: bool = False
    photometric_aug: bool = False
    scene_style: int = 1  # procedural training scenes (ProceduralConfig.scene_style); held-out scenes stay style 1
    prefetch: int = 2
    # segments: start from exported weights (a previous segment's ``segment/`` folder) with a fresh
    # optimiser, re-warmed over ``rewarm_steps``; the step, samples seen, time and log continue
    init_from: str | None = None
    rewarm_steps: int = 200

    def __post_init__(self) -> None:
        # JSON gives lists; keep tuples so configs compare equal after a round trip.
        for name in ("context_gap", "initial_context_gap", "betas", "view_choices", "sizes"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(v) or None)
        if self.view_choices is not None and (min(self.view_choices) < 1):
            raise ILRMInputError(f"view_choices must be view counts >= 1, got {self.view_choices}")
        for text in self.sizes or ():
            parse_size(text)
        if self.prefetch < 0 or self.rewarm_steps < 0:
            raise ILRMInputError("prefetch and rewarm_steps must be >= 0")
        object.__setattr__(self, "model_overrides", dict(self.model_overrides))
        parse_data_source(self.data)
        for name in ("height", "width", "num_context", "batch_size", "grad_accum", "steps", "log_every", "samples_per_scene"):
            if getattr(self, name) < 1:
                raise ILRMInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_target", "warmup_steps", "gap_warmup_steps", "checkpoint_every", "eval_every", "num_workers"):
            if getattr(self, name) < 0:
                raise ILRMInputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_target == 0 and not self.supervise_context:
            raise ILRMInputError("nothing to supervise: num_target is 0 and supervise_context is off")
        if self.precision not in PRECISIONS:
            raise ILRMInputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.export_dtype not in EXPORT_DTYPES:
            raise ILRMInputError(f"export_dtype must be one of {sorted(EXPORT_DTYPES)}, got {self.export_dtype!r}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ILRMInputError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.lpips_weight < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ILRMInputError("lpips_weight, weight_decay and grad_clip must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ILRMInputError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.train_scenes is not None and self.train_scenes < 1:
            raise ILRMInputError(f"train_scenes must be >= 1, got {self.train_scenes}")
        if self.stop_after is not None and self.stop_after < 1:
            raise ILRMInputError(f"stop_after must be >= 1, got {self.stop_after}")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ILRMInputError(f"time_limit_s must be > 0, got {self.time_limit_s}")
        try:
            mc = self.model_config()
        except (TypeError, ValueError) as e:
            if isinstance(e, ILRMInputError):
                raise
            raise ILRMInputError(f"bad model preset/overrides: {e}") from e
        m = mc.size_multiple
        for h, w in [(self.height, self.width), *self.image_sizes()]:
            if h % m or w % m:
                raise ILRMInputError(f"image sizes must be multiples of {m} for preset {self.preset!r}, got {h}×{w}")

    def image_sizes(self) -> tuple[tuple[int, int], ...]:
        """The per-step image sizes (``sizes``) as (height, width) pairs; empty when not set."""
        return tuple(parse_size(t) for t in self.sizes or ())

    # ---- derived configs -----------------------------------------------------------------------
    def model_config(self) -> ILRMConfig:
        """The ILRMConfig of the model: preset + overrides, with the training image size and view count."""
        cfg = ILRMConfig.preset(self.preset, **self.model_overrides)
        views = tuple(sorted(set(self.view_choices))) if self.view_choices else ()
        return cfg.replace(
            image_height=self.height, image_width=self.width, num_views=max(views or (self.num_context,)),
            trained_views=views,
            trained_sizes=tuple(sorted(set(self.image_sizes() or ((self.height, self.width),)))),
        )

    def data_kind(self) -> str:
        return parse_data_source(self.data)[0]

    def gap(self) -> tuple[int, int]:
        return self.context_gap if self.context_gap is not None else tuple(DEFAULT_GAPS[self.data_kind()])

    def procedural_config(self, num_target: int | None = None) -> ProceduralConfig:
        """Scene/view settings of this run (also carries size and view counts for RE10K/DL3DV)."""
        return ProceduralConfig(
            height=self.height,
            width=self.width,
            num_context=self.num_context,
            num_target=self.num_target if num_target is None else num_target,
            context_gap=self.gap(),
        )

    # ---- serialisation -------------------------------------------------------------------------

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
