"""Several training runs side by side on one GPU for the same wall time, then a quick held-out check.

    python -m scripts.side_by_side --spec runs.json --out OUT --time-limit-s 330 [--eval-limit 12]

Run it from the repository root: it imports the evaluation harness (``eval/``), which is not installed.

``runs.json``: ``{"common": [train flags...], "runs": [{"name": "a", "args": [flags...], "workers": 3}, ...]}``.
Each run is ``python -m ilrm train <common> <args> --out OUT/<name> --time-limit-s T``; all start at
once, so they share the GPU and the CPUs for the same wall time (equal GPU time, up to how the
scheduler interleaves them). A run may pass ``--init-from`` to continue an earlier segment.
Afterwards each run's ``segment/`` weights are scored on the first ``--eval-limit`` scenes of
procedural-2v and procedural-8v (PSNR, SSIM; LPIPS is left to the full CPU evaluation, which has the
exact float32 backbone) and, with ``--mydesk``, by ``scripts/mydesk_validation.py``.
Writes ``OUT/summary.json`` and ``OUT/summary.md``; every run's log stays in ``OUT/<name>/log.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from eval.runner import RunOptions, run


def _launch(name: str, args: list[str], out: Path, time_limit: float, workers: int) -> subprocess.Popen:
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ilrm", "train", *args, "--out", str(run_dir), "--time-limit-s", str(time_limit),
           "--num-workers", str(workers), "--no-progress"]
    (run_dir / "command.txt").write_text(" ".join(cmd) + "\n")
    with open(run_dir / "stdout.txt", "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _train_summary(run_dir: Path) -> dict:
    recs = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in recs if r.get("kind") == "train"]
    if not train:
        return {}
    last = train[-5:]
    steady = [r["samples_per_s"] for r in train[2:]] or [train[-1]["samples_per_s"]]
    return {
        "step": train[-1]["step"],
        "elapsed_s": round(train[-1]["elapsed_s"], 1),
        "train_psnr_last": round(sum(r["psnr"] for r in last) / len(last), 3),
        "samples_per_s": round(sum(steady) / len(steady), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--time-limit-s", type=float, required=True)
    p.add_argument("--eval-limit", type=int, default=12)
    p.add_argument("--benchmarks", nargs="*", default=["procedural-2v", "procedural-8v"])
    p.add_argument("--mydesk", action="store_true", help="also run scripts/mydesk_validation.py (no LPIPS)")
    a = p.parse_args(argv)
    spec = json.loads(a.spec.read_text())
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    procs = {r["name"]: _launch(r["name"], [*spec.get("common", []), *r["args"]], a.out, a.time_limit_s, r.get("workers", 2))
             for r in spec["runs"]}
    codes = {name: proc.wait() for name, proc in procs.items()}
    print(f"training done in {time.perf_counter() - t0:.0f} s: exit codes {codes}", flush=True)
    summary: dict[str, dict] = {}
    for r in spec["runs"]:
        name, run_dir = r["name"], a.out / r["name"]
        entry = {"args": r["args"], "exit_code": codes[name], **(_train_summary(run_dir) if (run_dir / "log.jsonl").exists() else {})}
        weights = run_dir / "segment"
        if codes[name] == 0 and (weights / "config.json").is_file():
            for bench in a.benchmarks:
                res = run(RunOptions(benchmark=bench, model=str(weights), out=run_dir / "eval" / bench, limit=a.eval_limit,
                                     lpips=False, progress=False, label=name))
                m = res.summary["metrics"]
                entry[bench] = {"psnr": round(m["psnr"], 3), "ssim": round(m["ssim"], 4), "scenes": a.eval_limit}
            if a.mydesk:
                js = run_dir / "mydesk.json"
                with open(run_dir / "mydesk.txt", "w") as log:
                    subprocess.run([sys.executable, "scripts/mydesk_validation.py", "--model", str(weights), "--no-lpips",
                                    "--out", str(js)], check=False, stdout=log, stderr=subprocess.STDOUT)
                if js.is_file():
                    entry["mydesk"] = json.loads(js.read_text())
        summary[name] = entry
        print(name, json.dumps({k: v for k, v in entry.items() if k not in ("args", "mydesk")}), flush=True)
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    rows = ["| run | steps | samples/s | train PSNR | " + " | ".join(f"{b} PSNR / SSIM" for b in a.benchmarks) + " |",
            "|---|---|---|---|" + "---|" * len(a.benchmarks)]
    for name, e in summary.items():
        cells = [f"{e[b]['psnr']:.2f} / {e[b]['ssim']:.3f}" if b in e else "–" for b in a.benchmarks]
        rows.append(f"| {name} | {e.get('step', '–')} | {e.get('samples_per_s', '–')} | {e.get('train_psnr_last', '–')} | "
                    + " | ".join(cells) + " |")
    (a.out / "summary.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
