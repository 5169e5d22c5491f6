"""The authors' released checkpoints → our modules, and our own safetensors format.

Two released layouts (SPEC): the RE10K ``main`` model is a Lightning checkpoint with weights under
``state_dict`` prefixed ``encoder.scaler.``; the DL3DV ``wide`` model is a plain dict with weights
under ``model``. Our modules keep the patch channel layout (ph, pw, c) of the originals but lay
the uplifted query channels out as (s, heads, head_dim) instead of (heads, head_dim, s), so the
read blocks' ``q`` rows and ``proj`` columns are permuted on load.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .config import ILRMConfig
from .errors import ILRMInputError
from .hub_errors import hub_model_errors
from .models import ILRM, build_model, model_class

MAIN_PREFIX = "encoder.scaler."

# (ours, theirs) per released layout; blocks are handled by _block_key_map.
_MAIN_TOP = {
    "viewpoint_tokenizer.weight": "input_tokenizer.weight",
    "viewpoint_norm.weight": "input_layernorm.weight",
    "image_tokenizer.weight": "support_tokenizer.weight",
    "image_norm.weight": "support_layernorm.weight",
    "head_norm.weight": "token_decoder.0.weight",
    "head.weight": "token_decoder.1.weight",
}
_WIDE_TOP = {
    "image_tokenizer.weight": "image_tokenizer.1.weight",
    "image_norm.weight": "image_tokenizer.2.weight",
    "viewpoint_tokenizer.weight": "viewpoint_tokenizer.1.weight",
    "viewpoint_norm.weight": "viewpoint_tokenizer.2.weight",
    "head_norm.weight": "viewpoint_token_decoder.0.weight",
    "head.weight": "viewpoint_token_decoder.1.weight",
}
_READ = {"attn.norm": "read_cross.norm", "attn.q_norm": "read_cross.q_norm", "attn.k_norm": "read_cross.k_norm",
         "attn.q": "read_cross.q", "attn.k": "read_cross.k", "attn.v": "read_cross.v", "attn.proj": "read_cross.proj",
         "mlp.norm": "read_ff.norm", "mlp.fc1": "read_ff.fc1", "mlp.fc2": "read_ff.fc2"}
_SELF = {"attn.norm": "attn.norm", "attn.q_norm": "attn.q_norm", "attn.k_norm": "attn.k_norm",
         "attn.qkv": "attn.qkv", "attn.proj": "attn.proj",
         "mlp.norm": "mlp.norm", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}


def _block_key_map(depth: int) -> dict[str, str]:
    out = {}
    for i in range(depth):
        for ours, theirs in (_READ if i % 2 == 0 else _SELF).items():
            out[f"blocks.{i}.{ours}.weight"] = f"processor.blocks.{i}.{theirs}.weight"
    return out


# ---- reading pickles safely ---------------------------------------------------------------

_ALLOWED = {
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("collections", "OrderedDict"),
    ("torch", "Size"),
    ("torch", "device"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
}


class Inert:
    """Stands in for any class a checkpoint names outside torch's tensor machinery.

    Unpickling builds one of these instead of importing/calling the named object, so nothing
    from the file runs; its arguments and state are kept only as data.
    """

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, {}

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.items[len(self.items)] = value

    def extend(self, values: Any) -> None:
        for v in values:
            self.append(v)

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return type(f"Inert_{name}", (Inert,), {"qualname": f"{module}.{name}"})


class _RestrictedPickleModule:
    """A ``pickle_module`` for ``torch.load``: tensors rebuild, everything else becomes :class:`Inert`."""

    Unpickler = _RestrictedUnpickler
    load = staticmethod(lambda f, **kw: _RestrictedUnpickler(f, **kw).load())
    __name__ = "ilrm_restricted_pickle"


def read_checkpoint_file(path: str | Path, *, trust_pickle: bool = False) -> Any:
    """Load a torch pickle without executing code from it.

    ``weights_only=True`` first; files that name other classes (Lightning hyper-parameters,
    OmegaConf objects, loop state) are read with a restricted unpickler that replaces every such
    class by an inert placeholder. ``trust_pickle=True`` allows a full, code-executing load.
    """
    path = Path(path)
    if not path.is_file():
        raise ILRMInputError(f"checkpoint file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ILRMInputError(f"{path} is empty (0 bytes): the download or copy did not finish; fetch the file again")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if _unreadable(e):
            raise ILRMInputError(_damaged_message(path, size, e)) from e
    except (RuntimeError, EOFError, KeyError, ValueError, IndexError, OSError) as e:
        # torch.load's errors for a file that is not a (complete) torch pickle: a truncated zip
        # ("failed finding central directory"), an empty or cut legacy pickle (EOFError), text or
        # other bytes read as pickle opcodes (KeyError / ValueError / IndexError).
        raise ILRMInputError(_damaged_message(path, size, e)) from e
    if trust_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
    except Exception as e:  # noqa: BLE001 - any failure here means the safe path cannot read it
        raise ILRMInputError(
            f"{path} needs more than tensors to unpickle and the safe reader failed ({type(e).__name__}: {e}). "
            "If you trust the file's origin, pass trust_pickle=True (CLI: --trust-pickle)."
        ) from e


def _unreadable(error: pickle.UnpicklingError) -> bool:
    """True when ``weights_only`` failed on the bytes themselves, not on a class it refuses (the case
    the restricted reader handles)."""
    text = str(error)
    return not any(marker in text for marker in ("Unsupported global", "Weights only load failed", "GLOBAL"))


def _damaged_message(path: Path, size: int, error: BaseException) -> str:
    return (
        f"cannot read {path} ({size:,} bytes) as a PyTorch checkpoint: it is truncated, damaged or not a "
        f"checkpoint at all ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no detail'}). "
        "Download or copy it again and compare its size and sha256 with the source (the authors' release page "
        "or `sha256sum`); pass our own checkpoint folders (config.json + model.safetensors) as folders"
    )


# ---- detection and mapping ----------------------------------------------------------------


def _find_state_dict(obj: Any) -> tuple[str, dict[str, Tensor]]:
    """Return ("main" | "wide", weights without prefixes)."""

    def tensors(d: Any) -> dict[str, Tensor]:
        items = d.items if isinstance(d, Inert) else None
        d = d.items if items is not None else d
        if not isinstance(d, dict):
            return {}
        out = {}
        for k, v in d.items():
            if isinstance(k, str) and isinstance(v, Tensor):
                out[re.sub(r"^(module\.|_orig_mod\.)+", "", k)] = v
        return out

    candidates = []
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj:
                candidates.append(tensors(obj[key]))
    candidates.append(tensors(obj))
    for sd in candidates:
        if any(k.startswith(MAIN_PREFIX) for k in sd):
            return "main", {k[len(MAIN_PREFIX) :]: v for k, v in sd.items() if k.startswith(MAIN_PREFIX)}
        if "input_tokenizer.weight" in sd:
            return "main", sd
        if "image_tokenizer.1.weight" in sd:
            return "wide", sd
    raise ILRMInputError(
        "not an iLRM checkpoint: found neither the RE10K layout (state_dict with 'encoder.scaler.' keys) "
        "nor the DL3DV wide layout (model with 'image_tokenizer.1.weight')"
    )


def _config_for(kind: str, sd: dict[str, Tensor]) -> ILRMConfig:
    """Preset for the layout, with width/depth/uplift read from the tensor shapes."""
    cfg = ILRMConfig.preset("re10k" if kind == "main" else "dl3dv-wide")
    tok = sd.get("input_tokenizer.weight" if kind == "main" else "viewpoint_tokenizer.1.weight")
    if tok is None:
        return cfg
    width = tok.shape[0]
    if width % cfg.head_dim:
        raise ILRMInputError(
            f"the checkpoint's tokenizer has width {width}, which is not a multiple of the head size "
            f"{cfg.head_dim}: no released iLRM has that shape, so the file is damaged or from another model. "
            "Use the authors' released file (re10k_2view.ckpt / ilrm_undistort_dl3dv*.pt) unchanged"
        )
    idx = [int(m.group(1)) for k in sd if (m := re.match(r"processor\.blocks\.(\d+)\.", k))]
    depth = max(idx) + 1 if idx else cfg.depth
    q = sd.get("processor.blocks.0.read_cross.q.weight")
    uplift = q.shape[0] // width if q is not None else cfg.uplift_factor
    return cfg.replace(width=width, depth=depth, uplift_factor=uplift)


def uplift_rows_to_ours(w: Tensor, heads: int, head_dim: int, s: int) -> Tensor:
    """q weight (s·D, D): rows (heads, head_dim, s) → (s, heads, head_dim)."""
    return w.reshape(heads, head_dim, s, -1).permute(2, 0, 1, 3).reshape(s * heads * head_dim, -1)


def uplift_cols_to_ours(w: Tensor, heads: int, head_dim: int, s: int) -> Tensor:
    """proj weight (D, s·D): columns (heads, head_dim, s) → (s, heads, head_dim)."""
    return w.reshape(-1, heads, head_dim, s).permute(0, 3, 1, 2).reshape(w.shape[0], -1)


def convert_official_state_dict(kind: str, sd: dict[str, Tensor], config: ILRMConfig) -> dict[str, Tensor]:
    """Map the authors' weights to our parameter names and layouts. Raises with missing/unexpected keys."""
    key_map = dict(_MAIN_TOP if kind == "main" else _WIDE_TOP)
    key_map.update(_block_key_map(config.depth))
    missing = sorted(theirs for theirs in key_map.values() if theirs not in sd)
    unexpected = sorted(set(sd) - set(key_map.values()))
    if missing or unexpected:
        raise ILRMInputError(
            f"checkpoint does not match the {kind!r} iLRM layout: "
            f"missing keys {missing or 'none'}; unexpected keys {unexpected or 'none'}"
        )
    s, h, d = config.uplift_factor, config.num_heads, config.head_dim
    read_q = {f"blocks.{i}.attn.q.weight" for i in range(0, config.depth, 2)}
    read_proj = {f"blocks.{i}.attn.proj.weight" for i in range(0, config.depth, 2)}
    out = {}
    for ours, theirs in key_map.items():
        w = sd[theirs].float()
        if s > 1 and ours in read_q:
            w = uplift_rows_to_ours(w, h, d, s)
        elif s > 1 and ours in read_proj:
            w = uplift_cols_to_ours(w, h, d, s)
        out[ours] = w.contiguous()
    return out


def load_official_checkpoint(path: str | Path, *, trust_pickle: bool = False):
    """The authors' ``re10k_2view.ckpt`` / ``ilrm_undistort_dl3dv*.pt`` as an :class:`ilrm.ILRM` (eval mode)."""
    kind, sd = _find_state_dict(read_checkpoint_file(path, trust_pickle=trust_pickle))
    config = _config_for(kind, sd)
    config = config.replace(extra={"source": Path(path).name, "source_sha256": file_sha256(path), "layout": kind})
    model = ILRM(config)
    weights = convert_official_state_dict(kind, sd, config)
    own = model.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in weights.items() if own[k].shape != v.shape]
    if bad:
        raise ILRMInputError("checkpoint shapes do not match the inferred config: " + "; ".join(bad))
    result = model.load_state_dict(weights, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return model.eval()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- one entry point for every model source -----------------------------------------------

OFFICIAL_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def load_model(source: str | Path, *, revision: str | None = None, trust_pickle: bool = False, **hub_kwargs: Any):
    """Any model the project can run, in eval mode:

    - a folder in our format (``config.json`` + ``model.safetensors``), iLRM or full-attention baseline;
    - a Hugging Face Hub repo id in our format (``revision`` pins a branch/tag/commit);
    - one of the authors' released files (``*.ckpt`` / ``*.pt``), through :func:`load_official_checkpoint`;
    - ``"preset:<name>"`` for randomly initialised weights (benchmarks and tests only).
    """
    src = str(source)
    if src.startswith("preset:"):
        return build_model(ILRMConfig.preset(src.split(":", 1)[1])).eval()
    path = Path(src).expanduser()
    if path.is_file() and path.suffix in OFFICIAL_SUFFIXES:
        return load_official_checkpoint(path, trust_pickle=trust_pickle)
    if path.is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise ILRMInputError(f"{path} has no config.json: not a checkpoint folder in our format")
        arch = _read_config(cfg_file).arch
        return model_class(arch).from_pretrained(path).eval()
    if path.exists() or src.startswith((".", "/", "~")) or src.count("/") != 1:
        raise ILRMInputError(
            f"cannot load model {src!r}: expected a checkpoint folder, an authors' .ckpt/.pt file, "
            "a Hub repo id like 'user/name', or 'preset:<name>'"
        )
    from huggingface_hub import hf_hub_download

    with hub_model_errors(src, revision):
        cfg_path = hf_hub_download(src, "config.json", revision=revision, **hub_kwargs)
        arch = _read_config(cfg_path, f"{src}'s config.json").arch
        return model_class(arch).from_pretrained(src, revision=revision, **hub_kwargs).eval()


def _read_config(path: str | Path, name: str | None = None) -> ILRMConfig:
    """``config.json`` of a checkpoint, with a message that names the file and says what to do."""
    name = name or str(path)
    try:
        return ILRMConfig.from_json(path)
    except ILRMInputError as e:
        raise ILRMInputError(
            f"{name} is not a usable iLRM config: {e}. The model cannot be built from it (iLRM's width must be "
            "a multiple of head_dim, 64 in every preset): restore the config.json saved with the weights, or "
            "save the model again with save_pretrained / `python -m ilrm convert`"
        ) from e
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:  # JSON syntax, unknown keys
        raise ILRMInputError(
            f"{name} cannot be read as an iLRM config ({type(e).__name__}: {e}): restore the config.json saved "
            "with the weights, or save the model again"
        ) from e


#: Where the repository keeps its shipped checkpoint, relative to the repository root. Only the
#: edges (the demo, the CLI's default) turn it into a path; the library never looks for the repository.
SHIPPED_CHECKPOINT = "checkpoints/ilrm-tiny-procedural"
