"""The evaluation harness on ``procedural-8v`` with each fast path, against the plain path (issue 16).

    python -m benchmarks.fp8_harness_check --out DIR [--variants plain,default,fp8] [--json FILE]

For each model (our trained ``checkpoints/ilrm-tiny-procedural``; the authors' checkpoint formats
with random weights, written by ``tests/official_fixtures.py`` and loaded through the same
conversion as their released files) and each ``--fast-paths`` setting, runs ``python -m eval run``'s
code in this process on all 50 scenes, then prints the summary's PSNR / SSIM / LPIPS and their
differences from ``plain``. The issue's bar for a fast path: within 0.05 dB / 0.002 / 0.002.
Needs CUDA (on the CPU every setting is the plain path); LPIPS needs the pinned backbone in the cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAR = {"psnr": 0.05, "ssim": 0.002, "lpips": 0.002}


def authors_format_checkpoints(dir: Path) -> dict[str, Path]:
    """Random weights in the authors' released layouts (re10k 'main' and dl3dv 'wide', full size)."""
    sys.path.insert(0, str(ROOT))
    from tests.official_fixtures import official_state_dict, save_official

    dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, name in (("main", "re10k_random.ckpt"), ("wide", "dl3dv_wide_random.pt")):
        path = dir / name
        if not path.exists():
            save_official(path, kind, official_state_dict(kind, 768, 24, seed=0))
        out[f"authors'-format {kind} (random)"] = path
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", default="plain,default,fp8")
    p.add_argument("--benchmark", default="procedural-8v")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--no-lpips", action="store_true")
    p.add_argument("--models", default="tiny,main,wide", help="tiny (our trained), main / wide (authors' formats, random)")
    p.add_argument("--json", type=Path)
    p.add_argument("--allow-cpu", action="store_true", help="run without CUDA (every setting is then the plain path: a smoke test)")
    a = p.parse_args(argv)
    import torch

    from eval.runner import RunOptions, run

    if not torch.cuda.is_available() and not a.allow_cpu:
        p.error("needs CUDA: on the CPU every --fast-paths setting runs the plain path (use --allow-cpu for a smoke test)")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (fast paths inactive)"

    wanted = a.models.split(",")
    models = {}
    if "tiny" in wanted:
        models["ilrm-tiny-procedural"] = ROOT / "checkpoints" / "ilrm-tiny-procedural"
    for label, path in authors_format_checkpoints(a.out / "ckpt").items():
        if label.split()[1] in wanted:
            models[label] = path
    rows = []
    for label, path in models.items():
        base = None
        for variant in a.variants.split(","):
            t0 = time.perf_counter()
            res = run(RunOptions(benchmark=a.benchmark, model=str(path), out=a.out / f"{path.stem}_{variant}",
                                 fast_paths=variant, lpips=not a.no_lpips, progress=False, overwrite=True,
                                 limit=a.limit, strict=False))
            m = res.summary["metrics"]
            row = {"model": label, "fast_paths": variant, "device": device, "scenes": res.summary["scenes"]["evaluated"],
                   **{k: m.get(k) for k in BAR}, "seconds": round(time.perf_counter() - t0, 1)}
            if variant == "plain":
                base = row
            elif base is not None:
                for k in BAR:
                    if isinstance(row[k], float) and isinstance(base[k], float):
                        row[f"d_{k}"] = row[k] - base[k]
                row["within_bar"] = all(abs(row[f"d_{k}"]) <= bar for k, bar in BAR.items() if f"d_{k}" in row)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if a.json:
        a.json.write_text(json.dumps({"benchmark": a.benchmark, "bar": BAR, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
