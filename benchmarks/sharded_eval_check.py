"""Sharded evaluation check: ``python -m eval run`` on 1 GPU vs under ``torchrun`` on N GPUs.

    python benchmarks/sharded_eval_check.py --model DIR --out OUT [--benchmark procedural-2v] [--gpus 2]

Both runs score the same scenes with the same options; the check compares the merged per-scene table
of the sharded run with the single-GPU one (largest absolute difference of PSNR / SSIM / LPIPS, and
whether the scene lists match) and reports both wall times (process start included, as a user sees
it). Writes ``sharded_eval_check.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("psnr", "ssim", "lpips")


def run_eval(gpus: int, args: list[str], out: Path, log: Path) -> tuple[int, float]:
    """One ``eval run`` into ``out``; returns (exit code, wall seconds)."""
    shutil.rmtree(out, ignore_errors=True)
    head = [sys.executable, "-m", "eval", "run"]
    if gpus > 1:
        head = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus), "-m", "eval", "run"]
    t = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.call([*head, *args, "--out", str(out), "--no-progress"], stdout=f, stderr=subprocess.STDOUT,
                             cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return rc, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("runs/sharded_eval"))
    p.add_argument("--benchmark", default="procedural-2v")
    p.add_argument("--gpus", type=int, default=2)
    p.add_argument("--extra", default="", help="more `eval run` flags, e.g. '--limit 20 --refine-steps 50'")
    p.add_argument("--repeat-single", action="store_true",
                   help="run the single-GPU evaluation twice and report their differences too (run-to-run "
                        "noise of non-deterministic GPU kernels, e.g. refinement's backward pass)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    args = ["--benchmark", a.benchmark, "--model", a.model, *shlex.split(a.extra)]
    rc1, t1 = run_eval(1, args, a.work / "single", a.out / "eval_single.log")
    rcn, tn = run_eval(a.gpus, args, a.work / "sharded", a.out / "eval_sharded.log")
    report: dict = {"benchmark": a.benchmark, "model": a.model, "extra": a.extra, "gpus": a.gpus,
                    "single": {"rc": rc1, "wall_s": round(t1, 1)}, "sharded": {"rc": rcn, "wall_s": round(tn, 1)},
                    "speedup": round(t1 / tn, 3) if tn > 0 else None}
    if rc1 == 0 and rcn == 0:
        s = pd.read_csv(a.work / "single" / "per_scene.csv").set_index("scene")
        d = pd.read_csv(a.work / "sharded" / "per_scene.csv").set_index("scene")
        report["same_scenes"] = list(s.index) == list(d.index)
        report["scenes"] = len(s)
        report["max_abs_diff"] = {
            m: float((s[m] - d.loc[s.index, m]).abs().max()) for m in METRICS if m in s and m in d
        }
        ms = json.loads((a.work / "single" / "summary.json").read_text())["metrics"]
        md = json.loads((a.work / "sharded" / "summary.json").read_text())["metrics"]
        report["summary_single"], report["summary_sharded"] = ms, md
    if a.repeat_single and rc1 == 0:
        rc2, t2 = run_eval(1, args, a.work / "single_again", a.out / "eval_single_again.log")
        report["single_again"] = {"rc": rc2, "wall_s": round(t2, 1)}
        if rc2 == 0:
            s = pd.read_csv(a.work / "single" / "per_scene.csv").set_index("scene")
            r = pd.read_csv(a.work / "single_again" / "per_scene.csv").set_index("scene")
            report["single_vs_single_max_abs_diff"] = {
                m: float((s[m] - r.loc[s.index, m]).abs().max()) for m in METRICS if m in s and m in r
            }
    (a.out / "sharded_eval_check.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report, indent=1, default=str))
    return 0 if rc1 == 0 and rcn == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
