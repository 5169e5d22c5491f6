"""Per-image PSNR / SSIM / LPIPS with the reference definitions (pixelSplat / iLRM evaluation).

- PSNR: render and target clipped to [0, 1], MSE over all pixels and channels, ``-10 log10(MSE)``.
- SSIM: ``skimage.metrics.structural_similarity(win_size=11, gaussian_weights=True, data_range=1.0)``
  per image, channel axis given, on the **unclipped** render.
- LPIPS: ``lpips.LPIPS(net="vgg")`` v0.1 with ``normalize=True`` (inputs in [0, 1] mapped to
  [-1, 1]); the render is passed unclipped, as the reference does. The ImageNet VGG16 backbone comes
  from :mod:`ilrm.perceptual`; where it cannot be had, LPIPS is "n/a" with the reason, never a
  number from random weights.

Images are (N, 3, H, W) float, torch tensors or numpy arrays. Results are float64 numpy arrays (N,).
Averaging (per scene, then over scenes) is the caller's job.

Two implementations of the same definitions: the reference functions above (:func:`psnr`, :func:`ssim`:
scikit-image on the CPU, :meth:`LPIPSMetric.__call__`: numpy round trip) and the batched torch path
(:func:`psnr_torch`, :func:`ssim_torch`, :meth:`LPIPSMetric.batched`, :func:`compute_metrics_batched`),
which scores a whole scene where its renders already are (the GPU in a run) and copies back only the
per-image numbers. ``ssim_torch`` is scikit-image's Gaussian SSIM written as two separable 11-tap
convolutions in float64 without padding: its 5-pixel border crop removes exactly the pixels the
padding would touch, so it is the same quantity (measured within 1e-6 of the reference;
``tests/test_eval_speed.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from ilrm.errors import ILRMInputError
from ilrm.perceptual import BackboneUnavailable, backbone_identity, build_lpips_vgg

#: What a table shows in the LPIPS column when no backbone is available.
LPIPS_NA = "n/a"

ImageBatch = torch.Tensor | np.ndarray


def _to_numpy(images: ImageBatch, name: str) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().to("cpu", torch.float32).numpy()
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ILRMInputError(f"{name} must be (N, 3, H, W), got shape {tuple(images.shape)}")
    if not np.issubdtype(images.dtype, np.floating):
        raise ILRMInputError(f"{name} must be float images in [0, 1], got dtype {images.dtype}")
    return images


def _pair(render: ImageBatch, target: ImageBatch) -> tuple[np.ndarray, np.ndarray]:
    render_np, target_np = _to_numpy(render, "render"), _to_numpy(target, "target")
    if render_np.shape != target_np.shape:
        raise ILRMInputError(f"render {render_np.shape} and target {target_np.shape} differ in shape")
    return render_np, target_np


def psnr(render: ImageBatch, target: ImageBatch) -> np.ndarray:
    """PSNR in dB per image: (N, 3, H, W) x2 -> (N,) float64.

    Both images are clipped to [0, 1] (the target normally is already). The MSE is accumulated in
    float64; identical images give ``inf``.
    """
    render_np, target_np = _pair(render, target)
    diff = np.clip(render_np.astype(np.float64), 0.0, 1.0) - np.clip(target_np.astype(np.float64), 0.0, 1.0)
    mse = np.mean(diff**2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(mse)


def ssim(render: ImageBatch, target: ImageBatch) -> np.ndarray:
    """SSIM per image: (N, 3, H, W) x2 -> (N,) float64, on the unclipped render.

    Computed on float32 (C, H, W) arrays with ``channel_axis=0``: scikit-image computes in the
    input's float type, and the reference passes float32 torch tensors, so float32 reproduces the
    reference numbers (float64 differs by ~1e-7). The per-channel SSIMs are averaged, so the layout
    (CHW with axis 0 or HWC with axis -1) does not change the value.
    """
    render_np, target_np = _pair(render, target)
    values = [
        structural_similarity(
            t.astype(np.float32),
            r.astype(np.float32),
            win_size=11,
            gaussian_weights=True,
            data_range=1.0,
            channel_axis=0,
        )
        for r, t in zip(render_np, target_np)
    ]
    return np.asarray(values, dtype=np.float64)


@contextmanager
def full_fp32_convolutions() -> Iterator[None]:
    """Disable TF32 for cuDNN convolutions inside the block (restored afterwards).

    cuDNN convolutions run in TF32 by default on Ampere+ GPUs; on an H100 that moved LPIPS-VGG by up
    to 9e-5 (16 pairs at 256²) against float32 on the CPU, while IEEE float32 stayed within 1e-7.
    """
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9 precision API
        previous = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = previous
    else:
        previous_flag = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = previous_flag


class LPIPSMetric:
    """LPIPS-VGG (v0.1) per image, or "n/a" with a reason when no ImageNet backbone is available.

    ``available`` tells which; ``reason`` says why not. Calling an unavailable metric returns None.
    Convolutions run in IEEE float32 (no TF32) so GPU values match the CPU / JAX reference.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        cache_dir: str | Path | None = None,
        allow_fetch: bool | None = None,
        batch_size: int = 16,
    ) -> None:
        """Build the network now (a few seconds); ``allow_fetch=None`` follows ``ILRM_LPIPS_FETCH``."""
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.reason: str | None = None
        self._model: torch.nn.Module | None = None
        try:
            self._model = build_lpips_vgg(self.device, cache_dir, allow_fetch)
        except ImportError as error:
            self.reason = f"the lpips package is not installed ({error})"
        except BackboneUnavailable as error:
            self.reason = str(error)

    @property
    def available(self) -> bool:
        """True when real ImageNet VGG16 weights are loaded."""
        return self._model is not None

    def identity(self) -> dict:
        """Which LPIPS network computes the numbers, for the run's summary / provenance (JSON-ready):

        ``{"available": True, "backbone": "torchvision-vgg16" | "offline-port", "source": where the
        weights came from, "content_sha256": SHA-256 over the backbone's tensors (for the port it equals
        ``ilrm.perceptual.BACKBONE_CONTENT_SHA256``, checked on load), "pinned_port_content_sha256",
        "lpips": package version, "heads": "lpips v0.1 vgg.pth", "heads_sha256", "torchvision_check":
        the stored one-time comparison (``ilrm.perceptual.compare_with_torchvision``) or None}``;
        ``{"available": False, "reason": ...}`` when LPIPS is n/a.
        """
        if self._model is None:
            return {"available": False, "reason": self.reason}
        return {"available": True, **(backbone_identity(self._model) or {})}

    @torch.no_grad()
    def batched(self, render: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
        """LPIPS per image on torch tensors where they are: (N, 3, H, W) x2 -> (N,) float64 tensor on
        the metric's device (no numpy round trip), or None if unavailable. Same network, same float32
        inputs, same batches and IEEE float32 convolutions as :meth:`__call__`."""
        _check_torch_pair(render, target)
        if self._model is None:
            return None
        render = render.detach().to(self.device, torch.float32)
        target = target.detach().to(self.device, torch.float32)
        values = []
        with full_fp32_convolutions():
            for start in range(0, render.shape[0], self.batch_size):
                stop = start + self.batch_size
                r = render[start:stop].contiguous()
                t = target[start:stop].contiguous()
                values.append(self._model(t, r, normalize=True).reshape(-1).double())
        return torch.cat(values) if values else torch.zeros(0, dtype=torch.float64, device=self.device)

    @torch.no_grad()
    def __call__(self, render: ImageBatch, target: ImageBatch) -> np.ndarray | None:
        """LPIPS per image: (N, 3, H, W) x2 in [0, 1] -> (N,) float64, or None if unavailable."""
        render_np, target_np = _pair(render, target)
        if self._model is None:
            return None
        values = []
        with full_fp32_convolutions():
            for start in range(0, len(render_np), self.batch_size):
                stop = start + self.batch_size
                r = torch.from_numpy(np.ascontiguousarray(render_np[start:stop], dtype=np.float32)).to(self.device)
                t = torch.from_numpy(np.ascontiguousarray(target_np[start:stop], dtype=np.float32)).to(self.device)
                values.append(self._model(t, r, normalize=True).reshape(-1).double().cpu().numpy())
        return np.concatenate(values) if values else np.zeros(0, dtype=np.float64)


# ---- batched torch path (same definitions; used by the runner on the GPU) ----------------------

#: scikit-image's defaults for ``gaussian_weights=True``: sigma 1.5, truncate 3.5 -> an 11-tap window.
SSIM_SIGMA, SSIM_WIN, SSIM_K1, SSIM_K2 = 1.5, 11, 0.01, 0.03


def _check_torch_pair(render: torch.Tensor, target: torch.Tensor) -> None:
    for name, x in (("render", render), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise ILRMInputError(f"{name} must be a torch tensor for the batched metrics, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ILRMInputError(f"{name} must be (N, 3, H, W), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ILRMInputError(f"{name} must be float images in [0, 1], got dtype {x.dtype}")
    if render.shape != target.shape:
        raise ILRMInputError(f"render {tuple(render.shape)} and target {tuple(target.shape)} differ in shape")


def _gaussian_taps(device: torch.device) -> torch.Tensor:
    """scipy.ndimage's 1-D Gaussian (sigma 1.5, radius int(3.5 * 1.5 + 0.5) = 5), normalised, float64."""
    radius = (SSIM_WIN - 1) // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    w = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return w / w.sum()


@torch.no_grad()
def psnr_torch(render: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:func:`psnr` on tensors where they are: (N,) float64 tensor (identical images give ``inf``)."""
    _check_torch_pair(render, target)
    diff = render.detach().double().clamp(0, 1) - target.detach().double().clamp(0, 1)
    return -10.0 * torch.log10(diff.square().mean(dim=(1, 2, 3)))


@torch.no_grad()
def ssim_torch(render: torch.Tensor, target: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """:func:`ssim` on tensors where they are (unclipped render): (N,) float64 tensor.

    ``structural_similarity(win_size=11, gaussian_weights=True, sigma=1.5, data_range=1,
    use_sample_covariance=True)`` per channel, cropped by 5 pixels, averaged over pixels then channels.
    The Gaussian filter is applied as two valid 1-D convolutions (float64); ``chunk`` images at a time
    bound the memory (5 maps of (chunk·3, H, W) float64).
    """
    _check_torch_pair(render, target)
    import torch.nn.functional as F

    n, c, h, w = render.shape
    if min(h, w) < SSIM_WIN:
        raise ILRMInputError(f"SSIM needs images of at least {SSIM_WIN}x{SSIM_WIN}, got {h}x{w}")
    taps = _gaussian_taps(render.device)
    wy = taps.view(1, 1, SSIM_WIN, 1).repeat(5, 1, 1, 1)
    wx = taps.view(1, 1, 1, SSIM_WIN).repeat(5, 1, 1, 1)
    cov_norm = SSIM_WIN**2 / (SSIM_WIN**2 - 1.0)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    out = []
    for start in range(0, n, chunk):
        x = target[start : start + chunk].detach().double().reshape(-1, 1, h, w)  # im1 = target, as the reference
        y = render[start : start + chunk].detach().double().reshape(-1, 1, h, w)
        stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B·3, 5, H, W)
        filt = F.conv2d(F.conv2d(stack, wy, groups=5), wx, groups=5)  # valid: the cropped interior
        ux, uy, uxx, uyy, uxy = filt.unbind(1)
        vx = cov_norm * (uxx - ux * ux)
        vy = cov_norm * (uyy - uy * uy)
        vxy = cov_norm * (uxy - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(s.mean(dim=(1, 2)).view(-1, c).mean(dim=1))
    return torch.cat(out)


def compute_metrics_batched(
    render: torch.Tensor, target: torch.Tensor, lpips_metric: LPIPSMetric | None = None
) -> dict[str, np.ndarray]:
    """:func:`compute_metrics` computed where the tensors are (one scene's views at once, on the GPU in a
    run); one copy of the per-image numbers back. Same keys, float64 numpy arrays (N,)."""
    _check_torch_pair(render, target)
    values = {"psnr": psnr_torch(render, target), "ssim": ssim_torch(render, target)}
    if lpips_metric is not None:
        value = lpips_metric.batched(render, target)
        if value is not None:
            values["lpips"] = value.to(render.device)
    keys = list(values)
    stacked = torch.stack([values[k] for k in keys]).cpu().numpy()
    return {k: stacked[i].astype(np.float64) for i, k in enumerate(keys)}


def compute_metrics(
    render: ImageBatch, target: ImageBatch, lpips_metric: LPIPSMetric | None = None
) -> dict[str, np.ndarray]:
    """Per-image metrics: ``{"psnr": (N,), "ssim": (N,)}`` plus ``"lpips": (N,)`` when
    ``lpips_metric`` is given and available (otherwise the key is absent: report ``LPIPS_NA`` and
    ``lpips_metric.reason``)."""
    metrics = {"psnr": psnr(render, target), "ssim": ssim(render, target)}
    if lpips_metric is not None:
        value = lpips_metric(render, target)
        if value is not None:
            metrics["lpips"] = value
    return metrics
