"""The methods being evaluated: each turns context views into renders of the target views.

``--model`` of ``python -m eval run`` is parsed by :func:`resolve_method`:
- our checkpoint folder, a Hub repo id in our format, one of the authors' files (``*.ckpt`` / ``*.pt``)
  or ``preset:<name>`` (random weights, for tests): :func:`ilrm.checkpoints.load_model`; iLRM or the
  full-attention baseline, whichever the config says (``full-attention:<dir>`` insists on the latter);
  ``refine_steps`` > 0 adds post-prediction optimisation (:mod:`ilrm.refine`) → :class:`ModelMethod`;
- ``copy-nearest``: each target is the context image whose camera centre is nearest (sanity floor)
  → :class:`CopyNearest`;
- ``3dgs:<steps>[:random|:depth]``: per-scene 3DGS optimisation (:mod:`eval.gs_baseline`) → :class:`GSMethod`.

Every method sees the same scenes, images and normalised poses (``eval.protocols.open_scenes``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ilrm.cameras import Views
from ilrm.errors import ILRMInputError
from ilrm.gaussians import Gaussians
from ilrm.pipeline import Reconstructor

from .protocols import Benchmark
from .provenance import model_source_info

#: ``--dtype`` names → the autocast dtype of the model's forward (None = plain float32).
DTYPES: dict[str, torch.dtype | None] = {"bf16": torch.bfloat16, "fp32": None}


def cuda_sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so wall-clock timings measure the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _render_gaussians(gaussians: Gaussians, target: Views, near: float, far: float,
                      background: tuple[float, float, float] | None = None) -> Tensor:
    """(Vt, 3, H, W) renders of ``gaussians`` from the batch-1 ``target`` cameras."""
    from ilrm.rendering import render

    kwargs = {} if background is None else {"background": background}
    with torch.no_grad():
        return render(gaussians, target.intrinsics, target.c2w, target.height, target.width,
                      near=near, far=far, **kwargs)[0]


class Method:
    """A way to turn context views into renders of the target views.

    ``predict`` returns (prediction, timings) where timings has ``recon_time_s`` and
    ``refine_time_s``; ``render`` gives (Vt, 3, H, W) images for the target cameras.
    ``needs_depth``: the scene source must load oracle depth; ``scale_before_recentre``: the pose
    normalisation the method expects (None = the protocol's default).
    """

    label: str = ""
    spec: str = ""
    #: sha256 over the weights' tensors (:func:`eval.provenance.weights_sha256`); None: no weights.
    weights_sha256: str | None = None
    needs_depth: bool = False
    scale_before_recentre: bool | None = None

    def info(self) -> dict[str, Any]:
        """What the summary records about the method."""
        return {"label": self.label, "spec": self.spec}

    def predict(self, context: Views, depth: Tensor | None = None) -> tuple[Any, dict[str, float]]:
        """Reconstruct from the batch-1 context views (``depth``: oracle depth, when ``needs_depth``)."""
        raise NotImplementedError

    def render(self, prediction: Any, target: Views) -> Tensor:
        """(Vt, 3, H, W) images of ``prediction`` for the batch-1 target cameras."""
        raise NotImplementedError

    def warmup(self, context: Views, target: Views) -> None:
        """One untimed run (CUDA kernels, allocator, gsplat JIT) so the first scene's time is fair."""
        with torch.no_grad():
            pred, _ = self.predict(context)
            self.render(pred, target)


class CopyNearest(Method):
    """Each target view = the context image whose camera centre is nearest (ties: smallest angle)."""

    def __init__(self) -> None:
        self.label = "copy nearest context view"
        self.spec = "copy-nearest"

    def predict(self, context: Views, depth: Tensor | None = None) -> tuple[Views, dict[str, float]]:
        return context, {"recon_time_s": 0.0, "refine_time_s": 0.0}

    @staticmethod
    def nearest(context: Views, target: Views) -> list[int]:
        """Index of the nearest context view for each target view (batch 1)."""
        cc, tc = context.c2w[0, :, :3, 3].double(), target.c2w[0, :, :3, 3].double()
        cz, tz = context.c2w[0, :, :3, 2].double(), target.c2w[0, :, :3, 2].double()
        dist = torch.cdist(tc, cc)  # (Vt, Vc)
        angle = 1 - tz @ cz.T
        score = dist + 1e-6 * angle  # the angle only breaks ties
        return score.argmin(dim=1).tolist()

    def render(self, prediction: Views, target: Views) -> Tensor:
        idx = self.nearest(prediction, target)
        return prediction.images[0, idx].float()


class ModelMethod(Method):
    """A feed-forward model (iLRM or the full-attention baseline), optionally + K refinement steps."""

    def __init__(
        self,
        spec: str,
        model: torch.nn.Module,
        *,
        device: torch.device,
        dtype: torch.dtype | None,
        refine_steps: int = 0,
        revision: str | None = None,
    ) -> None:
        from .provenance import weights_sha256

        self.spec = spec
        self.weights_sha256 = weights_sha256(model)  # before .to(device): the tensors as loaded
        self.model = model.to(device).eval()
        # The one forward of the project (autocast, device); protocol views are already in the model frame.
        self.reconstructor = Reconstructor(self.model, device=device, dtype=dtype)
        self.device = device
        self.dtype = dtype
        self.refine_steps = refine_steps
        cfg = model.config
        self.near, self.far = cfg.near, cfg.far
        self.scale_before_recentre = bool(cfg.pose_scale_before_recentre)
        self._info = model_source_info(spec.removeprefix("full-attention:"), model, revision)
        name = Path(spec.removeprefix("full-attention:")).name or spec
        arch = "iLRM" if cfg.arch == "ilrm" else "full-attention"
        random = ", random weights" if spec.removeprefix("full-attention:").startswith("preset:") else ""
        self.label = f"{arch} ({name}{random})" + (f" + {refine_steps} refinement steps" if refine_steps else "")

    def info(self) -> dict[str, Any]:
        return {**super().info(), **self._info, "refine_steps": self.refine_steps, "weights_sha256": self.weights_sha256}

    def predict(self, context: Views, depth: Tensor | None = None) -> tuple[Gaussians, dict[str, float]]:
        cuda_sync(self.device)
        start = time.perf_counter()
        gaussians = self.reconstructor.forward(context, check_finite=False)
        cuda_sync(self.device)
        recon = time.perf_counter() - start
        refine_time = 0.0
        if self.refine_steps:
            from ilrm.refine import refine

            # Adam on the input views (MSE); the result is a plain prediction again.
            start = time.perf_counter()
            gaussians = refine(gaussians, context, self.refine_steps, near=self.near, far=self.far).detach()
            cuda_sync(self.device)
            refine_time = time.perf_counter() - start
        return gaussians, {"recon_time_s": recon, "refine_time_s": refine_time}

    def render(self, prediction: Gaussians, target: Views) -> Tensor:
        return _render_gaussians(prediction, target, self.near, self.far)


class GSMethod(Method):
    """Per-scene 3DGS optimisation on the context views (:mod:`eval.gs_baseline`)."""

    def __init__(self, spec: str, benchmark: Benchmark, device: torch.device) -> None:
        from .gs_baseline import parse_spec

        self.spec = spec
        self.config = parse_spec(spec)
        self.near, self.far, self.background = benchmark.near, benchmark.far, benchmark.background
        self.device = device
        self.needs_depth = self.config.init == "depth"
        init = "oracle depth" if self.config.init == "depth" else "random"
        self.label = f"3DGS per scene, {self.config.steps} steps ({init} init)"

    def info(self) -> dict[str, Any]:
        return {**super().info(), "gs_config": dataclasses.asdict(self.config)}

    def predict(self, context: Views, depth: Tensor | None = None) -> tuple[Gaussians, dict[str, float]]:
        from .gs_baseline import optimise_scene

        result = optimise_scene(
            context, self.config, depth=depth, near=self.near, far=self.far, background=self.background
        )
        return result.gaussians, {"recon_time_s": result.time_s, "refine_time_s": 0.0, "gs_init": result.init,
                                  "gs_final_loss": result.losses[-1] if result.losses else None}

    def render(self, prediction: Gaussians, target: Views) -> Tensor:
        return _render_gaussians(prediction, target, self.near, self.far, self.background)

    def warmup(self, context: Views, target: Views) -> None:
        from .gs_baseline import optimise_scene

        cfg = dataclasses.replace(self.config, steps=2)
        optimise_scene(context, cfg, near=self.near, far=self.far)


def resolve_method(
    spec: str,
    benchmark: Benchmark,
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    refine_steps: int = 0,
    revision: str | None = None,
) -> Method:
    """The :class:`Method` for a ``--model`` value (see the module docstring).

    Raises :class:`ILRMInputError` for negative or misplaced ``refine_steps``, an unloadable model,
    or a ``full-attention:`` spec that holds another architecture.
    """
    if refine_steps < 0:
        raise ILRMInputError(f"--refine-steps must be >= 0, got {refine_steps}")
    if spec == "copy-nearest" or spec.startswith("3dgs:"):
        if refine_steps:
            raise ILRMInputError("--refine-steps applies to feed-forward models only")
        return CopyNearest() if spec == "copy-nearest" else GSMethod(spec, benchmark, device)
    from ilrm.checkpoints import load_model

    source = spec.removeprefix("full-attention:")
    model = load_model(source, revision=revision)
    if spec.startswith("full-attention:") and model.config.arch != "full-attention":
        raise ILRMInputError(f"{source} holds an {model.config.arch!r} model, not the full-attention baseline")
    return ModelMethod(spec, model, device=device, dtype=dtype, refine_steps=refine_steps, revision=revision)


__all__ = [
    "DTYPES",
    "CopyNearest",
    "GSMethod",
    "Method",
    "ModelMethod",
    "cuda_sync",
    "resolve_method",
]
