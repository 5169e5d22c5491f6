"""Leaderboard tables: our measured result folders next to the published numbers, per protocol.

Inputs: result folders written by :func:`eval.runner.run` (their ``summary.json``), and the published
rows of ``eval/published.csv`` (copied from the project's BASELINES.md, each row with its source).
Output (:func:`write_leaderboard`): ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.html``,
made with pandas. Every row names its protocol and says whether it was **measured** here or is
**published**; LPIPS shows "n/a (reason)" where it was not computed or not reported; measured rows
on a subset of the protocol's scenes say so in the ``scenes`` column.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilrm.errors import ILRMInputError

from .protocols import load_benchmark
from .stats import METRICS, Interval, interval_from_dict, metric_intervals

PUBLISHED_CSV = Path(__file__).resolve().parent / "published.csv"
COLUMNS = ["protocol", "method", "kind", "PSNR", "PSNR 95% CI", "SSIM", "SSIM 95% CI", "LPIPS", "LPIPS 95% CI",
           "scenes", "3DGS output", "time", "device", "source", "reproduce"]
INCLUDE = ("matching", "all", "none")


def _fmt(x: Any, digits: int) -> str:
    if x is None or (isinstance(x, float) and pd.isna(x)):
        return "–"
    if isinstance(x, str):
        return x
    return f"{x:.{digits}f}"


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def measured_row(result_dir: str | Path) -> dict[str, Any]:
    """One table row from a result folder's ``summary.json``."""
    path = Path(result_dir) / "summary.json"
    if not path.is_file():
        raise ILRMInputError(f"{result_dir} has no summary.json (not a finished `python -m eval run` folder)")
    s = json.loads(path.read_text())
    m, sc, t, env = s["metrics"], s["scenes"], s["timing"], s["environment"]
    lpips = m.get("lpips")
    lpips_text = _fmt(lpips, 3) if isinstance(lpips, (int, float)) else f"n/a ({m.get('lpips_reason') or 'not computed'})"
    if not sc["evaluated"]:
        raise ILRMInputError(f"{result_dir} has no evaluated scenes: nothing to put in a table")
    scenes = f"{sc['evaluated']} of {sc['protocol_total']}"
    if sc["evaluated"] < sc["protocol_total"]:
        scenes += " (subset)"
    # Failed (data could not be read) and skipped (protocol exclusions) counts, always shown.
    scenes += f", {len(sc.get('failed') or [])} failed, {len(sc.get('skipped') or [])} skipped"
    recon, refine = t.get("recon_time_s_mean"), t.get("refine_time_s_mean")
    time_text = _fmt_time(recon)
    if refine:
        time_text += f" + {_fmt_time(refine)} refine"
    commit = (env.get("git_commit") or "unknown commit")[:14]
    dirty = "+dirty" if env.get("git_dirty") else ""
    return {
        "protocol": s["protocol"],
        "method": s["method"]["label"],
        "kind": "measured",
        "PSNR": _fmt(m.get("psnr"), 2),
        "SSIM": _fmt(m.get("ssim"), 3),
        "LPIPS": lpips_text,
        "scenes": scenes,
        "time": time_text,
        "device": f"{env.get('device_name')} ({env.get('dtype')})",
        "source": f"this repo @ {commit}{dirty}: {Path(result_dir).as_posix()}",
        "_psnr": m.get("psnr"),
    }


def published_rows(protocols: Sequence[str] | None = None, path: str | Path = PUBLISHED_CSV) -> list[dict[str, Any]]:
    """Rows of ``published.csv`` (only ``protocols`` if given)."""
    df = pd.read_csv(path, dtype={"params": str, "time": str, "time_device": str})
    rows = []
    for r in df.to_dict("records"):
        if protocols is not None and r["protocol"] not in protocols:
            continue
        expected = load_benchmark(r["protocol"]).expected_scenes
        lpips = r.get("lpips")
        rows.append({
            "protocol": r["protocol"],
            "method": r["method"],
            "kind": "published",
            "PSNR": _fmt(r.get("psnr"), 2),
            "SSIM": _fmt(r.get("ssim"), 3),
            "LPIPS": _fmt(lpips, 3) if not pd.isna(lpips) else "n/a (not reported)",
            "scenes": f"{expected} (full protocol)",
            "time": r["time"] if isinstance(r.get("time"), str) else "–",
            "device": r["time_device"] if isinstance(r.get("time_device"), str) else "–",
            "source": r["source"],
            "_psnr": r.get("psnr"),
            **_published_extras(r),
        })
    return rows


# ---- issue 15: bootstrap intervals, the published section, the per-scene distribution plot ---------------

#: Interval columns (the CSV holds them for measured rows; published rows have no per-scene values).
CI_COLUMNS = {"psnr": ("PSNR 95% CI", 2), "ssim": ("SSIM 95% CI", 3), "lpips": ("LPIPS 95% CI", 3)}
#: Columns of the two sections of leaderboard.md / .html (leaderboard.csv keeps every column; ``kind`` tells them apart).
MEASURED_COLUMNS = [c for c in COLUMNS if c != "reproduce"]
PUBLISHED_COLUMNS = [c for c in COLUMNS if not c.endswith("95% CI")]
PLOT_FILE = "per_scene_distribution.png"
_PLOT_METRICS = (("psnr", "PSNR (dB), higher is better"), ("ssim", "SSIM, higher is better"),
                 ("lpips", "LPIPS, lower is better"))


def _summary(result_dir: str | Path) -> dict[str, Any]:
    path = Path(result_dir) / "summary.json"
    if not path.is_file():
        raise ILRMInputError(f"{result_dir} has no summary.json (not a finished `python -m eval run` folder)")
    return json.loads(path.read_text())


def scene_values(result_dir: str | Path) -> pd.DataFrame:
    """The evaluated ("ok") scenes of a result folder's ``per_scene.csv``: columns scene, psnr, ssim, lpips."""
    cols = ["scene", *METRICS]
    path = Path(result_dir) / "per_scene.csv"
    if not path.is_file():
        return pd.DataFrame(columns=cols)
    df = pd.read_csv(path)
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    return df.reindex(columns=cols).reset_index(drop=True)


def run_intervals(result_dir: str | Path) -> dict[str, Interval | None]:
    """Bootstrap 95 % intervals of a run's means over scenes: the summary's ``metrics.intervals`` (written
    by the run through :func:`eval.stats.metric_intervals`) or, for folders without them, the same
    function over ``per_scene.csv`` (same seed and resamples, so both give the same interval)."""
    stored = (_summary(result_dir).get("metrics") or {}).get("intervals")
    if isinstance(stored, dict):
        return {m: interval_from_dict(stored.get(m)) for m in METRICS}
    records = [{m: None if pd.isna(r[m]) else float(r[m]) for m in METRICS}
               for r in scene_values(result_dir).to_dict("records")]
    return {m: interval_from_dict(d) for m, d in metric_intervals(records).items()}


def _with_intervals(row: dict[str, Any], result_dir: str | Path) -> dict[str, Any]:
    """A measured row plus its interval columns, whether its output is 3D Gaussians, and no command."""
    intervals = run_intervals(result_dir)
    for m, (col, digits) in CI_COLUMNS.items():
        iv = intervals.get(m)
        row[col] = iv.format(digits) if iv is not None else "–"
    spec = str((_summary(result_dir).get("method") or {}).get("spec", ""))
    row["3DGS output"] = "no (copies an input view)" if spec == "copy-nearest" else "yes"
    row["reproduce"] = "–"
    return row


def _published_extras(r: dict[str, Any]) -> dict[str, Any]:
    """Columns of a published row beyond the metrics: 3D Gaussians or not, and the command that reproduces it."""
    text = lambda k: r[k].strip() if isinstance(r.get(k), str) and r[k].strip() else None
    command = text("reproduce")
    return {
        **{col: "–" for col, _ in CI_COLUMNS.values()},
        "3DGS output": text("output_3dgs") or "–",
        "reproduce": f"python -m eval reproduce {command}" if command else "–",
        "source": "; ".join(x for x in (f"{r['source']} ({text('source_kind')})" if text("source_kind") else r["source"],
                                        text("notes")) if x),
    }


def _sections(df: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(heading, note, table) for the measured rows, then the published ones: never mixed in one table."""
    measured = df[df["kind"] == "measured"].reindex(columns=MEASURED_COLUMNS)
    published = df[df["kind"] == "published"].reindex(columns=PUBLISHED_COLUMNS)
    out = []
    if len(measured):
        out.append(("Measured here", "Run with `python -m eval run` in this repository. 95 % CI: percentile bootstrap "
                    "over scenes (10,000 resamples, seed 0; `eval/stats.py`) of each mean.", measured))
    if len(published):
        out.append(("Published (not measured here)", "Numbers reported elsewhere (`eval/published.csv`), each with its "
                    "source and whether the method outputs 3D Gaussians; where this repository can run the "
                    "weights, `reproduce` is the command that measures the row here.", published))
    return out


def section_markdown(df: pd.DataFrame) -> list[str]:
    """Markdown lines: one table per section (:func:`_sections`)."""
    lines: list[str] = []
    for heading, note, table in _sections(df):
        lines += [f"## {heading}", "", note, "", to_markdown(table)]
    return lines


def section_html(df: pd.DataFrame) -> str:
    """HTML: one table per section (:func:`_sections`)."""
    parts = []
    for heading, note, table in _sections(df):
        parts.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(note)}</p>"
                     + table.to_html(index=False, escape=True, border=0, classes="leaderboard", na_rep="–"))
    return "".join(parts)


def write_distribution_plot(
    result_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    include_published: str = "matching",
    published_csv: str | Path = PUBLISHED_CSV,
) -> Path | None:
    """``per_scene_distribution.png``: per protocol, one panel per metric with each run's per-scene values
    (box + points), its mean and 95 % interval, and the published means of that exact protocol as dashed
    lines. None when no run has evaluated scenes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = []
    for d in result_dirs:
        values = scene_values(d)
        if len(values):
            s = _summary(d)
            runs.append((s["protocol"], s["method"]["label"], values, run_intervals(d)))
    path = Path(out_dir) / PLOT_FILE
    if not runs:
        path.unlink(missing_ok=True)  # a plot of an earlier leaderboard in this folder
        return None
    protocols = list(dict.fromkeys(r[0] for r in runs))
    pub = pd.read_csv(published_csv) if include_published != "none" else pd.DataFrame(columns=["protocol"])
    fig = Figure(figsize=(13, 0.8 + 3.6 * len(protocols)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(protocols), len(_PLOT_METRICS), squeeze=False)
    rng = np.random.default_rng(0)
    for i, protocol in enumerate(protocols):
        mine = [r for r in runs if r[0] == protocol]
        for j, (metric, title) in enumerate(_PLOT_METRICS):
            ax = axes[i][j]
            ax.set_title(f"{protocol}: {title}", fontsize=9)
            for k, (_, _, values, intervals) in enumerate(mine):
                v = pd.to_numeric(values[metric], errors="coerce").dropna().to_numpy(float)
                if not len(v):
                    continue
                ax.boxplot([v], positions=[k], widths=0.5, showfliers=False)
                ax.scatter(k + rng.uniform(-0.18, 0.18, len(v)), v, s=6, alpha=0.4, color="tab:blue", lw=0)
                iv = intervals.get(metric)
                if iv is not None:
                    ax.errorbar([k + 0.32], [iv.mean], yerr=[[iv.mean - iv.low], [iv.high - iv.mean]], fmt="o",
                                color="tab:red", ms=3, capsize=3, label="mean, 95 % CI" if k == 0 else None)
            for _, r in pub[pub["protocol"] == protocol].iterrows():
                if pd.notna(r.get(metric)):
                    ax.axhline(float(r[metric]), ls="--", lw=0.7, color="grey")
                    ax.annotate(f"{r['method']} (published)", (1.0, float(r[metric])), xycoords=("axes fraction", "data"),
                                fontsize=5, color="grey", ha="right", va="bottom")
            if not any(pd.to_numeric(r[2][metric], errors="coerce").notna().any() for r in mine):
                ax.text(0.5, 0.5, "n/a (not computed)", transform=ax.transAxes, ha="center", color="grey")
            ax.set_xticks(range(len(mine)), [r[1] for r in mine], rotation=15, fontsize=7, ha="right")
            ax.set_xlim(-0.6, len(mine) - 0.4)
            if i == 0 and j == 0:
                ax.legend(fontsize=6, loc="lower left")
    fig.suptitle("Per-scene distribution (each point is one scene's mean over its target views)", fontsize=10)
    fig.savefig(path, dpi=110)
    return path


def build_leaderboard(
    result_dirs: Sequence[str | Path], *, include_published: str = "matching", published_csv: str | Path = PUBLISHED_CSV
) -> pd.DataFrame:
    """One DataFrame (columns :data:`COLUMNS`): per protocol, the published rows then our measured ones.

    include_published: "matching" (protocols we measured, or whose resized variant we measured —
    ``re10k@64x64`` still lists ``re10k``'s published rows, its label shows the difference), "all" or
    "none".
    """
    if include_published not in INCLUDE:
        raise ILRMInputError(f"include_published must be one of {INCLUDE}, got {include_published!r}")
    measured = [_with_intervals(measured_row(d), d) for d in result_dirs]
    base = {r["protocol"].split("@")[0] for r in measured}
    if include_published == "none":
        published: list[dict[str, Any]] = []
    else:
        published = published_rows(None if include_published == "all" else sorted(base), published_csv)
    order: list[str] = []
    for r in published + measured:
        p = r["protocol"].split("@")[0]
        if p not in order:
            order.append(p)
    rows = []
    for p in order:
        rows += [r for r in published if r["protocol"] == p]
        rows += [r for r in measured if r["protocol"].split("@")[0] == p]
    return pd.DataFrame(rows, columns=COLUMNS) if rows else pd.DataFrame(columns=COLUMNS)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (pipes in cells escaped)."""
    cell = lambda x: str(x).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def protocol_notes(protocols: Sequence[str]) -> list[str]:
    """One line per protocol: its description (from ``eval/protocol_specs``)."""
    lines = []
    for p in protocols:
        name, _, size = p.partition("@")
        custom = name.endswith("[custom]")  # eval.protocols.CUSTOM_TAG: another index or other view counts
        name = name.removesuffix("[custom]")
        try:
            desc = load_benchmark(name).description
        except ILRMInputError:
            desc = "(unknown protocol)"
        extra = f" — evaluated at {size} instead (not the standard protocol)" if size else ""
        if custom:
            extra += (" — custom protocol (another index or other view counts; the run's summary.json lists "
                      "why): not comparable with the published rows")
        lines.append(f"- `{p}`: {desc}{extra}")
    return lines


def write_leaderboard(
    result_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    include_published: str = "matching",
    title: str = "Leaderboard",
) -> dict[str, Path]:
    """Write ``leaderboard.{md,csv,html}`` into ``out_dir``; returns their paths."""
    df = build_leaderboard(result_dirs, include_published=include_published)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    protocols = list(dict.fromkeys(df["protocol"].tolist()))
    legend = (
        "Rows marked **measured** were run with `python -m eval run` in this repository (the `source` column "
        "names the commit and result folder); rows marked **published** are numbers reported elsewhere "
        "(`eval/published.csv`, source per row), not reproduced here. Means: per image → per scene → over scenes; "
        "PSNR on renders clipped to [0, 1], SSIM (scikit-image, 11×11 Gaussian window) on unclipped renders, "
        "LPIPS-VGG v0.1 (`normalize=True`). Time: reconstruction per scene (feed-forward pass, or per-scene "
        "optimisation), CUDA-synchronised."
    )
    md = [f"# {title}", "", legend, "", "Protocols:", *protocol_notes(protocols), "", *section_markdown(df)]
    paths = {"md": out / "leaderboard.md", "csv": out / "leaderboard.csv", "html": out / "leaderboard.html"}
    plot = write_distribution_plot(result_dirs, out, include_published=include_published)
    if plot is not None:
        paths["plot"] = plot
        md += ["", "## Per-scene distribution", "", f"![per-scene distribution]({plot.name})", ""]
    paths["md"].write_text("\n".join(md))
    df.to_csv(paths["csv"], index=False)
    table = section_html(df) + (f"<h2>Per-scene distribution</h2><img src='{PLOT_FILE}' alt='per-scene distribution'>"
                                if plot is not None else "")
    notes = "".join(f"<li>{html.escape(line[2:])}</li>" for line in protocol_notes(protocols))
    paths["html"].write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title><style>table.leaderboard{border-collapse:collapse;font-family:sans-serif;font-size:14px}"
        "table.leaderboard td,table.leaderboard th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}"
        "</style></head><body><h1>"
        + html.escape(title)
        + f"</h1><p>{html.escape(legend)}</p><ul>{notes}</ul>"
        + table
        + "</body></html>\n"
    )
    return paths
