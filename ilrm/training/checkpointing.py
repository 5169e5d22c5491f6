"""Training checkpoints and the exported model.

Layout of a run folder::

    <out>/train_config.json                 the TrainConfig (JSON)
    <out>/log.jsonl                         one JSON record per log / eval step
    <out>/checkpoint-00001000/model/        model in our format (config.json + model.safetensors)
    <out>/checkpoint-00001000/training_state.pt
    <out>/latest                            text: the name of the newest complete checkpoint folder
    <out>/final/                            exported model (optionally bf16/fp16)
    <out>/curves.png                        training curves

``training_state.pt`` loads with ``torch.load(..., weights_only=True)``: the optimiser and
scheduler state dicts, the step, samples seen, elapsed time, the TrainConfig as JSON text and every
rank's RNG states as tensors / numbers (:func:`rng_state` / :func:`set_rng_state`). A checkpoint is
written to a temporary folder and renamed, and ``latest`` is replaced atomically after it, so a
run killed while saving still resumes from the previous complete checkpoint.
"""

from __future__ import annotations

import copy
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ILRMInputError
from ..weight_files import load_weights

STATE_FILE = "training_state.pt"
MODEL_DIR = "model"
LATEST_FILE = "latest"
STATE_FORMAT = "ilrm-training-state/1"
_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")
EXPORT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step:08d}"


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


# ---- RNG states as plain tensors --------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """This process's torch, CUDA, numpy and python RNG states as tensors / numbers / lists."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only where CUDA is in use)."""
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    npst = state["numpy"]
    np.random.set_state(
        (npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda_states])


# ---- save / find / load -------------------------------------------------------------------------


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: nn.Module,
    state: dict[str, Any],
    keep: int | None = None,
) -> Path:
    """Write ``<out>/checkpoint-<step>/`` (model + ``training_state.pt``), point ``latest`` at it and
    drop older checkpoints beyond the newest ``keep`` (None keeps all). Call on one rank only.

    state: the training state (see the module docstring); ``format`` and ``step`` are added.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(step)
    final = out / name
    tmp = out / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    unwrap(model).save_pretrained(tmp / MODEL_DIR)
    torch.save({**state, "format": STATE_FORMAT, "step": int(step)}, tmp / STATE_FILE)
    if final.exists():  # re-saving a step (e.g. after resuming from it)
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_latest(out, name)
    if keep is not None and keep > 0:
        prune_checkpoints(out, keep, protect=name)
    return final


def write_latest(out_dir: Path, name: str) -> None:
    tmp = out_dir / f".{LATEST_FILE}.tmp"
    tmp.write_text(name + "\n")
    os.replace(tmp, out_dir / LATEST_FILE)


def list_checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoint folders of a run, as (step, path), oldest first."""
    out = Path(out_dir)
    found = []
    if out.is_dir():
        for p in out.iterdir():
            m = _CKPT_RE.match(p.name)
            if m and (p / STATE_FILE).is_file() and (p / MODEL_DIR / "config.json").is_file():
                found.append((int(m.group(1)), p))
    return sorted(found)


def prune_checkpoints(out_dir: Path, keep: int, protect: str | None = None) -> None:
    ckpts = list_checkpoints(out_dir)
    for _, path in ckpts[: max(0, len(ckpts) - keep)]:
        if path.name != protect:
            shutil.rmtree(path, ignore_errors=True)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The checkpoint ``<out>/latest`` names (or the newest complete one if that file is missing/stale)."""
    out = Path(out_dir)
    pointer = out / LATEST_FILE
    if pointer.is_file():
        cand = out / pointer.read_text().strip()
        if (cand / STATE_FILE).is_file():
            return cand
    ckpts = list_checkpoints(out)
    return ckpts[-1][1] if ckpts else None


def resolve_resume(resume: str | Path | None, out_dir: str | Path) -> Path | None:
    """The checkpoint folder to resume from.

    ``None``: start fresh. ``"auto"``: the latest checkpoint in ``out_dir``, or None if there is none.
    A path: a checkpoint folder (holding ``training_state.pt``) or a run folder (its latest checkpoint).
    """
    if resume is None or str(resume) == "":
        return None
    if str(resume) == "auto":
        return latest_checkpoint(out_dir)
    path = Path(resume).expanduser()
    if (path / STATE_FILE).is_file():
        return path
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is not None:
            return found
    raise ILRMInputError(
        f"cannot resume from {resume}: expected a checkpoint folder with {STATE_FILE}, a run folder with "
        f"checkpoints, or 'auto'"
    )


def load_training_state(checkpoint: str | Path) -> dict[str, Any]:
    """``training_state.pt`` of a checkpoint folder (``weights_only`` load on CPU)."""
    path = Path(checkpoint) / STATE_FILE
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != STATE_FORMAT:
        raise ILRMInputError(f"{path} is not an iLRM training state (format {state.get('format')!r})")
    return state


def load_checkpoint_weights(model: nn.Module, checkpoint: str | Path) -> None:
    """Load ``<checkpoint>/model/`` weights (single file or shards) into ``model`` (strict)."""
    target = unwrap(model)
    target.load_state_dict(load_weights(Path(checkpoint) / MODEL_DIR), strict=True)


# ---- export ------------------------------------------------------------------------------------


def export_model(
    model: nn.Module, out_dir: str | Path, dtype: str | torch.dtype | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write the model in our format (``config.json`` + ``model.safetensors``) to ``out_dir``.

    dtype: cast floating-point weights for shipping ("bfloat16"/"float16"; None or "float32" keeps
    fp32). Loading (:func:`ilrm.checkpoints.load_model`) casts back to the model's fp32 parameters.
    extra: merged into ``config.extra`` (e.g. training metadata); the weights dtype is recorded there too.
    The model passed in is not modified.
    """
    if isinstance(dtype, str):
        if dtype not in EXPORT_DTYPES:
            raise ILRMInputError(f"export dtype must be one of {sorted(EXPORT_DTYPES)}, got {dtype!r}")
        dtype = EXPORT_DTYPES[dtype]
    dtype = dtype or torch.float32
    bare = unwrap(model)
    cfg = bare.config
    meta = {**cfg.extra, **(extra or {}), "weights_dtype": str(dtype).removeprefix("torch.")}
    clone = copy.deepcopy(bare).to("cpu")
    clone.config = cfg.replace(extra=meta)
    clone = clone.to(dtype)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clone.save_pretrained(out, config=clone.config)
    return out
