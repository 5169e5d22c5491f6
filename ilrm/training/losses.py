"""The training objective: render the predicted Gaussians into supervision views and compare.

loss = MSE(render, image) + lpips_weight · LPIPS-VGG(render, image)

Renders use a white background and the near/far planes of the model config (as the authors'
renderer). PSNR is reported on renders clipped to [0, 1], per image, then averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..cameras import Views
from ..config import ILRMConfig
from ..gaussians import Gaussians
from ..rendering import WHITE, render


@dataclass
class LossOutput:
    """loss: scalar to back-propagate; mse, psnr, lpips: detached scalars for logging (lpips is 0 when off)."""

    loss: Tensor
    mse: Tensor
    psnr: Tensor
    lpips: Tensor


def concat_views(a: Views, b: Views) -> Views:
    """Views of ``a`` then views of ``b`` (same batch and image size) along dim 1."""
    return Views(
        torch.cat([a.images, b.images], 1), torch.cat([a.intrinsics, b.intrinsics], 1), torch.cat([a.c2w, b.c2w], 1)
    )


def psnr_per_image(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR (dB) of (..., 3, H, W) images with ``pred`` clipped to [0, 1]; returns (...,) (no grad)."""
    with torch.no_grad():
        mse = (pred.detach().float().clamp(0, 1) - target.float()).square().flatten(-3).mean(-1)
        return -10.0 * torch.log10(mse.clamp_min(1e-10))


def build_lpips_loss(device: torch.device | str) -> nn.Module:
    """The frozen LPIPS-VGG network (v0.1) from :mod:`ilrm.perceptual`, on ``device``.

    Raises RuntimeError with what to do when the ``lpips`` package or the offline VGG16 backbone is
    missing.
    """
    from .. import perceptual  # imported here: it pulls in the lpips package, which only this loss needs

    try:
        net = perceptual.build_lpips_vgg(device, allow_bf16=True)
    except Exception as e:  # missing lpips package, no backbone weights offline, ...
        raise RuntimeError(
            f"could not build the LPIPS-VGG loss ({type(e).__name__}: {e}); prepare the backbone cache "
            "(python -m ilrm.perceptual) or train with --lpips-weight 0"
        ) from e
    net.eval().requires_grad_(False)
    return net


def render_loss(
    gaussians: Gaussians,
    views: Views,
    model_config: ILRMConfig,
    *,
    lpips_net: nn.Module | None = None,
    lpips_weight: float = 0.0,
) -> LossOutput:
    """Render ``gaussians`` into ``views`` (white background) and compare with ``views.images``.

    gaussians: B scenes; views: images (B, V, 3, H, W) in [0, 1], intrinsics (B, V, 3, 3) pixels,
    c2w (B, V, 4, 4). The MSE is the mean over all pixels of all views; LPIPS the mean over views.
    """
    H, W = views.height, views.width
    pred = render(
        gaussians, views.intrinsics, views.c2w, H, W, background=WHITE, near=model_config.near, far=model_config.far
    )
    target = views.images.to(pred.dtype)
    mse = (pred - target).square().mean()
    loss = mse
    lp = torch.zeros((), device=pred.device)
    if lpips_weight > 0:
        if lpips_net is None:
            raise ValueError("lpips_weight > 0 needs lpips_net (see build_lpips_loss)")
        lp = lpips_net(pred.flatten(0, 1), target.flatten(0, 1), normalize=True).mean()
        loss = loss + lpips_weight * lp
    return LossOutput(loss, mse.detach(), psnr_per_image(pred, target).mean(), lp.detach())
