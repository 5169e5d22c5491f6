"""Post-prediction refinement: a few Adam steps on predicted Gaussians against the input views.

As in the authors' DL3DV code (SPEC): Adam with eps 1e-15, lr 6e-4 for the means and 1e-3 for
everything else, MSE between renders and the input images, 10 steps by default. Parameters are
optimised in an unconstrained form (means as is, log scales, opacity logits, unnormalised
quaternions, SH coefficients as is) and activated again for rendering.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .cameras import Views
from .errors import ILRMInputError
from .gaussians import Gaussians
from .rendering import WHITE, BackgroundLike, render

_OPACITY_EPS = 1e-6  # keeps logit() finite for opacities of exactly 0 or 1


@dataclass
class RefineStep:
    """One optimisation step: ``loss`` is the MSE of the renders *before* this step's update."""

    step: int
    loss: float
    seconds: float


@dataclass
class RefineStats:
    """History of a :func:`refine` run (``return_stats=True``).

    losses / step_seconds: one entry per step (loss before the update, wall time of the step incl.
    render, backward and Adam update); final_loss: MSE after the last update (None if not evaluated).
    """

    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    final_loss: float | None = None

    @property
    def mean_step_seconds(self) -> float:
        return sum(self.step_seconds) / max(1, len(self.step_seconds))


def _to_raw(g: Gaussians) -> dict[str, Tensor]:
    op = g.opacities.float().clamp(_OPACITY_EPS, 1 - _OPACITY_EPS)
    raw = {
        "means": g.means.float(),
        "log_scales": torch.log(g.scales.float().clamp_min(1e-12)),
        "opacity_logits": torch.logit(op),
        "quats": g.quats.float(),
        "sh": g.sh.float(),
    }
    return {k: v.detach().clone().requires_grad_(True) for k, v in raw.items()}


def _activate(raw: dict[str, Tensor]) -> Gaussians:
    return Gaussians(
        means=raw["means"],
        quats=raw["quats"],  # both rasterizers normalise quaternions themselves
        scales=torch.exp(raw["log_scales"]),
        opacities=torch.sigmoid(raw["opacity_logits"]),
        sh=raw["sh"],
    )


def refine(
    gaussians: Gaussians,
    views: Views,
    steps: int = 10,
    *,
    lr_means: float = 6e-4,
    lr_other: float = 1e-3,
    background: BackgroundLike = WHITE,
    near: float = 0.01,
    far: float = 1e10,
    backend: str = "auto",
    return_stats: bool = False,
    callback: Callable[[RefineStep], None] | None = None,
) -> Gaussians | tuple[Gaussians, RefineStats]:
    """A few Adam steps on ``gaussians`` so that their renders match ``views.images`` (MSE).

    gaussians: B scenes (activated parameters); views: the same B scenes' input views
    (images (B, V, 3, H, W) in [0, 1], intrinsics (B, V, 3, 3), c2w (B, V, 4, 4)).
    Use the ``near``/``far`` the model was trained with (``ILRMConfig.near/far``).
    ``callback`` is called after every step with a :class:`RefineStep`.
    Returns detached, activated Gaussians (unit quaternions, float32, same shapes as the input); with
    ``return_stats`` also a :class:`RefineStats` (losses, step times and the final loss).
    """
    if steps < 0:
        raise ILRMInputError(f"steps must be >= 0, got {steps}")
    views.validate()
    if views.batch_size != gaussians.batch_size:
        raise ILRMInputError(
            f"views hold {views.batch_size} scenes but the Gaussians {gaussians.batch_size}; pass matching batches"
        )
    device = gaussians.means.device
    views = views.to(device)
    target = views.images.float()
    H, W = views.height, views.width

    def loss_of(g: Gaussians) -> Tensor:
        pred = render(g, views.intrinsics, views.c2w, H, W, background=background, near=near, far=far, backend=backend)
        return F.mse_loss(pred, target)

    stats = RefineStats()
    raw = _to_raw(gaussians)
    if steps > 0:
        # Autocast in a caller must not reach the optimisation (the renderers disable it anyway).
        with torch.enable_grad():
            opt = torch.optim.Adam(
                [
                    {"params": [raw["means"]], "lr": lr_means},
                    {"params": [raw[k] for k in ("log_scales", "opacity_logits", "quats", "sh")], "lr": lr_other},
                ],
                eps=1e-15,
            )
            for i in range(steps):
                start = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss = loss_of(_activate(raw))
                loss.backward()
                opt.step()
                value = float(loss.detach())  # syncs the device, so the step time is real
                seconds = time.perf_counter() - start
                stats.losses.append(value)
                stats.step_seconds.append(seconds)
                if callback is not None:
                    callback(RefineStep(i, value, seconds))

    with torch.no_grad():
        out = _activate(raw).detach()
        out = Gaussians(out.means, F.normalize(out.quats, dim=-1), out.scales, out.opacities, out.sh)
        if not return_stats:
            return out
        stats.final_loss = float(loss_of(out))
    return out, stats
