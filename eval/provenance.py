"""Provenance of a result: which weights (hash or Hub revision), which code (git commit), which machine.

Everything here is informative: it goes into ``summary.json`` so a number can be traced back, and a
failure to find out (no git, Hub offline) is recorded as unknown rather than stopping the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
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
        info.update(source=spec, weights="random weights (preset: random initialisation, not a trained model)")
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


def _git(root: Path) -> dict[str, Any]:
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return {"commit": sha or None, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The code commit, whether the working tree has changes, and where the commit came from.

    A copy of the tree (e.g. one shipped to a GPU machine, whose ``.git`` may be missing or stale) may
    name its commit in ``ILRM_GIT_COMMIT``. Both are recorded (``git_commit``, ``env_commit``) and
    ``commit_source`` says which one ``commit`` is: git's HEAD, or ``ILRM_GIT_COMMIT`` (with "differs
    from git HEAD" when git names another commit). ``dirty`` is git's answer (None = unknown: no git).
    """
    g = _git(root)
    env = os.environ.get("ILRM_GIT_COMMIT") or None
    state: dict[str, Any] = {"commit": g["commit"], "dirty": g["dirty"], "git_commit": g["commit"], "env_commit": env}
    if env is None:
        state["commit_source"] = "git" if g["commit"] else "unknown (no git checkout, ILRM_GIT_COMMIT unset)"
    else:
        state["commit"] = env
        if g["commit"] is None:
            state["commit_source"] = "ILRM_GIT_COMMIT (no git checkout; dirty unknown)"
        elif g["commit"] == env:
            state["commit_source"] = "ILRM_GIT_COMMIT (same as git HEAD)"
        else:
            state["commit_source"] = f"ILRM_GIT_COMMIT (differs from git HEAD {g['commit']}; dirty is git's)"
    return state


#: Libraries whose versions change a number (resampling, SSIM, LPIPS, rendering), by distribution name.
LIBRARIES = {
    "PIL": ("pillow", "PIL"),
    "scikit-image": ("scikit-image", "skimage"),
    "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "cv2"),
    "lpips": ("lpips", "lpips"),
    "numpy": ("numpy", "numpy"),
    "torch": ("torch", "torch"),
    "torchvision": ("torchvision", "torchvision"),
    "gsplat": ("gsplat", "gsplat"),
    "safetensors": ("safetensors", "safetensors"),
}


def library_versions() -> dict[str, str | None]:
    """Installed versions of :data:`LIBRARIES` (None = not installed)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name, (*dists, module) in LIBRARIES.items():
        version = None
        for dist in dists:
            try:
                version = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        if version is None:
            try:
                version = getattr(__import__(module), "__version__", None)
            except Exception:  # noqa: BLE001 - absent or broken: recorded as None
                version = None
        out[name] = version
    return out


# ---- file hashes -----------------------------------------------------------------------------------

_HEX = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


def _hub_blob_name(path: Path) -> str | None:
    """The blob name of a file in a Hugging Face cache snapshot (a symlink into ``blobs/``): its etag."""
    if not path.is_symlink():
        return None
    target = path.resolve()
    if target.parent.name == "blobs" and _HEX.match(target.name):
        return target.name
    return None


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file, or for a Hub cache file its etag: ``sha256:<blob>`` for LFS files
    (the etag is the content's sha256), ``etag:<git sha1>`` for small files."""
    path = Path(path)
    blob = _hub_blob_name(path)
    if blob is not None:
        return f"sha256:{blob}" if len(blob) == 64 else f"etag:{blob}"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


class HashCache:
    """File digests cached by (resolved path, size, mtime_ns) in a JSON file, so re-runs hash only
    files that changed. ``path`` None: in memory only."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, list[Any]] = {}
        if self.path is not None and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                self.entries = {}

    def digests(self, paths: Iterable[str | Path], workers: int = 8) -> dict[str, str]:
        """{str(path): digest} for every path (hashed in threads; hashlib releases the GIL)."""
        paths = list(dict.fromkeys(str(p) for p in paths))

        def one(p: str) -> str:
            st = os.stat(p)
            key = str(Path(p).resolve())
            hit = self.entries.get(key)
            if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                return hit[2]
            digest = file_digest(p)
            self.entries[key] = [st.st_size, st.st_mtime_ns, digest]
            return digest

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            result = dict(zip(paths, pool.map(one, paths)))
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(self.entries))
                os.replace(tmp, self.path)
            except OSError:
                pass  # the cache only saves time
        return result


def digest_of(items: Any) -> str:
    """sha256 of a JSON-serialisable value (sorted keys): one identity for many file digests."""
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over the model's tensors (name, dtype, shape, bytes, in name order): the weights that
    ran, whatever file or Hub repo they came from (random presets included)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


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
        "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "versions": library_versions(),
    }
    git = git_state()
    env.update({"git_commit": git["commit"], "git_dirty": git["dirty"], "git_commit_source": git["commit_source"],
                "git_head": git["git_commit"], "git_env_commit": git["env_commit"]})
    env["gsplat"] = env["versions"].get("gsplat")
    return env


__all__ = [
    "LIBRARIES",
    "REPO_ROOT",
    "HashCache",
    "digest_of",
    "environment",
    "file_digest",
    "git_state",
    "library_versions",
    "model_source_info",
    "weights_sha256",
]
