"""Validation (never training) on the real ``mydesk`` frames: models vs copy-nearest (and 3DGS).

    python -m scripts.mydesk_validation [--model [LABEL=]DIR ...] [--gs-steps N ...] [--size H W]
        [--device cpu|cuda] [--no-lpips] [--limit-pairs N] [--out results.json]

Run it from the repository root: it imports the demo and the evaluation harness (``demo/``, ``eval/``), which is not installed.

The 12 posed 960×540 frames of ``demo/examples/mydesk`` (order of ``opencv_cameras.json`` = capture
order) are brought to ``--size`` (default 256×448) exactly as ``python -m ilrm reconstruct`` does:
:func:`ilrm.cameras.resize_and_center_crop` (scale to cover, centre crop, intrinsics updated), then
:func:`ilrm.pipeline.prepare_views` normalises the input poses (:func:`ilrm.cameras.normalize_poses`,
with the model's ``pose_scale_before_recentre``) and :func:`ilrm.pipeline.to_model_frame` moves the
target cameras with the same transform.

Settings (frame indices ``0..n-1`` in capture order):

- ``2-neighbours``: inputs = frames (i, i+1) for every i = 0..n-2 (``--limit-pairs`` keeps the first
  N pairs); scored on two target subsets, each averaged per pair and then over pairs:
  ``all-others`` = every frame that is not an input (includes far extrapolation), and
  ``adjacent`` = frames i-1 and i+2 (those that exist), the frames right next to the pair.
- ``8-spread``: inputs = 8 frames evenly spread over the capture
  (:func:`ilrm.pipeline.evenly_spaced`, [0, 2, 3, 5, 6, 8, 9, 11] for 12 frames), targets = the rest.

Methods: each ``--model`` (a checkpoint folder of ours, an authors' file, or ``preset:<name>`` for
random weights) through :class:`eval.methods.ModelMethod`; ``copy-nearest``
(:class:`eval.methods.CopyNearest`: the input image whose camera centre is nearest); per-scene 3DGS for
each ``--gs-steps N`` (:class:`eval.methods.GSMethod` / :mod:`eval.gs_baseline`). Metrics are
:func:`eval.metrics.compute_metrics` (PSNR on clipped renders, SSIM from scikit-image, LPIPS-VGG via
:class:`eval.metrics.LPIPSMetric`, "n/a" with the reason when no backbone is available).

Prints a markdown table (margins are method − copy-nearest: positive ΔPSNR/ΔSSIM and negative ΔLPIPS
mean better than copying) and writes a JSON file with the per-setting, per-method means, the per-view
numbers of every split, the model paths and the sha256 of their weights. Bad input (missing folder,
unloadable checkpoint, unusable size) prints ``error: ...`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from demo.models import DEFAULT_CHECKPOINT, EXAMPLES_DIR
from eval.methods import DTYPES, CopyNearest, GSMethod, Method, ModelMethod
from eval.metrics import LPIPS_NA, LPIPSMetric, compute_metrics
from eval.protocols import Benchmark
from eval.provenance import environment
from eval.records import PSNR_CAP
from ilrm.cameras import Views, check_image_size, resize_and_center_crop
from ilrm.config import ILRMConfig
from ilrm.errors import ILRMInputError
from ilrm.pipeline import evenly_spaced, prepare_views, to_model_frame

DEFAULT_SCENE = EXAMPLES_DIR / "mydesk"
DEFAULT_SIZE = (256, 448)
SPREAD_INPUTS = 8
COPY_NEAREST = "copy-nearest"
METRICS = ("psnr", "ssim", "lpips")

#: (setting, subset) rows of the table, with the text shown for each.
SUBSETS: dict[tuple[str, str], str] = {
    ("2-neighbours", "all-others"): "2 neighbouring inputs (i, i+1); targets: all other frames",
    ("2-neighbours", "adjacent"): "2 neighbouring inputs (i, i+1); targets: adjacent frames i-1, i+2",
    ("8-spread", "held-out"): "8 inputs spread over the capture; targets: the other frames",
}


# ---- frames and splits --------------------------------------------------------------------------


@dataclass
class SceneFrames:
    """Every frame of the scene at the evaluation size.

    images: (N, 3, H, W) float32 in [0, 1] (resized to cover and centre-cropped); K: (N, 3, 3) pixel
    intrinsics of those images; c2w: (N, 4, 4) float64 raw (un-normalised) OpenCV poses; names: file stems.
    """

    name: str
    root: Path
    images: Tensor
    K: Tensor
    c2w: Tensor
    names: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        return self.images.shape[-2], self.images.shape[-1]


def load_frames(scene_dir: str | Path, size: tuple[int, int]) -> SceneFrames:
    """Read ``<scene_dir>/opencv_cameras.json`` and all its frames, resized as the reconstruct path does.

    Frames are read at the first frame's size (as :func:`ilrm.scene_folder.reconstruct_scene_folder` does;
    a no-op for mydesk) and brought to ``size`` with :func:`ilrm.cameras.resize_and_center_crop`.
    Raises :class:`ILRMInputError` for a missing folder, camera file or image.
    """
    from ilrm.data.dl3dv import load_scene_views, read_opencv_cameras

    path = Path(scene_dir)
    if not path.exists():
        raise ILRMInputError(f"scene folder {path} does not exist")
    scene = read_opencv_cameras(path)
    if len(scene) < 3:
        raise ILRMInputError(f"{path} has {len(scene)} frames; the validation needs at least 3")
    f0 = scene.frames[0]
    images, K, c2w = load_scene_views(scene, list(range(len(scene))), (f0.h, f0.w), resize="stretch")
    images, K = resize_and_center_crop(images, K.float(), size)
    names = [Path(f.path).stem for f in scene.frames]
    return SceneFrames(scene.scene_name, scene.root, images.contiguous(), K, c2w, names)


@dataclass(frozen=True)
class Split:
    """One reconstruction: input frames, scored target frames and named subsets of the targets."""

    setting: str
    inputs: tuple[int, ...]
    targets: tuple[int, ...]
    subsets: dict[str, tuple[int, ...]] = field(default_factory=dict)


def neighbour_splits(n: int, limit: int | None = None) -> list[Split]:
    """Setting ``2-neighbours``: inputs (i, i+1) for i = 0..n-2 (the first ``limit`` pairs)."""
    pairs = list(range(n - 1))[: limit if limit is not None else None]
    out = []
    for i in pairs:
        inputs = (i, i + 1)
        targets = tuple(j for j in range(n) if j not in inputs)
        adjacent = tuple(j for j in (i - 1, i + 2) if 0 <= j < n)
        out.append(Split("2-neighbours", inputs, targets, {"all-others": targets, "adjacent": adjacent}))
    return out


def spread_split(n: int, k: int = SPREAD_INPUTS) -> Split:
    """Setting ``8-spread``: ``k`` inputs evenly spread over the capture, targets = the others."""
    if n <= k:
        raise ILRMInputError(f"the scene has {n} frames: the {k}-spread setting needs more than {k}")
    inputs = tuple(evenly_spaced(n, k))
    targets = tuple(j for j in range(n) if j not in inputs)
    return Split("8-spread", inputs, targets, {"held-out": targets})


def split_views(frames: SceneFrames, split: Split, scale_before_recentre: bool) -> tuple[Views, Views]:
    """(context, target) views (batch 1, CPU) with poses in the model frame of the split's inputs.

    The inputs go through :func:`ilrm.pipeline.prepare_views` (the images are already at the
    evaluation size, so its resize is the identity) and the targets through
    :func:`ilrm.pipeline.to_model_frame` with the same transform.
    """
    ci, ti = list(split.inputs), list(split.targets)
    config = ILRMConfig(pose_scale_before_recentre=scale_before_recentre)  # only the normalisation is read
    prepared = prepare_views(frames.images[ci], frames.K[ci], frames.c2w[ci], config, size=frames.size)
    context, transform = prepared.views, prepared.transform
    target_c2w = to_model_frame(frames.c2w[ti].double(), transform.double()).float()
    target = Views(frames.images[ti][None], frames.K[ti].float()[None], target_c2w[None])
    return context, target


# ---- methods -------------------------------------------------------------------------------------


@dataclass
class Entry:
    """A method to score: its table label, what it is, and the runner's :class:`Method` object."""

    label: str
    kind: str  # "model" | "copy-nearest" | "3dgs"
    method: Method
    info: dict[str, Any]

    @property
    def scale_before_recentre(self) -> bool:
        return bool(self.method.scale_before_recentre)


def parse_model_arg(text: str) -> tuple[str, str]:
    """``[LABEL=]PATH`` → (label, path); the label defaults to the folder (or file) name."""
    if "=" in text and not Path(text).exists():
        label, path = text.split("=", 1)
        if label and path:
            return label, path
    return (Path(text).name or text), text


def load_checkpoint(path: str) -> torch.nn.Module:
    """A model from a local checkpoint folder / authors' file / ``preset:<name>``, errors as ILRMInputError."""
    from ilrm.checkpoints import load_model

    if not path.startswith("preset:") and not Path(path).expanduser().exists():
        raise ILRMInputError(f"checkpoint {path!r} not found (expected a checkpoint folder with config.json)")
    try:
        return load_model(path)
    except ILRMInputError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to read the files is bad input here
        raise ILRMInputError(f"cannot load checkpoint {path!r}: {type(e).__name__}: {e}") from e


def build_methods(
    models: Sequence[str], gs_steps: Sequence[int], size: tuple[int, int], device: torch.device, dtype: torch.dtype | None
) -> list[Entry]:
    """Models (in the order given), then copy-nearest, then 3DGS per ``gs_steps``."""
    entries: list[Entry] = []
    for text in models:
        label, path = parse_model_arg(text)
        model = load_checkpoint(path)
        check_image_size(*size, model.config.size_multiple)
        method = ModelMethod(path, model, device=device, dtype=dtype)
        entries.append(Entry(label, "model", method, {"path": path, **method.info()}))
    entries.append(Entry(COPY_NEAREST, "copy-nearest", CopyNearest(), {"spec": COPY_NEAREST}))
    # GSMethod reads near / far / background from a protocol: the defaults (white, as the models render).
    protocol = Benchmark(name="mydesk", kind="dl3dv", description="mydesk validation", image_size=size,
                         num_context=2, num_target=None, expected_scenes=1)
    for steps in gs_steps:
        spec = f"3dgs:{steps}"
        method = GSMethod(spec, protocol, device)
        entries.append(Entry(spec, "3dgs", method, method.info()))
    labels = [e.label for e in entries]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ILRMInputError(f"method labels must be unique, got {dupes} twice: use --model LABEL=PATH")
    return entries


# ---- evaluation ----------------------------------------------------------------------------------


def evaluate_split(
    frames: SceneFrames, split: Split, entries: Sequence[Entry], device: torch.device, lpips: LPIPSMetric | None
) -> dict[str, Any]:
    """Run every method on one split; per-view metrics and times."""
    cache: dict[bool, tuple[Views, Views]] = {}
    record: dict[str, Any] = {
        "setting": split.setting,
        "inputs": list(split.inputs),
        "input_names": [frames.names[i] for i in split.inputs],
        "targets": list(split.targets),
        "subsets": {k: list(v) for k, v in split.subsets.items()},
        "methods": {},
    }
    for entry in entries:
        sbr = entry.scale_before_recentre
        if sbr not in cache:
            cache[sbr] = split_views(frames, split, sbr)
        context, target = (v.to(device) for v in cache[sbr])
        start = time.perf_counter()
        prediction, _ = entry.method.predict(context)  # the model methods run under no_grad themselves
        renders = entry.method.render(prediction, target).float()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        metrics = compute_metrics(renders, target.images[0].float(), lpips)
        nearest = CopyNearest.nearest(context, target) if entry.kind == "copy-nearest" else None
        views = []
        for j, frame in enumerate(split.targets):
            view = {
                "frame": frame,
                "name": frames.names[frame],
                "psnr": float(metrics["psnr"][j]),
                "ssim": float(metrics["ssim"][j]),
                "lpips": float(metrics["lpips"][j]) if "lpips" in metrics else None,
            }
            if nearest is not None:
                view["copied_frame"] = split.inputs[nearest[j]]
            views.append(view)
        record["methods"][entry.label] = {"time_s": seconds, "views": views}
    return record


def _subset_mean(record: dict[str, Any], label: str, subset: str, metric: str) -> float | None:
    """Mean of ``metric`` over the views of ``subset`` in one split (PSNR of exact copies capped)."""
    frames = set(record["subsets"][subset])
    values = [v[metric] for v in record["methods"][label]["views"] if v["frame"] in frames]
    if not values or any(v is None for v in values):
        return None
    if metric == "psnr":
        values = [min(v, PSNR_CAP) for v in values]
    return float(np.mean(values))


def summarise(records: Sequence[dict[str, Any]], entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """One row per (setting, subset, method): per-split means averaged over the splits, margins vs copy-nearest."""
    rows = []
    for (setting, subset), text in SUBSETS.items():
        recs = [r for r in records if r["setting"] == setting and r["subsets"].get(subset)]
        if not recs:
            continue
        means: dict[str, dict[str, float | None]] = {}
        for entry in entries:
            means[entry.label] = {}
            for metric in METRICS:
                per_split = [_subset_mean(r, entry.label, subset, metric) for r in recs]
                ok = all(v is not None for v in per_split)
                means[entry.label][metric] = float(np.mean(per_split)) if ok else None
        base = means[COPY_NEAREST]
        for entry in entries:
            m = means[entry.label]
            margin = {
                k: (m[k] - base[k]) if m[k] is not None and base[k] is not None else None for k in METRICS
            }
            rows.append({
                "setting": setting,
                "subset": subset,
                "description": text,
                "method": entry.label,
                "kind": entry.kind,
                "psnr": m["psnr"],
                "ssim": m["ssim"],
                "lpips": m["lpips"],
                "margin_vs_copy_nearest": margin,
                "num_splits": len(recs),
                "num_views": sum(len(r["subsets"][subset]) for r in recs),
                "time_s_per_split": float(np.mean([r["methods"][entry.label]["time_s"] for r in recs])),
            })
    return rows


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary rows as a markdown table (LPIPS "n/a" when not computed)."""

    def num(x: float | None, fmt: str) -> str:
        return LPIPS_NA if x is None else format(x, fmt)

    def signed(x: float | None, fmt: str) -> str:
        return LPIPS_NA if x is None else format(x, "+" + fmt)

    lines = [
        "| setting | targets | method | PSNR | SSIM | LPIPS | margin vs copy-nearest (ΔPSNR / ΔSSIM / ΔLPIPS) | splits / views |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["margin_vs_copy_nearest"]
        margin = "—" if r["kind"] == "copy-nearest" else (
            f"{signed(d['psnr'], '.2f')} dB / {signed(d['ssim'], '.3f')} / {signed(d['lpips'], '.3f')}"
        )
        lines.append(
            f"| {r['setting']} | {r['subset']} | {r['method']} | {num(r['psnr'], '.2f')} | {num(r['ssim'], '.3f')} "
            f"| {num(r['lpips'], '.3f')} | {margin} | {r['num_splits']} / {r['num_views']} |"
        )
    return "\n".join(lines)


def _pick_device(name: str | None) -> torch.device:
    name = name or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ILRMInputError(f"--device {name!r} is not a device: {e}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ILRMInputError("--device cuda was asked for but CUDA is not available")
    return device


def run_validation(args: argparse.Namespace) -> dict[str, Any]:
    """Everything :func:`main` does except printing; returns the JSON-ready result."""
    started = time.perf_counter()
    size = (int(args.size[0]), int(args.size[1]))
    if min(size) <= 0:
        raise ILRMInputError(f"--size must be two positive integers, got {args.size}")
    if args.limit_pairs is not None and args.limit_pairs < 1:
        raise ILRMInputError(f"--limit-pairs must be >= 1, got {args.limit_pairs}")
    if any(s < 0 for s in args.gs_steps):
        raise ILRMInputError(f"--gs-steps must be >= 0, got {args.gs_steps}")
    device = _pick_device(args.device)
    dtype_name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    torch.manual_seed(args.seed)

    frames = load_frames(args.scene, size)
    splits = neighbour_splits(len(frames), args.limit_pairs) + [spread_split(len(frames))]
    models = args.model or [str(DEFAULT_CHECKPOINT)]
    entries = build_methods(models, args.gs_steps, size, device, DTYPES[dtype_name])
    lpips = None if args.no_lpips else LPIPSMetric(device)
    if lpips is None:
        lpips_state = {"enabled": False, "available": False, "reason": "LPIPS disabled (--no-lpips)"}
    else:
        lpips_state = {"enabled": True, "available": lpips.available, "reason": lpips.reason}

    records = []
    for k, split in enumerate(splits):
        t = time.perf_counter()
        records.append(evaluate_split(frames, split, entries, device, lpips if lpips and lpips.available else None))
        if not args.quiet:
            print(f"[{k + 1}/{len(splits)}] {split.setting} inputs {list(split.inputs)}: "
                  f"{time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    rows = summarise(records, entries)
    return {
        "what": "validation on real posed frames (no training): models vs copy-nearest (and per-scene 3DGS)",
        "scene": frames.name,
        "scene_dir": str(Path(frames.root).resolve()),
        "frames": frames.names,
        "capture_order": "frame order of opencv_cameras.json",
        "image_size": list(size),
        "preprocessing": "ilrm.cameras.resize_and_center_crop (cover, centre crop, intrinsics updated); inputs "
        "normalised by ilrm.pipeline.prepare_views, targets by ilrm.pipeline.to_model_frame (same transform)",
        "settings": {
            "2-neighbours": {"inputs": "frames (i, i+1), i = 0..n-2", "pairs": [list(s.inputs) for s in splits[:-1]],
                             "subsets": {"all-others": "every frame that is not an input",
                                         "adjacent": "frames i-1 and i+2 (those that exist)"}},
            "8-spread": {"inputs": list(splits[-1].inputs), "targets": list(splits[-1].targets)},
        },
        "averaging": "per view -> mean over the split's subset -> mean over splits; PSNR on clipped renders, "
        f"exact copies capped at {PSNR_CAP:g} dB",
        "metrics": {"psnr": "eval.metrics.psnr", "ssim": "eval.metrics.ssim (scikit-image)",
                    "lpips": lpips_state},
        "models": [{"label": e.label, **e.info} for e in entries if e.kind == "model"],
        "methods": [{"label": e.label, "kind": e.kind, "spec": e.method.spec} for e in entries],
        "results": rows,
        "table_markdown": markdown_table(rows),
        "splits": records,
        "environment": environment(device, dtype_name, 1),
        "wall_time_s": time.perf_counter() - started,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command-line flags (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", type=Path, default=DEFAULT_SCENE, help=f"scene folder (default: {DEFAULT_SCENE})")
    p.add_argument("--model", action="append", default=[], metavar="[LABEL=]PATH",
                   help="checkpoint folder / authors' file / preset:<name> (random weights); repeatable "
                   "(default: the shipped checkpoint)")
    p.add_argument("--gs-steps", type=int, action="append", default=[], metavar="N",
                   help="also run per-scene 3DGS with N steps on each split; repeatable")
    p.add_argument("--size", type=int, nargs=2, default=list(DEFAULT_SIZE), metavar=("H", "W"),
                   help="evaluation size (default 256 448)")
    p.add_argument("--device", default=None, help="cuda if available, else cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="model forward: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    p.add_argument("--limit-pairs", type=int, default=None, metavar="N", help="only the first N neighbouring pairs")
    p.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    p.add_argument("--seed", type=int, default=0, help="torch seed (random-weight presets)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the validation, print the table, write ``--out``; exit code 2 on bad input."""
    args = parse_args(argv)
    try:
        result = run_validation(args)
        if args.out is not None:
            try:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result, indent=2) + "\n")
            except OSError as e:
                raise ILRMInputError(f"cannot write {args.out}: {e}") from e
    except ILRMInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result["table_markdown"])
    print("\nmargins = method - copy-nearest (higher PSNR / SSIM and lower LPIPS are better)")
    lp = result["metrics"]["lpips"]
    if not lp["available"]:
        print(f"\nLPIPS: {LPIPS_NA} ({lp['reason']})")
    print(f"\n{len(result['splits'])} reconstructions per method at {result['image_size'][0]}x{result['image_size'][1]}, "
          f"{result['wall_time_s']:.1f} s" + (f"; wrote {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
