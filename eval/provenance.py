"""Provenance of a result: which weights (hash or Hub revision), which code (git commit), which machine.

Everything here is informative: it goes into ``summary.json`` so a number can be traced back, and a
failure to find out (no git, Hub offline) is recorded as unknown rather than stopping the run.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def model_source_info(spec: str, model: torch.nn.Module, revision: str | None) -> dict[str, Any]:
    """Model id + revision (Hub) or sha256 (files) for the summary.

    spec: the ``--model`` value without a ``full-attention:`` prefix (a file, a folder, a Hub id or
    ``preset:<name>``); model: the loaded model (its ``config`` is recorded in full).
    """
    from ilrm.checkpoints import file_sha256

    cfg = model.config
    info: dict[str, Any] = {"arch": cfg.arch, "parameters": sum(p.numel() for p in model.parameters())}
    path = Path(spec).expanduser()
    if spec.startswith("preset:"):
        info.update(source=spec, weights="random initialisation (preset)")
    elif path.is_file():
        info.update(source=str(path.resolve()), sha256=cfg.extra.get("source_sha256") or file_sha256(path))
        info["layout"] = cfg.extra.get("layout")
    elif path.is_dir():
        weights = sorted(path.glob("*.safetensors"))
        info.update(source=str(path.resolve()), sha256={w.name: file_sha256(w) for w in weights})
    else:
        info.update(source=spec, revision=revision or "main")
        try:
            from huggingface_hub import hf_hub_download

            cached = Path(hf_hub_download(spec, "config.json", revision=revision))
            if cached.parent.parent.name == "snapshots":
                info["revision_sha"] = cached.parent.name
        except Exception as e:  # noqa: BLE001 - the model loaded, the sha is only informative
            info["revision_sha"] = f"unknown ({type(e).__name__})"
    info["config"] = cfg.to_dict()
    return info


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit sha and whether the working tree has changes (None when not a git checkout).

    A copy of the tree (e.g. one shipped to a GPU machine, whose ``.git`` may be missing or stale)
    names its commit in the environment variable ``ILRM_GIT_COMMIT``, which wins over git.
    """
    if os.environ.get("ILRM_GIT_COMMIT"):
        return {"commit": os.environ["ILRM_GIT_COMMIT"], "dirty": None}
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return {"commit": sha, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def environment(device: torch.device, dtype_name: str, world_size: int) -> dict[str, Any]:
    """Device, versions and commit for the summary."""
    env: dict[str, Any] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": dtype_name,
        "world_size": world_size,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        **{f"git_{k}": v for k, v in git_state().items()},
    }
    try:
        import gsplat

        env["gsplat"] = gsplat.__version__
    except ImportError:
        env["gsplat"] = None
    return env


__all__ = ["REPO_ROOT", "environment", "git_state", "model_source_info"]
