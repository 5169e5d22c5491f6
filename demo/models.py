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
#: The dropdown entry that picks a model by hardware and photo count (:func:`choose_model`).
AUTO_KEY = "auto"
AUTO_LABEL = "Automatic (best model for this hardware and photo count)"
#: Parameter counts of the authors' models (ilrm.config presets "re10k" / "dl3dv-wide"; the file sizes
#: of their checkpoints are not recorded in this repository: float32 weights alone are 4 bytes each).
OFFICIAL_PARAMS_M = {"authors-re10k": 171.3, "authors-dl3dv-16": 185.9, "authors-dl3dv-32": 185.9}


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


def host_hardware(settings: dict | None = None) -> str:
    """``"gpu"`` on a GPU host (CUDA, or a ZeroGPU Space, whose main process has no CUDA until a GPU
    function runs), else ``"cpu"``. Override: settings ``"hardware"`` or env ``ILRM_DEMO_HARDWARE`` (gpu/cpu)."""
    forced = os.environ.get("ILRM_DEMO_HARDWARE") or (settings or {}).get("hardware")
    if forced:
        return "gpu" if str(forced).strip().lower() in ("gpu", "cuda", "zerogpu", "zero-gpu") else "cpu"
    if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "true", "yes"):
        return "gpu"
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class ModelChoice:
    """Which model runs and why (shown in the report)."""

    key: str
    reason: str
    fallback_from: str | None = None  # the auto choice that could not load, when this is the fallback


def choose_model(keys: Sequence[str], num_photos: int, hardware: str) -> ModelChoice:
    """The automatic choice: on a GPU host the authors' weights (RE10K for 2–4 photos, the DL3DV wide
    model for more: its 16-view file up to 16 photos, the 32-view one above), on a CPU host the first
    (shipped) model. ``keys``: the offered model keys, the shipped one first."""
    keys = [k for k in keys if k != AUTO_KEY]
    if not keys:
        raise ILRMInputError("no model is offered")
    shipped = keys[0]
    n = int(num_photos)
    if hardware == "gpu":
        if n <= 4:
            key, why = "authors-re10k", "the RE10K model (trained on 2-view 256×256 scenes) for 2–4 photos"
        elif n <= 16:
            key, why = "authors-dl3dv-16", "the DL3DV wide model (16 views, 544×960) for 5–16 photos"
        else:
            key, why = "authors-dl3dv-32", "the DL3DV wide model (32 views, 544×960) for 17–32 photos"
        if key in keys:
            return ModelChoice(key, f"automatic: GPU host and {n} photos → the authors' weights, {why}")
        return ModelChoice(shipped, f"automatic: GPU host and {n} photos, but the authors' weights are not offered "
                                    "here → the shipped checkpoint")
    return ModelChoice(shipped, f"automatic: CPU host → the shipped checkpoint (the authors' models have "
                                f"~{OFFICIAL_PARAMS_M['authors-re10k']:.0f}–{OFFICIAL_PARAMS_M['authors-dl3dv-32']:.0f} M "
                                "parameters: a minute or more per run on a CPU)")


class ModelStore:
    """Loads each offered model once (thread-safe) and keeps it in memory.

    Besides the models' own keys it answers :data:`AUTO_KEY` (the dropdown's default): the model
    :func:`choose_model` picks for this host (``hardware``: "gpu"/"cpu", default :func:`host_hardware`)
    and the photo count; :meth:`get_for` says which one ran and why.
    """

    def __init__(self, specs: Sequence[ModelSpec], *, hardware: str | None = None, auto: bool = True):
        if not specs:
            raise ValueError("ModelStore needs at least one ModelSpec")
        self.specs = {s.key: s for s in specs}
        self._models: dict[str, nn.Module] = {}
        self._lock = threading.Lock()
        self._hardware = hardware
        self.auto = auto

    @property
    def hardware(self) -> str:
        if self._hardware is None:
            self._hardware = host_hardware()
        return self._hardware

    @property
    def default_key(self) -> str:
        """:data:`AUTO_KEY` (the best model for the hardware), or the first model when ``auto`` is off."""
        return AUTO_KEY if self.auto else next(iter(self.specs))

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for a dropdown: the automatic choice first, then every model."""
        own = [(s.label, s.key) for s in self.specs.values()]
        return ([(AUTO_LABEL, AUTO_KEY)] if self.auto else []) + own

    def resolve(self, key: str | None, num_photos: int = 2) -> ModelChoice:
        """The model a key stands for: :data:`AUTO_KEY` (or empty) → :func:`choose_model`; else the key itself."""
        if not key or key == AUTO_KEY:
            return choose_model(list(self.specs), num_photos, self.hardware)
        if key not in self.specs:
            raise ILRMInputError(f"unknown model {key!r}; choose one of {', '.join(self.specs)}")
        return ModelChoice(key, "chosen in the model list")

    def get_for(self, key: str | None, num_photos: int) -> tuple[nn.Module, ModelSpec, ModelChoice]:
        """(model, spec, choice) for ``key`` and ``num_photos``; an automatic choice that cannot load
        (e.g. the Hub is unreachable) falls back to the shipped model, and the reason says so."""
        choice = self.resolve(key, num_photos)
        try:
            model, spec = self._load(choice.key)
        except ILRMInputError as e:
            shipped = next(iter(self.specs))
            if (key and key != AUTO_KEY) or choice.key == shipped:
                raise
            log.warning("automatic model %s did not load, using %s: %s", choice.key, shipped, e)
            model, spec = self._load(shipped)
            choice = ModelChoice(shipped, f"{choice.reason}, which could not be loaded ({e}) → the shipped "
                                          "checkpoint instead", fallback_from=choice.key)
        return model, spec, choice

    def is_available(self, key: str) -> bool:
        """Whether ``key`` can load without a download (already loaded, or a local folder)."""
        if key == AUTO_KEY:
            key = self.resolve(AUTO_KEY).key
        spec = self.specs.get(key)
        if spec is None:
            return False
        return key in self._models or spec.source.startswith("preset:") or Path(spec.source).is_dir()

    def get(self, key: str) -> tuple[nn.Module, ModelSpec]:
        """(model in eval mode, its spec); loads on first use. :data:`AUTO_KEY` is the automatic choice for
        2 photos (use :meth:`get_for` to pass the photo count). Raises :class:`ILRMInputError`."""
        if not key or key == AUTO_KEY:
            model, spec, _ = self.get_for(AUTO_KEY, 2)
            return model, spec
        return self._load(key)

    def _load(self, key: str) -> tuple[nn.Module, ModelSpec]:
        spec = self.specs.get(key)
        if spec is None:
            raise ILRMInputError(f"unknown model {key!r}; choose one of {', '.join(self.specs)}")
        with self._lock:
            if key not in self._models:
                self._models[key] = load_model_from_spec(spec).eval()
            return self._models[key], spec


def describe_model(model: nn.Module, label: str, choice: ModelChoice | None = None) -> str:
    """One line: label, trained sizes (and the aspect rule), trained view count, parameters; with
    ``choice``, why this model ran (see :meth:`ModelStore.get_for`)."""
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    line = (
        f"{label} — trained at {cfg.describe_sizes()}, with "
        f"{', '.join(map(str, cfg.trained_views or (cfg.num_views,)))} views, "
        f"{params / 1e6:.1f} M parameters"
    )
    return line + (f" · why: {choice.reason}" if choice is not None else "")


# ---- measured quality ---------------------------------------------------------------------------


def card_quality(card: str) -> list[dict[str, str]]:
    """Rows of a model card's results table where the method is the checkpoint itself
    (``| protocol | method | PSNR | SSIM | LPIPS |`` with method "this checkpoint")."""
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in card.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
        if cells is None:
            header = None
            continue
        low = [c.lower() for c in cells]
        if "psnr" in low and "method" in low:
            header = low
            continue
        if header is None or set(line.replace("|", "").strip()) <= set("-: "):
            continue
        row = dict(zip(header, cells))
        if row.get("method", "").lower() == "this checkpoint":
            rows.append(row)
    return rows


def _card_text(spec: ModelSpec) -> str | None:
    """The model card (README.md) of a local checkpoint folder, or of a Hub checkpoint already in the
    local Hub cache (nothing is downloaded); None when not found."""
    src = spec.source
    if src.startswith(("official:", "preset:")):
        return None
    path = Path(src).expanduser()
    if path.is_dir():
        card = path / "README.md"
        return card.read_text(errors="replace") if card.is_file() else None
    if _looks_like_hub_id(src):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(src, "README.md", revision=spec.revision)
        except Exception:  # noqa: BLE001 - no cache, bad id: no card
            return None
        if isinstance(cached, str) and Path(cached).is_file():
            return Path(cached).read_text(errors="replace")
    return None


def model_quality_markdown(specs: ModelStore | Sequence[ModelSpec]) -> str:
    """A short Markdown table: each offered model's measured quality, from its model card.

    Our checkpoints: the card's held-out rows ("this checkpoint": PSNR / SSIM / LPIPS per protocol),
    when the card is local or in the Hub cache. The authors' weights: not measured in this repository
    (no RE10K / DL3DV test data here), so the table says so and points at the paper. Nothing is downloaded.
    """
    items = list(specs.specs.values()) if isinstance(specs, ModelStore) else list(specs)
    lines = ["| model | measured quality (held-out PSNR / SSIM / LPIPS) | source |", "|---|---|---|"]
    for spec in items:
        if spec.source.startswith("official:"):
            lines.append(f"| {spec.label} | not measured in this repository (no RE10K/DL3DV test scenes here) | "
                         "the paper, [arXiv 2507.23277](https://arxiv.org/abs/2507.23277) |")
            continue
        card = _card_text(spec)
        rows = card_quality(card) if card else []
        if rows:
            text = "; ".join(f"{r.get('protocol', '?')}: {r.get('psnr', '?')} dB / {r.get('ssim', '?')} / "
                             f"{r.get('lpips', '?')}" for r in rows)
            name = Path(spec.source).name if Path(spec.source).is_dir() else spec.source
            where = f"model card ({name}" + (f"@{spec.revision[:7]}" if spec.revision else "") + ")"
            lines.append(f"| {spec.label} | {text} | {where} |")
        elif spec.source.startswith("preset:"):
            lines.append(f"| {spec.label} | random weights (tests only) | – |")
        else:
            lines.append(f"| {spec.label} | not found (no model card with a results table) | {spec.source} |")
    return "\n".join(lines)
