"""Rendering of :class:`~ilrm.gaussians.Gaussians` into posed cameras.

Two backends with the same conventions (gsplat 1.5.3, classic 3DGS):

* ``"gsplat"``: ``gsplat.rasterization`` (CUDA tensors only) — fast, used for training and evaluation;
* ``"torch"``: the pure-PyTorch reference in :mod:`ilrm.rendering.reference` — runs on CPU (tests,
  CPU inference) and on CUDA (parity checks);
* ``"cpu_fast"``: :mod:`ilrm.rendering.cpu_fast`, the reference's rules in a compiled C++ kernel
  (built on first use), CPU tensors only, no gradients — for videos and previews on a CPU.

``backend="auto"`` picks gsplat for CUDA tensors and the exact reference otherwise (``ilrm.video``
asks for ``"cpu_fast"`` on a CPU when it builds).

API::

    images = render(g, K, c2w, H, W)                      # (B, V, 3, H, W)
    out = render(g, K, c2w, H, W, return_depth=True)      # RenderOutput(images, depth, alpha)

:func:`render` returns a plain tensor unless depth or alpha is asked for.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import ILRMInputError
from ..gaussians import Gaussians
from .gsplat_backend import gsplat_available, rasterize_gsplat
from .reference import rasterize_reference

BACKENDS = ("auto", "gsplat", "torch", "cpu_fast")
WHITE = (1.0, 1.0, 1.0)

BackgroundLike = Tensor | Sequence[float] | float | None


class RenderOutput(NamedTuple):
    """Rendered views. images: (B, V, 3, H, W); depth: (B, V, 1, H, W) expected camera-space z
    (``Σ wᵢ zᵢ / alpha``, 0 where nothing is) or None; alpha: (B, V, 1, H, W) accumulated opacity."""

    images: Tensor
    depth: Tensor | None
    alpha: Tensor | None


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend ("gsplat" or "torch") for tensors on ``device``."""
    if backend not in BACKENDS:
        raise ILRMInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if device.type != "cuda":
            return "torch"
        if gsplat_available():
            return "gsplat"
        warnings.warn("gsplat is not importable; rendering CUDA tensors with the slower torch reference", stacklevel=3)
        return "torch"
    if backend == "gsplat" and device.type != "cuda":
        raise ILRMInputError(
            "backend='gsplat' needs CUDA tensors (gsplat has no CPU path); move the Gaussians and cameras "
            "to a GPU or use backend='torch'/'auto'"
        )
    if backend == "cpu_fast" and device.type != "cpu":
        raise ILRMInputError("backend='cpu_fast' needs CPU tensors; use backend='auto' on a GPU")
    if backend == "cpu_fast":
        from .cpu_fast import available, unavailable_reason

        if not available():
            raise ILRMInputError(f"backend='cpu_fast' is not available here ({unavailable_reason()}); use 'torch'")
    return backend


def _batched_camera(x: Tensor, name: str, size: int, B: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise ILRMInputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 3 and x.shape[-2:] == (size, size):
        x = x.unsqueeze(0).expand(B, -1, -1, -1)  # one camera set shared by all scenes
    if x.ndim != 4 or x.shape[-2:] != (size, size) or x.shape[0] not in (1, B):
        raise ILRMInputError(f"{name} must have shape (B={B}, V, {size}, {size}), got {tuple(x.shape)}")
    return x.expand(B, -1, -1, -1)


def _background(background: BackgroundLike, B: int, V: int, device: torch.device, dtype: torch.dtype) -> Tensor | None:
    if background is None:
        return None
    try:
        bg = torch.as_tensor(background, dtype=dtype, device=device)
        if bg.ndim == 0:
            bg = bg.expand(3)
        return torch.broadcast_to(bg, (B, V, 3)).contiguous()
    except (RuntimeError, TypeError, ValueError) as e:
        raise ILRMInputError(
            f"background must be a float, an (r, g, b) triple or a tensor broadcastable to (B={B}, V={V}, 3); "
            f"got {background!r}"
        ) from e


def _check_gaussians(g: Gaussians) -> None:
    B, N = g.means.shape[:2] if g.means.ndim == 3 else (None, None)
    expected = {
        "means": (B, N, 3),
        "quats": (B, N, 4),
        "scales": (B, N, 3),
        "opacities": (B, N),
    }
    for name, shape in expected.items():
        t = getattr(g, name)
        if B is None or tuple(t.shape) != shape:
            raise ILRMInputError(f"Gaussians.{name} must have shape {shape} (B, N from means), got {tuple(t.shape)}")
    if g.sh.ndim != 4 or tuple(g.sh.shape[:2]) != (B, N) or g.sh.shape[-1] != 3:
        raise ILRMInputError(f"Gaussians.sh must have shape (B={B}, N={N}, K, 3), got {tuple(g.sh.shape)}")


def render(
    gaussians: Gaussians,
    K: Tensor,
    c2w: Tensor,
    height: int,
    width: int,
    *,
    background: BackgroundLike = WHITE,
    near: float = 0.01,
    far: float = 1e10,
    sh_degree: int | None = None,
    return_depth: bool = False,
    return_alpha: bool = False,
    backend: str = "auto",
) -> Tensor | RenderOutput:
    """Render Gaussians into cameras.

    gaussians: B scenes of N Gaussians (activated parameters, see :class:`Gaussians`).
    K: (B, V, 3, 3) intrinsics in pixels ((V, 3, 3) is shared by all scenes).
    c2w: (B, V, 4, 4) camera-to-world, OpenCV axes (x right, y down, z forward).
    background: colour behind the Gaussians: a float, an (r, g, b) triple or a tensor broadcastable to
    (B, V, 3); default white; None renders premultiplied colour over black.
    near / far: Gaussians whose camera-space depth z is outside [near, far] are dropped.
    sh_degree: SH degree to evaluate (default: all the coefficients the Gaussians have).
    backend: "auto" (gsplat for CUDA tensors, torch otherwise), "gsplat", "torch" or "cpu_fast" (CPU,
    no gradients).

    Returns images (B, V, 3, H, W) (differentiable), or a :class:`RenderOutput` with depth
    (B, V, 1, H, W) / alpha (B, V, 1, H, W) when ``return_depth`` or ``return_alpha`` is set
    (``depth`` is None unless asked for).
    """
    _check_gaussians(gaussians)
    B = gaussians.batch_size
    K = _batched_camera(K, "K", 3, B)
    c2w = _batched_camera(c2w, "c2w", 4, B)
    if K.shape[1] != c2w.shape[1]:
        raise ILRMInputError(f"K has {K.shape[1]} views but c2w has {c2w.shape[1]}")
    V = K.shape[1]
    if int(height) != height or int(width) != width or height <= 0 or width <= 0:
        raise ILRMInputError(f"height and width must be positive integers, got {height}×{width}")
    height, width = int(height), int(width)
    if not 0 < near < far:
        raise ILRMInputError(f"need 0 < near < far, got near={near}, far={far}")
    coeffs = gaussians.sh.shape[2]
    max_degree = math.isqrt(coeffs) - 1
    if sh_degree is None:
        sh_degree = max_degree
    if not 0 <= sh_degree <= min(4, max_degree):
        raise ILRMInputError(
            f"sh_degree={sh_degree} is not usable: the Gaussians have {coeffs} SH coefficients per channel "
            f"(degree <= {max_degree}) and both backends support degree <= 4"
        )

    device = gaussians.means.device
    name = resolve_backend(backend, device)
    # float32 everywhere (gsplat requires it); the reference keeps float64 if given (gradient checks).
    dtype = torch.float64 if (name == "torch" and gaussians.means.dtype == torch.float64) else torch.float32
    g = gaussians.to(device=device, dtype=dtype)
    K = K.to(device=device, dtype=dtype)
    viewmats = torch.linalg.inv(c2w.to(device=device, dtype=dtype))
    bg = _background(background, B, V, device, dtype)
    if name == "cpu_fast":
        from .cpu_fast import rasterize_cpu_fast as fn
    else:
        fn = rasterize_gsplat if name == "gsplat" else rasterize_reference
    # Mixed precision from a surrounding autocast region would break both rasterizers' numerics.
    with torch.autocast(device_type=device.type, enabled=False):
        colors, depth, alpha = fn(
            g.means,
            g.quats,
            g.scales,
            g.opacities,
            g.sh,
            viewmats,
            K,
            width,
            height,
            background=bg,
            near=near,
            far=far,
            sh_degree=sh_degree,
            with_depth=return_depth,
        )
    chw = lambda x: x.permute(0, 1, 4, 2, 3)  # (B, V, H, W, C) -> (B, V, C, H, W)
    if not (return_depth or return_alpha):
        return chw(colors)
    return RenderOutput(chw(colors), chw(depth) if depth is not None else None, chw(alpha) if return_alpha else None)


__all__ = ["BACKENDS", "RenderOutput", "render", "resolve_backend"]
