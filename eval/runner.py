"""Evaluate one method on one benchmark: per-view / per-scene tables, a summary, optional image grids.

Methods (``--model`` of ``python -m eval run``, parsed by :func:`resolve_method`):
- our checkpoint folder, a Hub repo id in our format, one of the authors' files (``*.ckpt`` / ``*.pt``)
  or ``preset:<name>`` (random weights, for tests): :func:`ilrm.checkpoints.load_model`; iLRM or the
  full-attention baseline, whichever the config says (``full-attention:<dir>`` insists on the latter);
  ``refine_steps`` > 0 adds post-prediction optimisation (:mod:`ilrm.refine`);
- ``copy-nearest``: each target is the context image whose camera centre is nearest (sanity floor);
- ``3dgs:<steps>[:random|:depth]``: per-scene 3DGS optimisation (:mod:`eval.gs_baseline`).

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

import dataclasses
import datetime as _dt
import json
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ilrm.cameras import Views
from ilrm.errors import ILRMInputError
from ilrm.gaussians import Gaussians

from .benchmarks import Benchmark, LoadedScene, SceneSource, default_eval_home, load_benchmark, open_scenes
from .metrics import LPIPS_NA, LPIPSMetric, compute_metrics

REPO_ROOT = Path(__file__).resolve().parents[1]
DTYPES = {"bf16": torch.bfloat16, "fp32": None}
#: Per-image PSNR of exact copies (+inf) counts as this in means (see evaluate_scene).
PSNR_CAP = 100.0
#: Settings that must match for a re-run to resume into an existing result folder.
IDENTITY_KEYS = ("benchmark", "protocol", "method", "refine_steps", "dtype", "lpips", "index_file")


# ---- methods -----------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Method:
    """A way to turn context views into renders of the target views.

    ``predict`` returns (prediction, timings) where timings has ``recon_time_s`` and
    ``refine_time_s``; ``render`` gives (Vt, 3, H, W) images for the target cameras.
    """

    label: str = ""
    spec: str = ""
    needs_depth: bool = False
    scale_before_recentre: bool | None = None

    def info(self) -> dict[str, Any]:
        """What the summary records about the method."""
        return {"label": self.label, "spec": self.spec}

    def predict(self, context: Views, depth: Tensor | None = None) -> tuple[Any, dict[str, float]]:
        raise NotImplementedError

    def render(self, prediction: Any, target: Views) -> Tensor:
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


def _refine(gaussians: Gaussians, context: Views, steps: int, near: float, far: float) -> Gaussians:
    """Post-prediction optimisation (:func:`ilrm.refine.refine`: Adam on the input views, MSE)."""
    from ilrm.refine import refine

    return refine(gaussians, context, steps, near=near, far=far).detach()


def model_source_info(spec: str, model: torch.nn.Module, revision: str | None) -> dict[str, Any]:
    """Model id + revision (Hub) or sha256 (files) for the summary."""
    from ilrm.checkpoints import file_sha256

    cfg = model.config
    info: dict[str, Any] = {"arch": cfg.arch, "parameters": sum(p.numel() for p in model.parameters())}
    path = Path(spec).expanduser()
    if spec.startswith("preset:"):
        info.update(source=spec, weights="random initialisation (preset)")
    elif path.is_file():
        info.update(source=str(path.resolve()), sha256=cfg.extra.get("source_sha256") or file_sha256(path))
        info["layout"] = cfg.extra.get("layout")
    elif path.is_dir():
        weights = sorted(path.glob("*.safetensors"))
        info.update(source=str(path.resolve()), sha256={w.name: file_sha256(w) for w in weights})
    else:
        info.update(source=spec, revision=revision or "main")
        try:
            from huggingface_hub import hf_hub_download

            cached = Path(hf_hub_download(spec, "config.json", revision=revision))
            if cached.parent.parent.name == "snapshots":
                info["revision_sha"] = cached.parent.name
        except Exception as e:  # noqa: BLE001 - the model loaded, the sha is only informative
            info["revision_sha"] = f"unknown ({type(e).__name__})"
    info["config"] = cfg.to_dict()
    return info


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
        self.spec = spec
        self.model = model.to(device).eval()
        self.device = device
        self.dtype = dtype
        self.refine_steps = refine_steps
        cfg = model.config
        self.near, self.far = cfg.near, cfg.far
        self.scale_before_recentre = bool(cfg.pose_scale_before_recentre)
        self._info = model_source_info(spec.removeprefix("full-attention:"), model, revision)
        name = Path(spec.removeprefix("full-attention:")).name or spec
        arch = "iLRM" if cfg.arch == "ilrm" else "full-attention"
        self.label = f"{arch} ({name})" + (f" + {refine_steps} refinement steps" if refine_steps else "")

    def info(self) -> dict[str, Any]:
        return {**super().info(), **self._info, "refine_steps": self.refine_steps}

    def predict(self, context: Views, depth: Tensor | None = None) -> tuple[Gaussians, dict[str, float]]:
        from ilrm.inference import autocast_for

        _sync(self.device)
        start = time.perf_counter()
        with torch.no_grad(), autocast_for(self.device, self.dtype):
            gaussians = self.model(context)
        gaussians = gaussians.float()
        _sync(self.device)
        recon = time.perf_counter() - start
        refine_time = 0.0
        if self.refine_steps:
            start = time.perf_counter()
            gaussians = _refine(gaussians, context, self.refine_steps, self.near, self.far)
            _sync(self.device)
            refine_time = time.perf_counter() - start
        return gaussians, {"recon_time_s": recon, "refine_time_s": refine_time}

    def render(self, prediction: Gaussians, target: Views) -> Tensor:
        from ilrm.rendering import render

        with torch.no_grad():
            return render(prediction, target.intrinsics, target.c2w, target.height, target.width,
                          near=self.near, far=self.far)[0]


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
        from ilrm.rendering import render

        with torch.no_grad():
            return render(prediction, target.intrinsics, target.c2w, target.height, target.width,
                          near=self.near, far=self.far, background=self.background)[0]

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
    """The :class:`Method` for a ``--model`` value (see module docstring)."""
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


# ---- images ------------------------------------------------------------------------------------


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


# ---- records -----------------------------------------------------------------------------------


def read_records(out: Path) -> dict[str, dict[str, Any]]:
    """Every scene's latest record from ``<out>/ranks/*.jsonl`` (torn or invalid lines ignored).

    A finished ("ok") record is never replaced by a later one of another status.
    """
    records: dict[str, dict[str, Any]] = {}
    for path in sorted((out / "ranks").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a killed run
            if not isinstance(rec, dict) or "scene" not in rec:
                continue
            old = records.get(rec["scene"])
            if old is not None and old.get("status") == "ok" and rec.get("status") != "ok":
                continue
            records[rec["scene"]] = rec
    return records


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a previous run died mid-line: start a fresh line
                f.write(b"\n")
        f.write((json.dumps(record, default=_json_default) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


# ---- environment -------------------------------------------------------------------------------


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit sha and whether the working tree has changes (None when not a git checkout).

    A copy of the tree (e.g. one shipped to a GPU machine, whose ``.git`` may be missing or stale)
    names its commit in the environment variable ``ILRM_GIT_COMMIT``, which wins over git.
    """
    if os.environ.get("ILRM_GIT_COMMIT"):
        return {"commit": os.environ["ILRM_GIT_COMMIT"], "dirty": None}
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return {"commit": sha, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def environment(device: torch.device, dtype_name: str, world_size: int) -> dict[str, Any]:
    """Device, versions and commit for the summary."""
    env: dict[str, Any] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": dtype_name,
        "world_size": world_size,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        **{f"git_{k}": v for k, v in git_state().items()},
    }
    try:
        import gsplat

        env["gsplat"] = gsplat.__version__
    except ImportError:
        env["gsplat"] = None
    return env


# ---- distributed -------------------------------------------------------------------------------


@dataclass
class DistInfo:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    created: bool = False

    def barrier(self, device: torch.device) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[device.index or 0])
            else:
                dist.barrier()

    def close(self) -> None:
        if self.created:
            import torch.distributed as dist

            dist.destroy_process_group()


def init_distributed(use_cuda: bool) -> DistInfo:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1 (NCCL on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    created = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        # Ranks finish their shards at different times; the merge waits at a barrier.
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=_dt.timedelta(hours=6))
        created = True
    return DistInfo(rank, world, local, created)


# ---- the run -----------------------------------------------------------------------------------


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


@dataclass
class RunResult:
    """What rank 0 gets back: the summary dict and the written files."""

    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def _pick_device(requested: str | None, dist_info: DistInfo) -> torch.device:
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ILRMInputError("--device cuda was asked for but CUDA is not available")
        if dist_info.world_size > 1 or device.index is None:
            device = torch.device("cuda", dist_info.local_rank if dist_info.world_size > 1 else 0)
    return device


def _data_root(opts: RunOptions, bench: Benchmark) -> tuple[Path | None, dict[str, Any] | None]:
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


def _identity(opts: RunOptions, bench: Benchmark, method: Method, dtype_name: str) -> dict[str, Any]:
    return {
        "benchmark": bench.name,
        "protocol": bench.label,
        "method": method.spec,
        "refine_steps": opts.refine_steps,
        "dtype": dtype_name,
        "lpips": bool(opts.lpips),
        "index_file": str(opts.index_path) if opts.index_path else None,
    }


def _check_identity(out: Path, identity: dict[str, Any], overwrite: bool, rank: int) -> None:
    path = out / "run_config.json"
    if path.is_file():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), identity.get(k)) for k in IDENTITY_KEYS if old.get(k) != identity.get(k)}
        if diff and not overwrite:
            raise ILRMInputError(
                f"{out} holds results of another run (differs in {diff}); choose another --out or pass --overwrite"
            )
        if diff and rank == 0:
            for f in (out / "ranks").glob("*.jsonl"):
                f.unlink()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(identity, indent=2) + "\n")


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
    _sync(device)
    start = time.perf_counter()
    renders = method.render(prediction, target)
    _sync(device)
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
    want_cuda = (opts.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    dist_info = init_distributed(want_cuda)
    try:
        return _run(opts, dist_info)
    finally:
        dist_info.close()


def _run(opts: RunOptions, dist_info: DistInfo) -> RunResult | None:
    from tqdm.auto import tqdm

    device = _pick_device(opts.device, dist_info)
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
    identity = _identity(opts, bench, method, dtype_name)
    _check_identity(out, identity, opts.overwrite, dist_info.rank)
    dist_info.barrier(device)  # rank 0 has (re)written run_config.json / removed stale records

    finished = {s for s, r in read_records(out).items() if r.get("status") in ("ok", "skipped")}
    mine = [s for i, s in enumerate(source.scene_ids) if i % dist_info.world_size == dist_info.rank]
    todo = [s for s in mine if s not in finished]
    lpips_metric = LPIPSMetric(device) if opts.lpips else None
    images_dir = out / "images" if opts.save_images else None
    rank_file = out / "ranks" / f"rank{dist_info.rank:03d}.jsonl"
    started = time.perf_counter()
    warmed = device.type != "cuda"
    bar = tqdm(total=len(todo), desc=f"{bench.label} | {method.label} [rank {dist_info.rank}]",
               position=dist_info.rank, disable=not opts.progress, leave=True)
    for loaded in source.load(todo, with_depth=method.needs_depth):
        if not warmed and loaded.status == "ok":
            ex = loaded.example.to(device)
            method.warmup(ex.context, ex.target)
            warmed = True
        record = evaluate_scene(loaded, method, device, lpips_metric, images_dir=images_dir)
        record.update(rank=dist_info.rank, finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        _append(rank_file, record)
        bar.update(1)
        if record["status"] == "ok":
            bar.set_postfix(psnr=f"{record['psnr']:.2f}")
    bar.close()
    wall = time.perf_counter() - started
    dist_info.barrier(device)
    if dist_info.rank != 0:
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


# ---- merge and tables ------------------------------------------------------------------------------


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def write_results(
    out: Path,
    bench: Benchmark,
    method: Method,
    source: SceneSource,
    fetch_manifest: dict[str, Any] | None,
    env: dict[str, Any],
    lpips_reason: str | None,
    wall_s: float,
) -> RunResult:
    """Merge every rank's records for ``source.scene_ids`` and write ``per_view.csv``,
    ``per_scene.csv``, ``scenes.jsonl`` and ``summary.json`` (means over the "ok" scenes)."""
    import pandas as pd

    records = read_records(out)
    ordered = [records[s] for s in source.scene_ids if s in records]
    pending = [s for s in source.scene_ids if s not in records]
    ok = [r for r in ordered if r["status"] == "ok"]
    label, protocol = method.label, bench.label

    view_rows, scene_rows = [], []
    for r in ordered:
        scene_rows.append({
            "protocol": protocol, "method": label, "scene": r["scene"], "status": r["status"],
            "reason": r.get("reason", ""), "num_context": r.get("num_context"), "num_target": r.get("num_target"),
            "psnr": r.get("psnr"), "ssim": r.get("ssim"), "lpips": r.get("lpips"),
            "recon_time_s": r.get("recon_time_s"), "refine_time_s": r.get("refine_time_s"),
            "render_time_s": r.get("render_time_s"), "peak_memory_mb": r.get("peak_memory_mb"), "rank": r.get("rank"),
        })
        for v in r.get("views", []):
            view_rows.append({"protocol": protocol, "method": label, "scene": r["scene"], **v})
    scene_cols = ["protocol", "method", "scene", "status", "reason", "num_context", "num_target", "psnr", "ssim",
                  "lpips", "recon_time_s", "refine_time_s", "render_time_s", "peak_memory_mb", "rank"]
    view_cols = ["protocol", "method", "scene", "view", "frame", "psnr", "ssim", "lpips"]
    files = {
        "per_scene": out / "per_scene.csv",
        "per_view": out / "per_view.csv",
        "scenes": out / "scenes.jsonl",
        "summary": out / "summary.json",
    }
    pd.DataFrame(scene_rows, columns=scene_cols).to_csv(files["per_scene"], index=False)
    pd.DataFrame(view_rows, columns=view_cols).to_csv(files["per_view"], index=False)
    files["scenes"].write_text("".join(json.dumps(r, default=_json_default) + "\n" for r in ordered))

    lpips_values = [r.get("lpips") for r in ok]
    if ok and all(v is not None for v in lpips_values):
        lpips_mean: float | str = float(np.mean(lpips_values))
    else:
        lpips_mean = LPIPS_NA
        if lpips_reason is None and ok:
            lpips_reason = f"LPIPS computed for {sum(v is not None for v in lpips_values)} of {len(ok)} scenes"
    summary = {
        "protocol": protocol,
        "method": method.info(),
        "benchmark": bench.to_dict(),
        "metrics": {
            "psnr": _mean(r["psnr"] for r in ok),
            "psnr_inf_views": sum(r.get("psnr_inf_views", 0) for r in ok),
            "psnr_note": f"per-image PSNR of exact copies (+inf) is capped at {PSNR_CAP:g} dB in the means",
            "ssim": _mean(r["ssim"] for r in ok),
            "lpips": lpips_mean,
            "lpips_reason": lpips_reason if lpips_mean == LPIPS_NA else None,
            "averaging": "per image -> per scene mean -> mean over scenes",
        },
        "scenes": {
            "evaluated": len(ok),
            "requested": len(source.scene_ids),
            "protocol_total": bench.expected_scenes,
            "failed": [{"scene": r["scene"], "reason": r.get("reason", "")} for r in ordered if r["status"] == "failed"],
            "skipped": [{"scene": r["scene"], "reason": r.get("reason", "")} for r in ordered if r["status"] == "skipped"],
            "pending": pending,
        },
        "timing": {
            "recon_time_s_mean": _mean(r.get("recon_time_s") for r in ok),
            "recon_time_s_median": _median(r.get("recon_time_s") for r in ok),
            "refine_time_s_mean": _mean(r.get("refine_time_s") for r in ok),
            "render_time_s_mean": _mean(r.get("render_time_s") for r in ok),
            "peak_memory_mb_max": max((r["peak_memory_mb"] for r in ok if r.get("peak_memory_mb")), default=None),
            "wall_time_s_this_run_rank0": wall_s,
            "note": "CUDA-synchronised wall time per scene (after one untimed warm-up scene on CUDA); "
            "peak memory = torch.cuda.max_memory_allocated over reconstruction + refinement",
        },
        "data": {**source.describe(), "fetch_manifest": fetch_manifest},
        "environment": env,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    files["summary"].write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    return RunResult(summary, files)


__all__ = [
    "CopyNearest",
    "GSMethod",
    "Method",
    "ModelMethod",
    "RunOptions",
    "RunResult",
    "evaluate_scene",
    "load_benchmark",
    "read_records",
    "resolve_method",
    "run",
    "save_grid",
    "write_results",
]
