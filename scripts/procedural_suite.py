"""Run several methods on the procedural benchmarks in one process, then write the leaderboard.

    python -m scripts.procedural_suite --ilrm DIR --baseline DIR --out OUT [--limit N] [--gs-steps 300 1000]

Run it from the repository root: it imports the evaluation harness (``eval/``), which is not installed.

Methods per benchmark (procedural-2v, procedural-8v): iLRM, iLRM + 10 and + 50 refinement steps, the
full-attention baseline, per-scene 3DGS at each ``--gs-steps``, and copy-nearest (a sanity floor).
One process saves the start-up of each ``python -m eval run`` (imports, LPIPS network); every run is
still resumable and written to its own folder ``OUT/<benchmark>/<method>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from eval.leaderboard import write_leaderboard
from eval.runner import RunOptions, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ilrm", required=True, help="our iLRM checkpoint folder")
    p.add_argument("--baseline", help="full-attention baseline checkpoint folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--benchmarks", nargs="+", default=["procedural-2v", "procedural-8v"])
    p.add_argument("--refine-steps", type=int, nargs="*", default=[10, 50])
    p.add_argument("--gs-steps", type=int, nargs="*", default=[300, 1000])
    p.add_argument("--device", default=None)
    p.add_argument("--image-size", type=int, nargs=2, default=None)
    p.add_argument("--no-lpips", action="store_true")
    a = p.parse_args(argv)
    methods = [("ilrm", a.ilrm, 0, "iLRM (ours, tiny)")]
    methods += [(f"ilrm-refine{k}", a.ilrm, k, f"iLRM + {k} refinement steps") for k in a.refine_steps]
    if a.baseline:
        methods.append(("full-attention", f"full-attention:{a.baseline}", 0, "full attention (ours, tiny)"))
    methods += [(f"3dgs-{k}", f"3dgs:{k}", 0, f"per-scene 3DGS, {k} steps") for k in a.gs_steps]
    methods.append(("copy-nearest", "copy-nearest", 0, "copy nearest context view"))
    dirs = []
    for bench in a.benchmarks:
        for name, model, refine, label in methods:
            t = time.perf_counter()
            out = a.out / bench / name
            res = run(
                RunOptions(
                    benchmark=bench, model=model, out=out, limit=a.limit, refine_steps=refine, device=a.device,
                    image_size=tuple(a.image_size) if a.image_size else None, label=label,
                    lpips=not a.no_lpips, progress=False,
                )
            )
            m = res.summary["metrics"]
            print(f"{bench:14s} {name:16s} psnr {m['psnr']:.3f} ssim {m['ssim']:.4f} lpips {m['lpips']}  "
                  f"({time.perf_counter() - t:.1f} s)", flush=True)
            dirs.append(out)
    paths = write_leaderboard(dirs, a.out / "leaderboard")
    print(Path(paths["md"]).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
