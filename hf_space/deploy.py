"""Assemble the Hugging Face Space folder and upload it.

    python hf_space/deploy.py OWNER/SPACE --model-repo OWNER/MODEL [--model-revision REV]
        [--official-revision SHA] [--hardware zero-a10g] [--private] [--dry-run DIR]

The folder holds: ``README.md`` (this folder's README with ``models`` / ``preload_from_hub`` set to
``--model-repo`` and ``suggested_hardware`` to ``--hardware``), ``requirements.txt`` (this folder's),
``app.py``, the ``ilrm`` and ``demo`` packages (with the bundled examples) and ``ilrm_demo.json`` (the
demo's settings: default model, its revision, the pinned revision of the authors' weights).
``--dry-run DIR`` writes the folder into DIR and uploads nothing. Without it the folder is uploaded
with ``HfApi.create_repo(repo_type="space", space_sdk="gradio", exist_ok=True)`` + ``upload_folder``.
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
#: What of the repository the Space needs (besides this folder's README and requirements).
PACKAGES = ("ilrm", "demo")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def space_readme(model_repo: str, hardware: str) -> str:
    """This folder's README with the front matter pointed at ``model_repo`` and ``hardware``."""
    text = (HERE / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    meta["models"] = [model_repo]
    meta["preload_from_hub"] = [f"{model_repo} model.safetensors,config.json"]
    meta["suggested_hardware"] = hardware
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body


def build_folder(
    out_dir: str | Path,
    *,
    model_repo: str,
    model_revision: str | None = None,
    official_revision: str | None = None,
    hardware: str = "zero-a10g",
) -> list[str]:
    """Write the Space into ``out_dir`` (must be empty or new); returns the top-level names."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"error: {out} is not empty; give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.md").write_text(space_readme(model_repo, hardware))
    shutil.copy2(HERE / "requirements.txt", out / "requirements.txt")
    shutil.copy2(REPO / "app.py", out / "app.py")
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, out / pkg, ignore=IGNORE)
    settings = {"default_model": model_repo, "default_revision": model_revision, "official_revision": official_revision}
    (out / "ilrm_demo.json").write_text(json.dumps({k: v for k, v in settings.items() if v}, indent=2) + "\n")
    return sorted(p.name for p in out.iterdir())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("space_id", help="OWNER/NAME of the Space (created if missing)")
    p.add_argument("--model-repo", required=True, help="our checkpoint on the Hub (python -m ilrm publish)")
    p.add_argument("--model-revision", default=None, help="pin the default model to this revision")
    p.add_argument("--official-revision", default=None, help="pin the authors' Gynjn/iLRM weights to this commit")
    p.add_argument("--hardware", default="zero-a10g", help="suggested_hardware (e.g. zero-a10g, cpu-basic, t4-small)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", metavar="DIR", default=None, help="only write the Space folder into DIR")
    a = p.parse_args(argv)
    kw = dict(model_repo=a.model_repo, model_revision=a.model_revision, official_revision=a.official_revision,
              hardware=a.hardware)
    if a.dry_run:
        names = build_folder(a.dry_run, **kw)
        print(json.dumps({"space_id": a.space_id, "folder": a.dry_run, "files": names}))
        return 0
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory(prefix="ilrm_space_") as tmp:
        names = build_folder(tmp, **kw)
        api = HfApi()
        api.create_repo(a.space_id, repo_type="space", space_sdk="gradio", private=a.private, exist_ok=True)
        info = api.upload_folder(repo_id=a.space_id, repo_type="space", folder_path=tmp,
                                 commit_message="Deploy the iLRM demo")
    print(json.dumps({"space_id": a.space_id, "files": names, "url": str(getattr(info, "commit_url", info))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
