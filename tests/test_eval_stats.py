"""eval/stats.py: the bootstrap interval of a mean over scenes (known cases, coverage on synthetic data)."""

from __future__ import annotations

import numpy as np
import pytest

from eval.stats import Interval, bootstrap_ci, bootstrap_means, interval_from_dict, metric_intervals


def test_known_case_two_values():
    # resampling [0, 1] twice gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the central 95 % is [0, 1]
    ci = bootstrap_ci([0.0, 1.0])
    assert (ci.low, ci.mean, ci.high, ci.n) == (0.0, 0.5, 1.0, 2)
    means = bootstrap_means([0.0, 1.0], resamples=20_000)
    assert set(np.unique(means)) == {0.0, 0.5, 1.0}
    assert np.mean(means == 0.5) == pytest.approx(0.5, abs=0.01)


def test_constant_and_single_values_give_a_point():
    assert bootstrap_ci([27.5] * 40).format(2) == "[27.50, 27.50]"
    ci = bootstrap_ci([3.0])
    assert ci.low == ci.high == ci.mean == 3.0


def test_large_sample_matches_the_normal_interval_and_scipy():
    x = np.random.default_rng(1).normal(26.0, 3.0, size=2000)
    ci = bootstrap_ci(x)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(x.size)  # CLT: the bootstrap interval tends to mean ± 1.96 s/√n
    assert ci.low == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert ci.high == pytest.approx(x.mean() + half, abs=0.1 * half)
    scipy_stats = pytest.importorskip("scipy.stats")
    ref = scipy_stats.bootstrap((x,), np.mean, n_resamples=10_000, method="percentile", confidence_level=0.95,
                                random_state=np.random.default_rng(7)).confidence_interval
    assert ci.low == pytest.approx(ref.low, abs=0.05 * half) and ci.high == pytest.approx(ref.high, abs=0.05 * half)


def test_seeded_and_chunking_does_not_change_the_result(monkeypatch):
    x = np.random.default_rng(2).uniform(0.7, 0.95, size=300)
    a, b = bootstrap_ci(x, seed=5), bootstrap_ci(x, seed=5)
    assert a == b and bootstrap_ci(x, seed=6) != a
    import eval.stats as stats

    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 1000)  # resampled in many small chunks
    assert bootstrap_ci(x, seed=5) == a


def test_coverage_is_near_nominal_on_synthetic_data():
    """Draw many samples from known distributions: the interval covers the true mean ~95 % of the time."""
    rng = np.random.default_rng(123)
    for draw, true_mean, n in [
        (lambda k: rng.normal(25.0, 4.0, size=k), 25.0, 80),       # PSNR-like
        (lambda k: rng.exponential(0.15, size=k), 0.15, 140),      # skewed, LPIPS-like, DL3DV's 140 scenes
    ]:
        trials = 500
        hits = sum(_covers(draw(n), true_mean, seed=t) for t in range(trials))
        rate = hits / trials
        assert 0.92 <= rate <= 0.975, rate  # binomial s.e. at 500 trials ≈ 0.01


def _covers(x: np.ndarray, true_mean: float, seed: int) -> bool:
    ci = bootstrap_ci(x, resamples=1000, seed=seed)
    return ci.low <= true_mean <= ci.high


def test_metric_intervals_over_records():
    recs = [{"scene": f"s{i}", "status": "ok", "psnr": 20.0 + i, "ssim": 0.8, "lpips": None} for i in range(5)]
    recs.append({"scene": "bad", "status": "failed", "psnr": 1e9})
    out = metric_intervals(recs)
    assert out["lpips"] is None and out["ssim"]["low"] == out["ssim"]["high"] == pytest.approx(0.8)
    psnr = interval_from_dict(out["psnr"])
    assert isinstance(psnr, Interval) and psnr.n == 5 and psnr.mean == 22.0 and 20.0 <= psnr.low < 22.0 < psnr.high <= 24.0
    assert psnr.resamples == 10_000 and psnr.level == 0.95
    assert metric_intervals([]) == {"psnr": None, "ssim": None, "lpips": None}


def test_bad_input():
    for bad in ([], [1.0, float("inf")]):
        with pytest.raises(ValueError):
            bootstrap_ci(bad)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], level=1.5)


# ---- in the leaderboard: interval columns, measured and published apart, the per-scene plot -----------------


def test_leaderboard_intervals_sections_and_plot(tmp_path, monkeypatch):
    import json

    import pandas as pd

    from eval.leaderboard import build_leaderboard, run_intervals, write_leaderboard
    from eval.runner import RunOptions, run

    monkeypatch.setenv("ILRM_LPIPS_FETCH", "0")
    out = tmp_path / "run"
    run(RunOptions(benchmark="procedural-2v", model="copy-nearest", out=out, limit=6, lpips=False,
                   image_size=(32, 32), progress=False, eval_home=tmp_path / "home"))
    ok = pd.read_csv(out / "per_scene.csv").query("status == 'ok'")
    expected = bootstrap_ci(ok["psnr"].to_numpy())
    assert run_intervals(out)["psnr"] == expected and run_intervals(out)["lpips"] is None

    paths = write_leaderboard([out], tmp_path / "lb", include_published="all")
    df = pd.read_csv(paths["csv"])
    measured = df[df.kind == "measured"].iloc[0]
    assert measured["PSNR 95% CI"] == expected.format(2) and measured["LPIPS 95% CI"] == "–"
    assert measured["3DGS output"].startswith("no") and (df[df.kind == "published"]["PSNR 95% CI"] == "–").all()
    md = paths["md"].read_text()
    assert md.index("## Measured here") < md.index("## Published (not measured here)")
    measured_part = md[md.index("## Measured here"):md.index("## Published")]
    assert "| published |" not in measured_part and "| measured |" in measured_part
    assert "python -m eval reproduce re10k --model authors" in md and "LVSM" in md
    assert paths["plot"].name == "per_scene_distribution.png" and paths["plot"].stat().st_size > 1000
    assert "per_scene_distribution.png" in md and "per_scene_distribution.png" in paths["html"].read_text()

    # a summary that carries the run's intervals (metrics.intervals) is what the table shows
    s = json.loads((out / "summary.json").read_text())
    s["metrics"]["intervals"] = {"psnr": {**expected.to_dict(), "low": 1.0, "high": 99.0}, "ssim": None, "lpips": None}
    (out / "summary.json").write_text(json.dumps(s))
    assert build_leaderboard([out], include_published="none")["PSNR 95% CI"].iloc[0] == "[1.00, 99.00]"
