"""GPU benchmark: forward latency, FLOPs, achieved TFLOP/s, peak memory and render time.

Run on a CUDA machine:  python benchmarks/gpu_benchmark.py --out $OUT [--quick]
Prints a table and writes benchmark.json and PNG plots to --out. All ratios come from this one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ilrm import ILRMConfig, Views
from ilrm.inference import CUDAGraphRunner, autocast_for
from ilrm.models import build_model, count_parameters
from ilrm.models.layers import set_attention_policy


def random_views(B: int, V: int, H: int, W: int, device="cuda") -> Views:
    g = torch.Generator(device="cpu").manual_seed(0)
    K = torch.tensor([[0.9 * W, 0, W / 2], [0, 0.9 * W, H / 2], [0, 0, 1.0]]).expand(B, V, 3, 3).clone()
    c2w = torch.eye(4).expand(B, V, 4, 4).clone()
    ang = torch.linspace(-0.4, 0.4, V)
    c2w[..., 0, 0], c2w[..., 0, 2], c2w[..., 2, 0], c2w[..., 2, 2] = ang.cos(), ang.sin(), -ang.sin(), ang.cos()
    c2w[..., 0, 3] = torch.linspace(-1, 1, V)
    return Views(torch.rand(B, V, 3, H, W, generator=g), K, c2w).to(device)


def time_cuda(fn, warmup: int = 5, iters: int = 20) -> list[float]:
    """Per-call milliseconds measured with CUDA events (after warm-up)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b))
    return out


def count_flops(model, views: Views) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), autocast_for("cuda"), FlopCounterMode(display=False) as fc:
        model(views)
    return fc.get_total_flops()


def bench_case(name: str, preset: str, V: int, H: int, W: int, *, graph: bool, iters: int, render: bool) -> dict:
    cfg = ILRMConfig.preset(preset, image_height=H, image_width=W, num_views=V)
    model = build_model(cfg).cuda().eval()
    views = random_views(1, V, H, W)
    res = dict(case=name, preset=preset, arch=cfg.arch, V=V, H=H, W=W, params=count_parameters(model))
    res["flops"] = count_flops(model, views)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base_mem = torch.cuda.memory_allocated()

    def eager():
        with torch.no_grad(), autocast_for("cuda"):
            return model(views)

    eager()
    torch.cuda.synchronize()
    res["peak_mem_gb"] = (torch.cuda.max_memory_allocated() - base_mem) / 1e9
    ms = time_cuda(eager, iters=iters)
    res["eager_ms"] = statistics.median(ms)
    if graph:
        try:
            runner = CUDAGraphRunner(model, views)
            res["graph_ms"] = statistics.median(time_cuda(lambda: runner(views), iters=iters))
            del runner
        except Exception as e:  # noqa: BLE001 - report, keep benchmarking
            res["graph_error"] = f"{type(e).__name__}: {e}"[:300]
    best = min(v for k, v in res.items() if k in ("eager_ms", "graph_ms"))
    res["best_ms"] = best
    res["tflops"] = res["flops"] / (best * 1e-3) / 1e12
    if render:
        try:
            from ilrm.rendering import render as render_fn

            g = eager()
            g = g.float()
            rms = time_cuda(lambda: render_fn(g, views.intrinsics, views.c2w, H, W, far=cfg.far), iters=iters)
            res["render_ms"] = statistics.median(rms)
            res["num_gaussians"] = g.num_gaussians
        except Exception as e:  # noqa: BLE001
            res["render_error"] = f"{type(e).__name__}: {e}"[:300]
    torch.cuda.empty_cache()
    return res


def attention_backend_comparison() -> list[dict]:
    """The wide model's two attention shapes under each SDPA backend order."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    shapes = {
        "self 32v 544x960 (65280 tok)": (1, 12, 65280, 65280),
        "read 32v 544x960 (4080q x 8160k per view)": (32, 12, 4080, 8160),
        "self re10k 2v 256 (2048 tok)": (1, 12, 2048, 2048),
    }
    out = []
    for label, (B, h, Lq, Lk) in shapes.items():
        q = torch.randn(B, h, Lq, 64, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(B, h, Lk, 64, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        flops = 4 * B * h * Lq * Lk * 64
        for be in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            try:
                with sdpa_kernel([be]):
                    ms = statistics.median(time_cuda(lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v), 3, 10))
                out.append(dict(shape=label, backend=be.name, ms=ms, tflops=flops / ms / 1e9))
            except Exception as e:  # noqa: BLE001
                out.append(dict(shape=label, backend=be.name, error=str(e)[:120]))
    return out


def profile_forward(preset: str, V: int, H: int, W: int, out: Path) -> str:
    """torch.profiler table of one bf16 forward: where the GPU time goes."""
    from torch.profiler import ProfilerActivity, profile

    model = build_model(ILRMConfig.preset(preset)).cuda().eval()
    views = random_views(1, V, H, W)
    with torch.no_grad(), autocast_for("cuda"):
        for _ in range(2):
            model(views)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model(views)
            torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=60)
    (out / f"profile_{preset}_{V}v.txt").write_text(table)
    del model
    torch.cuda.empty_cache()
    return table


def plot(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for preset in sorted({r["preset"] for r in results if r["case"].startswith("sweep")}):
        for arch, style in (("ilrm", "-o"), ("full-attention", "--s")):
            rows = sorted((r for r in results if r["case"].startswith("sweep") and r["preset"] == preset and r["arch"] == arch), key=lambda r: r["V"])
            if rows:
                ax[0].plot([r["V"] for r in rows], [r["best_ms"] for r in rows], style, label=f"{arch} ({preset.removesuffix('-full')})")
                ax[1].plot([r["V"] for r in rows], [r["peak_mem_gb"] for r in rows], style, label=f"{arch} ({preset.removesuffix('-full')})")
    for a, yl in zip(ax, ("forward latency, ms (bf16)", "peak memory, GB")):
        a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_xlabel("context views V (256×256)")
        a.set_ylabel(yl)
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(f"iLRM vs full attention on {torch.cuda.get_device_name()}")
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="out")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="only the headline cases")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--profile", action="store_true", help="also profile the dl3dv-wide 32-view forward")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    info = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, cuda=torch.version.cuda, time=time.strftime("%Y-%m-%d %H:%M"))
    print(json.dumps(info), flush=True)
    results: list[dict] = []

    def run(*a, **kw):
        r = bench_case(*a, **kw)
        results.append(r)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
        (out / "benchmark.json").write_text(json.dumps(dict(info=info, results=results), indent=1))

    if args.profile:
        print(profile_forward("dl3dv-wide", 32, 544, 960, out), flush=True)
    run("re10k 2x256", "re10k", 2, 256, 256, graph=True, iters=args.iters, render=True)
    run("dl3dv-wide 32x544x960", "dl3dv-wide", 32, 544, 960, graph=False, iters=args.iters, render=True)
    if not args.quick:
        run("dl3dv-wide 16x544x960", "dl3dv-wide", 16, 544, 960, graph=False, iters=args.iters, render=True)
        run("tiny 2x256", "tiny", 2, 256, 256, graph=True, iters=args.iters, render=True)
        set_attention_policy(long="flash")
        run("dl3dv-wide 32x544x960 [flash]", "dl3dv-wide", 32, 544, 960, graph=False, iters=10, render=False)
        set_attention_policy(long=None)
        run("dl3dv-wide 32x544x960 [sdpa default]", "dl3dv-wide", 32, 544, 960, graph=False, iters=10, render=False)
        set_attention_policy()
    if not args.no_sweep:
        for preset in ("re10k", "dl3dv-wide"):
            for V in (2, 4, 8, 16, 32):
                for arch in ("", "-full"):
                    run(f"sweep {preset}{arch} V={V}", preset + arch, V, 256, 256, graph=V <= 4, iters=args.iters, render=False)
        plot(results, out)
    att = attention_backend_comparison()
    for a in att:
        print(json.dumps(a), flush=True)
    (out / "benchmark.json").write_text(json.dumps(dict(info=info, results=results, attention=att), indent=1))
    print_table(results)
    return 0


def print_table(results: list[dict]) -> None:
    print(f"\n{'case':42s} {'params':>7s} {'GFLOP':>8s} {'eager ms':>9s} {'graph ms':>9s} {'TFLOP/s':>8s} {'mem GB':>7s} {'render ms':>9s}")
    for r in results:
        g = r.get("graph_ms", float("nan"))
        print(f"{r['case']:42s} {r['params'] / 1e6:6.1f}M {r['flops'] / 1e9:8.0f} {r['eager_ms']:9.2f} {g:9.2f} {r['tflops']:8.1f} {r['peak_mem_gb']:7.2f} {r.get('render_ms', float('nan')):9.2f}")
    sweep = [r for r in results if r["case"].startswith("sweep")]
    for preset in sorted({r["preset"].removesuffix("-full") for r in sweep}):
        print(f"\nratio full-attention / iLRM ({preset} width/depth, 256²):")
        for V in sorted({r["V"] for r in sweep}):
            a = next((r for r in sweep if r["preset"] == preset and r["V"] == V), None)
            b = next((r for r in sweep if r["preset"] == preset + "-full" and r["V"] == V), None)
            if a and b:
                print(f"  V={V:3d}: latency {b['best_ms'] / a['best_ms']:6.2f}x   memory {b['peak_mem_gb'] / max(a['peak_mem_gb'], 1e-9):6.2f}x")


if __name__ == "__main__":
    sys.exit(main())
