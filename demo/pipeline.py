"""The reconstruction pipeline behind the demo, as plain functions (no Gradio; testable on its own).

    uploads ─► photos (checked, EXIF-rotated, huge ones downscaled)
            ─► cameras (camera file, or estimated with pycolmap)
            ─► Views at the model's resolution, poses normalised as in training
            ─► model forward ─► Gaussians mapped back to the user's camera frame
            ─► preview .ply (Gradio Model3D) + full .ply + .splat  (first result)
            ─► fly-through .mp4 along the input cameras             (final result)

>>> store = ModelStore(default_model_specs())
>>> model, spec = store.get("shipped")
>>> result = reconstruct(["a.jpg", "b.jpg"], ["opencv_cameras.json"], model, "out/", model_label=spec.label)
>>> result.num_gaussians, result.timings["reconstruction"]

Every problem with the user's input raises :class:`ilrm.errors.ILRMInputError` with a message that
says what to do; the UI turns those into ``gr.Error``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from ilrm.cameras import Views, average_pose
from ilrm.errors import ILRMInputError
from ilrm.gaussians import Gaussians

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
#: The shipped checkpoint (our format), relative to the repository / Space root.
DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / "ilrm-tiny-procedural"
#: Optional JSON next to app.py written by ``hf_space/deploy.py``: {"default_model", "official_revision", ...}.
SETTINGS_FILE = REPO_ROOT / "ilrm_demo.json"
#: The authors' weights (downloaded on first use at a pinned revision, never re-hosted: no licence).
OFFICIAL_REPO = "Gynjn/iLRM"
OFFICIAL_FILES = {
    "authors-re10k": ("re10k_2view.ckpt", "iLRM RE10K (authors' weights, 2 views, 256²)"),
    "authors-dl3dv-16": ("ilrm_undistort_dl3dv_16view.pt", "iLRM DL3DV (authors' weights, 16 views, 544×960)"),
    "authors-dl3dv-32": ("ilrm_undistort_dl3dv.pt", "iLRM DL3DV (authors' weights, 32 views, 544×960)"),
}

ProgressFn = Callable[[float, str], None]


# ---- settings and models --------------------------------------------------------------------


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


# ---- devices ---------------------------------------------------------------------------------


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def render_backend(device: torch.device) -> str:
    """gsplat on CUDA when it imports, else our pure-torch rasterizer (also on CUDA)."""
    if device.type != "cuda":
        return "torch"
    from ilrm.rendering.gsplat_backend import gsplat_available

    return "gsplat" if gsplat_available() else "torch"


# ---- the steps -------------------------------------------------------------------------------


@dataclass
class PreparedInput:
    """Photos and cameras ready for the model.

    views: model input in the normalised frame (batch 1): images (1, V, 3, H, W), intrinsics
    (1, V, 3, 3), c2w (1, V, 4, 4). transform: (4, 4) user frame → model frame (a similarity).
    c2w_user: (V, 4, 4) cameras in the user's frame. names: photo names (V,).
    camera_source: where the cameras came from. pose_info: the pose estimate's numbers, if estimated.
    """

    views: Views
    transform: Tensor
    c2w_user: Tensor
    names: list[str]
    camera_source: str
    pose_info: dict | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _as_paths(files: Sequence[str | Path] | str | Path | None) -> list[Path]:
    if files is None:
        return []
    if isinstance(files, (str, Path)):
        return [Path(files)]
    return [Path(f) for f in files if f is not None and str(f) != ""]


def prepare_input(
    image_files: Sequence[str | Path],
    camera_files: Sequence[str | Path] | str | Path | None,
    config,
    *,
    fov_deg: float | None = None,
    max_side: int = 1024,
    max_views: int = 32,
    progress: ProgressFn | None = None,
) -> PreparedInput:
    """Load and check the photos, get cameras (file or pycolmap), assemble model-ready Views.

    config: the model's :class:`ilrm.ILRMConfig` (resolution and pose-normalisation rule).
    fov_deg: field of view across the long side, the focal-length prior for photos without EXIF when
    cameras are estimated. Raises :class:`ILRMInputError`.
    """
    from ilrm.camera_files import load_camera_files
    from demo.uploads import assemble_views, estimate_upload_cameras, load_uploaded_images

    report = progress or (lambda f, d: None)
    timings: dict[str, float] = {}
    warnings: list[str] = []
    images_in = _as_paths(image_files)
    cams_in = _as_paths(camera_files)

    t = time.perf_counter()
    report(0.02, "Reading photos")
    images = load_uploaded_images(images_in, max_side=max_side, max_views=max_views)
    timings["load_photos"] = time.perf_counter() - t
    shrunk = [im for im in images if im.size != im.original_size]
    if shrunk:
        (h0, w0), (h1, w1) = shrunk[0].original_size, shrunk[0].size
        warnings.append(
            f"{len(shrunk)} photo(s) were larger than {max_side} px and were downscaled "
            f"(e.g. {w0}×{h0} → {w1}×{h1}); the model itself works at {config.image_width}×{config.image_height}."
        )

    t = time.perf_counter()
    pose_info = None
    if cams_in:
        report(0.05, "Reading the camera file")
        cameras = load_camera_files(cams_in)
        camera_source = f"camera file ({cameras.source})"
    else:
        report(0.05, f"Estimating cameras for {len(images)} photos with pycolmap (CPU)")
        estimate, note = estimate_upload_cameras(images, fov_deg=fov_deg)
        cameras = estimate.cameras
        camera_source = f"estimated with pycolmap ({estimate.method}; {note})"
        pose_info = {
            "method": estimate.method,
            "seconds": estimate.seconds,
            "focal_px": estimate.focal_px,
            "prior_focal_px": estimate.prior_focal_px,
            **estimate.stats,
        }
    timings["cameras"] = time.perf_counter() - t
    warnings += list(cameras.warnings)

    t = time.perf_counter()
    report(0.3, "Preparing the views")
    assembled = assemble_views(
        images,
        cameras,
        (config.image_height, config.image_width),
        scale_before_recentre=config.pose_scale_before_recentre,
    )
    warnings += [w for w in assembled.warnings if w not in warnings]
    check_camera_layout(assembled.views.c2w[0], assembled.names)
    h, w = images[0].size
    aspect_in, aspect_model = w / h, config.image_width / config.image_height
    if max(aspect_in, aspect_model) / min(aspect_in, aspect_model) > 1.5:
        warnings.append(
            f"the photos ({w}×{h}) are centre-cropped to the model's {config.image_width}×{config.image_height} "
            "shape; parts of the scene outside the crop are not reconstructed."
        )
    if not config.trained_with(len(images)):
        trained = ", ".join(map(str, config.trained_views or (config.num_views,)))
        warnings.append(
            f"this model was trained with {trained} views; you gave {len(images)}. It still runs, "
            "but results are usually best with a trained number."
        )
    timings["preprocess"] = time.perf_counter() - t
    return PreparedInput(
        views=assembled.views,
        transform=assembled.transform.double(),
        c2w_user=assembled.c2w_original.double(),
        names=assembled.names,
        camera_source=camera_source,
        pose_info=pose_info,
        warnings=warnings,
        timings=timings,
    )


def check_camera_layout(c2w: Tensor, names: Sequence[str]) -> None:
    """Reject degenerate camera sets in the normalised frame: (V, 4, 4).

    After normalisation the largest camera coordinate is 1 unless every camera sits at the same
    point (the scale is clamped then), which leaves the model no parallax to work with.
    """
    if not torch.isfinite(c2w).all():
        raise ILRMInputError("the camera poses became NaN/infinite after normalisation; check the camera file")
    centres = c2w[:, :3, 3].double()
    if float(centres.abs().max()) < 1e-3:
        raise ILRMInputError(
            "all cameras are at the same position, so there is no parallax to reconstruct from: take the photos "
            "from different positions (step sideways between shots), or check the camera file's translations."
        )
    poses = c2w.double().reshape(len(c2w), -1)
    same = [
        (names[i], names[j])
        for i in range(len(c2w))
        for j in range(i + 1, len(c2w))
        if float((poses[i] - poses[j]).abs().max()) < 1e-6
    ]
    if same:
        pairs = "; ".join(f"{a!r} and {b!r}" for a, b in same[:4])
        raise ILRMInputError(
            f"several photos have exactly the same camera pose ({pairs}); each photo needs its own camera. "
            "Check the camera file, or remove duplicate photos."
        )


def run_model(model: nn.Module, views: Views, device: str | torch.device | None = None) -> Gaussians:
    """Forward pass: (1, V, ...) views in the normalised frame → CPU float32 Gaussians (1, N, ...).

    Uses bf16 autocast on CUDA. The model is moved to ``device`` (kept there for the next call).
    Raises :class:`ILRMInputError` when the output is not finite.
    """
    dev = pick_device(device)
    model.to(dev)
    with torch.inference_mode():
        views_d = views.to(dev)
        if dev.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                g = model(views_d)
        else:
            g = model(views_d)
        g = g.float().to("cpu")
    if not all(torch.isfinite(t).all() for t in (g.means, g.scales, g.opacities)):
        raise ILRMInputError(
            "the model produced non-finite Gaussians for these cameras; the poses may be degenerate "
            "(check the camera file or upload photos with more overlap)"
        )
    return g


def to_user_frame(gaussians: Gaussians, transform: Tensor) -> Gaussians:
    """Map Gaussians from the model's normalised frame back to the user's frame (transform: user → model)."""
    back = torch.linalg.inv(transform.double())
    return gaussians.to(torch.float64).transform(back).float()


def preview_rotation(c2w_user: Tensor) -> Tensor:
    """(3, 3) world → preview rotation: the mean input camera's axes (x right, y down, z forward).

    Gradio's Model3D splat viewer starts at (0, 0, −5) looking at the origin along +z with +y
    pointing down the screen, i.e. an OpenCV camera; expressing the scene in the mean input
    camera's frame therefore shows it the way the photos were taken.
    """
    return average_pose(c2w_user.double())[:3, :3].T.contiguous()


@dataclass
class ExportedFiles:
    preview: Path
    ply: Path
    splat: Path
    num_preview: int
    num_ply: int
    num_splat: int


def export_gaussians(
    gaussians_user: Gaussians,
    out_dir: str | Path,
    *,
    rotation: Tensor | None = None,
    preview_max: int = 300_000,
    stem: str = "reconstruction",
) -> ExportedFiles:
    """Write ``<stem>_preview.ply`` (Model3D), ``<stem>.ply`` (all SH, user frame) and ``<stem>.splat``."""
    from ilrm.gaussian_files import preview_ply, save_ply, save_splat

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ply, splat, preview = out / f"{stem}.ply", out / f"{stem}.splat", out / f"{stem}_preview.ply"
    n_ply = save_ply(ply, gaussians_user)
    n_splat = save_splat(splat, gaussians_user, prune_opacity=1.0 / 255.0)
    info = preview_ply(preview, gaussians_user, max_gaussians=preview_max, rotation=rotation)
    return ExportedFiles(preview, ply, splat, int(info["num_written"]), n_ply, n_splat)


@dataclass(frozen=True)
class VideoSettings:
    """Fly-through video: ``frames`` at ``fps`` (frames = 0 turns the video off)."""

    frames: int
    fps: int


def default_video_settings(device: torch.device) -> VideoSettings:
    """A smooth 3 s video on a GPU; a short one on a CPU, where our exact rasterizer needs seconds per frame."""
    return VideoSettings(90, 30) if device.type == "cuda" else VideoSettings(12, 6)


@dataclass(frozen=True)
class VideoProgress:
    """One step of the fly-through: ``done`` of ``total`` frames rendered (picklable, unlike a callback)."""

    done: int
    total: int


#: What a video function yields: progress steps, then the path of the finished video.
VideoEvent = VideoProgress | Path


def render_fly_through_steps(
    gaussians: Gaussians,
    views: Views,
    path: str | Path,
    *,
    frames: int,
    fps: int,
    near: float,
    far: float,
    device: str | torch.device | None = None,
) -> Iterator[VideoEvent]:
    """Render a fly-through along the input cameras (normalised frame) into an H.264 mp4.

    Yields a :class:`VideoProgress` after each batch of frames, then the video's :class:`Path`.
    gaussians: (1, N, ...) in the same frame as ``views.c2w`` (1, V, 4, 4). Cameras are ordered by
    a nearest-neighbour walk, interpolated with a small wobble (:func:`ilrm.camera_paths.fly_through`),
    rendered at the views' resolution with the first view's intrinsics. A generator (not a progress
    callback) because on ZeroGPU this runs in a worker process that receives its arguments pickled
    and streams each yielded value back.
    """
    from ilrm.camera_paths import fly_through, order_poses
    from ilrm.video import iter_render_video

    dev = pick_device(device)
    c2w = views.c2w[0].double()
    c2w = c2w[order_poses(c2w)]
    poses = fly_through(c2w, frames).float()
    K = views.intrinsics[0, 0].float()
    steps = iter_render_video(
        gaussians.to(dev),
        K,
        poses,
        views.height,
        views.width,
        path,
        fps=fps,
        batch_frames=8 if dev.type == "cuda" else 2,
        near=near,
        far=far,
        backend=render_backend(dev),
    )
    for done, total in steps:
        yield VideoProgress(done, total)
    yield Path(path)


def finish_video(events: Iterable[VideoEvent] | str | Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Consume a video function's output: report each :class:`VideoProgress`, return the final path.

    A plain path (a video function that returns rather than yields) is accepted as it is.
    """
    if isinstance(events, (str, Path)):
        return Path(events)
    final: Path | None = None
    for event in events:
        if isinstance(event, VideoProgress):
            if progress is not None:
                progress(event.done, event.total)
        else:
            final = Path(event)
    if final is None:
        raise RuntimeError("the video renderer finished without giving the video's path")
    return final


def render_fly_through(
    gaussians: Gaussians,
    views: Views,
    path: str | Path,
    *,
    frames: int,
    fps: int,
    near: float,
    far: float,
    device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """:func:`render_fly_through_steps` run to the end; ``progress(done, total)`` after each batch."""
    steps = render_fly_through_steps(gaussians, views, path, frames=frames, fps=fps, near=near, far=far, device=device)
    return finish_video(steps, progress)


# ---- the whole pipeline ----------------------------------------------------------------------


@dataclass
class ReconstructionResult:
    """What one reconstruction produced (``video`` is None until the video is rendered, or when off).

    timings: seconds per stage — load_photos, cameras, preprocess, reconstruction (model forward),
    export (files), to_preview (from the start until the preview file exists), rendering (video).
    """

    preview: Path
    ply: Path
    splat: Path
    video: Path | None
    model: str
    image_size: tuple[int, int]
    num_views: int
    trained_views: str  # e.g. "2" or "2, 3, 4, 6, 8"
    camera_source: str
    num_gaussians: int
    num_preview: int
    num_splat: int
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    pose_info: dict | None = None
    device: str = "cpu"
    video_pending: bool = False

    def to_dict(self) -> dict:
        d = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        d["image_size"] = list(self.image_size)
        return d

    def to_markdown(self) -> str:
        """A short report for the UI."""
        t = self.timings
        h, w = self.image_size
        lines = [
            f"**Model:** {self.model}  ",
            f"**Input:** {self.num_views} views at {w}×{h} (model trained with {self.trained_views}); "
            f"cameras {self.camera_source}  ",
            f"**Gaussians:** {self.num_gaussians:,} predicted · {self.num_preview:,} in the 3D preview · "
            f"{self.num_splat:,} in the .splat  ",
        ]
        stages = [("load_photos", "photos"), ("cameras", "cameras"), ("preprocess", "pre-processing")]
        parts = [f"{label} {t[k]:.2f} s" for k, label in stages if k in t]
        timing = f"**Time ({self.device}):** reconstruction {t.get('reconstruction', 0):.2f} s"
        timing += f" · files {t.get('export', 0):.2f} s"
        if "rendering" in t:
            timing += f" · rendering (video) {t['rendering']:.1f} s"
        elif self.video_pending:
            timing += " · rendering the video…"
        timing += f" · ({', '.join(parts)}) · preview ready after {t.get('to_preview', 0):.1f} s"
        lines.append(timing + "  ")
        if self.pose_info:
            p = self.pose_info
            extra = ", ".join(
                f"{k.replace('_', ' ')} {v:.3g}" for k, v in p.items() if k not in ("method",) and isinstance(v, float)
            )
            lines.append(f"**Pose estimate:** {p.get('method')} ({extra})  ")
        for warning in self.warnings:
            lines.append(f"⚠️ {warning}  ")
        return "\n".join(lines)


ForwardFn = Callable[[nn.Module, Views], Gaussians]
#: video_fn(gaussians, views, path, frames=, fps=, near=, far=) → VideoEvents (or a plain path).
VideoFn = Callable[..., "Iterable[VideoEvent] | Path"]


def reconstruct_iter(
    image_files: Sequence[str | Path],
    camera_files: Sequence[str | Path] | str | Path | None,
    model: nn.Module,
    out_dir: str | Path,
    *,
    model_label: str = "model",
    fov_deg: float | None = None,
    video: VideoSettings | None = None,
    max_side: int = 1024,
    preview_max: int = 300_000,
    device: str | torch.device | None = None,
    progress: ProgressFn | None = None,
    forward_fn: ForwardFn | None = None,
    video_fn: VideoFn | None = None,
) -> Iterator[ReconstructionResult]:
    """Run the pipeline; yield a result once the preview and downloads exist, then once more with the video.

    video: frames/fps of the fly-through (None: :func:`default_video_settings` for the device;
    ``frames=0``: no video, a single result is yielded). forward_fn(model, views) → CPU Gaussians and
    video_fn(gaussians, views, path, frames=, fps=, near=, far=) → :data:`VideoEvent` s replace
    :func:`run_model` / :func:`render_fly_through_steps` (the Space wraps them in ``@spaces.GPU``).
    video_fn is given only data (no callables: ZeroGPU pickles a GPU function's arguments); its
    progress comes back as yielded :class:`VideoProgress`. Raises :class:`ILRMInputError` for bad input.
    """
    report = progress or (lambda f, d: None)
    forward_fn = forward_fn or (lambda m, v: run_model(m, v, device))
    video_fn = video_fn or partial(render_fly_through_steps, device=device)
    dev = pick_device(device)
    video = video if video is not None else default_video_settings(dev)
    t0 = time.perf_counter()
    cfg = model.config
    prep = prepare_input(image_files, camera_files, cfg, fov_deg=fov_deg, max_side=max_side, progress=report)
    timings = dict(prep.timings)

    report(0.4, f"Reconstructing ({prep.views.num_views} views at {cfg.image_width}×{cfg.image_height})")
    t = time.perf_counter()
    g_model = forward_fn(model, prep.views)
    timings["reconstruction"] = time.perf_counter() - t

    report(0.6, "Writing the Gaussians (.ply, .splat, preview)")
    t = time.perf_counter()
    g_user = to_user_frame(g_model, prep.transform)
    files = export_gaussians(g_user, out_dir, rotation=preview_rotation(prep.c2w_user), preview_max=preview_max)
    timings["export"] = time.perf_counter() - t
    timings["to_preview"] = time.perf_counter() - t0

    result = ReconstructionResult(
        preview=files.preview,
        ply=files.ply,
        splat=files.splat,
        video=None,
        model=model_label,
        image_size=(prep.views.height, prep.views.width),
        num_views=prep.views.num_views,
        trained_views=", ".join(map(str, cfg.trained_views or (cfg.num_views,))),
        camera_source=prep.camera_source,
        num_gaussians=g_model.num_gaussians,
        num_preview=files.num_preview,
        num_splat=files.num_splat,
        timings=timings,
        warnings=prep.warnings,
        pose_info=prep.pose_info,
        device=dev.type,
        video_pending=video.frames > 0,
    )
    yield result
    if video.frames <= 0:
        return

    report(0.7, f"Rendering the fly-through video ({video.frames} frames)")
    t = time.perf_counter()

    def frame_progress(done: int, total: int) -> None:  # runs here, never inside video_fn
        report(0.7 + 0.29 * done / max(total, 1), f"Rendering the video: frame {done}/{total}")

    events = video_fn(
        g_model,
        prep.views,
        Path(out_dir) / "fly_through.mp4",
        frames=video.frames,
        fps=video.fps,
        near=cfg.near,
        far=cfg.far,
    )
    path = finish_video(events, frame_progress)
    timings = dict(timings, rendering=time.perf_counter() - t)
    yield replace(result, video=Path(path), timings=timings, video_pending=False)


def reconstruct(*args, **kwargs) -> ReconstructionResult:
    """:func:`reconstruct_iter` run to the end; returns the final result (with the video when on)."""
    result = None
    for result in reconstruct_iter(*args, **kwargs):  # noqa: B007 - the last one is the answer
        pass
    assert result is not None
    return result


# ---- per-session folders ---------------------------------------------------------------------


class SessionFolders:
    """One temporary folder per browser session under a private root, removed when the session ends.

    Each run gets a fresh sub-folder (older runs of the same session are deleted first: Gradio has
    already copied their files into its own cache). ``cleanup_all`` removes the root (call at exit).
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="ilrm_demo_"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._counter = 0

    def _session_dir(self, session: str | None) -> Path:
        safe = "".join(c for c in (session or "shared") if c.isalnum() or c in "-_")[:64] or "shared"
        return self.root / safe

    def new_run(self, session: str | None) -> Path:
        """A new empty folder for one run of ``session`` (None: runs outside a session, e.g. example caching)."""
        with self._lock:
            self._counter += 1
            n = self._counter
        base = self._session_dir(session)
        if session is not None and base.is_dir():
            for old in base.iterdir():
                shutil.rmtree(old, ignore_errors=True)
        run = base / f"run{n:05d}"
        run.mkdir(parents=True, exist_ok=True)
        return run

    def cleanup(self, session: str | None) -> None:
        """Remove ``session``'s folder (safe to call twice)."""
        if session is None:
            return
        shutil.rmtree(self._session_dir(session), ignore_errors=True)

    def cleanup_path(self, path: str | Path | None) -> None:
        """Remove a folder previously returned by :meth:`new_run` (or its session folder); ignores others."""
        if not path:
            return
        p = Path(path).resolve()
        if p != self.root.resolve() and self.root.resolve() in p.parents:
            shutil.rmtree(p, ignore_errors=True)

    def cleanup_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def format_seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {math.floor(seconds % 60)} s"
