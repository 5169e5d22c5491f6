"""The models the demo offers: settings (``ilrm_demo.json`` + environment), specs, and a store that
loads each model once. The shipped default checkpoint is resolved here, at the edge."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ilrm.checkpoints import SHIPPED_CHECKPOINT
from ilrm.errors import ILRMInputError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
#: The shipped checkpoint (our format), relative to the repository / Space root.
DEFAULT_CHECKPOINT = REPO_ROOT / SHIPPED_CHECKPOINT
#: Optional JSON next to app.py written by ``hf_space/deploy.py``: {"default_model", "official_revision", ...}.
SETTINGS_FILE = REPO_ROOT / "ilrm_demo.json"
#: The authors' weights (downloaded on first use at a pinned revision, never re-hosted: no licence).
OFFICIAL_REPO = "Gynjn/iLRM"
OFFICIAL_FILES = {
    "authors-re10k": ("re10k_2view.ckpt", "iLRM RE10K (authors' weights, 2 views, 256²)"),
    "authors-dl3dv-16": ("ilrm_undistort_dl3dv_16view.pt", "iLRM DL3DV (authors' weights, 16 views, 544×960)"),
    "authors-dl3dv-32": ("ilrm_undistort_dl3dv.pt", "iLRM DL3DV (authors' weights, 32 views, 544×960)"),
}


def load_settings(path: str | Path | None = None) -> dict:
    """Demo settings: ``ilrm_demo.json`` (if present) overridden by environment variables.

    Keys: ``default_model`` (folder or Hub id; env ``ILRM_DEMO_CHECKPOINT``), ``default_revision``
    (env ``ILRM_DEMO_REVISION``), ``official_revision`` (pin for ``Gynjn/iLRM``; env
    ``ILRM_OFFICIAL_REVISION``), ``extra_models`` (Hub ids; env ``ILRM_DEMO_MODELS``, comma-separated),
    ``official_models`` (bool; env ``ILRM_DEMO_OFFICIAL`` = 0/1).
    """
    p = Path(path) if path is not None else SETTINGS_FILE
    settings: dict = {}
    if p.is_file():
        try:
            settings = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("ignoring unreadable demo settings %s: %s", p, e)
    env = os.environ
    if env.get("ILRM_DEMO_CHECKPOINT"):
        settings["default_model"] = env["ILRM_DEMO_CHECKPOINT"]
    if env.get("ILRM_DEMO_REVISION"):
        settings["default_revision"] = env["ILRM_DEMO_REVISION"]
    if env.get("ILRM_OFFICIAL_REVISION"):
        settings["official_revision"] = env["ILRM_OFFICIAL_REVISION"]
    if env.get("ILRM_DEMO_MODELS"):
        settings["extra_models"] = [m.strip() for m in env["ILRM_DEMO_MODELS"].split(",") if m.strip()]
    if env.get("ILRM_DEMO_OFFICIAL"):
        settings["official_models"] = env["ILRM_DEMO_OFFICIAL"].strip().lower() not in ("0", "false", "no")
    return settings


@dataclass(frozen=True)
class ModelSpec:
    """A model the demo offers.

    key: identifier used by the UI/API (e.g. ``"shipped"``). label: what the user sees.
    source: a checkpoint folder, a Hub repo id in our format, ``"official:<file>"`` (a file of
    :data:`OFFICIAL_REPO`) or ``"preset:<name>"`` (random weights, tests only).
    revision: Hub branch/tag/commit to pin (Hub sources only).
    """

    key: str
    label: str
    source: str
    revision: str | None = None


def default_model_specs(
    checkpoint: str | Path | None = None,
    *,
    official_revision: str | None = None,
    settings: dict | None = None,
) -> list[ModelSpec]:
    """The demo's model list: the shipped checkpoint first, then the authors' weights, then extra Hub models.

    checkpoint: overrides the shipped checkpoint (a folder or a Hub id); default from
    :func:`load_settings`, else :data:`DEFAULT_CHECKPOINT`.
    """
    s = load_settings() if settings is None else settings
    default = str(checkpoint) if checkpoint is not None else str(s.get("default_model") or DEFAULT_CHECKPOINT)
    name = Path(default).name if not _looks_like_hub_id(default) else default.split("/")[-1]
    specs = [ModelSpec("shipped", f"{name} (default)", default, s.get("default_revision"))]
    if s.get("official_models", True):
        rev = official_revision or s.get("official_revision") or "main"
        specs += [ModelSpec(k, label, f"official:{fname}", rev) for k, (fname, label) in OFFICIAL_FILES.items()]
    for repo in s.get("extra_models", []):
        specs.append(ModelSpec(repo, repo, repo))
    return specs


def _looks_like_hub_id(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and not Path(source).exists()


def load_model_from_spec(spec: ModelSpec) -> nn.Module:
    """Load the model ``spec`` names (eval mode, CPU). Raises :class:`ILRMInputError` with advice."""
    from ilrm.checkpoints import load_model

    src = spec.source
    try:
        if src.startswith("official:"):
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(OFFICIAL_REPO, src.split(":", 1)[1], revision=spec.revision)
            return load_model(path)
        if not src.startswith("preset:") and not _looks_like_hub_id(src) and not Path(src).expanduser().is_dir():
            raise ILRMInputError(
                f"the model checkpoint {src} is not installed. Train or download it (see the README: "
                "`python -m ilrm train ...` writes checkpoints/ilrm-tiny-procedural), point ILRM_DEMO_CHECKPOINT "
                "at a checkpoint folder or Hub id, or pick another model."
            )
        return load_model(src, revision=spec.revision)
    except ILRMInputError:
        raise
    except Exception as e:  # noqa: BLE001 - network/Hub errors become one readable message
        where = f"{OFFICIAL_REPO}/{src.split(':', 1)[1]}" if src.startswith("official:") else src
        raise ILRMInputError(
            f"could not load the model {spec.label!r} from {where}"
            f"{f' (revision {spec.revision})' if spec.revision else ''}: {type(e).__name__}: {e}. "
            "Check the internet connection and the repository name, or pick another model."
        ) from e


class ModelStore:
    """Loads each offered model once (thread-safe) and keeps it in memory."""

    def __init__(self, specs: Sequence[ModelSpec]):
        if not specs:
            raise ValueError("ModelStore needs at least one ModelSpec")
        self.specs = {s.key: s for s in specs}
        self._models: dict[str, nn.Module] = {}
        self._lock = threading.Lock()

    @property
    def default_key(self) -> str:
        return next(iter(self.specs))

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for a dropdown."""
        return [(s.label, s.key) for s in self.specs.values()]

    def is_available(self, key: str) -> bool:
        """Whether ``key`` can load without a download (already loaded, or a local folder)."""
        spec = self.specs.get(key)
        if spec is None:
            return False
        return key in self._models or spec.source.startswith("preset:") or Path(spec.source).is_dir()

    def get(self, key: str) -> tuple[nn.Module, ModelSpec]:
        """(model in eval mode, its spec); loads on first use. Raises :class:`ILRMInputError`."""
        spec = self.specs.get(key)
        if spec is None:
            raise ILRMInputError(f"unknown model {key!r}; choose one of {', '.join(self.specs)}")
        with self._lock:
            if key not in self._models:
                self._models[key] = load_model_from_spec(spec).eval()
            return self._models[key], spec


def describe_model(model: nn.Module, label: str) -> str:
    """One line: label, resolution, trained view count, parameters."""
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    return (
        f"{label} — input {cfg.image_width}×{cfg.image_height}, trained with "
        f"{', '.join(map(str, cfg.trained_views or (cfg.num_views,)))} views, "
        f"{params / 1e6:.1f} M parameters"
    )
