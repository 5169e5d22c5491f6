"""One process's model, optimiser, scheduler and loss (:class:`Trainer`): an optimiser step over
micro-batches, held-out evaluation, and the checkpoint state it saves and restores. The loop around
it (run folder, data stream, logging, stopping, export) is :mod:`ilrm.training.run`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import ILRMConfig
from ..data.example import Example
from ..distributed import DistInfo, all_reduce_sum, resolve_device
from ..errors import ILRMInputError
from ..models import build_model
from ..rendering import WHITE, render
from ..weight_files import load_weights
from .checkpointing import load_checkpoint_weights, load_training_state, set_rng_state, unwrap
from .config import TrainConfig
from .losses import build_lpips_loss, concat_views, psnr_per_image, render_loss
from .optim import build_optimizer, build_scheduler, lr_factor


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
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise ILRMInputError(f"init_from {folder}: no config.json there; give a run's segment/ or final/ folder")
        saved = ILRMConfig.from_json(folder / "config.json")
        keep = dict(extra={}, image_height=0, image_width=0, num_views=1, trained_views=(), trained_sizes=())
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
