"""Training throughput, measured in one run: variants of the same training run side by side in time.

    python -m benchmarks.train_throughput [--preset re10k] [--batch 8] [--steps 40] \
        [--variants eager,prefetch0] [--workers 14] [--out runs/throughput] [--json FILE]

Each variant trains the same run from the same seed (procedural 256², 2 context + 4 target views,
4 samples per scene, prefetch 2): ``eager`` (the default) and ``prefetch0`` (ray casting inline in the
training thread). A ``compile`` variant (each block through torch.compile, forward and backward) ran at
commit 77d8c9b and did not pay (69.2 → 60.4 samples/s, docs/results/gpu_benchmark.md), so it was removed
with the trainer's switch; ``benchmarks.gpu_benchmark --only train_step`` still times a compiled step. Prints steady-state samples/s (log intervals after the first ``--skip`` steps,
which hold compilation and warm-up), each variant's ratio to the first, and the largest per-step loss
difference from the first variant over the first ``--compare`` steps (the same samples are drawn at
each step, so the difference is numerics: bf16 rounding and kernel order).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from ilrm.training import TrainConfig, train
from ilrm.training.train_log import read_log

VARIANTS = {"eager": {}, "prefetch0": {"prefetch": 0}}


def measure(name: str, a: argparse.Namespace, extra: dict) -> dict:
    out = a.out / name
    cfg = TrainConfig(
        preset=a.preset, height=256, width=256, batch_size=a.batch, num_target=4, samples_per_scene=4,
        num_workers=a.workers, steps=a.steps, warmup_steps=5, log_every=1, checkpoint_every=0,
        out_dir=str(out), seed=0, **{**extra, **VARIANTS[name]},
    )
    if out.exists():
        shutil.rmtree(out)
    res = train(cfg, progress=False)
    recs = [r for r in read_log(out / "log.jsonl") if r.get("kind") == "train"]
    timed = [r for r in recs if r["step"] > a.skip]
    # samples/s over the timed steps: samples / GPU-process seconds between the first and last of them
    span = timed[-1]["elapsed_s"] - timed[0]["elapsed_s"]
    sps = a.batch * (len(timed) - 1) / span if span > 0 else float("nan")
    return {"variant": name, "samples_per_s": round(sps, 2), "steps": res.step,
            "losses": [r["loss"] for r in recs], "final_train_psnr": round(recs[-1]["psnr"], 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip", type=int, default=10, help="steps left out of the timing (compilation, warm-up)")
    p.add_argument("--compare", type=int, default=10, help="first steps whose losses are compared")
    p.add_argument("--workers", type=int, default=14)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--preset", default="re10k")
    p.add_argument("--variants", default="eager,prefetch0")
    p.add_argument("--recipe", action="store_true", help="with the generalisation recipe (views 2-8, 256x448, augmentation)")
    p.add_argument("--out", type=Path, default=Path("runs/throughput"))
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    names = a.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    extra = {}
    if a.recipe:
        extra = dict(view_choices=(2, 3, 4, 6, 8), sizes=("256x256", "256x448"), camera_aug=True, photometric_aug=True)
    rows = [measure(n, a, extra) for n in names]
    base = rows[0]
    for r in rows:
        r["ratio"] = round(r["samples_per_s"] / base["samples_per_s"], 3)
        n = min(a.compare, len(r["losses"]), len(base["losses"]))
        diffs = [abs(x - y) for x, y in zip(r["losses"][:n], base["losses"][:n])]
        r["max_loss_diff_first_steps"] = max(diffs) if diffs else None
        r["max_rel_loss_diff_first_steps"] = max(d / abs(y) for d, y in zip(diffs, base["losses"][:n])) if diffs else None
        r["loss_first_steps"] = [round(x, 6) for x in r["losses"][:n]]
    for r in rows:
        del r["losses"]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    result = {"device": device, "preset": a.preset, "batch": a.batch, "steps": a.steps, "timed_after_step": a.skip,
              "recipe": a.recipe, "runs": rows}
    print(json.dumps(result, indent=1))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
