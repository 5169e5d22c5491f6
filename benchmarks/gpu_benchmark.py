"""GPU benchmark: forward latency, FLOPs, achieved TFLOP/s, peak memory and render time.

Run on a CUDA machine:  python benchmarks/gpu_benchmark.py --out $OUT [--only attention,re10k,wide,...]
Prints one JSON line per measurement and writes gpu_benchmark.json to --out; every ratio comes from
this one run (issue 16's cases: re10k 2 views, dl3dv-wide 16/32/64 views with each fast path, render,
fast-path quality, reconstruct end to end by stage). The older sweep/plot helpers stay importable.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from ilrm import ILRMConfig, Views
from ilrm.inference import CUDAGraphRunner, autocast_for
from ilrm.models import build_model, count_parameters
from ilrm.models.layers import set_fast_paths


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
            res["graph_ms"] = statistics.median(time_cuda(lambda: runner(views), iters=iters))  # noqa: F821 - runner is bound above; del comes after the call
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


# ---- issue 16: every case in one run ------------------------------------------------------------

VARIANTS = {  # name → fast-path switches (ilrm.models.layers.set_fast_paths); the first three are timed everywhere
    "plain": dict(fused_qk_norm=False),
    "fused_norm": dict(fused_qk_norm=True),
    "fp8": dict(fused_qk_norm=True, fp8_attention=True),  # v centred (the default of set_fast_paths)
}
FP8_VARIANTS = {  # FP8 scope and v centring: timed at 32 views and in the quality cases
    "fp8_uncentred": dict(fused_qk_norm=True, fp8_attention=True, fp8_center_v=False),
    "fp8_self": dict(fused_qk_norm=True, fp8_attention="self"),
    "fp8_read": dict(fused_qk_norm=True, fp8_attention="read"),
    "fp8_centred_k": dict(fused_qk_norm=True, fp8_attention=True, fp8_center_k=True),
    "fp8_self_centred_k": dict(fused_qk_norm=True, fp8_attention="self", fp8_center_k=True),
}


def graph_replay_ms(model, views: Views, warmup: int = 10, iters: int = 100) -> float:
    """Median ms of one replay of the model's forward captured as a CUDA graph (current fast paths)."""
    runner = CUDAGraphRunner(model, views)
    return statistics.median(time_cuda(lambda: runner(views), warmup, iters))


def forward_fn(model, views):
    def f():
        with torch.no_grad(), autocast_for("cuda"):
            return model(views)

    return f


def peak_and_time(fn, warmup: int, iters: int) -> tuple[float, float]:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 1e9
    return statistics.median(time_cuda(fn, warmup, iters)), peak


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float().clamp(0, 1) - b.float().clamp(0, 1)).square().mean().item()
    return float("inf") if mse == 0 else -10 * math.log10(mse)


def render_views(g, views: Views, far: float, near: float = 0.01):
    from ilrm.rendering import render as render_fn

    return render_fn(g.float(), views.intrinsics, views.c2w, views.height, views.width, near=near, far=far)


def wide_cases(R: dict, log) -> None:
    """dl3dv-wide at 16/32/64 views 544×960: each variant eager (+ CUDA graph, compile at 32)."""
    cfg = ILRMConfig.preset("dl3dv-wide")
    model = build_model(cfg).cuda().eval()
    for V, iters in ((16, 10), (32, 10), (64, 5)):
        views = random_views(1, V, 544, 960)
        row = dict(case=f"dl3dv-wide {V}x544x960", V=V)
        set_fast_paths(**VARIANTS["plain"])
        try:
            row["gflop"] = count_flops(model, views) / 1e9
        except Exception as e:  # noqa: BLE001
            row["flop_error"] = str(e)[:200]
        for name, sw in VARIANTS.items():
            set_fast_paths(**sw)
            try:
                ms, peak = peak_and_time(forward_fn(model, views), 2, iters)
                row[f"{name}_ms"], row[f"{name}_peak_gb"] = ms, peak
            except Exception as e:  # noqa: BLE001
                row[f"{name}_error"] = f"{type(e).__name__}: {e}"[:300]
            log(row)
        if V == 32:
            for name, sw in FP8_VARIANTS.items():
                set_fast_paths(**sw)
                try:
                    row[f"{name}_ms"] = peak_and_time(forward_fn(model, views), 2, iters)[0]
                except Exception as e:  # noqa: BLE001
                    row[f"{name}_error"] = f"{type(e).__name__}: {e}"[:300]
                log(row)
            for name in ("fused_norm", "fp8"):
                set_fast_paths(**VARIANTS[name])
                try:
                    runner = CUDAGraphRunner(model, views, warmup=2)
                    row[f"{name}_graph_ms"] = statistics.median(time_cuda(lambda: runner(views), 2, iters))  # noqa: F821 - runner is bound above; del comes after the call
                    del runner
                except Exception as e:  # noqa: BLE001
                    row[f"{name}_graph_error"] = f"{type(e).__name__}: {e}"[:300]
                log(row)
            # rendering 32 views of the predicted Gaussians
            set_fast_paths(**VARIANTS["plain"])
            try:
                g = forward_fn(model, views)().float()
                row["render_32v_ms"] = statistics.median(time_cuda(lambda: render_views(g, views, cfg.far), 3, iters))
                row["num_gaussians"] = g.num_gaussians
                del g
            except Exception as e:  # noqa: BLE001
                row["render_error"] = f"{type(e).__name__}: {e}"[:300]
            log(row)
        R["wide"].append(row)
        torch.cuda.empty_cache()
    set_fast_paths(**VARIANTS["plain"])
    del model
    torch.cuda.empty_cache()


def wide_compile_case(R: dict, log) -> None:
    """torch.compile of the wide model's blocks (fast paths off: the compiler fuses the norms)."""
    from ilrm.inference import compile_blocks

    cfg = ILRMConfig.preset("dl3dv-wide")
    model = build_model(cfg).cuda().eval()
    views = random_views(1, 32, 544, 960)
    set_fast_paths(**VARIANTS["plain"])
    row = dict(case="dl3dv-wide 32x544x960 compile")
    try:
        ms_plain, _ = peak_and_time(forward_fn(model, views), 2, 8)
        compile_blocks(model)
        t0 = time.perf_counter()
        forward_fn(model, views)()
        torch.cuda.synchronize()
        row["compile_s"] = time.perf_counter() - t0
        ms, peak = peak_and_time(forward_fn(model, views), 2, 8)
        row.update(plain_ms=ms_plain, compiled_ms=ms, compiled_peak_gb=peak)
        log(row)
        for name, sw in {"fused_norm": VARIANTS["fused_norm"], "fp8": VARIANTS["fp8"], "fp8_read": FP8_VARIANTS["fp8_read"],
                         "fp8_centred_k": FP8_VARIANTS["fp8_centred_k"]}.items():
            set_fast_paths(**sw)
            forward_fn(model, views)()
            row[f"compiled_{name}_ms"], _ = peak_and_time(forward_fn(model, views), 2, 8)
            log(row)
        set_fast_paths(**VARIANTS["fused_norm"])
        runner = CUDAGraphRunner(model, views, warmup=2)
        row["compiled_fused_norm_graph_ms"] = statistics.median(time_cuda(lambda: runner(views), 2, 8))  # noqa: F821
        del runner
    except Exception as e:  # noqa: BLE001
        row["compile_error"] = f"{type(e).__name__}: {e}"[:300]
    R["wide_compile"] = row
    log(row)
    del model
    torch.cuda.empty_cache()


def re10k_cases(R: dict, log, do_compile: bool) -> None:
    cfg = ILRMConfig.preset("re10k")
    model = build_model(cfg).cuda().eval()
    views = random_views(1, 2, 256, 256)
    row = dict(case="re10k 2x256")
    for name, sw in VARIANTS.items():
        set_fast_paths(**sw)
        try:
            row[f"{name}_eager_ms"] = statistics.median(time_cuda(forward_fn(model, views), 5, 30))
            runner = CUDAGraphRunner(model, views)
            row[f"{name}_graph_ms"] = statistics.median(time_cuda(lambda: runner(views), 10, 100))  # noqa: F821 - runner is bound above; del comes after the call
            del runner
        except Exception as e:  # noqa: BLE001
            row[f"{name}_error"] = f"{type(e).__name__}: {e}"[:300]
        log(row)
    set_fast_paths(**VARIANTS["plain"])
    if do_compile:
        from ilrm.inference import compile_blocks

        try:
            compile_blocks(model)
            t0 = time.perf_counter()
            forward_fn(model, views)()
            torch.cuda.synchronize()
            row["compile_s"] = time.perf_counter() - t0
            row["compile_eager_ms"] = statistics.median(time_cuda(forward_fn(model, views), 5, 30))
            runner = CUDAGraphRunner(model, views)
            row["compile_graph_ms"] = statistics.median(time_cuda(lambda: runner(views), 10, 100))  # noqa: F821 - runner is bound above; del comes after the call
            del runner
            set_fast_paths(**VARIANTS["fused_norm"])
            runner = CUDAGraphRunner(model, views)
            row["compile_fused_norm_graph_ms"] = statistics.median(time_cuda(lambda: runner(views), 10, 100))  # noqa: F821 - runner is bound above; del comes after the call
            del runner
            set_fast_paths(**VARIANTS["plain"])
        except Exception as e:  # noqa: BLE001
            row["compile_error"] = f"{type(e).__name__}: {e}"[:300]
        log(row)
    R["re10k"] = row
    del model
    torch.cuda.empty_cache()


def re10k_bf16_weights(R: dict, log) -> None:
    """re10k 2 views with the Linear weights stored in bf16 (``ilrm.inference.linear_weights_to``):
    autocast's per-call weight casts disappear; the output must be bit-identical."""
    from ilrm.inference import compile_blocks, linear_weights_to

    model = build_model(ILRMConfig.preset("re10k")).cuda().eval()
    views = random_views(1, 2, 256, 256)
    set_fast_paths(**VARIANTS["fused_norm"])
    row = dict(case="re10k 2x256 bf16 Linear weights")
    try:
        ref = forward_fn(model, views)().means.clone()
        row["fp32_weights_graph_ms"] = graph_replay_ms(model, views)
        linear_weights_to(model, torch.bfloat16)
        out = forward_fn(model, views)().means
        row["max_abs_diff_vs_fp32_weights"] = (out - ref).abs().max().item()
        row["bf16_weights_eager_ms"] = statistics.median(time_cuda(forward_fn(model, views), 5, 30))
        row["bf16_weights_graph_ms"] = graph_replay_ms(model, views)
        log(row)
        compile_blocks(model)
        forward_fn(model, views)()
        for name in ("plain", "fused_norm"):
            set_fast_paths(**VARIANTS[name])
            row[f"bf16_weights_compile_{name}_graph_ms"] = graph_replay_ms(model, views)
            log(row)
    except Exception as e:  # noqa: BLE001
        row["error"] = f"{type(e).__name__}: {e}"[:300]
    # the same with Triton GEMM templates autotuned against cuBLAS (their epilogues fuse what follows)
    try:
        torch._dynamo.reset()
        model = linear_weights_to(build_model(ILRMConfig.preset("re10k")).cuda().eval(), torch.bfloat16)
        compile_blocks(model, mode="max-autotune-no-cudagraphs")
        set_fast_paths(**VARIANTS["fused_norm"])
        t0 = time.perf_counter()
        forward_fn(model, views)()
        torch.cuda.synchronize()
        row["autotune_compile_s"] = time.perf_counter() - t0
        row["bf16_weights_autotune_fused_norm_graph_ms"] = graph_replay_ms(model, views)
    except Exception as e:  # noqa: BLE001
        row["autotune_error"] = f"{type(e).__name__}: {e}"[:300]
    set_fast_paths(**VARIANTS["plain"])
    R["re10k_bf16_weights"] = row
    log(row)
    del model
    torch.cuda.empty_cache()


def train_step_isolated(R: dict, log) -> None:
    """One re10k training step (batch 8, 256², 2 + 4 views) on a fixed batch already on the GPU, eager vs
    compiled blocks: the model's own training throughput, without the data pipeline."""
    from ilrm.inference import compile_blocks
    from ilrm.training import TrainConfig
    from ilrm.training.trainer import Trainer

    rows = {}
    for name in ("eager", "compile"):
        try:
            cfg = TrainConfig(preset="re10k", batch_size=8, num_target=4, steps=1000, warmup_steps=5, device="cuda")
            tr = Trainer(cfg)
            if name == "compile":  # measured not to pay (gpu_benchmark.md), so the trainer has no switch for it
                compile_blocks(tr.bare_model, dynamic=False)
            batch = _fixed_batch(cfg)
            t0 = time.perf_counter()
            tr.train_step([batch])
            torch.cuda.synchronize()
            first_s = time.perf_counter() - t0
            ms = time_cuda(lambda: tr.train_step([batch]), 3, 10)  # noqa: F821 - tr is bound above
            rows[name] = dict(step_ms=statistics.median(ms), samples_per_s=8e3 / statistics.median(ms), first_step_s=first_s,
                              peak_gb=torch.cuda.max_memory_allocated() / 1e9)
            del tr
        except Exception as e:  # noqa: BLE001
            rows[name] = dict(error=f"{type(e).__name__}: {e}"[:300])
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        log(dict(case=f"train step {name}", **rows[name]))
    R["train_step_isolated"] = rows


def _fixed_batch(cfg):
    """One batch of procedural training examples on the GPU (the trainer's input type)."""
    from ilrm.data.example import collate
    from ilrm.data.procedural import ProceduralConfig, make_example

    pc = ProceduralConfig(height=cfg.height, width=cfg.width, num_context=cfg.num_context, num_target=cfg.num_target)
    return collate([make_example(1000 + i, pc, device="cuda") for i in range(cfg.batch_size)])


def re10k_profile(R: dict, log, out: Path) -> None:
    """Where the 2-view re10k CUDA-graph replay goes: kernel table of one replay (fused norm default)."""
    from torch.profiler import ProfilerActivity, profile

    model = build_model(ILRMConfig.preset("re10k")).cuda().eval()
    views = random_views(1, 2, 256, 256)
    set_fast_paths(**VARIANTS["fused_norm"])
    runner = CUDAGraphRunner(model, views)
    for _ in range(5):
        runner(views)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            runner(views)
        torch.cuda.synchronize()
    events = prof.key_averages()
    table = events.table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=70)
    (out / "profile_re10k_2v_graph.txt").write_text(table)
    row = dict(case="re10k 2x256 graph profile")
    try:
        cuda_events = [e for e in prof.events() if getattr(e.device_type, "name", "") == "CUDA"]
        row["kernels_per_forward"] = len(cuda_events) / 10
        row["gpu_ms_per_forward"] = sum(e.device_time_total for e in cuda_events) / 10 / 1e3
    except Exception as e:  # noqa: BLE001 - the profiler's event API moves between versions
        row["count_error"] = f"{type(e).__name__}: {e}"[:200]
    R["re10k_profile"] = row
    log(row)
    del runner, model
    torch.cuda.empty_cache()


def attention_kernels(R: dict, log) -> None:
    """bf16 cuDNN SDPA vs the FP8 path (norm+quantise included) at the wide model's two shapes."""
    from ilrm.models import fast_kernels as fk
    from ilrm.models.layers import HeadRMSNorm, attend

    qn, kn = HeadRMSNorm(64).cuda(), HeadRMSNorm(64).cuda()
    out = []
    for label, (B, Lq, Lk) in {"self 32v (65280 tok)": (1, 65280, 65280), "read 32v (8160q x 8160k, 32 views)": (32, 8160, 8160)}.items():
        q = torch.randn(B, Lq, 12, 64, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(B, Lk, 12, 64, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(B, Lk, 12, 64, device="cuda", dtype=torch.bfloat16)
        row = dict(shape=label, tflop=4 * B * 12 * Lq * Lk * 64 / 1e12)
        for name, sw in VARIANTS.items():
            set_fast_paths(**sw)
            try:
                row[f"{name}_ms"] = statistics.median(time_cuda(lambda: attend(q, k, v, qn, kn), 2, 10))
            except Exception as e:  # noqa: BLE001
                row[f"{name}_error"] = f"{type(e).__name__}: {e}"[:300]
        set_fast_paths(**VARIANTS["plain"])
        if fk.fp8_attention_available():
            try:
                q8, dq = fk.head_rmsnorm_fp8(q, qn.weight, qn.eps)
                k8, dk = fk.head_rmsnorm_fp8(k, kn.weight, kn.eps)
                v8, dv = fk.quantize_per_tensor(v)
                row["fp8_kernel_only_ms"] = statistics.median(time_cuda(lambda: fk.fp8_sdpa(q8, k8, v8, dq, dk, dv), 2, 10))
            except Exception as e:  # noqa: BLE001
                row["fp8_kernel_error"] = f"{type(e).__name__}: {e}"[:300]
        out.append(row)
        log(row)
    R["attention"] = out
    R["fp8_info"] = dict(fk.INFO)
    # pixel_rays at the 32-view image size: the 3x3 matmul (bmm → gemv) vs an elementwise form
    from ilrm.cameras import pixel_rays

    K = random_views(1, 32, 544, 960).intrinsics
    c2w = random_views(1, 32, 544, 960).c2w
    row = dict(case="pixel_rays 32x544x960")
    row["bmm_ms"] = statistics.median(time_cuda(lambda: pixel_rays(K, c2w, 544, 960), 3, 10))

    def rays_elementwise():
        ys = torch.arange(544, device="cuda", dtype=torch.float32) + 0.5
        xs = torch.arange(960, device="cuda", dtype=torch.float32) + 0.5
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        fx, fy, cx, cy = (K[..., i, j, None, None] for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
        dc = torch.nn.functional.normalize(torch.stack([(x - cx) / fx, (y - cy) / fy, torch.ones_like(x).expand_as((x - cx) / fx)], -1), dim=-1)
        d = (c2w[..., None, None, :3, :3] * dc[..., None, :]).sum(-1)
        return c2w[..., None, None, :3, 3].expand_as(d), d

    row["elementwise_ms"] = statistics.median(time_cuda(rays_elementwise, 3, 10))
    row["max_abs_diff"] = (rays_elementwise()[1] - pixel_rays(K, c2w, 544, 960)[1]).abs().max().item()
    R["pixel_rays"] = row
    log(row)


def quality_case(R: dict, log, name: str, model, views: Views, targets: Views, far: float) -> None:
    """Renders of each fast path vs the plain bf16 path (and vs the target photos)."""
    row = dict(case=name, V=views.num_views, H=views.height, W=views.width)
    rend = {}
    for vname, sw in {**VARIANTS, **FP8_VARIANTS}.items():
        set_fast_paths(**sw)
        try:
            with torch.no_grad():
                g = forward_fn(model, views)()
                rend[vname] = render_views(g, targets, far).clamp(0, 1)
        except Exception as e:  # noqa: BLE001
            row[f"{vname}_error"] = f"{type(e).__name__}: {e}"[:300]
    set_fast_paths(**VARIANTS["plain"])
    for vname, img in rend.items():
        row[f"{vname}_psnr_vs_gt"] = psnr(img, targets.images)
        if vname != "plain" and "plain" in rend:
            row[f"{vname}_psnr_vs_plain"] = psnr(img, rend["plain"])
    log(row)
    R["quality"].append(row)


def quality_cases(R: dict, log) -> None:
    from ilrm.checkpoints import convert_official_state_dict, load_model
    from ilrm.data.procedural import ProceduralConfig, make_example
    from ilrm.models import ILRM

    try:
        model = load_model("checkpoints/ilrm-tiny-procedural").cuda().eval()
        for seed in (1000001, 1000002):
            ex = make_example(seed, ProceduralConfig(height=256, width=448, num_context=8, num_target=4), device="cuda")
            quality_case(R, log, f"ilrm-tiny-procedural seed {seed} 8v 256x448", model, ex.context, ex.target, model.config.far)
        del model
    except Exception as e:  # noqa: BLE001
        R["quality"].append(dict(case="ilrm-tiny-procedural", error=f"{type(e).__name__}: {e}"[:300]))
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.official_fixtures import official_state_dict

        cfg = ILRMConfig.preset("dl3dv-wide")
        model = ILRM(cfg)
        model.load_state_dict(convert_official_state_dict("wide", official_state_dict("wide", 768, 24, seed=0), cfg))
        model = model.cuda().eval()
        ex = make_example(7, ProceduralConfig(height=544, width=960, num_context=32, num_target=4), device="cuda")
        quality_case(R, log, "dl3dv-wide authors'-format random weights 32v 544x960", model, ex.context, ex.target, cfg.far)
        del model
    except Exception as e:  # noqa: BLE001
        R["quality"].append(dict(case="dl3dv-wide authors-format", error=f"{type(e).__name__}: {e}"[:300]))
    torch.cuda.empty_cache()


def write_scene(dir: Path, V: int, H: int, W: int, seed: int = 5) -> Path:
    """V procedural frames as PNGs + opencv_cameras.json (the Long-LRM scene layout)."""
    from PIL import Image

    from ilrm.data.procedural import ProceduralConfig, make_example

    ex = make_example(seed, ProceduralConfig(height=H, width=W, num_context=V, num_target=1))
    dir.mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(V):
        img = (ex.context.images[0, i].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        Image.fromarray(img).save(dir / f"{i:03d}.png")
        K = ex.context.intrinsics[0, i]
        w2c = torch.linalg.inv(ex.context.c2w[0, i].double())
        frames.append(dict(file_path=f"{i:03d}.png", fx=float(K[0, 0]), fy=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]),
                           w2c=w2c.tolist(), h=H, w=W))
    (dir / "opencv_cameras.json").write_text(json.dumps(dict(scene_name="bench", frames=frames)))
    return dir


def reconstruct_stages(model, scene_dir: Path, out_dir: Path, size: tuple[int, int], video_frames: int = 0) -> dict:
    """Photos on disk → .ply and .splat on disk through :class:`ilrm.pipeline.Reconstructor` (the path the
    CLI and the demo run), seconds per stage (host clock, device synced)."""
    from ilrm.camera_files import find_scene
    from ilrm.photos import load_photos, photo_cameras
    from ilrm.pipeline import Reconstructor

    rec = Reconstructor(model)
    t = {}
    s = time.perf_counter()
    scene = find_scene(scene_dir)
    posed = photo_cameras(load_photos(scene.images, max_views=256), scene.cameras)
    t["decode_s"] = time.perf_counter() - s
    s = time.perf_counter()
    prepared = rec.prepare(posed.images, posed.intrinsics, posed.c2w, size=size)
    t["resize_s"] = time.perf_counter() - s
    s = time.perf_counter()
    result = rec.predict(prepared)  # includes the host→device copy, the copy back and the user-frame transform
    t["forward_s"] = time.perf_counter() - s
    s = time.perf_counter()
    rec.export(result, out_dir, stem="gaussians", preview=False)
    t["export_s"] = time.perf_counter() - s
    if video_frames:
        s = time.perf_counter()
        rec.fly_through(result, out_dir / "fly_through.mp4", frames=video_frames)
        t["video_s"] = time.perf_counter() - s
    t["total_s"] = sum(v for k, v in t.items() if k != "video_s")
    return t


def video_frames_only(model, scene_dir: Path, frames: int) -> float:
    """Seconds to render the fly-through's frames on the GPU and bring them to the host as uint8,
    exactly as :func:`ilrm.video.iter_render_video` feeds its encoder (median of 3)."""
    from ilrm.camera_files import find_scene
    from ilrm.camera_paths import fly_through, order_poses
    from ilrm.photos import load_photos, photo_cameras
    from ilrm.pipeline import Reconstructor
    from ilrm.rendering import render as render_fn
    from ilrm.video import _to_uint8_frames

    rec = Reconstructor(model)
    scene = find_scene(scene_dir)
    posed = photo_cameras(load_photos(scene.images, max_views=256), scene.cameras)
    result = rec.predict(rec.prepare(posed.images, posed.intrinsics, posed.c2w, size=(256, 448)))
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    views, g = result.prepared.views, result.gaussians.float().to(dev)
    c2w = views.c2w[0].double().cpu()
    times = []
    for _ in range(4 if dev.type == "cuda" else 2):
        sync()
        t0 = time.perf_counter()
        poses = fly_through(c2w[order_poses(c2w)], frames).float().to(dev)
        K = views.intrinsics[0, 0].float().to(dev)
        for i in range(0, frames, 8):
            p = poses[i : i + 8]
            img = render_fn(g, K.expand(1, len(p), 3, 3), p[None], views.height, views.width, near=model.config.near, far=model.config.far)
            _to_uint8_frames(img[0], views.height, views.width)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def fp8_build_cost(R: dict, log) -> None:
    """First call of the FP8 read attention at a new shape (cuDNN graph build) vs later calls."""
    model = build_model(ILRMConfig.preset("dl3dv-wide")).cuda().eval()
    rows = []
    for V in (8, 12):
        views = random_views(1, V, 256, 448)
        row = dict(case=f"dl3dv-wide {V}x256x448 first call")
        for name, sw in (("fused_norm", VARIANTS["fused_norm"]), ("fp8_read", FP8_VARIANTS["fp8_read"])):
            set_fast_paths(**sw)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            forward_fn(model, views)()
            torch.cuda.synchronize()
            row[f"{name}_first_ms"] = (time.perf_counter() - t0) * 1e3
            row[f"{name}_ms"] = statistics.median(time_cuda(forward_fn(model, views), 2, 10))
        rows.append(row)
        log(row)
    set_fast_paths(**VARIANTS["plain"])
    R["fp8_build"] = rows
    del model
    torch.cuda.empty_cache()


def reconstruct_cases(R: dict, log) -> None:
    from ilrm.checkpoints import load_model

    scene = write_scene(Path("/tmp/bench_scene"), 8, 256, 448)
    models = {}
    try:
        models["ilrm-tiny-procedural"] = load_model("checkpoints/ilrm-tiny-procedural").cuda().eval()
    except Exception as e:  # noqa: BLE001
        R["reconstruct"].append(dict(model="ilrm-tiny-procedural", error=str(e)[:300]))
    models["dl3dv-wide (random)"] = build_model(ILRMConfig.preset("dl3dv-wide")).cuda().eval()
    for name, model in models.items():
        views = random_views(1, 8, 256, 448)
        fwd_ms = statistics.median(time_cuda(forward_fn(model, views), 3, 20))
        reconstruct_stages(model, scene, Path("/tmp/bench_out"), (256, 448))  # warm-up
        runs = [reconstruct_stages(model, scene, Path("/tmp/bench_out"), (256, 448)) for _ in range(3)]
        row = dict(model=name, forward_only_ms=fwd_ms, **{k: statistics.median(r[k] for r in runs) for k in runs[0]})
        try:
            import imageio_ffmpeg  # noqa: F401 - the encoder the video stage needs

            row.update({"video_30f_s": reconstruct_stages(model, scene, Path("/tmp/bench_out"), (256, 448), video_frames=30)["video_s"]})
        except ImportError:
            row["video_note"] = "no imageio-ffmpeg here: frames rendered and copied to the host only (the encoder runs on the CPU)"
            row["video_30f_render_s"] = video_frames_only(model, scene, 30)
        except Exception as e:  # noqa: BLE001
            row["video_error"] = str(e)[:200]
        row["total_over_forward"] = row["total_s"] / (fwd_ms / 1e3)
        log(row)
        R["reconstruct"].append(row)
    del models
    torch.cuda.empty_cache()


def profile_fp8(out: Path) -> None:
    from torch.profiler import ProfilerActivity, profile

    model = build_model(ILRMConfig.preset("dl3dv-wide")).cuda().eval()
    views = random_views(1, 32, 544, 960)
    set_fast_paths(**VARIANTS["fp8"])
    f = forward_fn(model, views)
    f(), f()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        f()
        torch.cuda.synchronize()
    set_fast_paths(**VARIANTS["plain"])
    (out / "profile_fp8_32v.txt").write_text(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))
    del model
    torch.cuda.empty_cache()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="out")
    p.add_argument("--only", default="attention,re10k,re10k_bf16w,wide,quality,reconstruct,fp8_build,compile,train_step,profile",
                   help="comma-separated sections to run")
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    only = set(args.only.split(","))
    info = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version(), time=time.strftime("%Y-%m-%d %H:%M"))
    try:
        from ilrm.models import fast_kernels as fk

        if fk.cudnn_frontend() is not None:
            info["cudnn_frontend"] = getattr(fk.cudnn_frontend(), "__version__", "?")
            info["cudnn_backend"] = fk.cudnn_frontend().backend_version()
    except Exception as e:  # noqa: BLE001
        info["cudnn_frontend_error"] = str(e)[:200]
    print(json.dumps(info), flush=True)
    R: dict = dict(info=info, wide=[], quality=[], reconstruct=[])
    t_start = time.perf_counter()

    def log(row):
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        R["elapsed_s"] = time.perf_counter() - t_start
        (out / "gpu_benchmark.json").write_text(json.dumps(R, indent=1))

    sections = [
        ("attention", lambda: attention_kernels(R, log)),
        ("re10k", lambda: re10k_cases(R, log, do_compile="compile" in only and not args.no_compile)),
        ("re10k_profile", lambda: re10k_profile(R, log, out)),
        ("re10k_bf16w", lambda: re10k_bf16_weights(R, log)),
        ("train_step", lambda: train_step_isolated(R, log)),
        ("wide", lambda: wide_cases(R, log)),
        ("quality", lambda: quality_cases(R, log)),
        ("reconstruct", lambda: reconstruct_cases(R, log)),
        ("fp8_build", lambda: fp8_build_cost(R, log)),
        ("compile", lambda: wide_compile_case(R, log)),
        ("profile", lambda: profile_fp8(out)),
    ]
    for name, fn in sections:
        if name in only and not (name == "compile" and args.no_compile):
            s = time.perf_counter()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - keep the other sections
                import traceback

                R.setdefault("errors", {})[name] = traceback.format_exc()[-1500:]
                print(f"section {name} failed: {e}", flush=True)
            R.setdefault("section_s", {})[name] = time.perf_counter() - s
            log(dict(section=name, seconds=time.perf_counter() - s))
    (out / "gpu_benchmark.json").write_text(json.dumps(R, indent=1))
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
