"""Command line of the evaluation harness (argument parsing only; the work is in eval/*.py).

    python -m eval fetch BENCHMARK [--repo-id ID --revision REV] [--limit N] [--local-dir DIR] [--source DIR]
    python -m eval run --benchmark B --model M --out DIR [--limit N] [--refine-steps K] [--save-images]
                       [--save-renders] [--strict/--no-strict] [--overwrite]
                       [--device D] [--dtype bf16|fp32] [--data-root DIR] [--image-size H W]
    python -m eval leaderboard DIR... --out DIR [--published matching|all|none]
    torchrun --nproc_per_node=N -m eval run ...      # scenes sharded over ranks, rank 0 merges
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ilrm.cli_support import Commands, build_parser, command_decorator, run_commands

COMMANDS: Commands = {}
command = command_decorator(COMMANDS)


def _fetch_args(p: argparse.ArgumentParser) -> None:
    from .protocols import benchmark_names

    p.add_argument("benchmark", choices=benchmark_names())
    p.add_argument("--repo-id", help="Hub dataset repo (RE10K: a mirror; DL3DV default DL3DV/DL3DV-Benchmark)")
    p.add_argument("--revision", help="branch, tag or commit (default main); the resolved sha is recorded")
    p.add_argument("--limit", type=int, help="only the first N scenes of the protocol")
    p.add_argument("--local-dir", type=Path, help="download into this folder instead of the Hugging Face cache")
    p.add_argument("--source", type=Path, help="use an existing local folder instead of the Hub")
    p.add_argument("--format", dest="fmt", default="auto", choices=["auto", "chunks", "parquet"],
                   help="RE10K layout: pixelSplat chunks or a parquet mirror (one scene per row)")
    p.add_argument("--subfolder", default="", help="folder inside the repo where the layout starts")
    p.add_argument("--data-files", help="glob choosing the parquet files of the test split")
    p.add_argument("--index", type=Path, help="replace the protocol's index file (tests)")
    p.add_argument("--cache-dir", type=Path, help="Hugging Face cache (default: the standard one)")
    p.add_argument("--eval-home", type=Path, help="where manifests and converted data go (default ~/.cache/ilrm/eval)")


@command("fetch", "download only what a benchmark's test protocol needs, write a manifest")(_fetch_args)
def _fetch(args: argparse.Namespace) -> int:
    from .fetch import fetch, summarise

    result = fetch(
        args.benchmark, repo_id=args.repo_id, revision=args.revision, limit=args.limit, local_dir=args.local_dir,
        source=args.source, fmt=args.fmt, subfolder=args.subfolder, data_files=args.data_files,
        index_path=args.index, cache_dir=args.cache_dir, eval_home=args.eval_home,
    )
    print(summarise(result), end="")
    return 0


def _fast_path_names() -> list[str]:
    from ilrm.models.layers import FAST_PATH_PRESETS

    return sorted(FAST_PATH_PRESETS)


def _run_args(p: argparse.ArgumentParser) -> None:
    from .protocols import benchmark_names

    p.add_argument("--benchmark", required=True, choices=benchmark_names())
    p.add_argument("--model", required=True,
                   help="checkpoint folder, Hub id, authors' .ckpt/.pt, preset:<name>, full-attention:<dir>, "
                        "copy-nearest, or 3dgs:<steps>[:random|:depth]")
    p.add_argument("--out", required=True, type=Path, help="result folder (re-running resumes into it)")
    p.add_argument("--limit", type=int, help="only the first N scenes of the protocol")
    p.add_argument("--refine-steps", type=int, default=0, help="post-prediction optimisation steps (models only)")
    p.add_argument("--save-images", action="store_true", help="write input | target | render | error grids")
    p.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument("--dtype", choices=["bf16", "fp32"], help="model forward precision (default bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--data-root", type=Path, help="data folder (default: the one `fetch` recorded)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                   help="evaluate at another size (the protocol label says so; for tests and studies)")
    p.add_argument("--index", type=Path, help="replace the protocol's index file (tests)")
    p.add_argument("--eval-home", type=Path, help="where fetch manifests and converted data live")
    p.add_argument("--revision", help="Hub revision of --model")
    p.add_argument("--label", help="method name shown in the tables")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS (the tables say n/a)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="discard the previous run in --out (records, tables, images, renders) and start again")
    p.add_argument("--save-renders", action="store_true",
                   help="save the renders losslessly at the evaluated size (renders/<scene>.npz, float32 as scored; "
                        "each record names the file's sha256)")
    p.add_argument("--num-workers", type=int, default=None,
                   help="DataLoader workers decoding scenes ahead of the model (default: 8 on CUDA, 0 on CPU)")
    p.add_argument("--reference-metrics", action="store_true",
                   help="score with the reference per-image metrics instead of the batched GPU ones (same values)")
    p.add_argument("--fast-paths", default="default", choices=_fast_path_names(),
                   help="the model's CUDA fast paths: default (fused q/k norm), plain, fp8 (FP8 attention), "
                        "fp8-self, fp8-read, fp8-uncentred; part of the run's identity (no effect on CPU)")
    p.add_argument("--strict", action=argparse.BooleanOptionalAction, default=None,
                   help="exit non-zero when a scene failed or has no record (default: on for full protocol runs, "
                        "off for partial ones: --limit or a partial fetch). A run that evaluated nothing always "
                        "exits non-zero")


@command("run", "evaluate a model or baseline on a benchmark")(_run_args)
def _run(args: argparse.Namespace) -> int:
    from .runner import RunOptions, run

    result = run(
        RunOptions(
            benchmark=args.benchmark, model=args.model, out=args.out, limit=args.limit,
            refine_steps=args.refine_steps, save_images=args.save_images, device=args.device, dtype=args.dtype,
            data_root=args.data_root, image_size=tuple(args.image_size) if args.image_size else None,
            index_path=args.index, eval_home=args.eval_home, revision=args.revision, label=args.label,
            lpips=not args.no_lpips, progress=not args.no_progress, overwrite=args.overwrite,
            save_renders=args.save_renders, strict=args.strict, num_workers=args.num_workers,
            fast_metrics=False if args.reference_metrics else None, fast_paths=args.fast_paths,
        )
    )
    if result is not None:  # rank 0
        s = result.summary
        m, sc = s["metrics"], s["scenes"]
        lp = m["lpips"] if isinstance(m["lpips"], str) else f"{m['lpips']:.4f}"
        psnr = "–" if m["psnr"] is None else f"{m['psnr']:.3f}"
        ssim = "–" if m["ssim"] is None else f"{m['ssim']:.4f}"
        print(f"{s['protocol']} | {s['method']['label']} | PSNR {psnr} SSIM {ssim} LPIPS {lp} | "
              f"{sc['evaluated']} scenes, {len(sc['failed'])} failed, {len(sc['skipped'])} skipped")
        if isinstance(m["lpips"], str) and m.get("lpips_reason"):
            print(f"  LPIPS n/a: {m['lpips_reason']}")
        for f in sc["failed"][:10]:
            print(f"  FAILED {f['scene']}: {f['reason']}")
        print(json.dumps({k: str(v) for k, v in result.files.items()}))
        if not s["protocol_check"]["standard"]:
            print(f"  custom protocol (not comparable with published {s['benchmark']['name']} rows): "
                  + "; ".join(s["protocol_check"]["violations"][:3]))
        if s.get("problems"):
            for problem in s["problems"]:
                print(f"error: {problem}", file=sys.stderr)
            return 1
    return 0


def _leaderboard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", type=Path, help="result folders of `python -m eval run`")
    p.add_argument("--out", required=True, type=Path, help="where leaderboard.{md,csv,html} go")
    p.add_argument("--published", default="matching", choices=["matching", "all", "none"],
                   help="published rows: for the measured protocols (default), all, or none")
    p.add_argument("--title", default="Leaderboard")


@command("leaderboard", "merge result folders and the published rows into tables")(_leaderboard_args)
def _leaderboard(args: argparse.Namespace) -> int:
    from .leaderboard import write_leaderboard

    paths = write_leaderboard(args.results, args.out, include_published=args.published, title=args.title)
    print(paths["md"].read_text())
    return 0


from . import reproduce as _reproduce  # noqa: E402  (flags and work in eval/reproduce.py)

command("reproduce", "fetch, run with the authors' weights, compare with the published row")(_reproduce.add_args)(_reproduce.run)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with ``error: <message>`` on stderr for bad input)."""
    parser = build_parser("python -m eval", "iLRM evaluation harness", COMMANDS)
    return run_commands(parser, COMMANDS, argv)
