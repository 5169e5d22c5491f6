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
