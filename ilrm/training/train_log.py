"""The JSONL training log and the training-curves figure.

Each line of ``log.jsonl`` is one JSON object. Training records (``"kind": "train"``) hold ``step``,
``loss``, ``mse``, ``psnr`` (means over the steps since the previous record and over ranks), ``lr``,
``grad_norm``, ``samples_per_s``, ``elapsed_s`` (wall seconds since the run began, summed over
resumed segments) and ``gpu_s`` (``elapsed_s × world_size``). Evaluation records (``"kind":
"eval"``) hold ``step``, ``eval_psnr``, ``eval_mse``, ``eval_scenes``, ``elapsed_s`` and ``gpu_s``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class JsonlLog:
    """Append-only JSONL file (flushed per record). On resume, :meth:`truncate_after` drops the
    records of steps the resumed run will redo."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def truncate_after(self, step: int) -> None:
        """Keep only records with ``step <= step``."""
        if not self.path.exists():
            return
        kept = [r for r in read_log(self.path) if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        tmp.replace(self.path)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL log (a torn last line, from a killed run, is ignored)."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def plot_training_curves(
    logs: str | Path | Sequence[str | Path], out_png: str | Path, labels: Sequence[str] | None = None
) -> Path:
    """Loss and PSNR against step and against GPU seconds, one line per run (matplotlib, Agg).

    logs: one or several ``log.jsonl`` paths (e.g. iLRM and the full-attention baseline); labels:
    legend names (default: the runs' folder names). Held-out PSNR (eval records) is drawn dashed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [Path(logs)] if isinstance(logs, (str, Path)) else [Path(p) for p in logs]
    labels = list(labels) if labels is not None else [p.parent.name or p.stem for p in paths]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for path, label in zip(paths, labels):
        recs = read_log(path)
        train = [r for r in recs if r.get("kind", "train") == "train" and math.isfinite(r.get("loss", math.nan))]
        evals = [r for r in recs if r.get("kind") == "eval"]
        for col, x in enumerate(("step", "gpu_s")):
            (line,) = axes[0, col].plot([r[x] for r in train], [r["loss"] for r in train], label=label)
            axes[1, col].plot(
                [r[x] for r in train], [r["psnr"] for r in train], color=line.get_color(), label=f"{label} (train)"
            )
            if evals:
                axes[1, col].plot(
                    [r[x] for r in evals],
                    [r["eval_psnr"] for r in evals],
                    "--o",
                    markersize=3,
                    color=line.get_color(),
                    label=f"{label} (held-out)",
                )
    for col, xl in enumerate(("step", "GPU seconds")):
        axes[0, col].set_yscale("log")
        axes[0, col].set_ylabel("training loss")
        axes[1, col].set_ylabel("PSNR (dB)")
        for row in range(2):
            axes[row, col].set_xlabel(xl)
            axes[row, col].grid(alpha=0.3)
            axes[row, col].legend(fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
