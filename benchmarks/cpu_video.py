"""CPU fly-through timing: the fast CPU rasterizer against the exact torch reference, same run.

    python -m benchmarks.cpu_video [--frames 30] [--ref-frames 2] [--threads N] [--out out/cpu_video]

Gaussians: the shipped model (checkpoints/ilrm-tiny-procedural) on 8 views (256×256) of the demo's
procedural scene (seed of demo/examples/procedural, trajectory frames 130..151) → 8·128·128 = 131072
Gaussians, cached in ``--out``. Camera path: the fly-through along those views (ilrm.camera_paths),
rendered at 256×448 (same focal length, wider). Prints the fast path's time for all frames, the
reference's time for ``--ref-frames`` of them (it needs tens of seconds per frame) and the
parity PSNR on those frames.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ilrm.camera_paths import fly_through, order_poses
from ilrm.gaussians import Gaussians
from ilrm.rendering import render


def make_gaussians(cache: Path) -> dict:
    if cache.exists():
        return torch.load(cache)
    from demo.make_examples import SEED
    from ilrm.checkpoints import SHIPPED_CHECKPOINT, load_model
    from ilrm.data.procedural import ProceduralConfig, make_scene, render_scene
    from ilrm.pipeline import Reconstructor

    scene = make_scene(SEED, ProceduralConfig(height=256, width=256))
    idx = list(range(130, 154, 3))
    K = scene.intrinsics(256, 256).expand(len(idx), 3, 3)
    images, _ = render_scene(scene, K, scene.c2w[idx], 256, 256, device="cpu", supersample=1)
    rec = Reconstructor(load_model(SHIPPED_CHECKPOINT), device="cpu")
    prep = rec.prepare(images, K, scene.c2w[idx])
    g = rec.predict(prep).gaussians
    data = {"g": {k: getattr(g, k) for k in ("means", "quats", "scales", "opacities", "sh")},
            "K": prep.views.intrinsics[0], "c2w": prep.views.c2w[0], "near": rec.config.near, "far": rec.config.far}
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, cache)
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--ref-frames", type=int, default=2, help="frames rendered by the reference (0: skip)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats of the fast path (median)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=448)
    ap.add_argument("--out", default="out/cpu_video")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from ilrm.rendering.cpu_fast import available, unavailable_reason

    t = time.perf_counter()
    ok = available()  # builds the kernel on first use (cached afterwards)
    build_s = time.perf_counter() - t
    if not ok:
        print(f"fast CPU rasterizer unavailable: {unavailable_reason()}")
        return 1
    d = make_gaussians(Path(a.out) / "gaussians_8views.pt")
    g = Gaussians(**d["g"])
    H, W = a.height, a.width
    K = d["K"][0].clone()
    K[0, 2], K[1, 2] = W / 2, H / 2
    c2w = d["c2w"].double()
    poses = fly_through(c2w[order_poses(c2w)], a.frames).float()
    Ks = K.expand(1, a.frames, 3, 3)
    kw = dict(near=d["near"], far=d["far"])
    times = []
    with torch.no_grad():
        for _ in range(a.repeats):
            t = time.perf_counter()
            fast = torch.cat([render(g, Ks[:, i : i + 2], poses[None, i : i + 2], H, W, backend="cpu_fast", **kw)
                              for i in range(0, a.frames, 2)], dim=1)  # batches of 2, as the video does on CPU
            times.append(time.perf_counter() - t)
    result = {"gaussians": g.means.shape[1], "frames": a.frames, "size": f"{H}x{W}", "threads": torch.get_num_threads(),
              "kernel_build_s": round(build_s, 2), "fast_s": [round(x, 3) for x in times],
              "fast_median_s": round(statistics.median(times), 3)}
    if a.ref_frames > 0:
        sel = torch.linspace(0, a.frames - 1, a.ref_frames).round().long()
        with torch.no_grad():
            t = time.perf_counter()
            ref = render(g, Ks[:, sel], poses[None, sel], H, W, backend="torch", **kw)
            ref_s = time.perf_counter() - t
        f, r = fast[:, sel].clamp(0, 1).double(), ref.clamp(0, 1).double()
        mse = ((f - r) ** 2).mean(dim=(0, 2, 3, 4))
        psnrs = [float("inf") if m == 0 else float(-10 * torch.log10(m)) for m in mse]
        result.update({"reference_frames": sel.tolist(), "reference_s": round(ref_s, 2),
                       "reference_per_frame_s": round(ref_s / len(sel), 2),
                       "reference_30_frames_estimate_s": round(ref_s / len(sel) * a.frames, 1),
                       "speedup": round(ref_s / len(sel) * a.frames / statistics.median(times), 1),
                       "parity_psnr_db": [round(p, 1) for p in psnrs],
                       "max_abs_diff": float((f - r).abs().max())})
    print(json.dumps(result, indent=1))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu_video.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
