"""Command line: ``python -m ilrm <command> ...`` (argument parsing only; work lives in the library)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from .errors import ILRMInputError

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str):
    """Register ``func(args) -> exit code`` with an ``add_args(parser)`` companion."""

    def wrap(add_args: Callable[[argparse.ArgumentParser], None]):
        def inner(run: Callable[[argparse.Namespace], int]):
            COMMANDS[name] = (help, add_args, run)
            return run

        return inner

    return wrap


def _convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="the authors' checkpoint (re10k_2view.ckpt or ilrm_undistort_dl3dv*.pt)")
    p.add_argument("out_dir", help="output folder: model.safetensors + config.json")
    p.add_argument("--trust-pickle", action="store_true", help="allow a full (code-executing) unpickle")


@command("convert", "convert an authors' checkpoint to our safetensors + config.json format")(_convert_args)
def _convert(args: argparse.Namespace) -> int:
    from .checkpoints import load_official_checkpoint
    from .model import count_parameters

    model = load_official_checkpoint(args.src, trust_pickle=args.trust_pickle)
    model.save_pretrained(args.out_dir)
    info = {"out_dir": args.out_dir, "layout": model.config.extra.get("layout"), "parameters": count_parameters(model)}
    print(json.dumps(info))
    return 0


def _reconstruct_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", help="a scene folder with opencv_cameras.json and its images (2+ posed views)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="checkpoint folder, Hub id, authors' file (default: the shipped checkpoint)")
    p.add_argument("--views", default=None, help="comma-separated frame indices to use as input (default: evenly spaced)")
    p.add_argument("--targets", default=None, help="comma-separated frame indices to render and score (default: up to 8 others)")
    p.add_argument("--size", default=None, help="model input HxW, e.g. 256x448 (default: model height, photo aspect)")
    p.add_argument("--video-frames", type=int, default=90)
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _ints(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise ILRMInputError(f"expected comma-separated integers, got {text!r}") from e


@command("reconstruct", "reconstruct a posed scene folder: .ply, .splat, fly-through video, target renders")(_reconstruct_args)
def _reconstruct(args: argparse.Namespace) -> int:
    from .checkpoints import default_checkpoint, load_model
    from .reconstruct import reconstruct_scene_dir

    size = None
    if args.size:
        try:
            h, w = (int(v) for v in args.size.lower().split("x"))
        except ValueError as e:
            raise ILRMInputError(f"--size must look like 256x448, got {args.size!r}") from e
        size = (h, w)
    model = load_model(args.model or default_checkpoint()).to(args.device)
    summary = reconstruct_scene_dir(
        model, args.scene, args.out, context=_ints(args.views), targets=_ints(args.targets), size=size,
        video_frames=args.video_frames,
    )
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ilrm", description="iLRM: posed photos → 3D Gaussians")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except ILRMInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
