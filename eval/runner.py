"""Evaluate one method on one benchmark: the run loop (per-scene records, then the merged tables).

The pieces it drives: the methods (:mod:`eval.methods`), the protocols and their scene sources
(:mod:`eval.protocols`), the metrics (:mod:`eval.metrics`), per-scene records, resume and tables
(:mod:`eval.records`), provenance (:mod:`eval.provenance`) and the process group (:mod:`ilrm.distributed`).

Protocol: every method sees the same scenes, images and normalised poses; renders are scored with
:func:`eval.metrics.compute_metrics` (PSNR on clipped renders, SSIM on unclipped ones, LPIPS-VGG or
"n/a" with the reason); per-image → per-scene mean → mean over scenes.

Robustness: each finished scene is appended (and fsync'ed) to ``<out>/ranks/rank<r>.jsonl``; a re-run
skips scenes already finished and the merge keeps one record per scene, so nothing is counted twice.
A scene whose data cannot be read is recorded as "failed" with the reason and excluded from the means
(listed in the summary); protocol exclusions are "skipped". Under ``torchrun`` scene ``i`` (protocol
order) goes to rank ``i % world_size``; after a barrier rank 0 merges every rank's file and writes the
tables. Timing: CUDA-synchronised wall time of the reconstruction (and refinement) per scene, after one
untimed warm-up scene on CUDA; peak memory is ``torch.cuda.max_memory_allocated`` over the
reconstruction and refinement.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ilrm.distributed import DistInfo, barrier, init_distributed, shard, shutdown
from ilrm.errors import ILRMInputError

from .methods import DTYPES, CopyNearest, Method, cuda_sync, resolve_method
from .metrics import LPIPSMetric, compute_metrics
from .protocols import Benchmark, LoadedScene, default_eval_home, load_benchmark, open_scenes
from .provenance import environment
from .records import PSNR_CAP, RunResult, append_record, check_identity, finished_scenes, rank_file, write_results

#: Ranks finish their shards at different times and the merge waits at a barrier: a long timeout.
DIST_TIMEOUT_S = 6 * 3600.0


@dataclass
class RunOptions:
    """Arguments of :func:`run` (the ``python -m eval run`` flags).

    device: "cuda", "cuda:1", "cpu" (default: CUDA when available; under torchrun each rank takes
    ``cuda:<LOCAL_RANK>``). dtype: "bf16" or "fp32" for the model's forward (default bf16 on CUDA,
    fp32 on CPU); rendering, refinement and metrics are always float32. image_size: (H, W) override
    (the protocol label then says so). index_path: replaces the protocol's index file (tests).
    lpips: False skips LPIPS (the tables say "n/a" with that reason). overwrite: discard results of a
    different run in ``out`` instead of refusing.
    """

    benchmark: str
    model: str
    out: Path
    limit: int | None = None
    refine_steps: int = 0
    save_images: bool = False
    device: str | None = None
    dtype: str | None = None
    data_root: Path | None = None
    image_size: tuple[int, int] | None = None
    index_path: Path | None = None
    eval_home: Path | None = None
    revision: str | None = None
    label: str | None = None
    lpips: bool = True
    progress: bool = True
    overwrite: bool = False


def _identity(opts: RunOptions, bench: Benchmark, method: Method, dtype_name: str) -> dict[str, Any]:
    """The settings a re-run must share to resume into ``opts.out`` (:data:`eval.records.IDENTITY_KEYS`)."""
    return {
        "benchmark": bench.name,
        "protocol": bench.label,
        "method": method.spec,
        "refine_steps": opts.refine_steps,
        "dtype": dtype_name,
        "lpips": bool(opts.lpips),
        "index_file": str(opts.index_path) if opts.index_path else None,
    }


def _data_root(opts: RunOptions, bench: Benchmark) -> tuple[Path | None, dict[str, Any] | None]:
    """The data folder (``--data-root`` or the one ``fetch`` recorded) and the fetch manifest that describes it."""
    from .fetch import read_manifest

    manifest = read_manifest(bench.name, opts.eval_home) if bench.kind != "procedural" else None
    if opts.data_root is not None:
        root = Path(opts.data_root).expanduser().resolve()
        if manifest and Path(manifest.get("data_root") or "").resolve() != root:
            manifest = None  # the manifest describes other data
        return root, manifest
    if bench.kind == "procedural":
        return None, None
    if manifest is None or not manifest.get("data_root"):
        raise ILRMInputError(
            f"no data for {bench.name}: run `python -m eval fetch {bench.name} ...` first or pass --data-root DIR"
        )
    return Path(manifest["data_root"]), manifest


def _to_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) float → (N, H, W, 3) uint8."""
    return (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def save_grid(path: Path, inputs: Tensor, targets: Tensor, renders: Tensor, max_height: int = 256) -> Path:
    """One row per target view: nearest input | target | render | error (|render − target| × 4).

    inputs, targets, renders: (Vt, 3, H, W) in [0, 1] (``inputs`` = the input view shown per row).
    Tiles taller than ``max_height`` are downscaled. Returns the PNG path.
    """
    from PIL import Image

    error = ((renders.float().clamp(0, 1) - targets.float()).abs() * 4).clamp(0, 1)
    cols = [_to_uint8(x) for x in (inputs, targets, renders, error)]
    rows = [np.concatenate([c[i] for c in cols], axis=1) for i in range(targets.shape[0])]
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    tile_h = targets.shape[-2]
    if tile_h > max_height:
        s = max_height / tile_h
        grid = grid.resize((max(1, round(grid.width * s)), max(1, round(grid.height * s))), Image.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def _safe_name(scene: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", scene)[:120]


def evaluate_scene(
    loaded: LoadedScene,
    method: Method,
    device: torch.device,
    lpips_metric: LPIPSMetric | None,
    *,
    images_dir: Path | None = None,
) -> dict[str, Any]:
    """Reconstruct, render and score one loaded scene; returns its JSON record (with per-view rows)."""
    base = {"scene": loaded.scene_id, "status": loaded.status}
    if loaded.status != "ok" or loaded.example is None:
        return {**base, "reason": loaded.reason}
    example = loaded.example.to(device)
    context, target = example.context, example.target
    depth = loaded.depth.to(device) if loaded.depth is not None and method.needs_depth else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    prediction, times = method.predict(context, depth)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    cuda_sync(device)
    start = time.perf_counter()
    renders = method.render(prediction, target)
    cuda_sync(device)
    render_time = time.perf_counter() - start
    gt = target.images[0].float()
    metrics = compute_metrics(renders, gt, lpips_metric)
    frames = loaded.target_frames or [None] * target.num_views
    views = [
        {
            "view": j,
            "frame": frames[j] if j < len(frames) else None,
            "psnr": float(metrics["psnr"][j]),
            "ssim": float(metrics["ssim"][j]),
            "lpips": float(metrics["lpips"][j]) if "lpips" in metrics else None,
        }
        for j in range(target.num_views)
    ]
    record = {
        **base,
        "num_context": context.num_views,
        "num_target": target.num_views,
        "context_frames": loaded.context_frames,
        "target_frames": loaded.target_frames,
        # An exact copy has PSNR = inf (only the copy-nearest floor does that, on targets that are
        # context frames): the mean caps such views at PSNR_CAP and counts them.
        "psnr": float(np.mean(np.minimum(metrics["psnr"], PSNR_CAP))),
        "psnr_inf_views": int(np.isinf(metrics["psnr"]).sum()),
        "ssim": float(np.mean(metrics["ssim"])),
        "lpips": float(np.mean(metrics["lpips"])) if "lpips" in metrics else None,
        "recon_time_s": times.get("recon_time_s"),
        "refine_time_s": times.get("refine_time_s"),
        "render_time_s": render_time,
        "peak_memory_mb": peak,
        "views": views,
        **{k: v for k, v in times.items() if k.startswith("gs_")},
    }
    if images_dir is not None:
        nearest = CopyNearest.nearest(context, target)
        inputs = context.images[0, nearest]
        save_grid(images_dir / f"{_safe_name(loaded.scene_id)}.png", inputs, gt, renders)
    return record


def run(opts: RunOptions) -> RunResult | None:
    """Evaluate ``opts.model`` on ``opts.benchmark`` into ``opts.out``; rank 0 returns the result.

    Raises :class:`ILRMInputError` for bad arguments, missing data or a result folder of another run.
    """
    dist_info = init_distributed(opts.device or "auto", timeout_s=DIST_TIMEOUT_S)
    try:
        return _run(opts, dist_info)
    finally:
        shutdown(dist_info)


def _run(opts: RunOptions, dist_info: DistInfo) -> RunResult | None:
    from tqdm.auto import tqdm

    device, rank = dist_info.device, dist_info.rank
    dtype_name = opts.dtype or ("bf16" if device.type == "cuda" else "fp32")
    if dtype_name not in DTYPES:
        raise ILRMInputError(f"--dtype must be one of {sorted(DTYPES)}, got {dtype_name!r}")
    bench = load_benchmark(opts.benchmark).with_image_size(opts.image_size)
    method = resolve_method(
        opts.model, bench, device=device, dtype=DTYPES[dtype_name], refine_steps=opts.refine_steps,
        revision=opts.revision,
    )
    if opts.label:
        method.label = opts.label
    data_root, fetch_manifest = _data_root(opts, bench)
    source = open_scenes(
        bench, data_root, limit=opts.limit, index_path=opts.index_path,
        scale_before_recentre=method.scale_before_recentre, device=device,
        eval_home=opts.eval_home or default_eval_home(),
    )
    out = Path(opts.out)
    check_identity(out, _identity(opts, bench, method, dtype_name), opts.overwrite, rank)
    barrier(dist_info)  # rank 0 has (re)written run_config.json / removed stale records

    finished = finished_scenes(out)
    todo = [s for s in shard(dist_info, source.scene_ids) if s not in finished]
    lpips_metric = LPIPSMetric(device) if opts.lpips else None
    images_dir = out / "images" if opts.save_images else None
    records_path = rank_file(out, rank)
    started = time.perf_counter()
    warmed = device.type != "cuda"
    bar = tqdm(total=len(todo), desc=f"{bench.label} | {method.label} [rank {rank}]",
               position=rank, disable=not opts.progress, leave=True)
    for loaded in source.load(todo, with_depth=method.needs_depth):
        if not warmed and loaded.status == "ok":
            ex = loaded.example.to(device)
            method.warmup(ex.context, ex.target)
            warmed = True
        record = evaluate_scene(loaded, method, device, lpips_metric, images_dir=images_dir)
        record.update(rank=rank, finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        append_record(records_path, record)
        bar.update(1)
        if record["status"] == "ok":
            bar.set_postfix(psnr=f"{record['psnr']:.2f}")
    bar.close()
    wall = time.perf_counter() - started
    barrier(dist_info)  # every rank's records are on disk before rank 0 merges them
    if rank != 0:
        return None
    lpips_reason = None
    if lpips_metric is None:
        lpips_reason = "LPIPS disabled (--no-lpips)"
    elif not lpips_metric.available:
        lpips_reason = lpips_metric.reason
    return write_results(
        out, bench, method, source, fetch_manifest,
        environment(device, dtype_name, dist_info.world_size), lpips_reason, wall,
    )


__all__ = ["RunOptions", "RunResult", "evaluate_scene", "run", "save_grid"]
