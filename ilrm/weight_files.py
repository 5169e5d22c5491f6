"""Our weights on disk: one ``model.safetensors``, or shards with a ``model.safetensors.index.json``.

Shards keep every file under a size limit (15 MiB by default) so a checkpoint fits the places it
travels through: this repository, and transfers of at most 16 MiB per file. The index follows the
Hugging Face convention (``{"metadata": {"total_size": N}, "weight_map": {tensor name: file}}``), so
other tools read the folder too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import ILRMInputError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
SHARD_LIMIT_BYTES = 15 * 2**20


def _shard_name(i: int, n: int) -> str:
    return f"model-{i:05d}-of-{n:05d}.safetensors"


def save_weights(state: nn.Module | dict[str, Tensor], folder: str | Path, max_bytes: int = SHARD_LIMIT_BYTES) -> list[Path]:
    """Write a module's (or a state dict's) tensors to ``folder``; returns the files written.

    One ``model.safetensors`` when the tensors fit ``max_bytes``, else shards of at most
    ``max_bytes`` each (a tensor larger than that gets a shard of its own) plus the index. Stale
    weight files of an earlier save into the same folder are removed, so the folder never mixes two.
    """
    from safetensors.torch import save_file

    sd = state.state_dict() if isinstance(state, nn.Module) else state
    # safetensors refuses shared storage; contiguous, detached CPU copies are what goes to disk.
    sd = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in [folder / SINGLE_FILE, folder / INDEX_FILE, *folder.glob("model-*-of-*.safetensors")]:
        old.unlink(missing_ok=True)
    sizes = {k: v.numel() * v.element_size() for k, v in sd.items()}
    total = sum(sizes.values())
    if total <= max_bytes:
        save_file(sd, str(folder / SINGLE_FILE), metadata={"format": "pt"})
        return [folder / SINGLE_FILE]
    groups: list[list[str]] = [[]]
    used = 0
    for k in sd:  # state-dict order keeps a layer's tensors together
        if groups[-1] and used + sizes[k] > max_bytes:
            groups.append([])
            used = 0
        groups[-1].append(k)
        used += sizes[k]
    n = len(groups)
    weight_map, files = {}, []
    for i, keys in enumerate(groups, 1):
        name = _shard_name(i, n)
        save_file({k: sd[k] for k in keys}, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in keys})
        files.append(folder / name)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")
    return [*files, folder / INDEX_FILE]


def weight_file_names(folder: str | Path) -> list[str]:
    """The weight files of a local folder (single file, or index + shards), e.g. to upload them."""
    folder = Path(folder)
    if (folder / INDEX_FILE).is_file():
        index = json.loads((folder / INDEX_FILE).read_text())
        return [INDEX_FILE, *sorted(set(index["weight_map"].values()))]
    return [SINGLE_FILE]


def load_weights(folder: str | Path | None = None, fetch: Callable[[str], str | None] | None = None) -> dict[str, Tensor]:
    """The state dict of a weights folder, on CPU.

    folder: a local folder; or ``fetch(name) -> local path or None`` (e.g. a Hub download that
    returns None when the file does not exist) to resolve names elsewhere.
    Raises ILRMInputError if no weights are there or a shard named by the index is missing.
    """
    from safetensors.torch import load_file

    if fetch is None:
        if folder is None:
            raise ValueError("give a folder or a fetch function")
        base = Path(folder)

        def fetch(name: str) -> str | None:
            p = base / name
            return str(p) if p.is_file() else None

    where = str(folder) if folder is not None else "the model repository"

    def read(path: str, name: str) -> dict[str, Tensor]:
        try:
            return load_file(path, device="cpu")
        except Exception as e:  # noqa: BLE001 - safetensors' SafetensorError, OSError, ...; never a bug here
            size = Path(path).stat().st_size if Path(path).is_file() else 0
            raise ILRMInputError(
                f"{where}: {name} ({size:,} bytes) is not a readable safetensors file: it is truncated or damaged "
                f"({type(e).__name__}: {e}). Download or copy the checkpoint again (a Hub download: delete it "
                "from the cache or pass force_download=True), or save the model again"
            ) from e

    index_path = fetch(INDEX_FILE)
    if index_path is None:
        single = fetch(SINGLE_FILE)
        if single is None:
            raise ILRMInputError(f"no {SINGLE_FILE} or {INDEX_FILE} in {where}")
        return read(single, SINGLE_FILE)
    try:
        index = json.loads(Path(index_path).read_text())
        names = sorted(set(index["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise ILRMInputError(
            f"{where}: {INDEX_FILE} is damaged ({type(e).__name__}: {e}); download or save the checkpoint again"
        ) from e
    sd: dict[str, Tensor] = {}
    for name in names:
        path = fetch(name)
        if path is None:
            raise ILRMInputError(f"{where}: the index names {name}, which is missing; download the checkpoint again")
        sd.update(read(path, name))
    missing = set(index["weight_map"]) - set(sd)
    if missing:
        raise ILRMInputError(f"{where}: {len(missing)} tensors of the index are in no shard (e.g. {sorted(missing)[0]})")
    return sd


def load_into(model: nn.Module, sd: dict[str, Tensor]) -> nn.Module:
    """Strict load that casts stored dtypes (e.g. bf16 shipping weights) to the model's parameters."""
    with torch.no_grad():
        model.load_state_dict(sd, strict=True)
    return model
