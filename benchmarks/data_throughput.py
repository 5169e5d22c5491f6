"""Where procedural training data time goes: scene building (CPU), ray casting (device), the stream.

    python benchmarks/data_throughput.py [--device cuda] [--workers 12] [--batch 16] [--size 256]

Prints, for ``samples_per_scene`` k = 1 and 4: CPU seconds per sample plan on one thread, device
milliseconds to ray-cast one batch (plans grouped by scene), and samples/s of the real training stream
(DataLoader workers build plans, this process ray-casts them) with no model in the loop. Writes the
numbers as JSON to ``--json`` when given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ilrm.data.procedural import ProceduralConfig, ProceduralScenes, render_plans
from ilrm.training.data import ProceduralTrainSet, SampleLayout, build_train_stream


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batches", type=int, default=12, help="stream batches timed (after 3 warm-up batches)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    cfg = ProceduralConfig(height=a.size, width=a.size, num_context=2, num_target=4)
    layout = SampleLayout(batch_size=a.batch)
    out: dict = {"device": a.device, "workers": a.workers, "batch": a.batch, "size": a.size}
    for k in (1, 4):
        ds = ProceduralTrainSet(ProceduralScenes(cfg, "train"), layout, deferred=True, samples_per_scene=k)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in a DataLoader worker
        t = time.perf_counter()
        plans = [ds[g] for g in range(a.batch)]
        build_s = (time.perf_counter() - t) / a.batch
        torch.set_num_threads(threads)
        render_plans(plans, cfg, device=a.device)  # warm-up
        sync(a.device)
        t = time.perf_counter()
        for _ in range(3):
            render_plans(plans, cfg, device=a.device)
        sync(a.device)
        render_ms = (time.perf_counter() - t) / 3 * 1000
        stream = build_train_stream("procedural", cfg, layout, start_step=0, end_step=10**6, num_workers=a.workers,
                                    data_device=a.device, samples_per_scene=k)
        for _ in range(3):
            stream.next_batch()
        sync(a.device)
        t = time.perf_counter()
        for _ in range(a.batches):
            stream.next_batch()
        sync(a.device)
        sps = a.batch * a.batches / (time.perf_counter() - t)
        stream.close()
        out[f"k{k}"] = {"cpu_s_per_sample": round(build_s, 4), "raycast_batch_ms": round(render_ms, 1),
                        "stream_samples_per_s": round(sps, 1)}
        print(f"samples_per_scene={k}: plans {build_s:.3f} CPU s/sample (1 thread), ray-cast {render_ms:.1f} ms/batch "
              f"of {a.batch}, stream {sps:.1f} samples/s with {a.workers} workers", flush=True)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
