"""Evaluate one method on one benchmark: the run loop (per-scene records, then the merged tables).

The pieces it drives: the methods (:mod:`eval.methods`), the protocols and their scene sources
(:mod:`eval.protocols`), the metrics (:mod:`eval.metrics`), per-scene records, resume and tables
(:mod:`eval.records`), provenance (:mod:`eval.provenance`) and the process group (:mod:`ilrm.distributed`).

Protocol: every method sees the same scenes, images and normalised poses; renders are scored with
:func:`eval.metrics.compute_metrics` (PSNR on clipped renders, SSIM on unclipped ones, LPIPS-VGG or
"n/a" with the reason); per-image → per-scene mean → mean over scenes.

Robustness: each finished scene is appended (and fsync'ed) to ``<out>/ranks/rank<r>.jsonl``; a re-run
skips scenes already finished and the merge keeps one record per scene, so nothing is counted twice.
A scene whose data cannot be read or is incomplete (fewer frames than the protocol needs, a DL3DV
target list shorter than expected) is recorded as "failed" with the reason, excluded from the means
(listed in the summary) and tried again on the next run; protocol exclusions are "skipped".
Trust: every record carries the weights' sha256 and its data files' sha256 (or Hub etag); a re-run
into the same folder with other weights or other data is refused (``--overwrite`` starts again). An
index that is not the protocol's, or other view counts, label the run ``<name>[custom]``. A run that
evaluated nothing, or (strict: the default for full runs) has failed scenes, ends non-zero. Under ``torchrun`` scene ``i`` (protocol
order) goes to rank ``i % world_size``; after a barrier rank 0 merges every rank's file and writes the
tables. Timing: CUDA-synchronised wall time of the reconstruction (and refinement) per scene, after one
untimed warm-up scene on CUDA; peak memory is ``torch.cuda.max_memory_allocated`` over the
reconstruction and refinement.

Speed (``benchmarks/eval_speed.py`` measures it): scenes are decoded and resized in DataLoader worker
processes (:func:`iter_scenes`, one loading unit per :meth:`SceneSource.load_groups` group, in protocol
order) while the GPU works on the previous scene; on CUDA the metrics of a scene are computed batched
on the GPU (:func:`eval.metrics.compute_metrics_batched`: the reference definitions, equal within 1e-6)
and records are appended and fsync'ed by a background writer thread, in order.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import queue
import re
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ilrm.distributed import DistInfo, barrier, init_distributed, shard, shutdown
from ilrm.errors import ILRMInputError

from .methods import DTYPES, CopyNearest, Method, cuda_sync, resolve_method
from .metrics import LPIPSMetric, compute_metrics, compute_metrics_batched
from .protocols import (
    Benchmark,
    LoadedScene,
    SceneSource,
    check_protocol,
    default_eval_home,
    file_sha256,
    load_benchmark,
    open_scenes,
)
from .provenance import HashCache, digest_of, environment
from .records import (
    PSNR_CAP,
    RunResult,
    append_record,
    check_identity,
    finished_scenes,
    json_default,
    rank_file,
    write_results,
)

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
    save_renders: bool = False
    strict: bool | None = None
    #: DataLoader worker processes that decode and resize scenes ahead of the GPU (None: up to 8 on
    #: CUDA, 0 on the CPU; 0: load in the main process, one scene after another).
    num_workers: int | None = None
    #: Batched metrics where the renders are (:func:`eval.metrics.compute_metrics_batched`); None: on
    #: CUDA only (the CPU keeps the scikit-image reference).
    fast_metrics: bool | None = None
    #: The model's CUDA fast paths (a name in ``ilrm.models.layers.FAST_PATH_PRESETS``): "default"
    #: (fused q/k norm), "plain", "fp8", ... A non-default setting is part of the run's identity and label.
    fast_paths: str = "default"


def _identity(opts: RunOptions, bench: Benchmark, method: Method, dtype_name: str,
              index_sha256: str | None) -> dict[str, Any]:
    """The settings a re-run must share to resume into ``opts.out`` (:data:`eval.records.IDENTITY_KEYS`)."""
    return {
        "benchmark": bench.name,
        "protocol": bench.label,
        "method": method.spec,
        "refine_steps": opts.refine_steps,
        "dtype": dtype_name,
        "lpips": bool(opts.lpips),
        "index_sha256": index_sha256,
        "weights_sha256": method.weights_sha256,
        "data_kind": bench.kind,
        "index_file": str(opts.index_path) if opts.index_path else None,
        "fast_paths": opts.fast_paths,
    }


def scene_data_digests(source: SceneSource, scene_ids: list[str], cache: HashCache) -> dict[str, dict[str, Any]]:
    """{scene: {"data_sha256": ..., "data_files": {relative path: digest}}} for the files each scene reads
    (:meth:`SceneSource.files_for`) and its generator settings (:meth:`SceneSource.identity`)."""
    files = {s: source.files_for(s) for s in scene_ids}
    digests = cache.digests(p for fs in files.values() for p in fs)
    root = Path(source.data_root).resolve() if source.data_root is not None else None

    def rel(p: Path) -> str:
        try:
            return str(Path(p).resolve().relative_to(root)) if root is not None else str(p)
        except ValueError:
            return str(Path(p).resolve())

    out: dict[str, dict[str, Any]] = {}
    for s in scene_ids:
        named = {rel(p): digests[str(p)] for p in files[s]}
        out[s] = {"data_sha256": digest_of({"files": named, "identity": source.identity(s)}), "data_files": named}
    return out


def run_problems(summary: dict[str, Any]) -> list[str]:
    """Why a finished run should exit non-zero: nothing evaluated, or (strict runs) failed or pending scenes."""
    sc = summary["scenes"]
    problems = []
    if sc["evaluated"] == 0:
        problems.append(f"no scene was evaluated ({sc['requested']} requested; check --data-root / --index and "
                        "what `python -m eval fetch` recorded)")
    if summary.get("strict"):
        if sc["failed"]:
            problems.append(f"{len(sc['failed'])} scene(s) failed: " + ", ".join(f["scene"] for f in sc["failed"][:10])
                            + " (strict: the default for full protocol runs; --no-strict accepts them)")
        if sc["pending"]:
            problems.append(f"{len(sc['pending'])} scene(s) have no record (e.g. {sc['pending'][:3]})")
    return problems


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


# ---- loading ahead of the GPU --------------------------------------------------------------------


class _GroupDataset(torch.utils.data.Dataset):
    """Map-style dataset over a source's loading groups: item ``i`` = every scene of group ``i``."""

    def __init__(self, source: SceneSource, groups: list[list[str]], with_depth: bool) -> None:
        self.source, self.groups, self.with_depth = source, groups, with_depth

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> list[LoadedScene]:
        return list(self.source.load(self.groups[i], with_depth=self.with_depth))


def _as_is(item: Any) -> Any:
    return item


#: Shared memory under which worker processes are not used (their tensors travel through /dev/shm).
MIN_SHM_BYTES = 1 << 30


def default_num_workers(device: torch.device) -> int:
    """Worker processes for :func:`iter_scenes`: up to 8 on CUDA (leaving a core for the main loop), 0 on the CPU."""
    if device.type != "cuda":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _shm_free() -> int | None:
    try:
        return shutil.disk_usage("/dev/shm").free
    except OSError:
        return None


def iter_scenes(source: SceneSource, ids: Sequence[str], *, with_depth: bool = False,
                num_workers: int = 0, prefetch_groups: int = 2) -> Iterator[LoadedScene]:
    """The scenes of ``source.load(ids)``, in the same order, decoded and resized by ``num_workers``
    DataLoader worker processes (one :meth:`SceneSource.load_groups` group per item, ``prefetch_groups``
    groups ahead per worker). ``num_workers=0``, a source that is not ``worker_safe``, or too little
    shared memory (< :data:`MIN_SHM_BYTES` free in /dev/shm, which worker tensors pass through) load in
    the main process."""
    ids = list(ids)
    if num_workers > 0 and source.worker_safe:
        shm = _shm_free()
        if shm is not None and shm < MIN_SHM_BYTES:
            warnings.warn(f"/dev/shm has {shm / 2**20:.0f} MiB free: loading scenes in the main process", stacklevel=2)
            num_workers = 0
    if num_workers <= 0 or not source.worker_safe or not ids:
        yield from source.load(ids, with_depth=with_depth)
        return
    groups = source.load_groups(ids)
    loader = torch.utils.data.DataLoader(
        _GroupDataset(source, groups, with_depth), batch_size=None, shuffle=False,
        num_workers=min(num_workers, len(groups)), collate_fn=_as_is, prefetch_factor=prefetch_groups,
        persistent_workers=False,
    )
    for group in loader:
        yield from group


class RecordWriter:
    """Appends records (:func:`eval.records.append_record`, fsync'ed) in a background thread, in the
    order given, so that disk I/O overlaps the GPU. :meth:`close` waits for every record and re-raises
    the first write error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self.write_time_s = 0.0
        self._thread = threading.Thread(target=self._work, name="eval-record-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            if self._error is None:
                start = time.perf_counter()
                try:
                    append_record(self.path, record)
                except BaseException as error:  # re-raised by close()
                    self._error = error
                self.write_time_s += time.perf_counter() - start

    def append(self, record: dict[str, Any]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(record)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


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
    renders_dir: Path | None = None,
    metrics_fn: Callable[..., dict[str, np.ndarray]] = compute_metrics,
) -> dict[str, Any]:
    """Reconstruct, render and score one loaded scene; returns its JSON record (with per-view rows).

    metrics_fn: :func:`eval.metrics.compute_metrics` (reference) or
    :func:`eval.metrics.compute_metrics_batched` (same definitions, computed where the renders are).

    renders_dir: also save the renders losslessly at the evaluated size (``<scene>.npz``, float32
    (Vt, 3, H, W) exactly as scored, with the target frame numbers); the record names the file and
    its sha256.
    """
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
    start = time.perf_counter()
    metrics = metrics_fn(renders, gt, lpips_metric)
    metrics_time = time.perf_counter() - start  # ends with the copy of the numbers: synchronised
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
        "metrics_time_s": metrics_time,
        "peak_memory_mb": peak,
        "views": views,
        "expected_num_target": loaded.expected_num_target,
        **{k: v for k, v in times.items() if k.startswith("gs_")},
    }
    if renders_dir is not None:
        renders_dir.mkdir(parents=True, exist_ok=True)
        path = renders_dir / f"{_safe_name(loaded.scene_id)}.npz"
        frames_arr = np.array([-1 if f is None else f for f in frames], dtype=np.int64)
        np.savez_compressed(path, renders=renders.detach().float().cpu().numpy(), target_frames=frames_arr)
        record["renders"] = {"file": f"{renders_dir.name}/{path.name}", "sha256": file_sha256(path),
                             "format": "npz: renders float32 (Vt, 3, H, W) as scored, target_frames"}
    if images_dir is not None:
        nearest = CopyNearest.nearest(context, target)
        inputs = context.images[0, nearest]
        save_grid(images_dir / f"{_safe_name(loaded.scene_id)}.png", inputs, gt, renders)
    return record


def run(opts: RunOptions) -> RunResult | None:
    """Evaluate ``opts.model`` on ``opts.benchmark`` into ``opts.out``; rank 0 returns the result.

    Raises :class:`ILRMInputError` for bad arguments, missing data or a result folder of another run.
    """
    from ilrm.models.layers import FAST_PATH_PRESETS, set_fast_paths

    if opts.fast_paths not in FAST_PATH_PRESETS:
        raise ILRMInputError(f"--fast-paths must be one of {sorted(FAST_PATH_PRESETS)}, got {opts.fast_paths!r}")
    dist_info = init_distributed(opts.device or "auto", timeout_s=DIST_TIMEOUT_S)
    prev = set_fast_paths(**FAST_PATH_PRESETS[opts.fast_paths])
    try:
        return _run(opts, dist_info)
    finally:
        set_fast_paths(**prev)
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
    elif opts.fast_paths != "default":
        method.label = f"{method.label} [{opts.fast_paths}]"
    data_root, fetch_manifest = _data_root(opts, bench)
    # `fetch --index` / `fetch --limit` recorded which index and scenes the data holds: use them.
    index_path = opts.index_path
    only = None
    if fetch_manifest is not None:
        if index_path is None and fetch_manifest.get("index_file"):
            index_path = Path(fetch_manifest["index_file"])
        if fetch_manifest.get("limit") is not None and fetch_manifest.get("scenes") is not None:
            only = list(fetch_manifest["scenes"])
    violations = check_protocol(bench, index_path)
    bench = bench.as_custom(violations)
    home = Path(opts.eval_home) if opts.eval_home else default_eval_home()
    source = open_scenes(
        bench, data_root, limit=opts.limit, index_path=index_path,
        scale_before_recentre=method.scale_before_recentre, device=device, eval_home=home, scenes=only,
    )
    out = Path(opts.out)
    index_file = getattr(source, "index_path", None)
    index_sha = file_sha256(index_file) if index_file else None
    cache = HashCache(home / "file_hashes.json")
    if rank == 0:
        scene_data = scene_data_digests(source, source.scene_ids, cache)
    barrier(dist_info)  # rank 0 has hashed the data (the cache makes the other ranks' pass cheap)
    if rank != 0:
        scene_data = scene_data_digests(source, source.scene_ids, HashCache(home / "file_hashes.json"))
    identity = _identity(opts, bench, method, dtype_name, index_sha)
    check_identity(out, identity, opts.overwrite, rank, {s: d["data_sha256"] for s, d in scene_data.items()})
    barrier(dist_info)  # rank 0 has (re)written run_config.json / removed stale records

    finished = finished_scenes(out)
    todo = [s for s in shard(dist_info, source.scene_ids) if s not in finished]
    lpips_metric = LPIPSMetric(device) if opts.lpips else None
    images_dir = out / "images" if opts.save_images else None
    renders_dir = out / "renders" if opts.save_renders else None
    records_path = rank_file(out, rank)
    fast = (device.type == "cuda") if opts.fast_metrics is None else bool(opts.fast_metrics)
    metrics_fn = compute_metrics_batched if fast else compute_metrics
    workers = default_num_workers(device) if opts.num_workers is None else max(0, int(opts.num_workers))
    started = time.perf_counter()
    warmed = device.type != "cuda"
    bar = tqdm(total=len(todo), desc=f"{bench.label} | {method.label} [rank {rank}]",
               position=rank, disable=not opts.progress, leave=True)
    writer = RecordWriter(records_path)
    load_wait = 0.0
    scenes = iter_scenes(source, todo, with_depth=method.needs_depth, num_workers=workers)
    try:
        while True:
            waited = time.perf_counter()
            loaded = next(scenes, None)
            load_wait += time.perf_counter() - waited
            if loaded is None:
                break
            if not warmed and loaded.status == "ok":
                ex = loaded.example.to(device)
                method.warmup(ex.context, ex.target)
                warmed = True
            record = evaluate_scene(loaded, method, device, lpips_metric, images_dir=images_dir,
                                    renders_dir=renders_dir, metrics_fn=metrics_fn)
            record.update(rank=rank, finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                          weights_sha256=method.weights_sha256, **scene_data.get(loaded.scene_id, {}))
            writer.append(record)
            bar.update(1)
            if record["status"] == "ok":
                bar.set_postfix(psnr=f"{record['psnr']:.2f}")
    finally:
        writer.close()
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
    partial = opts.limit is not None or only is not None
    env = environment(device, dtype_name, dist_info.world_size)
    env["loop"] = {"num_workers": workers if source.worker_safe else 0, "batched_metrics": fast,
                   "load_wait_s": load_wait, "record_write_s": writer.write_time_s}
    # which LPIPS backbone scored (torchvision's VGG16 or the offline port) and its tensors' content hash
    env["lpips_backbone"] = lpips_metric.identity() if lpips_metric is not None else {"available": False,
                                                                                      "reason": lpips_reason}
    result = write_results(
        out, bench, method, source, fetch_manifest, env, lpips_reason, wall,
        protocol_check={"standard": not violations, "violations": violations,
                        "note": "a run that is not the published protocol is labelled "
                        f"'{bench.name}[custom]' and never listed beside the published rows"},
        data_identity={"index_sha256": index_sha, "index_file": str(index_file) if index_file else None},
    )
    strict = (not partial) if opts.strict is None else bool(opts.strict)
    result.summary["strict"] = strict
    result.summary["scenes"]["partial"] = partial
    result.summary["problems"] = run_problems(result.summary)
    result.files["summary"].write_text(json.dumps(result.summary, indent=2, default=json_default) + "\n")
    return result


__all__ = ["RecordWriter", "RunOptions", "RunResult", "default_num_workers", "evaluate_scene", "iter_scenes", "run",
           "run_problems", "save_grid", "scene_data_digests"]
