"""Training: one process or ``torchrun`` with DistributedDataParallel.

>>> from ilrm.training import TrainConfig, train
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

Exact resumption: data order is a pure function of (seed, step, rank) (:mod:`.data`), and a
checkpoint holds the model, the optimiser, the scheduler, the step, the samples seen and every
rank's RNG states, so the next loss after ``resume`` equals the uninterrupted run's.
See :mod:`.checkpointing` for the run-folder layout.

Modules, lower to higher: ``augment``, ``optim``, ``losses``, ``train_log``, ``checkpointing``,
``data`` (streams); ``config`` (:class:`TrainConfig`); ``trainer`` (:class:`Trainer`: one process's
model, optimiser and step); ``run`` (:func:`train` and the loop around the trainer).
"""

from .checkpointing import export_model
from .config import TrainConfig
from .optim import lr_at, lr_factor, param_groups
from .run import TrainingRun, TrainResult, train
from .train_log import plot_training_curves, read_log
from .trainer import StepStats, Trainer

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingRun",
    "StepStats",
    "train",
    "export_model",
    "param_groups",
    "lr_at",
    "lr_factor",
    "plot_training_curves",
    "read_log",
]
