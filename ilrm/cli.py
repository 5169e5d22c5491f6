"""Command line: ``python -m ilrm <command> ...`` (argument parsing only; work lives in the library)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .checkpoints import SHIPPED_CHECKPOINT
from .cli_support import Commands, build_parser, command_decorator, run_commands
from .errors import ILRMInputError

COMMANDS: Commands = {}
command = command_decorator(COMMANDS)


def _convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="the authors' checkpoint (re10k_2view.ckpt or ilrm_undistort_dl3dv*.pt)")
    p.add_argument("out_dir", help="output folder: model.safetensors + config.json")
    p.add_argument("--trust-pickle", action="store_true", help="allow a full (code-executing) unpickle")


@command("convert", "convert an authors' checkpoint to our safetensors + config.json format")(_convert_args)
def _convert(args: argparse.Namespace) -> int:
    from .checkpoints import load_official_checkpoint
    from .models import count_parameters

    model = load_official_checkpoint(args.src, trust_pickle=args.trust_pickle)
    model.save_pretrained(args.out_dir)
    info = {"out_dir": args.out_dir, "layout": model.config.extra.get("layout"), "parameters": count_parameters(model)}
    print(json.dumps(info))
    return 0


def _reconstruct_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "scene",
        help="a scene folder: photos (in images/ or at its top) and optionally a camera file "
        "(opencv_cameras.json, transforms.json, or a COLMAP model in sparse/0); without one, cameras are estimated",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--model", default=None,
        help=f"checkpoint folder, Hub id or authors' file (default: $ILRM_MODEL, else ./{SHIPPED_CHECKPOINT})",
    )
    p.add_argument("--views", default=None, help="comma-separated photo indices to use as input (default: evenly spaced)")
    p.add_argument("--targets", default=None, help="comma-separated photo indices to render and score (default: up to 8 others)")
    p.add_argument("--size", default=None, help="model input HxW, e.g. 256x448 (default: model height, photo aspect)")
    p.add_argument("--video-frames", type=int, default=90, help="fly-through length (0: no video)")
    p.add_argument("--fov", type=float, default=None, help="field of view (degrees, long side) prior for pose estimation")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")


def _ints(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise ILRMInputError(f"expected comma-separated integers, got {text!r}") from e


def default_model() -> str:
    """The CLI's model when ``--model`` is not given: ``$ILRM_MODEL``, else the shipped checkpoint
    relative to the current folder (the repository root)."""
    import os
    from pathlib import Path

    chosen = os.environ.get("ILRM_MODEL")
    if chosen:
        return chosen
    if not (Path(SHIPPED_CHECKPOINT) / "config.json").is_file():
        raise ILRMInputError(
            f"no --model given and ./{SHIPPED_CHECKPOINT} does not exist here: run from the repository root, "
            "set ILRM_MODEL, or pass --model (a checkpoint folder, Hub id or the authors' file)"
        )
    return SHIPPED_CHECKPOINT


@command("reconstruct", "reconstruct a scene folder: .ply, .splat, fly-through video, held-out renders")(_reconstruct_args)
def _reconstruct(args: argparse.Namespace) -> int:
    from .checkpoints import load_model
    from .pipeline import Reconstructor
    from .scene_folder import reconstruct_scene_folder

    size = None
    if args.size:
        try:
            h, w = (int(v) for v in args.size.lower().split("x"))
        except ValueError as e:
            raise ILRMInputError(f"--size must look like 256x448, got {args.size!r}") from e
        size = (h, w)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ILRMInputError("--device cuda was asked for but CUDA is not available; use --device cpu")
    rec = Reconstructor(load_model(args.model or default_model()), device=args.device)
    summary = reconstruct_scene_folder(
        rec, args.scene, args.out, context=_ints(args.views), targets=_ints(args.targets), size=size,
        video_frames=args.video_frames, fov_deg=args.fov,
    )
    print(json.dumps(summary, indent=2))
    return 0


_TRAIN_HELP = {
    "preset": "model preset (tiny, re10k, dl3dv-wide; '<name>-full' = full-attention baseline)",
    "model_overrides": "ILRMConfig field override KEY=VALUE (VALUE parsed as JSON), repeatable: --set width=128",
    "data": "procedural | re10k:<root> | dl3dv:<root>",
    "context_gap": "MIN MAX frames between the outer context views",
    "initial_context_gap": "MIN MAX context gap at step 0 (warms up to --context-gap)",
    "out_dir": "run folder (checkpoints, log.jsonl, curves.png, final/)",
    "time_limit_s": "stop cleanly (checkpoint, no export) before this many seconds",
    "stop_after": "stop cleanly (checkpoint, no export) after this step; the lr schedule still runs to --steps",
    "samples_per_scene": "procedural: consecutive samples drawn from one scene (more data per CPU second)",
    "precision": "auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32",
    "export_dtype": "dtype of the exported final model: float32 | bfloat16 | float16",
    "view_choices": "procedural: each step draws its number of context views from these, e.g. 2 3 4 6 8",
    "sizes": "procedural: each step draws its image size from these HxW, e.g. 256x256 256x448",
    "camera_aug": "procedural: random zoom (0.8-1.25) and principal-point offset (±5 %) per scene visit",
    "photometric_aug": "exposure, white balance, tone curve (all views); noise and JPEG (inputs only)",
    "scene_style": "procedural training scenes: 1 (original rooms) or 2 (varied lighting, shapes, layouts)",
    "prefetch": "batches ray-cast ahead on a side CUDA stream by a background thread (0: inline)",
    "init_from": "start from a segment/ (or final/) weights folder: fresh optimiser, schedule continues",
    "rewarm_steps": "with --init-from: linear lr re-warm over this many steps",
}
_TRAIN_FLAGS = {"out_dir": "--out", "model_overrides": "--set"}


def _train_args(p: argparse.ArgumentParser) -> None:
    import dataclasses
    import typing

    from .training import TrainConfig

    p.add_argument("--config", help="a TrainConfig JSON file (e.g. a run's train_config.json); flags override it")
    p.add_argument("--resume", help="'auto' (latest checkpoint in --out, if any) or a checkpoint / run folder")
    p.add_argument("--size", type=int, help="square images: sets --height and --width")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    hints = typing.get_type_hints(TrainConfig)
    # Every TrainConfig field is a flag; unset flags keep the --config / default value.
    for f in dataclasses.fields(TrainConfig):
        flag = _TRAIN_FLAGS.get(f.name, "--" + f.name.replace("_", "-"))
        kw: dict = {"dest": f.name, "default": None, "help": _TRAIN_HELP.get(f.name)}
        t = hints[f.name]
        args = [a for a in typing.get_args(t) if a is not type(None)]
        base = args[0] if args and typing.get_origin(t) is not tuple else t
        if f.name == "model_overrides":
            p.add_argument(flag, action="append", metavar="KEY=VALUE", **kw)
        elif base is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(base) is tuple and typing.get_args(base)[-1] is Ellipsis:
            p.add_argument(flag, nargs="+", type=typing.get_args(base)[0], **kw)
        elif typing.get_origin(base) is tuple:
            p.add_argument(flag, nargs=2, type=typing.get_args(base)[0], metavar=("A", "B"), **kw)
        else:
            p.add_argument(flag, type=base, **kw)


def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ILRMInputError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # bare strings: --set arch=ilrm
    return out


@command("train", "train iLRM or the full-attention baseline (one process or under torchrun)")(_train_args)
def _train(args: argparse.Namespace) -> int:
    import dataclasses
    import logging
    import os

    from .training import TrainConfig, train

    base = TrainConfig.from_json(args.config).to_dict() if args.config else {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name)
        if value is None:
            continue
        if f.name == "model_overrides":
            value = {**base.get("model_overrides", {}), **_parse_overrides(value)}
        base[f.name] = value
    if args.size is not None:
        base["height"] = base["width"] = args.size
    config = TrainConfig.from_dict(base)
    main_rank = os.environ.get("RANK", "0") == "0"
    if main_rank:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = train(config, resume=args.resume, progress=main_rank and not args.no_progress)
    if main_rank:
        last = result.history[-1] if result.history else {}
        info = {
            "out_dir": str(result.out_dir),
            "step": result.step,
            "finished": result.finished,
            "stopped": result.stopped,
            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
            "final_model": str(result.final_model) if result.final_model else None,
            "elapsed_s": round(result.elapsed_s, 2),
            "samples_per_s": round(result.samples_per_s, 3),
            "loss": last.get("loss"),
            "psnr": last.get("psnr"),
            "eval_psnr": result.evals[-1]["eval_psnr"] if result.evals else None,
        }
        print(json.dumps(info))
    return 0


def _publish_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("ckpt_dir", help="checkpoint folder of ours (model.safetensors + config.json)")
    p.add_argument("repo_id", help="Hub model repo, owner/name (created if missing)")
    p.add_argument("--eval", nargs="*", default=[], metavar="SUMMARY", help="summary.json files (or result folders) of `python -m eval run` for the card's table")
    p.add_argument("--notes", default=None, help="a file whose text goes into the card's Notes section")
    p.add_argument("--license", default="apache-2.0")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", metavar="DIR", default=None, help="only write the folder that would be uploaded into DIR")


@command("publish", "upload a checkpoint folder with a model card to the Hugging Face Hub")(_publish_args)
def _publish(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .publish import publish

    notes = Path(args.notes).read_text() if args.notes else None
    res = publish(
        args.ckpt_dir, args.repo_id, eval_summaries=args.eval, dry_run_dir=args.dry_run, private=args.private,
        license=args.license, notes=notes,
    )
    print(json.dumps({"repo_id": res.repo_id, "folder": str(res.folder), "files": res.files, "url": res.url}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("python -m ilrm", "iLRM: posed photos → 3D Gaussians", COMMANDS)
    return run_commands(parser, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
