"""Assemble the Hugging Face Space folder and upload it.

    python hf_space/deploy.py OWNER/SPACE --model-repo OWNER/MODEL [--model-revision SHA]
        [--model-files F1,F2] [--official-revision SHA | --no-official-models] [--hardware zero-a10g]
        [--private] [--dry-run DIR]

The folder holds: ``README.md`` (this folder's README with ``models`` / ``preload_from_hub`` set to
``--model-repo`` at ``--model-revision`` and ``suggested_hardware`` to ``--hardware``),
``requirements.txt`` (this folder's), ``app.py``, the ``ilrm`` and ``demo`` packages (with the bundled
examples) and ``ilrm_demo.json`` (the demo's settings: default model, its revision, the pinned
revision of the authors' weights).

The authors' weights (``Gynjn/iLRM``) are always pinned: give ``--official-revision`` (a commit), or
``--no-official-models`` to leave them out. When uploading, a missing ``--official-revision`` or
``--model-revision`` is resolved to the commit the Hub's ``main`` points at now (printed), and the
preloaded weight files are listed from the model repository at that commit (a sharded checkpoint
has several). ``--dry-run DIR`` writes the folder into DIR, reaches no network and uploads nothing.
Without it the folder is uploaded with ``HfApi.create_repo(repo_type="space", space_sdk="gradio",
exist_ok=True)`` + ``upload_folder``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OFFICIAL_REPO = "Gynjn/iLRM"  # demo.models.OFFICIAL_REPO (not imported: this script needs no torch)
#: Our checkpoint's files in the single-file form (ilrm.publish.WEIGHT_FILES).
MODEL_FILES = ("model.safetensors", "config.json")
#: What of the repository the Space needs (besides this folder's README and requirements).
PACKAGES = ("ilrm", "demo")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def preload_entry(model_repo: str, files: tuple[str, ...] | list[str], revision: str | None = None) -> str:
    """One ``preload_from_hub`` item: ``REPO FILE1,FILE2[ REVISION]`` (the Spaces config format)."""
    return f"{model_repo} {','.join(files)}" + (f" {revision}" if revision else "")


def space_readme(
    model_repo: str, hardware: str, *, model_revision: str | None = None, model_files: tuple[str, ...] = MODEL_FILES
) -> str:
    """This folder's README with the front matter pointed at ``model_repo`` (at ``model_revision``,
    so the build preloads the very files the app loads) and ``hardware``."""
    text = (HERE / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    meta["models"] = [model_repo]
    meta["preload_from_hub"] = [preload_entry(model_repo, model_files, model_revision)]
    meta["suggested_hardware"] = hardware
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body


def build_folder(
    out_dir: str | Path,
    *,
    model_repo: str,
    model_revision: str | None = None,
    official_revision: str | None = None,
    official_models: bool = True,
    hardware: str = "zero-a10g",
    model_files: tuple[str, ...] = MODEL_FILES,
) -> list[str]:
    """Write the Space into ``out_dir`` (must be empty or new); returns the top-level names.

    Exits with a message when the authors' weights are offered but not pinned (``official_revision``).
    """
    out = Path(out_dir)
    if official_models and not official_revision:
        sys.exit(
            f"error: pin the authors' weights with --official-revision COMMIT (a commit of {OFFICIAL_REPO}), "
            "or leave them out with --no-official-models"
        )
    if out.exists() and any(out.iterdir()):
        sys.exit(f"error: {out} is not empty; give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    readme = space_readme(model_repo, hardware, model_revision=model_revision, model_files=model_files)
    (out / "README.md").write_text(readme)
    shutil.copy2(HERE / "requirements.txt", out / "requirements.txt")
    shutil.copy2(REPO / "app.py", out / "app.py")
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, out / pkg, ignore=IGNORE)
    settings: dict = {"default_model": model_repo, "default_revision": model_revision}
    if official_models:
        settings["official_revision"] = official_revision
    settings = {k: v for k, v in settings.items() if v}
    if not official_models:
        settings["official_models"] = False
    (out / "ilrm_demo.json").write_text(json.dumps(settings, indent=2) + "\n")
    return sorted(p.name for p in out.iterdir())


def resolve_pins(api, *, model_repo: str, model_revision: str | None, official_revision: str | None,
                 official_models: bool, model_files: tuple[str, ...] | None = None, **_) -> dict:
    """Commits for the revisions not given (what ``main`` points at now) and the weight files of
    ``model_repo`` at its commit (config, single file or shards with their index)."""
    out: dict = {"model_revision": model_revision or api.model_info(model_repo).sha}
    if official_models:
        out["official_revision"] = official_revision or api.model_info(OFFICIAL_REPO).sha
    if model_files is None:
        names = api.list_repo_files(model_repo, revision=out["model_revision"])
        weights = [n for n in names if n == "config.json" or (n.startswith("model") and n.endswith((".safetensors",
                                                                                                   ".index.json")))]
        if "config.json" not in weights or len(weights) < 2:
            sys.exit(f"error: {model_repo}@{out['model_revision']} has no config.json + model weights ({names})")
        out["model_files"] = tuple(sorted(weights))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("space_id", help="OWNER/NAME of the Space (created if missing)")
    p.add_argument("--model-repo", required=True, help="our checkpoint on the Hub (python -m ilrm publish)")
    p.add_argument("--model-revision", default=None, help="pin the default model to this commit (default: "
                   "main's commit, resolved when uploading)")
    p.add_argument("--model-files", default=None, help="comma-separated weight files to preload (default: "
                   "listed from the Hub when uploading; model.safetensors,config.json for --dry-run)")
    p.add_argument("--official-revision", default=None, help="pin the authors' Gynjn/iLRM weights to this commit "
                   "(required for --dry-run; resolved from main when uploading)")
    p.add_argument("--no-official-models", action="store_true", help="do not offer the authors' weights")
    p.add_argument("--hardware", default="zero-a10g", help="suggested_hardware (e.g. zero-a10g, cpu-basic, t4-small)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", metavar="DIR", default=None, help="only write the Space folder into DIR")
    a = p.parse_args(argv)
    kw = dict(model_repo=a.model_repo, model_revision=a.model_revision, official_revision=a.official_revision,
              official_models=not a.no_official_models, hardware=a.hardware)
    if a.model_files:
        kw["model_files"] = tuple(f.strip() for f in a.model_files.split(",") if f.strip())
    if a.dry_run:
        names = build_folder(a.dry_run, **kw)
        print(json.dumps({"space_id": a.space_id, "folder": a.dry_run, "files": names}))
        return 0
    from huggingface_hub import HfApi

    api = HfApi()
    kw.update(resolve_pins(api, **kw))
    print(json.dumps({"pinned": {k: kw[k] for k in ("model_revision", "official_revision", "model_files")}}))
    with tempfile.TemporaryDirectory(prefix="ilrm_space_") as tmp:
        names = build_folder(tmp, **kw)
        api.create_repo(a.space_id, repo_type="space", space_sdk="gradio", private=a.private, exist_ok=True)
        info = api.upload_folder(repo_id=a.space_id, repo_type="space", folder_path=tmp,
                                 commit_message="Deploy the iLRM demo")
    print(json.dumps({"space_id": a.space_id, "files": names, "url": str(getattr(info, "commit_url", info))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
