"""gsplat backend: ``gsplat.rasterization`` (1.5.x) in classic 3DGS mode, CUDA only."""

from __future__ import annotations

import math

from torch import Tensor


def gsplat_available() -> bool:
    """Whether ``gsplat`` can be imported (it still needs CUDA tensors to run)."""
    try:
        import gsplat  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True


def rasterize_gsplat(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    sh: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    background: Tensor | None = None,
    near: float = 0.01,
    far: float = 1e10,
    sh_degree: int | None = None,
    with_depth: bool = False,
    eps2d: float = 0.3,
    packed: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Render with gsplat; same arguments and outputs as :func:`ilrm.rendering.reference.rasterize_reference`.

    means: (B, N, 3); quats: (B, N, 4) wxyz; scales: (B, N, 3); opacities: (B, N);
    sh: (B, N, K, 3); viewmats: (B, V, 4, 4) world-to-camera; Ks: (B, V, 3, 3) pixels;
    background: (B, V, 3) or None. All float32 CUDA tensors.
    Returns colours (B, V, H, W, 3), expected depth (B, V, H, W, 1) or None, alpha (B, V, H, W, 1).
    ``packed`` (gsplat's default) keeps only visible (camera, Gaussian) pairs, which bounds memory
    for many views × many Gaussians.
    """
    from gsplat import rasterization

    if sh_degree is None:
        sh_degree = math.isqrt(sh.shape[-2]) - 1
    colors, alphas, _ = rasterization(
        means.contiguous(),
        quats.contiguous(),
        scales.contiguous(),
        opacities.contiguous(),
        sh.contiguous(),
        viewmats.contiguous(),
        Ks.contiguous(),
        width,
        height,
        near_plane=near,
        far_plane=far,
        eps2d=eps2d,
        sh_degree=sh_degree,
        packed=packed,
        render_mode="RGB+ED" if with_depth else "RGB",
        rasterize_mode="classic",
    )
    depth = colors[..., 3:4] if with_depth else None
    rgb = colors[..., :3]
    if background is not None:
        # Composited here rather than through gsplat's ``backgrounds``: 1.5.3 asserts a background
        # shape of (channels,) in packed mode, i.e. refuses per-camera backgrounds. The result is
        # the same: gsplat adds T_final · background, and T_final = 1 − alpha.
        rgb = rgb + (1.0 - alphas) * background[:, :, None, None, :]
    return rgb, depth, alphas
