"""Posed images in, Gaussians (in the cameras' own world frame) and renders out.

The pre-processing matches training: images resized/cropped to the model's resolution with
intrinsics updated, poses normalised exactly as the data loaders do; the predicted Gaussians are
then mapped back to the input frame so exported files line up with the user's cameras.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .cameras import Views, normalize_poses, resize_and_center_crop
from .config import ILRMConfig
from .errors import ILRMInputError
from .gaussians import Gaussians


def model_input_size(config: ILRMConfig, in_hw: tuple[int, int], keep_aspect: bool = True) -> tuple[int, int]:
    """(H, W) to feed the model: the training resolution, or with ``keep_aspect`` the training
    height (short side) and the long side following the photo's aspect, rounded to the size multiple."""
    m = config.size_multiple
    if not keep_aspect:
        return config.image_height, config.image_width
    h, w = in_hw
    short = min(config.image_height, config.image_width)
    s = short / min(h, w)
    return max(m, round(h * s / m) * m), max(m, round(w * s / m) * m)


def prepare_views(
    images: Tensor, K: Tensor, c2w: Tensor, config: ILRMConfig, size: tuple[int, int] | None = None
) -> tuple[Views, Tensor]:
    """Model input from raw posed images.

    images: (V, 3, H, W) float in [0, 1]; K: (V, 3, 3) pixels; c2w: (V, 4, 4) OpenCV, any world frame.
    Returns (views with batch 1 and normalised poses, transform (4, 4) with normalised = transform @ world).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ILRMInputError(f"images must be (V, 3, H, W), got {tuple(images.shape)}")
    if not torch.isfinite(c2w).all() or not torch.isfinite(K).all():
        raise ILRMInputError("camera poses or intrinsics contain NaN/inf: check the camera file")
    size = size or model_input_size(config, (images.shape[-2], images.shape[-1]))
    ims, K2 = resize_and_center_crop(images.float(), K.float(), size)
    ctx, _, T = normalize_poses(c2w.double(), scale_before_recentre=config.pose_scale_before_recentre)
    return Views(ims[None], K2[None], ctx.float()[None]), T.float()


def to_model_frame(c2w: Tensor, transform: Tensor) -> Tensor:
    """Apply a normalisation transform (from :func:`prepare_views`) to more c2w poses (…, 4, 4)."""
    out = transform.to(c2w) @ c2w
    R = out[..., :3, :3]
    out[..., :3, :3] = R / torch.linalg.det(R).abs().pow(1 / 3)[..., None, None]  # keep rotations unit
    return out


@dataclass
class Reconstruction:
    """Result of :func:`reconstruct`: Gaussians in the model frame and in the input (world) frame."""

    gaussians: Gaussians
    world_gaussians: Gaussians
    views: Views
    transform: Tensor
    timings: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def reconstruct(model: torch.nn.Module, views: Views, transform: Tensor, *, dtype: torch.dtype | None = None) -> Reconstruction:
    """Run the model on prepared views (batch 1) and map the Gaussians back to the world frame."""
    device = next(model.parameters()).device
    views = views.to(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else None
    t0 = time.perf_counter()
    ctx = torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)
    with ctx:
        g = model(views)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    world = g.transform(torch.linalg.inv(transform.double()).float().to(device))
    return Reconstruction(g, world, views, transform, {"reconstruct_s": t1 - t0})


def evenly_spaced(n: int, k: int) -> list[int]:
    """k indices spread over range(n), first and last included."""
    if k >= n:
        return list(range(n))
    return [round(i * (n - 1) / (k - 1)) for i in range(k)] if k > 1 else [n // 2]


def reconstruct_scene_dir(
    model: torch.nn.Module,
    scene_dir: str | Path,
    out_dir: str | Path,
    *,
    context: list[int] | None = None,
    targets: list[int] | None = None,
    size: tuple[int, int] | None = None,
    video_frames: int = 90,
    render_fn=None,
) -> dict:
    """Reconstruct an ``opencv_cameras.json`` scene folder and write results to ``out_dir``:
    ``gaussians.ply`` (world frame, all SH), ``gaussians.splat``, ``flythrough.mp4``, target renders
    ``targets/<frame>_{render,gt}.png`` with PSNR, and ``summary.json``."""
    from PIL import Image

    from .data.dl3dv import load_scene_views, read_opencv_cameras
    from .gaussian_files import save_ply, save_splat
    from .rendering import render
    from .video import render_video

    render_fn = render_fn or render
    cfg: ILRMConfig = model.config
    scene = read_opencv_cameras(scene_dir)
    n = len(scene)
    context = context if context is not None else evenly_spaced(n, min(cfg.num_views, n))
    if len(context) < 1 or max(context) >= n or min(context) < 0:
        raise ILRMInputError(f"context frames {context} out of range: the scene has {n} frames (0..{n - 1})")
    if targets is None:
        targets = [i for i in range(n) if i not in context][:8]
    f0 = scene.frames[context[0]]
    size = size or model_input_size(cfg, (f0.h, f0.w))
    ims, K, c2w = load_scene_views(scene, context, (f0.h, f0.w), resize="stretch")
    views, T = prepare_views(ims, K, c2w, cfg, size)
    rec = reconstruct(model, views, T)
    out = Path(out_dir)
    (out / "targets").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_ply = save_ply(out / "gaussians.ply", rec.world_gaussians.to("cpu"))
    save_splat(out / "gaussians.splat", rec.world_gaussians.to("cpu"))
    t1 = time.perf_counter()
    g = rec.gaussians
    H, W = size
    results = []
    if targets:
        t_ims, t_K, t_c2w = load_scene_views(scene, targets, (f0.h, f0.w), resize="stretch")
        t_ims, t_K = resize_and_center_crop(t_ims.float(), t_K.float(), size)
        t_pose = to_model_frame(t_c2w.double(), T.double()).float()
        dev = g.means.device
        for j, idx in enumerate(targets):
            img = render_fn(g, t_K[j][None, None].to(dev), t_pose[j][None, None].to(dev), H, W, near=cfg.near, far=cfg.far)[0, 0]
            img = img.clamp(0, 1).cpu()
            mse = float((img - t_ims[j]).square().mean())
            psnr = -10 * np.log10(max(mse, 1e-10))
            name = Path(scene.frames[idx].path).stem
            Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(out / "targets" / f"{name}_render.png")
            Image.fromarray((t_ims[j].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(out / "targets" / f"{name}_gt.png")
            results.append({"frame": idx, "name": name, "psnr": psnr})
    t2 = time.perf_counter()
    path = fly_path(views.c2w[0].double(), video_frames).float()
    render_video(g, views.intrinsics[0, 0], path, H, W, out / "flythrough.mp4", render_fn=render_fn, near=cfg.near, far=cfg.far)
    t3 = time.perf_counter()
    summary = {
        "scene": scene.scene_name,
        "context": context,
        "input_size": [H, W],
        "num_gaussians": n_ply,
        "targets": results,
        "mean_target_psnr": float(np.mean([r["psnr"] for r in results])) if results else None,
        "timings_s": {**rec.timings, "export_s": t1 - t0, "target_renders_s": t2 - t1, "video_s": t3 - t2},
        "files": ["gaussians.ply", "gaussians.splat", "flythrough.mp4", "targets/"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def fly_path(c2w: Tensor, frames: int) -> Tensor:
    """Camera path for videos: through the input cameras with a gentle wobble (single view: an orbit)."""
    from .camera_paths import fly_through, orbit_path

    return fly_through(c2w, frames) if c2w.shape[0] > 1 else orbit_path(c2w, frames)
