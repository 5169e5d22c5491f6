"""Per-scene records on disk: append, read back, resume, and merge into the result tables.

Each finished scene is one JSON line appended (and fsync'ed) to ``<out>/ranks/rank<r>.jsonl``, so a
killed run loses at most the scene it was on. A re-run reads the records back and skips scenes that
are finished; the merge keeps one record per scene, so nothing is counted twice. ``run_config.json``
holds the settings that must match for a re-run to resume into the same folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ilrm.errors import ILRMInputError

from .methods import Method
from .metrics import LPIPS_NA
from .protocols import Benchmark, SceneSource, is_incomplete
from .stats import metric_intervals

#: Per-image PSNR of exact copies (+inf) counts as this in means (see eval.runner.evaluate_scene).
PSNR_CAP = 100.0
#: Settings that must match for a re-run to resume into an existing result folder.
IDENTITY_KEYS = ("benchmark", "protocol", "method", "refine_steps", "dtype", "lpips", "index_sha256",
                 "weights_sha256", "data_kind", "fast_paths")
#: What a run folder written before a key existed held for it (so older folders still resume).
IDENTITY_DEFAULTS = {"fast_paths": "default"}
#: What a re-run into the same folder discards with ``--overwrite`` (records, tables, images, renders).
RUN_OUTPUTS = ("ranks", "images", "renders", "per_scene.csv", "per_view.csv", "scenes.jsonl", "summary.json")


def json_default(x: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and paths (records carry both)."""
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def rank_file(out: Path, rank: int) -> Path:
    """Where rank ``rank`` appends its records."""
    return out / "ranks" / f"rank{rank:03d}.jsonl"


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line and fsync it (a record on disk survives a killed run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a previous run died mid-line: start a fresh line
                f.write(b"\n")
        f.write((json.dumps(record, default=json_default) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


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


def finished_scenes(out: Path) -> set[str]:
    """Scenes a re-run skips: those recorded "ok" or "skipped" for a protocol exclusion (failed ones,
    and old "skipped" records of incomplete data, are tried again)."""
    return {
        s for s, r in read_records(out).items()
        if r.get("status") == "ok" or (r.get("status") == "skipped" and not is_incomplete(r.get("reason", "")))
    }


def clear_outputs(out: Path) -> None:
    """Remove a previous run's records, tables, images and renders from ``out`` (:data:`RUN_OUTPUTS`)."""
    import shutil

    for name in RUN_OUTPUTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def check_identity(
    out: Path,
    identity: dict[str, Any],
    overwrite: bool,
    rank: int,
    scene_data: dict[str, str] | None = None,
) -> None:
    """Refuse to resume into ``out`` if it holds another run: other :data:`IDENTITY_KEYS` settings
    (the weights' sha256 among them), or a finished scene whose record names other weights or other
    data than ``scene_data`` ({scene: data sha256} of this run) says.

    With ``overwrite`` the previous run's outputs (records, tables, images, renders) are removed
    instead. Rank 0 (re)writes ``run_config.json``; the caller puts a barrier after this so other ranks
    do not read records that are being removed.
    """
    path = out / "run_config.json"
    if overwrite:
        if rank == 0:
            clear_outputs(out)
    else:
        problems: list[str] = []
        if path.is_file():
            old = json.loads(path.read_text())
            diff = {k: (old.get(k, IDENTITY_DEFAULTS.get(k)), identity.get(k)) for k in IDENTITY_KEYS
                    if old.get(k, IDENTITY_DEFAULTS.get(k)) != identity.get(k)}
            if diff:
                what = ", ".join("weights (sha256)" if k == "weights_sha256" else k for k in diff)
                problems.append(f"differs in {what}: {diff}")
        weights = identity.get("weights_sha256")
        other_w, other_d = [], []
        for scene, rec in read_records(out).items():
            if rec.get("weights_sha256") != weights:
                other_w.append(scene)
            if rec.get("status") == "failed":
                continue  # evaluated again anyway (e.g. once its data is repaired)
            if scene_data is not None and scene in scene_data and rec.get("data_sha256") != scene_data[scene]:
                other_d.append(scene)
        if other_w:
            problems.append(f"{len(other_w)} recorded scene(s) were evaluated with other weights (e.g. {other_w[:3]})")
        if other_d:
            problems.append(f"{len(other_d)} recorded scene(s) were evaluated on other data: their files' sha256 "
                            f"differ from the data now (e.g. {other_d[:3]})")
        if problems:
            raise ILRMInputError(
                f"{out} holds results of another run ({'; '.join(problems)}); results of different weights or "
                "data are never mixed: choose another --out or pass --overwrite"
            )
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(identity, indent=2, default=json_default) + "\n")


@dataclass
class RunResult:
    """What rank 0 gets back: the summary dict and the written files."""

    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


SCENE_COLUMNS = ["protocol", "method", "scene", "status", "reason", "num_context", "num_target", "psnr", "ssim",
                 "lpips", "recon_time_s", "refine_time_s", "render_time_s", "peak_memory_mb", "rank", "weights_sha256",
                 "data_sha256"]
VIEW_COLUMNS = ["protocol", "method", "scene", "view", "frame", "psnr", "ssim", "lpips"]


def _write_tables(out: Path, ordered: list[dict[str, Any]], protocol: str, label: str) -> dict[str, Path]:
    """``per_scene.csv``, ``per_view.csv`` and ``scenes.jsonl`` of the merged records."""
    import pandas as pd

    view_rows, scene_rows = [], []
    for r in ordered:
        row = {"protocol": protocol, "method": label, "scene": r["scene"], "reason": r.get("reason", "")}
        scene_rows.append({**row, **{k: r.get(k) for k in SCENE_COLUMNS if k not in row}})
        for v in r.get("views", []):
            view_rows.append({"protocol": protocol, "method": label, "scene": r["scene"], **v})
    files = {"per_scene": out / "per_scene.csv", "per_view": out / "per_view.csv", "scenes": out / "scenes.jsonl"}
    pd.DataFrame(scene_rows, columns=SCENE_COLUMNS).to_csv(files["per_scene"], index=False)
    pd.DataFrame(view_rows, columns=VIEW_COLUMNS).to_csv(files["per_view"], index=False)
    files["scenes"].write_text("".join(json.dumps(r, default=json_default) + "\n" for r in ordered))
    return files


def write_results(
    out: Path,
    bench: Benchmark,
    method: Method,
    source: SceneSource,
    fetch_manifest: dict[str, Any] | None,
    env: dict[str, Any],
    lpips_reason: str | None,
    wall_s: float,
    *,
    protocol_check: dict[str, Any] | None = None,
    data_identity: dict[str, Any] | None = None,
) -> RunResult:
    """Merge every rank's records for ``source.scene_ids`` and write ``per_view.csv``,
    ``per_scene.csv``, ``scenes.jsonl`` and ``summary.json`` (means over the "ok" scenes)."""
    records = read_records(out)
    ordered = [records[s] for s in source.scene_ids if s in records]
    pending = [s for s in source.scene_ids if s not in records]
    ok = [r for r in ordered if r["status"] == "ok"]
    files = _write_tables(out, ordered, bench.label, method.label)
    data_files: dict[str, str] = {}
    for r in ordered:
        data_files.update(r.get("data_files") or {})
    files["summary"] = out / "summary.json"

    lpips_values = [r.get("lpips") for r in ok]
    if ok and all(v is not None for v in lpips_values):
        lpips_mean: float | str = float(np.mean(lpips_values))
    else:
        lpips_mean = LPIPS_NA
        if lpips_reason is None and ok:
            lpips_reason = f"LPIPS computed for {sum(v is not None for v in lpips_values)} of {len(ok)} scenes"
    summary = {
        "protocol": bench.label,
        "protocol_check": protocol_check or {"standard": not bench.custom, "violations": list(bench.custom)},
        "method": {**method.info(), "weights_sha256": getattr(method, "weights_sha256", None)},
        "benchmark": bench.to_dict(),
        "metrics": {
            "psnr": _mean(r["psnr"] for r in ok),
            "psnr_inf_views": sum(r.get("psnr_inf_views", 0) for r in ok),
            "psnr_note": f"per-image PSNR of exact copies (+inf) is capped at {PSNR_CAP:g} dB in the means",
            "ssim": _mean(r["ssim"] for r in ok),
            "lpips": lpips_mean,
            "lpips_reason": lpips_reason if lpips_mean == LPIPS_NA else None,
            "averaging": "per image -> per scene mean -> mean over scenes",
            "intervals": metric_intervals(ok),  # bootstrap 95 % over scenes
        },
        "scenes": {
            "evaluated": len(ok),
            "requested": len(source.scene_ids),
            "protocol_total": bench.expected_scenes,
            "failed": [{"scene": r["scene"], "reason": r.get("reason", "")} for r in ordered if r["status"] == "failed"],
            "skipped": [{"scene": r["scene"], "reason": r.get("reason", "")} for r in ordered if r["status"] == "skipped"],
            "num_failed": sum(r["status"] == "failed" for r in ordered),
            "num_skipped": sum(r["status"] == "skipped" for r in ordered),
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
        "data": {
            **source.describe(),
            **(data_identity or {}),
            "files": dict(sorted(data_files.items())),
            "files_note": "sha256 of every data file the recorded scenes read (relative to data_root), or the Hub "
            "etag of files in a Hugging Face cache snapshot (for LFS files the etag is the content's sha256)",
            "fetch_manifest": fetch_manifest,
        },
        "environment": env,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    files["summary"].write_text(json.dumps(summary, indent=2, default=json_default) + "\n")
    return RunResult(summary, files)


__all__ = [
    "IDENTITY_KEYS",
    "PSNR_CAP",
    "RunResult",
    "append_record",
    "check_identity",
    "clear_outputs",
    "finished_scenes",
    "json_default",
    "rank_file",
    "read_records",
    "write_results",
]
