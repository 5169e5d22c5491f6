"""Training: one process or ``torchrun`` with DistributedDataParallel.

>>> from ilrm.train import TrainConfig, train
>>> cfg = TrainConfig(preset="tiny", height=64, width=64, steps=100, out_dir="runs/smoke")
>>> result = train(cfg)                      # or train(cfg, resume="auto")

or ``python -m ilrm train --preset tiny --size 64 --steps 100 --out runs/smoke`` (add ``torchrun
--nproc_per_node=N`` in front for several GPUs/processes). The same code trains iLRM and the
full-attention baseline: the preset name decides (``"tiny"`` vs ``"tiny-full"``).

Recipe (the authors' RE10K recipe where they state one): AdamW (0.9, 0.95), weight decay 0.05 on
matrices only, lr 4e-4 with linear warm-up and cosine decay, gradient clipping at 1.0, bf16
autocast on CUDA (fp32 on CPU), MSE between renders of the predicted Gaussians and the target
images (white background) plus an optional LPIPS-VGG term, optional per-block gradient
checkpointing, gradient accumulation.

Exact resumption: data order is a pure function of (seed, step, rank) (:mod:`ilrm.training.data`),
and a checkpoint holds the model, the optimiser, the scheduler, the step, the samples seen and every
rank's RNG states, so the next loss after ``resume`` equals the uninterrupted run's.
See :mod:`ilrm.training.checkpointing` for the run-folder layout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .models import build_model
from .config import ILRMConfig
from .data.example import Example
from .data.procedural import ProceduralConfig
from .errors import ILRMInputError
from .jsonconfig import JsonConfig
from .rendering import WHITE, render
from .training.augment import CameraJitter, Photometric, parse_size
from .training.checkpointing import (
    EXPORT_DTYPES,
    checkpoint_name,
    export_model,
    list_checkpoints,
    load_checkpoint_weights,
    load_training_state,
    resolve_resume,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unwrap,
)
from .training.data import SampleLayout, build_train_stream, eval_examples, parse_data_source
from .distributed import (
    DistInfo,
    all_reduce_mean,
    all_reduce_sum,
    any_rank,
    barrier,
    gather_objects,
    init_distributed,
    resolve_device,
    shutdown,
)
from .training.losses import build_lpips_loss, concat_views, psnr_per_image, render_loss
from .training.optim import build_optimizer, build_scheduler, lr_at, lr_factor, param_groups
from .training.train_log import JsonlLog, plot_training_curves, read_log

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "StepStats",
    "train",
    "export_model",
    "param_groups",
    "lr_at",
    "lr_factor",
    "plot_training_curves",
    "read_log",
]

log = logging.getLogger("ilrm.train")

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


@dataclass
class StepStats:
    """One optimiser step on this rank: loss/mse/psnr/lpips averaged over its micro-batches,
    the global grad norm before clipping, the lr used, and whether the update was skipped
    (non-finite gradients). Tensors stay on the device (no sync) until read."""

    loss: Tensor
    mse: Tensor
    psnr: Tensor
    lpips: Tensor
    grad_norm: Tensor
    lr: float
    skipped: bool


@dataclass
class TrainResult:
    """What :func:`train` did. ``history``: one dict per step (step, loss, mse, psnr, grad_norm, lr),
    values averaged over ranks; ``evals``: the eval records; ``stopped``: None when all ``steps`` ran,
    else "time_limit", "stop_after", "SIGTERM" or "SIGINT"; ``checkpoint``: the last checkpoint written;
    ``final_model``: the exported model folder (finished runs only)."""

    out_dir: Path
    start_step: int
    step: int
    finished: bool
    stopped: str | None
    history: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    final_model: Path | None = None
    curves: Path | None = None
    elapsed_s: float = 0.0
    samples_per_s: float = 0.0
    skipped_steps: int = 0


class Trainer:
    """Model, optimiser, scheduler and loss for one process; :meth:`train_step` is one optimiser step.

    ``dist`` (default: single process on ``config.device``) decides the device and whether the model
    is wrapped in DistributedDataParallel.
    """

    def __init__(self, config: TrainConfig, dist: DistInfo | None = None) -> None:
        self.config = config
        self.dist = dist or DistInfo(device=resolve_device(config.device))
        self.device = self.dist.device
        torch.manual_seed(config.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
        self.model_config = config.model_config()
        model = build_model(self.model_config).to(self.device)
        model.set_gradient_checkpointing(config.gradient_checkpointing)
        model.train()
        self.model: nn.Module = model
        self.optimizer = build_optimizer(model, config.lr, config.betas, config.weight_decay)
        self.restart_step = 0
        self.scheduler = build_scheduler(self.optimizer, config.steps, config.warmup_steps, config.lr, config.min_lr)
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model = DDP(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False,
                gradient_as_bucket_view=True,
            )
        self.use_bf16 = config.precision == "bf16" or (config.precision == "auto" and self.device.type == "cuda")
        self.lpips_net = build_lpips_loss(self.device) if config.lpips_weight > 0 else None
        self.step = 0  # completed optimiser steps

    @property
    def bare_model(self) -> nn.Module:
        return unwrap(self.model)

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    def _sync_lr(self) -> None:
        # The lr of the next update as a pure function of the step (the scheduler's own formula).
        c = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = c.lr * lr_factor(
                self.step, c.steps, c.warmup_steps, c.min_lr / c.lr, restart_step=self.restart_step,
                restart_warmup=c.rewarm_steps,
            )

    def micro_loss(self, batch: Example) -> Any:
        """Forward + loss of one micro-batch (no backward). Returns a LossOutput."""
        c = self.config
        views = concat_views(batch.target, batch.context) if c.supervise_context else batch.target
        with self.autocast():
            gaussians = self.model(batch.context)
            return render_loss(
                gaussians, views, self.model_config, lpips_net=self.lpips_net, lpips_weight=c.lpips_weight
            )

    def train_step(self, batches: list[Example]) -> StepStats:
        """One optimiser step over ``grad_accum`` micro-batches (Examples already on the device).

        Gradients are averaged over micro-batches (and over ranks by DDP), clipped to
        ``grad_clip``; the update is skipped when the gradient norm is not finite.
        """
        c = self.config
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        lr = self.optimizer.param_groups[0]["lr"]
        sums = torch.zeros(4, device=self.device)
        n = len(batches)
        for i, batch in enumerate(batches):
            # Only the last micro-batch all-reduces gradients.
            sync = not (self.dist.distributed and i < n - 1)
            ctx = contextlib.nullcontext() if sync else self.model.no_sync()
            with ctx:
                out = self.micro_loss(batch)
                (out.loss / n).backward()
            sums += torch.stack([out.loss.detach().float(), out.mse.float(), out.psnr.float(), out.lpips.float()])
        params = [p for p in self.model.parameters() if p.grad is not None]
        if c.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
        else:
            grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().float().norm() for p in params]))
        skipped = not bool(torch.isfinite(grad_norm))  # same on every rank (gradients are all-reduced)
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        means = sums / n
        return StepStats(means[0], means[1], means[2], means[3], grad_norm.detach().float(), lr, skipped)

    @torch.no_grad()
    def evaluate(self, examples: list[tuple[int, Example]]) -> dict[str, float]:
        """PSNR (clipped renders, per image, mean per scene, then over scenes) and MSE of this rank's
        held-out ``examples``, combined over ranks: {"eval_psnr", "eval_mse", "eval_scenes"}."""
        model, cfg = self.bare_model, self.model_config
        model.eval()
        totals = torch.zeros(3, device=self.device, dtype=torch.float64)
        for _, ex in examples:
            ex = ex.to(self.device)
            t = ex.target
            with self.autocast():
                g = model(ex.context)
            pred = render(g, t.intrinsics, t.c2w, t.height, t.width, background=WHITE, near=cfg.near, far=cfg.far)
            mse = (pred - t.images).square().mean()
            psnr = psnr_per_image(pred, t.images).mean()
            totals += torch.stack([psnr.double(), mse.double(), torch.ones_like(mse, dtype=torch.float64)])
        model.train()
        totals = all_reduce_sum(self.dist, totals)
        n = max(1.0, float(totals[2]))
        return {"eval_psnr": float(totals[0]) / n, "eval_mse": float(totals[1]) / n, "eval_scenes": int(totals[2])}

    def start_from_weights(self, folder: str | Path) -> dict[str, Any]:
        """Load a segment's exported weights (fresh optimiser) and continue its schedule: the step it
        reached becomes this run's, and the lr re-warms from there over ``rewarm_steps``. Returns the
        segment record ({"step", "samples_seen", "elapsed_s"}; zeros for weights without one)."""
        from .weight_files import load_weights

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise ILRMInputError(f"init_from {folder}: no config.json there; give a run's segment/ or final/ folder")
        saved = ILRMConfig.from_json(folder / "config.json")
        keep = dict(extra={}, image_height=0, image_width=0, num_views=1, trained_views=())
        if saved.replace(**keep) != self.model_config.replace(**keep):
            raise ILRMInputError(
                f"init_from {folder} holds another model than preset {self.config.preset!r} with overrides "
                f"{self.config.model_overrides}; use the same model settings"
            )
        self.bare_model.load_state_dict(load_weights(folder), strict=True)
        seg = dict(saved.extra.get("segment") or {"step": 0, "samples_seen": 0, "elapsed_s": 0.0})
        self.step = self.restart_step = int(seg["step"])
        self.scheduler = build_scheduler(
            self.optimizer, self.config.steps, self.config.warmup_steps, self.config.lr, self.config.min_lr,
            restart_step=self.restart_step, restart_warmup=self.config.rewarm_steps, last_step=self.step,
        )
        self._sync_lr()
        return seg

    # ---- checkpoint state ---------------------------------------------------------------------
    def state(self, samples_seen: int, elapsed_s: float, skipped_steps: int, rng: list[dict]) -> dict[str, Any]:
        """The ``training_state.pt`` payload (see :mod:`ilrm.training.checkpointing`)."""
        c = self.config
        return {
            "samples_seen": int(samples_seen),
            "elapsed_s": float(elapsed_s),
            "world_size": self.dist.world_size,
            "global_batch": c.batch_size * c.grad_accum * self.dist.world_size,
            "skipped_steps": int(skipped_steps),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "train_config": c.to_json(),
            "restart_step": int(self.restart_step),
            "data": {"source": c.data, "next_sample": int(samples_seen), "seed": c.seed},
        }

    def load(self, checkpoint: Path) -> dict[str, Any]:
        """Restore weights, optimiser, scheduler, step and this rank's RNG from a checkpoint folder;
        returns the training state. Raises ILRMInputError if the model differs from this run's."""
        state = load_training_state(checkpoint)
        saved = TrainConfig.from_json(state["train_config"])
        if saved.model_config().replace(extra={}) != self.model_config.replace(extra={}):
            raise ILRMInputError(
                f"checkpoint {checkpoint} was trained with another model (preset {saved.preset!r}, overrides "
                f"{saved.model_overrides}, size {saved.height}×{saved.width}); resume with the same model settings"
            )
        load_checkpoint_weights(self.model, checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.restart_step = int(state.get("restart_step", 0))
        c = self.config
        self.scheduler = build_scheduler(
            self.optimizer, c.steps, c.warmup_steps, c.lr, c.min_lr, restart_step=self.restart_step,
            restart_warmup=c.rewarm_steps,
        )
        self.scheduler.load_state_dict(state["scheduler"])
        self.scheduler.base_lrs = [self.config.lr for _ in self.optimizer.param_groups]
        self.step = int(state["step"])
        self._sync_lr()
        rngs = state["rng"]
        set_rng_state(rngs[self.dist.rank % len(rngs)])
        return state


# ---- the loop ------------------------------------------------------------------------------------


class _StopFlag:
    """SIGTERM / first SIGINT set the flag (the loop checkpoints and exits); a second SIGINT raises."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and self.reason == "SIGINT":
            raise KeyboardInterrupt
        self.reason = self.reason or name

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _micro_batches(stream: Any, n: int, device: torch.device) -> list[Example]:
    return [stream.next_batch().to(device, non_blocking=True) for _ in range(n)]


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, dynamic_ncols=True, desc="train", unit="step")


def train(config: TrainConfig, *, resume: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train a model as ``config`` says; works as one process or under ``torchrun`` (DDP).

    resume: None (fresh run; refused if ``config.out_dir`` already holds checkpoints), ``"auto"`` (the
    latest checkpoint in ``config.out_dir`` if any, else fresh) or a checkpoint / run folder (the run
    then continues in ``config.out_dir``). ``config.steps`` and ``time_limit_s`` may differ from the
    checkpointed run's (the schedule follows the new ``steps``); the model settings may not.
    progress: show a tqdm bar on rank 0.
    Returns a :class:`TrainResult` on every rank. Stops cleanly on SIGTERM / Ctrl-C / ``time_limit_s``
    after saving a checkpoint.
    """
    dist = init_distributed(config.device)
    try:
        return _train(config, dist, resume, progress)
    finally:
        shutdown(dist)


def _train(cfg: TrainConfig, dist: DistInfo, resume: str | Path | None, progress: bool) -> TrainResult:
    t_begin = time.perf_counter()
    out = Path(cfg.out_dir)
    if dist.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 parts (rays, renderer glue) as the authors run them
        torch.backends.cudnn.allow_tf32 = True
    trainer = Trainer(cfg, dist)

    # Every rank resolves the checkpoint itself (one host, shared disk): an error then stops every
    # rank instead of leaving the others waiting in a collective.
    ckpt = resolve_resume(resume, out)
    start_step, samples_seen, elapsed0, skipped = 0, 0, 0.0, 0
    if ckpt is not None:
        state = trainer.load(ckpt)
        start_step, samples_seen = trainer.step, int(state["samples_seen"])
        elapsed0, skipped = float(state["elapsed_s"]), int(state.get("skipped_steps", 0))
        log.info("resumed from %s at step %d", ckpt, start_step)
    elif list_checkpoints(out):
        raise ILRMInputError(
            f"{out} already holds checkpoints of a run; continue it with resume='auto' (--resume auto) "
            "or train into another output folder"
        )
    elif cfg.init_from:
        seg = trainer.start_from_weights(cfg.init_from)
        start_step, samples_seen, elapsed0 = int(seg["step"]), int(seg["samples_seen"]), float(seg["elapsed_s"])
        log.info("segment from %s: weights of step %d, fresh optimiser re-warmed over %d steps",
                 cfg.init_from, start_step, cfg.rewarm_steps)

    jsonl = JsonlLog(out / "log.jsonl")
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.to_json(out / "train_config.json")
        if ckpt is not None:
            jsonl.truncate_after(start_step)
        elif jsonl.path.exists():
            jsonl.path.unlink()  # a fresh run in an old folder starts a fresh log
        if ckpt is None and cfg.init_from:
            # one curve over all segments: the earlier segments' records, then a marker
            prev = Path(cfg.init_from) / "log.jsonl"
            for rec in read_log(prev) if prev.is_file() else []:
                if rec.get("step", 0) <= start_step:
                    jsonl.write(rec)
            jsonl.write({"kind": "segment", "step": start_step, "init_from": str(cfg.init_from),
                         "elapsed_s": elapsed0, "rewarm_steps": cfg.rewarm_steps})
    barrier(dist)

    layout = SampleLayout(cfg.batch_size, cfg.grad_accum, dist.world_size, dist.rank, start_step, samples_seen)
    data_device = cfg.data_device
    if data_device == "auto":
        data_device = str(dist.device)
    stream = build_train_stream(
        cfg.data,
        dataclasses.replace(cfg.procedural_config(), scene_style=cfg.scene_style),
        layout,
        start_step=start_step,
        end_step=cfg.steps,
        num_workers=cfg.num_workers,
        seed=cfg.seed,
        train_scenes=cfg.train_scenes,
        initial_gap=cfg.initial_context_gap,
        gap_warmup_steps=cfg.gap_warmup_steps,
        data_device=data_device,
        samples_per_scene=cfg.samples_per_scene,
        view_choices=cfg.view_choices,
        sizes=cfg.image_sizes() or None,
        camera=CameraJitter() if cfg.camera_aug else None,
        photometric=Photometric() if cfg.photometric_aug else None,
        grad_accum=cfg.grad_accum,
        prefetch=cfg.prefetch,
    )
    evals_data = None
    if cfg.eval_every > 0 and cfg.eval_scenes > 0:
        evals_data = eval_examples(
            cfg.procedural_config(cfg.eval_num_target), cfg.eval_scenes, dist.rank, dist.world_size
        )

    result = TrainResult(out, start_step, start_step, False, None, skipped_steps=skipped)
    gb = layout.global_batch

    def elapsed() -> float:
        return elapsed0 + time.perf_counter() - t_begin

    def run_eval(step: int) -> None:
        rec = {"kind": "eval", "step": step, **trainer.evaluate(evals_data)}
        rec.update(elapsed_s=elapsed(), gpu_s=elapsed() * dist.world_size)
        result.evals.append(rec)
        if dist.is_main:
            jsonl.write(rec)

    def save(step: int) -> Path:
        rngs = gather_objects(dist, rng_state())
        barrier(dist)
        if dist.is_main:
            state = trainer.state(samples_seen, elapsed(), result.skipped_steps, rngs)
            save_checkpoint(out, step, trainer.model, state, keep=cfg.keep_checkpoints)
        barrier(dist)
        return out / checkpoint_name(step)

    if evals_data is not None and start_step == 0:
        run_eval(0)

    bar = _progress(cfg.steps, start_step, progress and dist.is_main)
    pending: list[StepStats] = []
    interval_start, overhead, interval_steps, total_train_time = time.perf_counter(), 0.0, 0, 0.0
    last_step_time = 0.0
    step = start_step
    last_saved = start_step if ckpt is not None else None
    try:
        with _StopFlag() as flag:
            while step < cfg.steps:
                t_step = time.perf_counter()
                stream.set_step(step)
                stats = trainer.train_step(_micro_batches(stream, cfg.grad_accum, dist.device))
                step += 1
                samples_seen += gb
                result.skipped_steps += int(stats.skipped)
                pending.append(stats)
                interval_steps += 1
                bar.update(1)
                last_step_time = time.perf_counter() - t_step

                over_time = (
                    cfg.time_limit_s is not None and (time.perf_counter() - t_begin) + last_step_time > cfg.time_limit_s
                )
                stop_reason = flag.reason or ("time_limit" if over_time else None)
                if stop_reason is None and cfg.stop_after is not None and step >= cfg.stop_after and step < cfg.steps:
                    stop_reason = "stop_after"
                stop = any_rank(dist, stop_reason is not None)
                if stop and stop_reason is None:
                    stop_reason = "peer"
                last = step == cfg.steps

                if step % cfg.log_every == 0 or stop or last:
                    vals = torch.stack([torch.stack([s.loss, s.mse, s.psnr, s.grad_norm]) for s in pending])
                    vals = all_reduce_mean(dist, vals).tolist()
                    now = time.perf_counter()
                    train_time = max(1e-9, now - interval_start - overhead)
                    total_train_time += train_time
                    sps = gb * interval_steps / train_time
                    first = step - len(pending) + 1
                    for k, (s, v) in enumerate(zip(pending, vals)):
                        result.history.append(
                            {"step": first + k, "loss": v[0], "mse": v[1], "psnr": v[2], "grad_norm": v[3], "lr": s.lr}
                        )
                    mean = [sum(col) / len(col) for col in zip(*vals)]
                    rec = {
                        "kind": "train",
                        "step": step,
                        "loss": mean[0],
                        "mse": mean[1],
                        "psnr": mean[2],
                        "grad_norm": vals[-1][3],
                        "lr": pending[-1].lr,
                        "samples_per_s": sps,
                        "elapsed_s": elapsed(),
                        "gpu_s": elapsed() * dist.world_size,
                        "skipped_steps": result.skipped_steps,
                    }
                    if cfg.lpips_weight > 0:
                        rec["lpips"] = float(all_reduce_mean(dist, torch.stack([s.lpips for s in pending]).mean()))
                    if dist.is_main:
                        jsonl.write(rec)
                        bar.set_postfix(loss=f"{mean[0]:.4f}", psnr=f"{mean[2]:.2f}", sps=f"{sps:.1f}")
                    pending, interval_steps, overhead = [], 0, 0.0
                    interval_start = time.perf_counter()

                t_extra = time.perf_counter()
                if evals_data is not None and (step % cfg.eval_every == 0 or last):
                    run_eval(step)
                if (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0) or stop or last:
                    result.checkpoint = save(step)
                    last_saved = step
                overhead += time.perf_counter() - t_extra
                if stop:
                    result.stopped = stop_reason
                    break
    except KeyboardInterrupt:
        # A second Ctrl-C (or one outside the main thread): save what is consistent if alone.
        if dist.distributed:
            raise
        result.stopped = "SIGINT"
        if last_saved != step:
            result.checkpoint = save(step)
    finally:
        bar.close()
        stream.close()

    result.step = step
    result.finished = step >= cfg.steps and result.stopped is None
    if dist.is_main and step > start_step:
        # What a later segment (on another machine, optimiser state left behind) starts from.
        seg = {"step": step, "samples_seen": samples_seen, "elapsed_s": round(elapsed(), 2)}
        seg_dir = export_model(trainer.model, out / "segment", cfg.export_dtype, extra={"segment": seg})
        if (out / "log.jsonl").exists():
            shutil.copy2(out / "log.jsonl", seg_dir / "log.jsonl")
    result.elapsed_s = elapsed()
    trained = step - start_step
    result.samples_per_s = gb * trained / total_train_time if total_train_time > 0 else 0.0
    if result.finished and dist.is_main:
        extra = {
            "training": {
                "data": cfg.data,
                "preset": cfg.preset,
                "steps": step,
                "global_batch": gb,
                "image_size": [cfg.height, cfg.width],
                "num_context": cfg.num_context,
                "gpu_seconds": round(result.elapsed_s * dist.world_size, 1),
                "device": torch.cuda.get_device_name(dist.device) if dist.device.type == "cuda" else "cpu",
                "world_size": dist.world_size,
                "final_train_psnr": result.history[-1]["psnr"] if result.history else None,
                "final_eval_psnr": result.evals[-1]["eval_psnr"] if result.evals else None,
            }
        }
        result.final_model = export_model(trainer.model, out / "final", cfg.export_dtype, extra=extra)
    if dist.is_main and (out / "log.jsonl").exists():
        try:
            result.curves = plot_training_curves(out / "log.jsonl", out / "curves.png", labels=[cfg.preset])
        except Exception as e:  # a figure must never lose a finished run
            log.warning("could not plot training curves: %s", e)
    barrier(dist)
    return result
