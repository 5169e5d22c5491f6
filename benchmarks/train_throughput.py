"""Training throughput with and without the ray-casting prefetch thread, measured in one run.

    python benchmarks/train_throughput.py [--steps 80] [--workers 14] [--out runs/throughput]

Trains the same ``tiny`` run (256², batch 16, 2 context + 4 target views, 4 samples per scene) once
with ``prefetch=0`` (ray casting before each step, in the training thread) and once with
``prefetch=2`` (a background thread ray-casts on a side CUDA stream while the step runs). Prints
steady-state samples/s (log intervals after the first) and the ratio; writes a JSON summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ilrm.training import TrainConfig, train
from ilrm.training.train_log import read_log


def measure(prefetch: int, a: argparse.Namespace, extra: dict) -> dict:
    out = a.out / f"prefetch{prefetch}"
    cfg = TrainConfig(
        preset=a.preset, height=256, width=256, batch_size=16, num_target=4, samples_per_scene=4,
        num_workers=a.workers, steps=a.steps, warmup_steps=10, log_every=10, checkpoint_every=0,
        prefetch=prefetch, out_dir=str(out), **extra,
    )
    if out.exists():
        import shutil

        shutil.rmtree(out)
    res = train(cfg, progress=False)
    recs = [r for r in read_log(out / "log.jsonl") if r.get("kind") == "train"][1:]  # drop the start-up interval
    sps = sum(r["samples_per_s"] for r in recs) / len(recs)
    return {"prefetch": prefetch, "samples_per_s": round(sps, 2), "steps": res.step,
            "final_train_psnr": round(recs[-1]["psnr"], 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--workers", type=int, default=14)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--recipe", action="store_true", help="with the generalisation recipe (views 2-8, 256x448, augmentation)")
    p.add_argument("--out", type=Path, default=Path("runs/throughput"))
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    extra = {}
    if a.recipe:
        extra = dict(view_choices=(2, 3, 4, 6, 8), sizes=("256x256", "256x448"), camera_aug=True, photometric_aug=True)
    rows = [measure(0, a, extra), measure(2, a, extra)]
    ratio = rows[1]["samples_per_s"] / rows[0]["samples_per_s"]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    result = {"device": device, "preset": a.preset, "recipe": a.recipe, "runs": rows, "speedup": round(ratio, 3)}
    print(json.dumps(result, indent=1))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
