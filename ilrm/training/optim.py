"""AdamW parameter groups and the learning-rate schedule (linear warm-up, then cosine decay)."""

from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices (``ndim >= 2``: linear weights) decay, everything else does not.

    Norm weights, biases and other 1-D parameters are left undecayed (decaying a LayerNorm gain
    towards 0 only hurts). Frozen parameters are left out. Returns
    ``[{"params": decay, "weight_decay": wd, "name": "decay"}, {"params": rest, "weight_decay": 0.0, "name": "no_decay"}]``.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def build_optimizer(
    model: nn.Module,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.95),
    weight_decay: float = 0.05,
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; fused on CUDA (one kernel per step), the default loop elsewhere."""
    on_cuda = next(model.parameters()).is_cuda
    return torch.optim.AdamW(
        param_groups(model, weight_decay), lr=lr, betas=tuple(betas), eps=eps, fused=True if on_cuda else None
    )


def lr_factor(
    step: int, steps: int, warmup_steps: int, min_lr_ratio: float, restart_step: int = 0, restart_warmup: int = 0
) -> float:
    """Multiplier of the peak learning rate used for the update that ends step ``step + 1``.

    ``step`` counts completed optimiser steps (0 for the first update). Warm-up: ``(step + 1) /
    warmup_steps`` for ``step < warmup_steps`` (so the first update is not taken at lr 0); then a
    cosine from 1 down to ``min_lr_ratio`` at ``step = steps`` (held there beyond).
    restart_step > 0 (a segment that starts from weights with a fresh optimiser): the same schedule,
    times a linear re-warm ``(step − restart_step + 1) / restart_warmup`` over ``restart_warmup`` steps.
    """
    if warmup_steps > 0 and step < warmup_steps:
        f = (step + 1) / warmup_steps
    else:
        decay_steps = max(1, steps - warmup_steps)
        progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
        f = min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if restart_step > 0 and restart_step <= step < restart_step + restart_warmup:
        f *= (step - restart_step + 1) / restart_warmup
    return f


def lr_at(step: int, lr: float, steps: int, warmup_steps: int, min_lr: float) -> float:
    """The learning rate of the update that ends step ``step + 1`` (see :func:`lr_factor`)."""
    return lr * lr_factor(step, steps, warmup_steps, min_lr / lr if lr > 0 else 0.0)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    steps: int,
    warmup_steps: int,
    lr: float,
    min_lr: float,
    *,
    restart_step: int = 0,
    restart_warmup: int = 0,
    last_step: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`lr_factor`; call ``.step()`` once after every optimiser step.

    last_step: completed steps so far (a segment that starts part-way). The lambda is a plain
    function, so ``state_dict()`` holds only numbers (``weights_only``-loadable).
    """
    ratio = min_lr / lr if lr > 0 else 0.0

    def factor(step: int) -> float:
        return lr_factor(step, steps, warmup_steps, ratio, restart_step, restart_warmup)

    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if last_step:
        sched.last_epoch = last_step
        for group, base in zip(optimizer.param_groups, sched.base_lrs):
            group["lr"] = base * factor(last_step)
    return sched
