"""A scene folder on disk → :class:`~ilrm.pipeline.Reconstructor` → files (what ``python -m ilrm
reconstruct DIR`` does).

The folder holds photos (in ``images/`` or at its top) and, optionally, a camera file in any format
:mod:`ilrm.camera_files` reads (``opencv_cameras.json``, nerfstudio ``transforms.json``, a COLMAP model
in ``sparse/0``). Without one, the cameras are estimated from the photos with pycolmap. Written to
``out_dir``: ``gaussians.ply`` (user frame, all SH), ``gaussians.splat``, ``fly_through.mp4``, renders
of held-out frames next to their photos with PSNR (``targets/``; only with a camera file), and
``summary.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .camera_files import find_scene
from .errors import ILRMInputError
from .photos import load_photos, photo_cameras
from .pipeline import Reconstructor, evenly_spaced

__all__ = ["reconstruct_scene_folder"]


def _save_png(image: Tensor, path: Path) -> None:
    """image: (3, H, W) in [0, 1]."""
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)


def reconstruct_scene_folder(
    rec: Reconstructor,
    folder: str | Path,
    out_dir: str | Path,
    *,
    context: list[int] | None = None,
    targets: list[int] | None = None,
    size: tuple[int, int] | None = None,
    video_frames: int = 90,
    max_side: int = 1024,
    max_views: int = 256,
    fov_deg: float | None = None,
) -> dict:
    """Reconstruct the scene in ``folder`` and write the files listed in the module docstring.

    context: indices (into the folder's photos, in camera-file order or sorted by name) of the input
    views; default: ``model.config.num_views`` evenly spaced. targets: held-out photos to render and
    score; default: up to 8 of the others when the folder has a camera file, none otherwise (estimated
    cameras of photos the model did not see would be a separate estimate). size: model input (H, W).
    Returns the summary (also written to ``summary.json``). Raises :class:`ILRMInputError`.
    """
    start = time.perf_counter()
    scene = find_scene(folder)
    n = len(scene.images)
    cfg = rec.config
    context = context if context is not None else evenly_spaced(n, min(cfg.num_views, n))
    for name, idx in (("context", context), ("target", targets or [])):
        if any(i < 0 or i >= n for i in idx):
            raise ILRMInputError(f"{name} frames {idx} out of range: the folder has {n} photos (0..{n - 1})")
    if len(context) < 1:
        raise ILRMInputError("give at least one context frame")
    if targets is None:
        targets = [i for i in range(n) if i not in context][:8] if scene.cameras is not None else []
    if targets and scene.cameras is None:
        raise ILRMInputError("target frames need a camera file in the folder: without one there are no poses to render")
    chosen = list(context) + [t for t in targets if t not in context]
    photos = load_photos([scene.images[i] for i in chosen], max_side=max_side, min_views=1, max_views=max_views)
    t_read = time.perf_counter()
    cams = scene.cameras
    posed = photo_cameras(photos[: len(context)] if cams is None else photos, cams, fov_deg=fov_deg)
    t_cams = time.perf_counter()

    k = len(context)
    prepared = rec.prepare(posed.images[:k], posed.intrinsics[:k], posed.c2w[:k], names=posed.names[:k], size=size)
    result = rec.predict(prepared)
    t_pred = time.perf_counter()
    out = Path(out_dir)
    files = rec.export(result, out, stem="gaussians", preview=False)
    t_export = time.perf_counter()

    H, W = prepared.views.height, prepared.views.width
    scores = []
    if targets:
        from .cameras import resize_and_center_crop

        (out / "targets").mkdir(parents=True, exist_ok=True)
        rows = [chosen.index(t) for t in targets]
        gt, K = zip(*(resize_and_center_crop(posed.images[r], posed.intrinsics[r].float(), (H, W)) for r in rows))
        renders = rec.render(result, torch.stack(K), posed.c2w[rows], H, W)
        for j, idx in enumerate(targets):
            mse = float((renders[j] - gt[j]).square().mean())
            stem = scene.images[idx].stem
            _save_png(renders[j], out / "targets" / f"{stem}_render.png")
            _save_png(gt[j], out / "targets" / f"{stem}_gt.png")
            scores.append({"frame": idx, "name": scene.images[idx].name, "psnr": -10 * float(np.log10(max(mse, 1e-10)))})
    t_targets = time.perf_counter()
    video = None
    if video_frames > 0:
        video = rec.fly_through(result, out / "fly_through.mp4", frames=video_frames)
    t_video = time.perf_counter()

    summary = {
        "scene": str(scene.root),
        "cameras": posed.source,
        "context": list(context),
        "context_names": posed.names[:k],
        "input_size": [H, W],
        "num_gaussians": files.num_ply,
        "num_splat": files.num_splat,
        "targets": scores,
        "mean_target_psnr": float(np.mean([s["psnr"] for s in scores])) if scores else None,
        "warnings": list(dict.fromkeys(posed.warnings + prepared.warnings)),
        "timings_s": {
            "read_photos": t_read - start,
            "cameras": t_cams - t_read,
            "forward": result.seconds,
            "prepare_and_forward": t_pred - t_cams,
            "export": t_export - t_pred,
            "target_renders": t_targets - t_export,
            "video": t_video - t_targets,
        },
        "files": [files.ply.name, files.splat.name] + ([video.name] if video else []) + (["targets/"] if scores else []),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
