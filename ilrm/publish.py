"""Publish a checkpoint folder of ours to the Hugging Face Hub with a model card.

``python -m ilrm publish CKPT_DIR REPO_ID [--eval SUMMARY.json ...] [--dry-run DIR]``

What is uploaded: ``model.safetensors`` + ``config.json`` (our format, :meth:`ILRM.from_pretrained`
reads it back) and a generated ``README.md`` whose YAML front matter carries ``library_name``,
``license``, ``tags`` and ``pipeline_tag``, and whose body has the training details recorded in the
config (``extra.training``), the evaluation table from the harness's ``summary.json`` files when
given, and a usage snippet. ``--dry-run`` writes exactly that folder and uploads nothing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ILRMConfig
from .errors import ILRMInputError
from .weight_files import weight_file_names

#: Files of our format that go to the Hub, in upload order.
WEIGHT_FILES = ("model.safetensors", "config.json")  # the single-file form; shards: weight_file_names
DEFAULT_TAGS = ("3d-reconstruction", "gaussian-splatting", "novel-view-synthesis", "ilrm", "pytorch_model_hub_mixin")


@dataclass(frozen=True)
class PublishResult:
    """folder: what was (or would be) uploaded; url: the commit URL, None for a dry run."""

    repo_id: str
    folder: Path
    files: list[str]
    url: str | None


def check_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a valid ``owner/name`` Hub id, else raise :class:`ILRMInputError`."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ILRMInputError(f"{repo_id!r} is not a valid Hub repo id (expected owner/name): {e}") from e
    if repo_id.count("/") != 1:
        raise ILRMInputError(f"{repo_id!r} is not a valid Hub repo id: expected owner/name, e.g. me/ilrm-tiny")
    return repo_id


def read_checkpoint_dir(ckpt_dir: str | Path) -> ILRMConfig:
    """Check that ``ckpt_dir`` holds our format and return its config. Raises :class:`ILRMInputError`."""
    d = Path(ckpt_dir)
    missing = [f for f in (*weight_file_names(d), "config.json") if not (d / f).is_file()]
    if missing:
        raise ILRMInputError(
            f"{d} is not a checkpoint folder of ours: missing {', '.join(missing)}. Use a training run's "
            "final/ folder or the output of `python -m ilrm convert`."
        )
    try:
        return ILRMConfig.from_json(d / "config.json")
    except (ValueError, TypeError, KeyError) as e:
        raise ILRMInputError(f"{d / 'config.json'} is not an iLRM config: {e}") from e


def read_eval_summaries(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Load ``summary.json`` files written by ``python -m eval run`` (a result folder works too)."""
    out = []
    for p in paths:
        path = Path(p)
        path = path / "summary.json" if path.is_dir() else path
        try:
            s = json.loads(path.read_text())
            s["metrics"]["psnr"], s["protocol"]  # noqa: B018 - the keys the table needs
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ILRMInputError(f"{p} is not an evaluation summary.json of `python -m eval run`: {e}") from e
        out.append(s)
    return out


def _fmt(x: Any, digits: int) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) else "n/a"


def eval_table(summaries: Sequence[dict[str, Any]]) -> str:
    """Markdown table: protocol, method, PSNR, SSIM, LPIPS, scenes, device."""
    rows = ["| protocol | method | PSNR | SSIM | LPIPS | scenes | device |", "|---|---|---|---|---|---|---|"]
    for s in summaries:
        m, sc, env = s["metrics"], s.get("scenes", {}), s.get("environment", {})
        label = s.get("method", {}).get("label", "?") if isinstance(s.get("method"), dict) else str(s.get("method"))
        scenes = f"{sc.get('evaluated', '?')} of {sc.get('protocol_total', '?')}"
        rows.append(
            f"| {s['protocol']} | {label} | {_fmt(m.get('psnr'), 2)} | {_fmt(m.get('ssim'), 3)} | "
            f"{_fmt(m.get('lpips'), 3)} | {scenes} | {env.get('device_name', '?')} |"
        )
    return "\n".join(rows)


def model_card(
    config: ILRMConfig,
    repo_id: str,
    *,
    summaries: Sequence[dict[str, Any]] = (),
    license: str = "apache-2.0",
    notes: str | None = None,
) -> str:
    """The README.md text (YAML front matter + body) for ``repo_id``."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(
        library_name="ilrm",
        license=license,
        tags=list(DEFAULT_TAGS) + ([] if config.arch == "ilrm" else ["full-attention-baseline"]),
        pipeline_tag="image-to-3d",
    )
    name = repo_id.split("/")[-1]
    arch = "iLRM" if config.arch == "ilrm" else "the full-attention (GS-LRM-style) baseline"
    lines = [
        f"# {name}",
        "",
        f"{arch} from the open-source implementation of *iLRM: An Iterative Large 3D Reconstruction Model* "
        "(Kang et al., [arXiv 2507.23277](https://arxiv.org/abs/2507.23277)): posed photos in, 3D Gaussians out "
        "in one forward pass.",
        "",
        "## Model",
        f"- width {config.width}, {config.depth} blocks, {config.width // config.head_dim} heads, patch {config.patch_size}, "
        f"viewpoint factor {config.viewpoint_factor}, uplift factor {config.uplift_factor}, SH degree {config.sh_degree}",
        f"- trained input: {config.num_views} views at {config.image_width}×{config.image_height}",
    ]
    training = config.extra.get("training") if isinstance(config.extra, dict) else None
    if training:
        lines += ["", "## Training", *(f"- {k.replace('_', ' ')}: {v}" for k, v in training.items())]
    if summaries:
        lines += [
            "",
            "## Evaluation",
            "Measured with `python -m eval run` (per image → per scene → over scenes; PSNR on clipped renders, "
            "SSIM scikit-image, LPIPS-VGG).",
            "",
            eval_table(summaries),
        ]
    if notes:
        lines += ["", "## Notes", notes.strip()]
    lines += [
        "",
        "## Usage",
        "```python",
        "from ilrm import ILRM, Views, render",
        f'model = ILRM.from_pretrained("{repo_id}")',
        "gaussians = model(Views(images=images, intrinsics=K, c2w=c2w))  # (B, V, 3, H, W) in [0, 1], pixel K, OpenCV c2w",
        "```",
        "",
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)


def prepare_folder(
    ckpt_dir: str | Path,
    repo_id: str,
    out_dir: str | Path,
    *,
    summaries: Sequence[dict[str, Any]] = (),
    license: str = "apache-2.0",
    notes: str | None = None,
) -> list[str]:
    """Write the upload folder (weights, config, README.md) into ``out_dir``; returns its file names."""
    config = read_checkpoint_dir(ckpt_dir)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ILRMInputError(f"{out} is not empty; give an empty or new folder for the upload")
    out.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", *weight_file_names(ckpt_dir)):
        shutil.copy2(Path(ckpt_dir) / f, out / f)
    (out / "README.md").write_text(model_card(config, repo_id, summaries=summaries, license=license, notes=notes))
    return sorted(p.name for p in out.iterdir())


def publish(
    ckpt_dir: str | Path,
    repo_id: str,
    *,
    eval_summaries: Sequence[str | Path] = (),
    dry_run_dir: str | Path | None = None,
    private: bool = False,
    license: str = "apache-2.0",
    notes: str | None = None,
    token: str | None = None,
) -> PublishResult:
    """Build the upload folder and push it (``dry_run_dir``: only build it there)."""
    check_repo_id(repo_id)
    summaries = read_eval_summaries(eval_summaries)
    if dry_run_dir is not None:
        files = prepare_folder(ckpt_dir, repo_id, dry_run_dir, summaries=summaries, license=license, notes=notes)
        return PublishResult(repo_id, Path(dry_run_dir), files, None)
    import tempfile

    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory(prefix="ilrm_publish_") as tmp:
        files = prepare_folder(ckpt_dir, repo_id, tmp, summaries=summaries, license=license, notes=notes)
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=tmp, repo_type="model", commit_message=f"Upload {Path(ckpt_dir).name}"
        )
    return PublishResult(repo_id, Path(ckpt_dir), files, str(getattr(info, "commit_url", info)))
