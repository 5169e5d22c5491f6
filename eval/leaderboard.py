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

import pandas as pd

from ilrm.errors import ILRMInputError

from .protocols import load_benchmark

PUBLISHED_CSV = Path(__file__).resolve().parent / "published.csv"
COLUMNS = ["protocol", "method", "kind", "PSNR", "SSIM", "LPIPS", "scenes", "time", "device", "source"]
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
    scenes = f"{sc['evaluated']} of {sc['protocol_total']}"
    if sc["evaluated"] < sc["protocol_total"]:
        scenes += " (subset)"
    if sc.get("failed"):
        scenes += f", {len(sc['failed'])} failed"
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
        })
    return rows


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
    measured = [measured_row(d) for d in result_dirs]
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
        try:
            desc = load_benchmark(name).description
        except ILRMInputError:
            desc = "(unknown protocol)"
        extra = f" — evaluated at {size} instead (not the standard protocol)" if size else ""
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
    md = [f"# {title}", "", legend, "", "Protocols:", *protocol_notes(protocols), "", to_markdown(df)]
    paths = {"md": out / "leaderboard.md", "csv": out / "leaderboard.csv", "html": out / "leaderboard.html"}
    paths["md"].write_text("\n".join(md))
    df.to_csv(paths["csv"], index=False)
    table = df.to_html(index=False, escape=True, border=0, classes="leaderboard", na_rep="–")
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
