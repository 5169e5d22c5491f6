"""The training loop: :func:`train` runs a :class:`TrainingRun` (one per process, also under
``torchrun``) around a :class:`~ilrm.training.trainer.Trainer`.

A run resolves where it starts (fresh, a checkpoint to resume, or a previous segment's weights),
prepares the run folder and its log, builds the data stream, then steps: every ``log_every`` steps
it writes a log record, every ``eval_every`` it evaluates, every ``checkpoint_every`` it saves, and
it stops cleanly on SIGTERM / Ctrl-C / ``time_limit_s`` / ``stop_after`` (every rank stops at the
same step). At the end it exports the segment (and, for a finished run, the final model) and plots
the curves. Collectives (``any_rank``, the reductions, the RNG gather) run in the same order on
every rank.
"""

from __future__ import annotations

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

from ..data.example import Example
from ..distributed import (
    DistInfo,
    all_reduce_mean,
    any_rank,
    barrier,
    gather_objects,
    init_distributed,
    shutdown,
)
from ..errors import ILRMInputError
from .augment import CameraJitter, Photometric
from .checkpointing import checkpoint_name, export_model, list_checkpoints, resolve_resume, rng_state, save_checkpoint
from .config import TrainConfig
from .data import SampleLayout, build_train_stream, eval_examples
from .train_log import JsonlLog, plot_training_curves, read_log
from .trainer import StepStats, Trainer

log = logging.getLogger(__name__)


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


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm  # imported here: only a run with a progress bar needs it

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
        return TrainingRun(config, dist, resume, progress).run()
    finally:
        shutdown(dist)


class TrainingRun:
    """One invocation of :func:`train` on this process: the loop state around a :class:`Trainer`.

    :meth:`run` = :meth:`setup`, then :meth:`step` until done or stopped (with :meth:`log_interval`,
    :meth:`evaluate` and :meth:`checkpoint` on their schedules), then :meth:`finish`.
    """

    def __init__(self, config: TrainConfig, dist: DistInfo, resume: str | Path | None, progress: bool) -> None:
        self.t_begin = time.perf_counter()
        self.cfg, self.dist, self.resume, self.progress = config, dist, resume, progress
        self.out = Path(config.out_dir)
        self.jsonl = JsonlLog(self.out / "log.jsonl")
        self.ckpt: Path | None = None  # the checkpoint resumed from
        self.start_step, self.samples_seen, self.elapsed0 = 0, 0, 0.0
        # Throughput bookkeeping between two log records: eval and checkpoint time is "overhead".
        self.pending: list[StepStats] = []
        self.interval_start, self.overhead, self.interval_steps, self.total_train_time = 0.0, 0.0, 0, 0.0

    # ---- setup -------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Build the trainer, pick the starting point, prepare the run folder and the data."""
        cfg, dist = self.cfg, self.dist
        if dist.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # fp32 parts (rays, renderer glue) as the authors run them
            torch.backends.cudnn.allow_tf32 = True
        self.trainer = Trainer(cfg, dist)
        skipped = self._start_point()
        self._prepare_out_dir()
        barrier(dist)
        self.layout = SampleLayout(
            cfg.batch_size, cfg.grad_accum, dist.world_size, dist.rank, self.start_step, self.samples_seen
        )
        self.stream = self._build_stream()
        self.evals_data = None
        if cfg.eval_every > 0 and cfg.eval_scenes > 0:
            self.evals_data = eval_examples(
                cfg.procedural_config(cfg.eval_num_target), cfg.eval_scenes, dist.rank, dist.world_size
            )
        self.result = TrainResult(self.out, self.start_step, self.start_step, False, None, skipped_steps=skipped)
        self.step_count = self.start_step
        self.last_saved = self.start_step if self.ckpt is not None else None

    def _start_point(self) -> int:
        """Resume from a checkpoint, start from a segment's weights, or start fresh; returns the
        number of skipped steps so far."""
        cfg, trainer = self.cfg, self.trainer
        # Every rank resolves the checkpoint itself (one host, shared disk): an error then stops every
        # rank instead of leaving the others waiting in a collective.
        self.ckpt = resolve_resume(self.resume, self.out)
        if self.ckpt is not None:
            state = trainer.load(self.ckpt)
            self.start_step, self.samples_seen = trainer.step, int(state["samples_seen"])
            self.elapsed0 = float(state["elapsed_s"])
            log.info("resumed from %s at step %d", self.ckpt, self.start_step)
            return int(state.get("skipped_steps", 0))
        if list_checkpoints(self.out):
            raise ILRMInputError(
                f"{self.out} already holds checkpoints of a run; continue it with resume='auto' (--resume auto) "
                "or train into another output folder"
            )
        if cfg.init_from:
            seg = trainer.start_from_weights(cfg.init_from)
            self.start_step, self.samples_seen = int(seg["step"]), int(seg["samples_seen"])
            self.elapsed0 = float(seg["elapsed_s"])
            log.info(
                "segment from %s: weights of step %d, fresh optimiser re-warmed over %d steps",
                cfg.init_from,
                self.start_step,
                cfg.rewarm_steps,
            )
        return 0

    def _prepare_out_dir(self) -> None:
        """Rank 0 writes the config and cuts, clears or seeds the log (a segment's log continues the
        earlier segments' records, then a marker: one curve over all segments)."""
        cfg, jsonl = self.cfg, self.jsonl
        if not self.dist.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        cfg.to_json(self.out / "train_config.json")
        if self.ckpt is not None:
            jsonl.truncate_after(self.start_step)
        elif jsonl.path.exists():
            jsonl.path.unlink()  # a fresh run in an old folder starts a fresh log
        if self.ckpt is None and cfg.init_from:
            prev = Path(cfg.init_from) / "log.jsonl"
            for rec in read_log(prev) if prev.is_file() else []:
                if rec.get("step", 0) <= self.start_step:
                    jsonl.write(rec)
            jsonl.write(
                {
                    "kind": "segment",
                    "step": self.start_step,
                    "init_from": str(cfg.init_from),
                    "elapsed_s": self.elapsed0,
                    "rewarm_steps": cfg.rewarm_steps,
                }
            )

    def _build_stream(self) -> Any:
        cfg = self.cfg
        data_device = str(self.dist.device) if cfg.data_device == "auto" else cfg.data_device
        return build_train_stream(
            cfg.data,
            dataclasses.replace(cfg.procedural_config(), scene_style=cfg.scene_style),
            self.layout,
            start_step=self.start_step,
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

    # ---- one step and what follows it --------------------------------------------------------------

    def elapsed(self) -> float:
        """Seconds of training so far, over this and every earlier invocation of the run."""
        return self.elapsed0 + time.perf_counter() - self.t_begin

    def step(self) -> float:
        """One optimiser step on the next ``grad_accum`` micro-batches; returns its wall time (s)."""
        t_step = time.perf_counter()
        self.stream.set_step(self.step_count)
        batches: list[Example] = [
            self.stream.next_batch().to(self.dist.device, non_blocking=True) for _ in range(self.cfg.grad_accum)
        ]
        stats = self.trainer.train_step(batches)
        self.step_count += 1
        self.samples_seen += self.layout.global_batch
        self.result.skipped_steps += int(stats.skipped)
        self.pending.append(stats)
        self.interval_steps += 1
        return time.perf_counter() - t_step

    def stop_reason(self, flag: _StopFlag, last_step_time: float) -> str | None:
        """Why to stop after this step (agreed over ranks: "peer" when only another rank wants to)."""
        cfg, step = self.cfg, self.step_count
        over_time = (
            cfg.time_limit_s is not None and (time.perf_counter() - self.t_begin) + last_step_time > cfg.time_limit_s
        )
        reason = flag.reason or ("time_limit" if over_time else None)
        if reason is None and cfg.stop_after is not None and step >= cfg.stop_after and step < cfg.steps:
            reason = "stop_after"
        stop = any_rank(self.dist, reason is not None)
        return (reason or "peer") if stop else None

    def log_interval(self, bar: Any) -> None:
        """Reduce the pending steps' stats over ranks, append them to the history and write one log
        record (their mean; the throughput of the interval without eval and checkpoint time)."""
        dist, pending, gb = self.dist, self.pending, self.layout.global_batch
        vals = torch.stack([torch.stack([s.loss, s.mse, s.psnr, s.grad_norm]) for s in pending])
        vals = all_reduce_mean(dist, vals).tolist()
        now = time.perf_counter()
        train_time = max(1e-9, now - self.interval_start - self.overhead)
        self.total_train_time += train_time
        sps = gb * self.interval_steps / train_time
        first = self.step_count - len(pending) + 1
        for k, (s, v) in enumerate(zip(pending, vals)):
            self.result.history.append(
                {"step": first + k, "loss": v[0], "mse": v[1], "psnr": v[2], "grad_norm": v[3], "lr": s.lr}
            )
        mean = [sum(col) / len(col) for col in zip(*vals)]
        rec = {
            "kind": "train",
            "step": self.step_count,
            "loss": mean[0],
            "mse": mean[1],
            "psnr": mean[2],
            "grad_norm": vals[-1][3],
            "lr": pending[-1].lr,
            "samples_per_s": sps,
            "elapsed_s": self.elapsed(),
            "gpu_s": self.elapsed() * dist.world_size,
            "skipped_steps": self.result.skipped_steps,
        }
        if self.cfg.lpips_weight > 0:
            rec["lpips"] = float(all_reduce_mean(dist, torch.stack([s.lpips for s in pending]).mean()))
        if dist.is_main:
            self.jsonl.write(rec)
            bar.set_postfix(loss=f"{mean[0]:.4f}", psnr=f"{mean[2]:.2f}", sps=f"{sps:.1f}")
        self.pending, self.interval_steps, self.overhead = [], 0, 0.0
        self.interval_start = time.perf_counter()

    def evaluate(self, step: int) -> None:
        """Evaluate on the held-out scenes and log the record."""
        rec = {"kind": "eval", "step": step, **self.trainer.evaluate(self.evals_data)}
        rec.update(elapsed_s=self.elapsed(), gpu_s=self.elapsed() * self.dist.world_size)
        self.result.evals.append(rec)
        if self.dist.is_main:
            self.jsonl.write(rec)

    def checkpoint(self, step: int) -> Path:
        """Save a checkpoint of ``step`` (every rank's RNG state, written by rank 0); returns its folder."""
        dist = self.dist
        rngs = gather_objects(dist, rng_state())
        barrier(dist)
        if dist.is_main:
            state = self.trainer.state(self.samples_seen, self.elapsed(), self.result.skipped_steps, rngs)
            save_checkpoint(self.out, step, self.trainer.model, state, keep=self.cfg.keep_checkpoints)
        barrier(dist)
        self.last_saved = step
        return self.out / checkpoint_name(step)

    # ---- the loop and the end ----------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Set up, train until ``steps`` or a stop, then :meth:`finish`."""
        self.setup()
        cfg, result = self.cfg, self.result
        if self.evals_data is not None and self.start_step == 0:
            self.evaluate(0)
        bar = _progress(cfg.steps, self.start_step, self.progress and self.dist.is_main)
        self.interval_start = time.perf_counter()
        try:
            with _StopFlag() as flag:
                while self.step_count < cfg.steps:
                    last_step_time = self.step()
                    bar.update(1)
                    step = self.step_count
                    reason = self.stop_reason(flag, last_step_time)
                    last = step == cfg.steps
                    if step % cfg.log_every == 0 or reason or last:
                        self.log_interval(bar)
                    t_extra = time.perf_counter()
                    if self.evals_data is not None and (step % cfg.eval_every == 0 or last):
                        self.evaluate(step)
                    if (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0) or reason or last:
                        result.checkpoint = self.checkpoint(step)
                    self.overhead += time.perf_counter() - t_extra
                    if reason:
                        result.stopped = reason
                        break
        except KeyboardInterrupt:
            # A second Ctrl-C (or one outside the main thread): save what is consistent if alone.
            if self.dist.distributed:
                raise
            result.stopped = "SIGINT"
            if self.last_saved != self.step_count:
                result.checkpoint = self.checkpoint(self.step_count)
        finally:
            bar.close()
            self.stream.close()
        return self.finish()

    def finish(self) -> TrainResult:
        """Export the segment (and a finished run's final model), plot the curves; returns the result."""
        cfg, dist, result, step = self.cfg, self.dist, self.result, self.step_count
        result.step = step
        result.finished = step >= cfg.steps and result.stopped is None
        if dist.is_main and step > self.start_step:
            self.export_segment()
        result.elapsed_s = self.elapsed()
        trained = step - self.start_step
        gb = self.layout.global_batch
        result.samples_per_s = gb * trained / self.total_train_time if self.total_train_time > 0 else 0.0
        if result.finished and dist.is_main:
            result.final_model = self.export_final()
        if dist.is_main and (self.out / "log.jsonl").exists():
            try:
                curves = plot_training_curves(self.out / "log.jsonl", self.out / "curves.png", labels=[cfg.preset])
                result.curves = curves
            except Exception as e:  # a figure must never lose a finished run
                log.warning("could not plot training curves: %s", e)
        barrier(dist)
        return result

    def export_segment(self) -> Path:
        """Export the weights and log as ``segment/``: what a later segment (on another machine,
        optimiser state left behind) starts from."""
        seg = {"step": self.step_count, "samples_seen": self.samples_seen, "elapsed_s": round(self.elapsed(), 2)}
        seg_dir = export_model(self.trainer.model, self.out / "segment", self.cfg.export_dtype, extra={"segment": seg})
        if (self.out / "log.jsonl").exists():
            shutil.copy2(self.out / "log.jsonl", seg_dir / "log.jsonl")
        return seg_dir

    def export_final(self) -> Path:
        """Export the finished model as ``final/``, with a record of how it was trained."""
        cfg, dist, result = self.cfg, self.dist, self.result
        extra = {
            "training": {
                "data": cfg.data,
                "preset": cfg.preset,
                "steps": self.step_count,
                "global_batch": self.layout.global_batch,
                "image_size": [cfg.height, cfg.width],
                "num_context": cfg.num_context,
                "gpu_seconds": round(result.elapsed_s * dist.world_size, 1),
                "device": torch.cuda.get_device_name(dist.device) if dist.device.type == "cuda" else "cpu",
                "world_size": dist.world_size,
                "final_train_psnr": result.history[-1]["psnr"] if result.history else None,
                "final_eval_psnr": result.evals[-1]["eval_psnr"] if result.evals else None,
            }
        }
        return export_model(self.trainer.model, self.out / "final", cfg.export_dtype, extra=extra)
