"""One command per published row: fetch the protocol's data, run it with the authors' weights, and print
our numbers next to the published ones with the differences.

    python -m eval reproduce re10k --model authors
    python -m eval reproduce dl3dv-32 --model authors [--refine-steps 10|50]
    python -m eval reproduce dl3dv-16 --model authors

It composes the harness's own steps: :func:`eval.fetch.fetch` (skipped with ``--data-root``),
:func:`eval.runner.run`, :func:`eval.leaderboard.write_leaderboard` (tables and the per-scene plot in
``<out>/leaderboard``). ``--model authors`` is the authors' released file for the protocol
(:data:`AUTHORS_FILES`, from :data:`AUTHORS_REPO` at ``--model-revision``, default
:data:`AUTHORS_REVISION`); any other ``--model`` value of ``python -m eval run`` (a folder, a file,
``preset:<name>``) runs instead and is compared with the same published row, with a note that it is not
the authors' weights. The published row is the one of ``eval/published.csv`` whose ``reproduce``
column is this command (benchmark, ``--model authors`` and ``--refine-steps``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ilrm.errors import ILRMInputError

if TYPE_CHECKING:
    import pandas as pd

#: eval/published.csv (eval.leaderboard.PUBLISHED_CSV; not imported: the CLI imports this module at start).
PUBLISHED_CSV = Path(__file__).resolve().parent / "published.csv"

#: The authors' model repository and the file released for each protocol (as in demo.models.OFFICIAL_FILES).
AUTHORS_REPO = "Gynjn/iLRM"
AUTHORS_FILES = {
    "re10k": "re10k_2view.ckpt",
    "dl3dv-32": "ilrm_undistort_dl3dv.pt",
    "dl3dv-16": "ilrm_undistort_dl3dv_16view.pt",
}
#: The revision of :data:`AUTHORS_REPO` the command downloads. A 40-hex commit pins the files; "main"
#: does not, so the output then says which commit it resolved to (fill in the commit once it is known).
AUTHORS_REVISION = "main"
METRIC_DIGITS = {"psnr": 2, "ssim": 3, "lpips": 3}


def add_args(p: argparse.ArgumentParser) -> None:
    """The flags of ``python -m eval reproduce``."""
    p.add_argument("benchmark", choices=sorted(AUTHORS_FILES), help="the protocol of the published row")
    p.add_argument("--model", default="authors",
                   help="'authors' (the released file for the protocol, from Gynjn/iLRM), or any `eval run --model`")
    p.add_argument("--model-revision", default=None,
                   help=f"revision of {AUTHORS_REPO} (default {AUTHORS_REVISION}) or of a Hub --model")
    p.add_argument("--refine-steps", type=int, default=0, help="post-prediction refinement (the '+ K steps' rows)")
    p.add_argument("--out", type=Path, help="result folder (default results/reproduce/<benchmark>-<model>)")
    # fetch
    p.add_argument("--data-root", type=Path, help="use this data folder and skip the fetch")
    p.add_argument("--repo-id", help="dataset repo of the fetch (RE10K: a mirror; DL3DV default DL3DV/DL3DV-Benchmark)")
    p.add_argument("--revision", help="dataset revision of the fetch")
    p.add_argument("--source", type=Path, help="fetch from this local folder instead of the Hub")
    p.add_argument("--local-dir", type=Path, help="download into this folder instead of the Hugging Face cache")
    p.add_argument("--cache-dir", type=Path, help="Hugging Face cache of the data and the authors' weights")
    p.add_argument("--index", type=Path, help="replace the protocol's index file (tests; the run is then custom)")
    p.add_argument("--limit", type=int, help="only the first N scenes (not the full protocol: the row says subset)")
    p.add_argument("--eval-home", type=Path, help="where manifests and converted data go")
    # run
    p.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument("--dtype", choices=["bf16", "fp32"], help="model forward precision")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="evaluate at another size (tests)")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="discard results of a different run in --out")
    p.add_argument("--max-psnr-diff", type=float,
                   help="exit 1 when |ours - published| PSNR exceeds this many dB (a reproduction check)")


def published_row(benchmark: str, refine_steps: int = 0, path: str | Path = PUBLISHED_CSV) -> dict[str, Any]:
    """The published row that ``reproduce <benchmark> --model authors [--refine-steps K]`` measures."""
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for r in df.to_dict("records"):
        words = shlex.split(r.get("reproduce", ""))
        if not words or words[0] != benchmark:
            continue
        opts = dict(zip(words[1::2], words[2::2]))
        if opts.get("--model") == "authors" and int(opts.get("--refine-steps", 0)) == refine_steps:
            return r
    raise ILRMInputError(
        f"no published row for `reproduce {benchmark} --model authors"
        f"{f' --refine-steps {refine_steps}' if refine_steps else ''}` in {path}"
    )


def authors_weights(benchmark: str, revision: str | None = None, cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """(local path, resolved commit) of the authors' file for ``benchmark``, through ``hf_hub_download``
    (cached; ``HF_HUB_OFFLINE=1`` works from the cache)."""
    from huggingface_hub import hf_hub_download

    from .fetch import hub_errors

    filename = AUTHORS_FILES[benchmark]
    with hub_errors(AUTHORS_REPO, "model"):
        path = Path(hf_hub_download(AUTHORS_REPO, filename, revision=revision or AUTHORS_REVISION,
                                    cache_dir=cache_dir))
    commit = path.parent.name if path.parent.parent.name == "snapshots" else "unknown"
    return path, commit


def _number(x: Any) -> float | None:
    import math

    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def comparison(summary: dict[str, Any], published: dict[str, Any], intervals: dict[str, Any]) -> pd.DataFrame:
    """metric | ours | 95 % CI | published | ours − published | published inside our CI."""
    import pandas as pd

    rows = []
    for m, digits in METRIC_DIGITS.items():
        ours, pub = _number(summary["metrics"].get(m)), _number(published.get(m))
        iv = intervals.get(m)
        rows.append({
            "metric": m.upper(),
            "ours": "n/a" if ours is None else f"{ours:.{digits + 1}f}",
            "95% CI": iv.format(digits + 1) if iv is not None else "–",
            "published": "not reported" if pub is None else f"{pub:.{digits}f}",
            "difference": "–" if ours is None or pub is None else f"{ours - pub:+.{digits + 1}f}",
            "published in CI": "–" if iv is None or pub is None else ("yes" if iv.low <= pub <= iv.high else "no"),
        })
    return pd.DataFrame(rows)


def run(args: argparse.Namespace) -> int:
    """``python -m eval reproduce``: fetch, run, leaderboard, comparison. Returns the exit code."""
    from .fetch import fetch, summarise
    from .leaderboard import run_intervals, to_markdown, write_leaderboard
    from .runner import RunOptions
    from .runner import run as run_protocol

    published = published_row(args.benchmark, args.refine_steps)
    notes = []
    if args.model == "authors":
        path, commit = authors_weights(args.benchmark, args.model_revision, args.cache_dir)
        model, revision = str(path), None
        label = f"iLRM (authors' {path.name} @ {commit[:12]})" + (
            f" + {args.refine_steps} refinement steps" if args.refine_steps else "")
        pinned = (args.model_revision or AUTHORS_REVISION)
        if pinned != commit:
            notes.append(f"{AUTHORS_REPO} revision {pinned!r} resolved to commit {commit}: pass "
                         f"--model-revision {commit} to run these exact files again")
    else:
        model, revision, label = args.model, args.model_revision, None
        notes.append(f"--model {args.model} is not the authors' weights: the comparison says how far it is from "
                     f"the published row, it does not reproduce it")
    name = "authors" if args.model == "authors" else Path(args.model.split(":")[-1]).name or "model"
    suffix = f"-refine{args.refine_steps}" if args.refine_steps else ""
    out = args.out or Path("results") / "reproduce" / f"{args.benchmark}-{name}{suffix}"

    if args.data_root is None:
        fetched = fetch(args.benchmark, repo_id=args.repo_id, revision=args.revision, limit=args.limit,
                        local_dir=args.local_dir, source=args.source, index_path=args.index,
                        cache_dir=args.cache_dir, eval_home=args.eval_home)
        print(summarise(fetched), end="")
    result = run_protocol(RunOptions(
        benchmark=args.benchmark, model=model, out=Path(out), limit=args.limit, refine_steps=args.refine_steps,
        device=args.device, dtype=args.dtype, data_root=args.data_root,
        image_size=tuple(args.image_size) if args.image_size else None, index_path=args.index,
        eval_home=args.eval_home, revision=revision, label=label, lpips=not args.no_lpips,
        progress=not args.no_progress, overwrite=args.overwrite,
    ))
    if result is None:  # a torchrun rank other than 0
        return 0
    s = result.summary
    paths = write_leaderboard([Path(out)], Path(out) / "leaderboard", title=f"Reproducing: {published['method']}")
    table = comparison(s, published, run_intervals(Path(out)))
    sc = s["scenes"]
    print(f"\n{s['protocol']} | ours: {s['method']['label']} | published: {published['method']} "
          f"({published['source']})")
    print(f"scenes: {sc['evaluated']} evaluated of {sc['protocol_total']} in the protocol, "
          f"{len(sc['failed'])} failed, {len(sc['skipped'])} skipped")
    if sc["evaluated"] < sc["protocol_total"]:
        notes.append("a subset of the protocol's scenes: the published numbers are over all of them")
    if s["protocol"] != args.benchmark:
        notes.append(f"protocol label {s['protocol']!r}: not the published protocol {args.benchmark!r} as run")
    print(to_markdown(table), end="")
    for n in notes:
        print(f"note: {n}")
    print(f"results: {out}  leaderboard: {paths['md']}")
    if sc["evaluated"] == 0:
        print("error: no scene was evaluated", file=sys.stderr)
        return 1
    ours, pub = _number(s["metrics"].get("psnr")), _number(published.get("psnr"))
    if args.max_psnr_diff is not None and ours is not None and pub is not None and abs(ours - pub) > args.max_psnr_diff:
        print(f"error: PSNR differs from the published {pub:.2f} by {ours - pub:+.3f} dB (> {args.max_psnr_diff})",
              file=sys.stderr)
        return 1
    return 0


__all__ = ["AUTHORS_FILES", "AUTHORS_REPO", "AUTHORS_REVISION", "add_args", "authors_weights", "comparison",
           "published_row", "run"]
