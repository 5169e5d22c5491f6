"""Per-scene 3D Gaussian Splatting optimisation: the standard optimisation baseline.

For each scene, Gaussians are optimised from scratch on the context views only, then rendered into
the targets like any model's prediction. Rendering goes through :func:`ilrm.rendering.render`, so it runs
on gsplat (CUDA) and on the pure-torch reference (CPU) alike.

Initialisation (``init``):
- ``"random"``: for each context view, pixels drawn uniformly; each is lifted along its ray to a depth
  drawn log-uniformly in ``init_depth_range`` (scene units after pose normalisation), i.e. points
  spread through the context frusta; colour = that pixel's colour.
- ``"depth"``: the same pixels lifted to the given depth map (e.g. ray-cast ground truth of procedural
  scenes — an oracle, label it so); pixels without depth (<= 0) fall back to random depths.
Scales start at ~1.5 pixel footprints (depth / focal), rotations at identity, opacity at 0.1.

Optimisation: Adam on (means, log-scales, quaternions, opacity logits, SH DC) with the learning
rates of the original 3DGS (means 1.6e-4 × scene extent, decayed exponentially to 1/100 over the
run; SH 2.5e-3; opacity 5e-2; scales 5e-3; rotation 1e-3), loss 0.8·L1 + 0.2·(1 − SSIM) on a random
batch of context views per step. Not implemented (documented simplification): densification /
pruning / opacity reset and higher SH degrees — with a few hundred to a few thousand steps on 2-32
views these matter less than the fixed point budget, which is set by ``points_per_view``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ilrm.cameras import Views
from ilrm.errors import ILRMInputError
from ilrm.gaussians import Gaussians
from ilrm.rendering import render

SH_C0 = 0.28209479177387814
INITS = ("random", "depth")


@dataclass(frozen=True)
class GSConfig:
    """Settings of the per-scene optimisation (see module docstring).

    points_per_view: Gaussians initialised per context view (None: H·W/4).
    views_per_step: context views rendered per step (None: all, at most 4).
    """

    steps: int = 1000
    init: str = "random"
    points_per_view: int | None = None
    views_per_step: int | None = None
    init_depth_range: tuple[float, float] = (0.5, 20.0)
    init_opacity: float = 0.1
    lr_means: float = 1.6e-4
    lr_means_final_ratio: float = 0.01
    lr_sh: float = 2.5e-3
    lr_opacity: float = 5e-2
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    ssim_weight: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ILRMInputError(f"3DGS steps must be >= 0, got {self.steps}")
        if self.init not in INITS:
            raise ILRMInputError(f"3DGS init must be one of {INITS}, got {self.init!r}")
        lo, hi = self.init_depth_range
        if not 0 < lo <= hi:
            raise ILRMInputError(f"init_depth_range must be 0 < min <= max, got {self.init_depth_range}")


@dataclass
class GSResult:
    """Optimised Gaussians (batch 1, detached) and what it cost: ``losses`` per step, ``time_s``."""

    gaussians: Gaussians
    losses: list[float]
    time_s: float
    init: str


def _ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of (N, 3, H, W) images with a Gaussian window (valid region), differentiable."""
    coords = torch.arange(window, dtype=x.dtype, device=x.device) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, window, window)
    if min(x.shape[-2:]) < window:  # tiny test images: shrink the window rather than fail
        return 1 - F.mse_loss(x, y)
    conv = lambda t: F.conv2d(t, kernel, groups=x.shape[1])
    mu_x, mu_y = conv(x), conv(y)
    sxx = conv(x * x) - mu_x**2
    syy = conv(y * y) - mu_y**2
    sxy = conv(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean()


def camera_extent(c2w: Tensor) -> float:
    """3DGS's scene extent: 1.1 × the largest distance of a camera centre from their mean (>= 1e-3).

    c2w: (V, 4, 4)."""
    centres = c2w[:, :3, 3]
    return max(1.1 * float((centres - centres.mean(0)).norm(dim=-1).max()), 1e-3)


def initial_gaussians(
    context: Views,
    config: GSConfig,
    depth: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Gaussians:
    """Gaussians lifted from context pixels (see module docstring).

    context: batch 1, V views. depth: optional (1, V, H, W) z-depth of the context views.
    Returns Gaussians with N = V · points_per_view, on the context's device, float32.
    """
    if context.batch_size != 1:
        raise ILRMInputError("the 3DGS baseline optimises one scene at a time (batch size 1)")
    device = context.images.device
    V, H, W = context.num_views, context.height, context.width
    n = config.points_per_view or max(1, H * W // 4)
    gen = generator
    px = torch.randint(0, W, (V, n), generator=gen, device="cpu").to(device)
    py = torch.randint(0, H, (V, n), generator=gen, device="cpu").to(device)
    lo, hi = config.init_depth_range
    u = torch.rand((V, n), generator=gen, device="cpu").to(device)
    z = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    if config.init == "depth" and depth is not None:
        d = depth[0].to(device, torch.float32)[torch.arange(V, device=device)[:, None], py, px]
        z = torch.where(d > 0, d, z)
    K = context.intrinsics[0].float()  # (V, 3, 3)
    c2w = context.c2w[0].float()
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    cx, cy = K[:, 0, 2, None], K[:, 1, 2, None]
    cam = torch.stack([(px + 0.5 - cx) / fx * z, (py + 0.5 - cy) / fy * z, z], dim=-1)  # (V, n, 3)
    means = torch.einsum("vij,vnj->vni", c2w[:, :3, :3], cam) + c2w[:, None, :3, 3]
    colours = context.images[0].float()[torch.arange(V, device=device)[:, None], :, py, px]  # (V, n, 3)
    scale = (1.5 * z / (0.5 * (fx + fy))).unsqueeze(-1).expand(V, n, 3)
    N = V * n
    quats = torch.zeros(1, N, 4, device=device)
    quats[..., 0] = 1.0
    return Gaussians(
        means=means.reshape(1, N, 3),
        quats=quats,
        scales=scale.reshape(1, N, 3).clone(),
        opacities=torch.full((1, N), config.init_opacity, device=device),
        sh=((colours.reshape(1, N, 1, 3) - 0.5) / SH_C0),
    )


def optimise_scene(
    context: Views,
    config: GSConfig | None = None,
    *,
    depth: Tensor | None = None,
    near: float = 0.01,
    far: float = 1e10,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    backend: str = "auto",
) -> GSResult:
    """Optimise Gaussians on the context views of one scene (batch 1) for ``config.steps`` steps.

    context: images (1, V, 3, H, W) in [0, 1], K (1, V, 3, 3) pixels, c2w (1, V, 4, 4) OpenCV.
    depth: optional (1, V, H, W) context z-depth for ``init="depth"``.
    Returns the optimised Gaussians (detached) with the per-step losses and the wall time (CUDA
    synchronised), initialisation included.
    """
    config = config or GSConfig()
    device = context.images.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(config.seed)
    init = initial_gaussians(context, config, depth, gen)
    init_used = "depth" if (config.init == "depth" and depth is not None) else "random"

    params = {
        "means": init.means.clone().requires_grad_(True),
        "log_scales": init.scales.clamp_min(1e-8).log().requires_grad_(True),
        "quats": init.quats.clone().requires_grad_(True),
        "opacity_logits": torch.logit(init.opacities.clamp(1e-4, 1 - 1e-4)).requires_grad_(True),
        "sh": init.sh.clone().requires_grad_(True),
    }
    extent = camera_extent(context.c2w[0].float())
    lr_means = config.lr_means * extent
    optimiser = torch.optim.Adam(
        [
            {"params": [params["means"]], "lr": lr_means, "name": "means"},
            {"params": [params["sh"]], "lr": config.lr_sh},
            {"params": [params["opacity_logits"]], "lr": config.lr_opacity},
            {"params": [params["log_scales"]], "lr": config.lr_scales},
            {"params": [params["quats"]], "lr": config.lr_quats},
        ],
        eps=1e-15,
    )

    def gaussians() -> Gaussians:
        return Gaussians(
            means=params["means"],
            quats=F.normalize(params["quats"], dim=-1),
            scales=params["log_scales"].exp(),
            opacities=torch.sigmoid(params["opacity_logits"]),
            sh=params["sh"],
        )

    V, H, W = context.num_views, context.height, context.width
    per_step = min(config.views_per_step or min(V, 4), V)
    images = context.images.float()
    K, c2w = context.intrinsics.float(), context.c2w.float()
    losses: list[float] = []
    order = torch.randperm(V, generator=gen)
    cursor = 0
    for step in range(config.steps):
        # means lr: exponential decay to lr_means_final_ratio of its start (3DGS's schedule)
        t = step / max(config.steps - 1, 1)
        optimiser.param_groups[0]["lr"] = lr_means * config.lr_means_final_ratio**t
        if cursor + per_step > V:
            order, cursor = torch.randperm(V, generator=gen), 0
        idx = order[cursor : cursor + per_step].to(device)
        cursor += per_step
        pred = render(
            gaussians(), K[:, idx], c2w[:, idx], H, W, near=near, far=far, background=background, backend=backend
        )[0]
        gt = images[0, idx]
        loss = (1 - config.ssim_weight) * (pred - gt).abs().mean()
        if config.ssim_weight > 0:
            loss = loss + config.ssim_weight * (1 - _ssim(pred, gt))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        result = gaussians().detach()
    sync()
    return GSResult(result, losses, time.perf_counter() - start, init_used)


def parse_spec(spec: str) -> GSConfig:
    """``"3dgs:<steps>[:random|:depth]"`` → :class:`GSConfig` (e.g. ``3dgs:1000``, ``3dgs:500:depth``)."""
    parts = spec.split(":")
    if parts[0] != "3dgs" or len(parts) not in (2, 3):
        raise ILRMInputError(f"3DGS baseline spec must be '3dgs:<steps>' or '3dgs:<steps>:<init>', got {spec!r}")
    try:
        steps = int(parts[1])
    except ValueError:
        raise ILRMInputError(f"3DGS steps must be an integer, got {parts[1]!r} in {spec!r}") from None
    return GSConfig(steps=steps, init=parts[2] if len(parts) == 3 else "random")
