"""Statistics over scenes: a seeded bootstrap interval for each mean (PSNR / SSIM / LPIPS).

The means of the result tables are means over scenes (per image -> per scene -> over scenes), so the
unit that is resampled is the scene. :func:`bootstrap_ci` draws ``resamples`` samples of the scenes with
replacement (``numpy.random.default_rng(seed)``, so the interval is the same on every machine for the
same values) and returns the percentile interval of the resampled means. :func:`metric_intervals` does
that for every metric of a run's "ok" per-scene records; the run summary and the leaderboard both call it,
so their intervals agree.

The percentile interval is the plain one (Efron & Tibshirani, ch. 13). Its coverage is close to the
nominal level for the scene counts of the protocols (140 DL3DV scenes, 6,474 RE10K scenes); with a
handful of scenes (a ``--limit`` run) it is too narrow, which the tables cannot hide: they print ``n``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Defaults of every interval the harness reports.
LEVEL = 0.95
RESAMPLES = 10_000
SEED = 0
METRICS = ("psnr", "ssim", "lpips")
#: Resampled means are computed this many at a time (bounds memory: chunk × n indices).
_CHUNK_ELEMENTS = 8_000_000


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` scenes and its bootstrap interval ``[low, high]`` at ``level``."""

    mean: float
    low: float
    high: float
    n: int
    level: float = LEVEL
    resamples: int = RESAMPLES
    seed: int = SEED
    method: str = "percentile bootstrap over scenes"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self, digits: int) -> str:
        """``[low, high]`` with ``digits`` decimals (what the tables show)."""
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_means(values: Sequence[float] | np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``resamples`` means of ``values`` resampled with replacement (float64, seeded)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("bootstrap of an empty sample")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    n = x.size
    chunk = max(1, _CHUNK_ELEMENTS // n)
    out = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        out[start : start + k] = x[rng.integers(0, n, size=(k, n))].mean(axis=1)
    return out


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` (one value per scene).

    Raises ``ValueError`` for an empty sample, non-finite values or a level outside (0, 1). One value
    gives the degenerate interval [v, v].
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("bootstrap of an empty sample")
    if not np.isfinite(x).all():
        raise ValueError("bootstrap of non-finite values (cap +inf PSNR before averaging)")
    means = bootstrap_means(x, resamples=resamples, seed=seed)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    mean = float(x.mean())
    # quantiles of a constant sample can differ from it in the last bit; keep low <= mean <= high
    return Interval(mean=mean, low=min(float(low), mean), high=max(float(high), mean), n=int(x.size),
                    level=level, resamples=resamples, seed=seed)


def metric_intervals(
    records: Iterable[Mapping[str, Any]],
    metrics: Sequence[str] = METRICS,
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, dict[str, Any] | None]:
    """``{metric: Interval.to_dict() or None}`` over per-scene records (dicts with the metric keys).

    Only records with ``status == "ok"`` (or no status) count. A metric is None when any counted
    record lacks it (e.g. LPIPS not computed), as the run summary's mean is then "n/a" too. The
    intervals use one seed per metric (``seed``), so they do not depend on which metrics are asked for.
    """
    ok = [r for r in records if r.get("status", "ok") == "ok"]
    out: dict[str, dict[str, Any] | None] = {}
    for m in metrics:
        vals = [r.get(m) for r in ok]
        if not vals or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals):
            out[m] = None
            continue
        out[m] = bootstrap_ci(vals, level=level, resamples=resamples, seed=seed).to_dict()
    return out


def interval_from_dict(d: Mapping[str, Any] | None) -> Interval | None:
    """The :class:`Interval` of a ``to_dict()`` (as stored in ``summary.json``), or None."""
    if not d:
        return None
    keys = Interval.__dataclass_fields__
    return Interval(**{k: v for k, v in d.items() if k in keys})


__all__ = ["LEVEL", "METRICS", "RESAMPLES", "SEED", "Interval", "bootstrap_ci", "bootstrap_means",
           "interval_from_dict", "metric_intervals"]
