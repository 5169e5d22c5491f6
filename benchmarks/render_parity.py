"""Parity and speed of the two render backends: gsplat (CUDA) vs the pure-PyTorch reference.

Run on a CUDA machine:  python benchmarks/render_parity.py [--out $OUT] [--quick]
Prints one line per case (PSNR gsplat vs torch on images and alpha, max |Δ|, gradient cosine
similarity, median times) and writes ``render_parity.json`` to --out (default $OUT or ./out).

Cases: random scenes (several seeds, SH degree 0 and 3), pixel-aligned scenes shaped like a
prediction (one Gaussian per input pixel), a randomly initialised ``ILRM(ILRMConfig.preset("tiny"))``
prediction from random views (when ``ilrm.models.ilrm`` is importable), and a short refinement run
(time per step on each backend; held-out PSNR of a perturbed synthetic scene after 0/10/50 steps).
Without CUDA (``--allow-cpu``) only the reference is timed, on small sizes, as a smoke test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from ilrm.cameras import Views, pixel_rays
from ilrm.gaussians import Gaussians
from ilrm.refine import refine
from ilrm.rendering import render


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return float("inf") if mse == 0 else -10 * math.log10(mse)


def cameras(B: int, V: int, H: int, W: int, device, spread: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """V cameras on a small arc around the origin, looking down +z (OpenCV), f = 0.9·W."""
    K = torch.tensor([[0.9 * W, 0, W / 2], [0, 0.9 * W, H / 2], [0, 0, 1.0]]).expand(B, V, 3, 3).clone()
    c2w = torch.eye(4).expand(B, V, 4, 4).clone()
    ang = torch.linspace(-spread, spread, V) if V > 1 else torch.zeros(1)
    c2w[..., 0, 0], c2w[..., 0, 2], c2w[..., 2, 0], c2w[..., 2, 2] = ang.cos(), ang.sin(), -ang.sin(), ang.cos()
    c2w[..., 0, 3] = ang
    return K.to(device), c2w.to(device)


def random_scene(B: int, N: int, sh_degree: int, seed: int, device) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(B, N, generator=g) * 4 + 1.5
    xy = (torch.rand(B, N, 2, generator=g) * 2 - 1) * 0.7 * z[..., None]
    means = torch.cat([xy, z[..., None]], -1)
    quats = torch.nn.functional.normalize(torch.randn(B, N, 4, generator=g), dim=-1)
    scales = torch.exp(torch.rand(B, N, 3, generator=g) * math.log(20) + math.log(0.004))
    opacities = torch.rand(B, N, generator=g)
    sh = torch.randn(B, N, (sh_degree + 1) ** 2, 3, generator=g) * 0.5
    return Gaussians(means, quats, scales, opacities, sh).to(device)


def pixel_aligned_scene(views: Views, seed: int) -> Gaussians:
    """One Gaussian per input pixel on its ray at a smooth random depth, pixel-sized, coloured by the image."""
    B, V, _, H, W = views.images.shape
    g = torch.Generator().manual_seed(seed)
    o, d = pixel_rays(views.intrinsics, views.c2w, H, W)  # (B, V, H, W, 3)
    low = torch.rand(B * V, 1, 8, 8, generator=g)
    depth = 2 + 3 * torch.nn.functional.interpolate(low, size=(H, W), mode="bicubic", align_corners=False)
    depth = depth.reshape(B, V, H, W, 1).to(o)
    means = (o + depth * d).reshape(B, -1, 3)
    N = means.shape[1]
    f = views.intrinsics[:, :, 0, 0].mean()
    scales = (depth.reshape(B, N, 1) / f * 0.8).expand(B, N, 3) * torch.exp(0.3 * torch.randn(B, N, 3, generator=g)).to(
        o
    )
    quats = torch.nn.functional.normalize(torch.randn(B, N, 4, generator=g), dim=-1).to(o)
    opacities = (0.5 + 0.5 * torch.rand(B, N, generator=g)).to(o)
    rgb = views.images.permute(0, 1, 3, 4, 2).reshape(B, N, 1, 3)
    sh = (rgb - 0.5) / 0.28209479177387814
    return Gaussians(means, quats, scales.contiguous(), opacities, sh)


def timed(fn, device, warmup: int, iters: int) -> float:
    """Median milliseconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def grad_cosines(g: Gaussians, K, c2w, H, W, near, far) -> dict[str, float]:
    """Cosine similarity of gsplat's and the reference's gradients of a random linear loss."""
    grads = {}
    weight = torch.rand(g.batch_size, K.shape[1], 3, H, W, generator=torch.Generator().manual_seed(0)).to(g.means)
    for backend in ("gsplat", "torch"):
        leaf = Gaussians(
            *(t.detach().clone().requires_grad_() for t in (g.means, g.quats, g.scales, g.opacities, g.sh))
        )
        img = render(leaf, K, c2w, H, W, near=near, far=far, backend=backend)
        (img * weight).sum().backward()
        grads[backend] = {n: getattr(leaf, n).grad.flatten() for n in ("means", "quats", "scales", "opacities", "sh")}
    return {
        n: float(torch.nn.functional.cosine_similarity(grads["gsplat"][n], grads["torch"][n], dim=0))
        for n in grads["torch"]
    }


def compare(
    name: str, g: Gaussians, K, c2w, H: int, W: int, *, near=0.01, far=1e10, gsplat: bool, grads: bool, quick: bool
):
    device = g.means.device
    row: dict = {"case": name, "B": g.batch_size, "V": K.shape[1], "N": g.num_gaussians, "H": H, "W": W}
    row["sh_degree"] = g.sh_degree
    with torch.no_grad():
        ref = render(g, K, c2w, H, W, near=near, far=far, return_depth=True, return_alpha=True, backend="torch")
        # the render above warmed the reference up; it is slow, so time it only once or twice
        row["torch_ms"] = timed(
            lambda: render(g, K, c2w, H, W, near=near, far=far, backend="torch"), device, 0, 1 if quick else 2
        )
        if gsplat:
            gs = render(g, K, c2w, H, W, near=near, far=far, return_depth=True, return_alpha=True, backend="gsplat")
            row["gsplat_ms"] = timed(
                lambda: render(g, K, c2w, H, W, near=near, far=far, backend="gsplat"),
                device,
                3,
                10 if quick else 20,
            )
            row["psnr_images"] = psnr(gs.images, ref.images)
            row["psnr_alpha"] = psnr(gs.alpha, ref.alpha)
            row["max_abs_images"] = float((gs.images - ref.images).abs().max())
            covered = (ref.alpha > 0.5) & (gs.alpha > 0.5)
            rel = ((gs.depth - ref.depth).abs() / ref.depth.clamp_min(1e-6))[covered]
            row["depth_rel_err_median"] = float(rel.median()) if rel.numel() else None
    if gsplat and grads:
        row["grad_cosine"] = grad_cosines(g, K, c2w, H, W, near, far)
    return row


def refine_case(device, gsplat: bool, quick: bool) -> dict:
    """Synthetic: perturb a pixel-aligned scene, refine on 2 input views, score 2 held-out views."""
    H = W = 128 if quick else 256
    K, c2w = cameras(1, 4, H, W, device)
    g = torch.Generator().manual_seed(7)
    images = torch.nn.functional.interpolate(torch.rand(4, 3, 16, 16, generator=g), size=(H, W), mode="bilinear")
    allv = Views(images[None].to(device), K, c2w)
    inputs, held_out = allv.select([0, 3]), allv.select([1, 2])
    truth = pixel_aligned_scene(inputs, seed=1)
    with torch.no_grad():
        inputs = Views(render(truth, inputs.intrinsics, inputs.c2w, H, W), inputs.intrinsics, inputs.c2w)
        held_out = Views(
            render(truth, held_out.intrinsics, held_out.c2w, H, W), held_out.intrinsics, held_out.c2w
        )
    noisy = Gaussians(
        truth.means + 0.01 * torch.randn(truth.means.shape, generator=g).to(device),
        truth.quats,
        truth.scales * 1.3,
        (truth.opacities * 0.8),
        truth.sh + 0.3 * torch.randn(truth.sh.shape, generator=g).to(device),
    )
    out: dict = {"case": "refine-synthetic", "H": H, "W": W, "N": truth.num_gaussians}
    for backend in ["gsplat", "torch"] if gsplat else ["torch"]:
        res = {}
        for steps in (0, 10) if (quick or backend == "torch") else (0, 10, 50):
            refined, stats = refine(noisy, inputs, steps, backend=backend, return_stats=True)
            with torch.no_grad():
                pred = render(refined, held_out.intrinsics, held_out.c2w, H, W, backend=backend)
            res[f"steps_{steps}"] = {
                "held_out_psnr": psnr(pred.clamp(0, 1), held_out.images),
                "input_mse_final": stats.final_loss,
                "ms_per_step": 1000 * stats.mean_step_seconds if steps else None,
            }
        out[backend] = res
    return out


def predicted_case(device, gsplat: bool, quick: bool) -> dict | None:
    try:
        from ilrm.config import ILRMConfig
        from ilrm.models import ILRM
    except Exception as e:  # the model may not exist yet in this checkout
        return {"case": "ilrm-tiny-random-init", "skipped": f"{type(e).__name__}: {e}"}
    cfg = ILRMConfig.preset("tiny")
    H, W = cfg.image_height, cfg.image_width
    torch.manual_seed(0)
    model = ILRM(cfg).to(device).eval()
    K, c2w = cameras(1, 2, H, W, device, spread=0.15)
    images = torch.rand(1, 2, 3, H, W, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        g = model(Views(images, K, c2w)).float()
    # render the two input views and one in between
    K3, c2w3 = cameras(1, 3, H, W, device, spread=0.15)
    row = compare(
        "ilrm-tiny-random-init", g, K3, c2w3, H, W, near=cfg.near, far=cfg.far, gsplat=gsplat, grads=gsplat, quick=quick
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "./out"))
    ap.add_argument("--quick", action="store_true", help="fewer seeds and repetitions")
    ap.add_argument("--allow-cpu", action="store_true", help="without CUDA, time only the reference (smoke test)")
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        sys.exit("render_parity.py needs CUDA (gsplat); pass --allow-cpu for a reference-only smoke test")
    device = torch.device("cuda" if cuda else "cpu")
    gsplat = cuda
    small = not cuda or args.quick
    seeds = [0] if small else [0, 1, 2]
    rows = []

    def report(row: dict) -> None:
        rows.append(row)
        keys = ("psnr_images", "psnr_alpha", "max_abs_images", "depth_rel_err_median", "gsplat_ms", "torch_ms")
        parts = [
            f"{k}={row[k]:.4g}" if isinstance(row.get(k), float) else f"{k}={row.get(k)}" for k in keys if k in row
        ]
        if "grad_cosine" in row:
            parts.append("grad_cos=" + ",".join(f"{k}:{v:.4f}" for k, v in row["grad_cosine"].items()))
        print(f"{row['case']:<34} N={row.get('N')} V={row.get('V')} {row.get('H')}x{row.get('W')}  " + "  ".join(parts))
        sys.stdout.flush()

    print(f"device: {torch.cuda.get_device_name() if cuda else 'cpu'}; torch {torch.__version__}")
    n_small = 8192 if not cuda else 65536
    for sh_degree in (0, 3):
        for seed in seeds:
            B, V, H, W = 1, 2, (64 if not cuda else 256), (64 if not cuda else 256)
            g = random_scene(B, n_small, sh_degree, seed, device)
            K, c2w = cameras(B, V, H, W, device)
            report(
                compare(
                    f"random-sh{sh_degree}-seed{seed}", g, K, c2w, H, W, gsplat=gsplat, grads=seed == 0, quick=small
                )
            )
    if cuda:
        # bigger: 2 scenes × 4 views at 544×960, 300k Gaussians each
        g = random_scene(2, 100_000 if args.quick else 300_000, 0, 10, device)
        K, c2w = cameras(2, 4, 544, 960, device)
        report(compare("random-large-544x960", g, K, c2w, 544, 960, gsplat=True, grads=False, quick=small))
    for seed in seeds:
        H = W = 64 if not cuda else 256
        K, c2w = cameras(1, 3, H, W, device, spread=0.2)
        imgs = torch.rand(1, 3, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
        imgs = torch.nn.functional.interpolate(imgs[0], size=(H, W), mode="bilinear")[None].to(device)
        views = Views(imgs, K, c2w)
        g = pixel_aligned_scene(views.select([0, 2]), seed)
        report(compare(f"pixel-aligned-seed{seed}", g, K, c2w, H, W, gsplat=gsplat, grads=seed == 0, quick=small))
    pred = predicted_case(device, gsplat, small)
    if pred is not None:
        if "skipped" in pred:
            print(f"{pred['case']:<34} skipped: {pred['skipped']}")
            rows.append(pred)
        else:
            report(pred)
    ref = refine_case(device, gsplat, small)
    rows.append(ref)
    print(json.dumps(ref, indent=None))

    parity = [r["psnr_images"] for r in rows if "psnr_images" in r]
    summary = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "min_psnr_images": min(parity) if parity else None,
        "all_at_least_40db": all(p >= 40 for p in parity) if parity else None,
        "cases": rows,
    }
    try:
        import gsplat as _gs

        summary["gsplat"] = getattr(_gs, "__version__", "?")
    except Exception:
        summary["gsplat"] = None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "render_parity.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"min PSNR gsplat vs torch: {summary['min_psnr_images']}  (>= 40 dB: {summary['all_at_least_40db']})")
    print(f"wrote {out / 'render_parity.json'}")


if __name__ == "__main__":
    main()
