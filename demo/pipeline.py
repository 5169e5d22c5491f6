"""Uploads → :class:`ilrm.pipeline.Reconstructor` → what the demo shows (no Gradio; testable on its own).

    uploads ─► photos (checked, EXIF-rotated, huge ones downscaled)
            ─► cameras (camera file, or estimated with pycolmap)
            ─► Reconstructor: Views at the model's resolution, poses normalised as in training
            ─► Gaussians in the user's camera frame ─► preview .ply + full .ply + .splat  (first result)
            ─► fly-through .mp4 along the input cameras                               (final result)

>>> store = ModelStore(default_model_specs())
>>> model, spec = store.get("shipped")
>>> result = reconstruct(["a.jpg", "b.jpg"], ["opencv_cameras.json"], model, "out/", model_label=spec.label)

Every problem with the user's input raises :class:`ilrm.errors.ILRMInputError` with a message that
says what to do; the UI turns those into ``gr.Error``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
from torch import nn

from ilrm.cameras import Views
from ilrm.gaussians import Gaussians
from ilrm.pipeline import Prepared, Reconstructor
from ilrm.video import VideoEvent, finish_video, render_fly_through_steps

ProgressFn = Callable[[float, str], None]


@dataclass
class PreparedInput:
    """Photos and cameras ready for the model: the Reconstructor's :class:`~ilrm.pipeline.Prepared`
    plus where the cameras came from, the pose estimate's numbers (if estimated) and stage timings."""

    prepared: Prepared
    camera_source: str
    pose_info: dict | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def views(self) -> Views:
        return self.prepared.views


def _as_paths(files: Sequence[str | Path] | str | Path | None) -> list[Path]:
    if files is None:
        return []
    if isinstance(files, (str, Path)):
        return [Path(files)]
    return [Path(f) for f in files if f is not None and str(f) != ""]


def prepare_input(
    image_files: Sequence[str | Path],
    camera_files: Sequence[str | Path] | str | Path | None,
    reconstructor: Reconstructor,
    *,
    fov_deg: float | None = None,
    max_side: int = 1024,
    max_views: int = 32,
    progress: ProgressFn | None = None,
) -> PreparedInput:
    """Load and check the photos, get cameras (file or pycolmap), and prepare them for the model.

    fov_deg: field of view across the long side, the focal-length prior for photos without EXIF when
    cameras are estimated. Raises :class:`ILRMInputError`.
    """
    from ilrm.photos import downscale_warnings, load_photos, photo_cameras

    report = progress or (lambda f, d: None)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    report(0.02, "Reading photos")
    photos = load_photos(_as_paths(image_files), max_side=max_side, max_views=max_views)
    timings["load_photos"] = time.perf_counter() - t
    warnings = downscale_warnings(photos, max_side, reconstructor.input_size(photos[0].size))

    t = time.perf_counter()
    cams_in = _as_paths(camera_files)
    report(0.05, "Reading the camera file" if cams_in else f"Estimating cameras for {len(photos)} photos with pycolmap (CPU)")
    posed = photo_cameras(photos, cams_in, fov_deg=fov_deg)
    timings["cameras"] = time.perf_counter() - t
    warnings += [w for w in posed.warnings if w not in warnings]

    t = time.perf_counter()
    report(0.3, "Preparing the views")
    prepared = reconstructor.prepare(posed.images, posed.intrinsics, posed.c2w, names=posed.names)
    warnings += [w for w in prepared.warnings if w not in warnings]
    timings["preprocess"] = time.perf_counter() - t
    return PreparedInput(prepared, posed.source, posed.pose_info, warnings, timings)


def run_model(model: nn.Module, views: Views, device: str | torch.device | None = None) -> Gaussians:
    """Forward pass: (1, V, ...) views in the model frame → CPU float32 Gaussians (1, N, ...)."""
    return Reconstructor(model, device=device).forward(views).to("cpu")


@dataclass(frozen=True)
class VideoSettings:
    """Fly-through video: ``frames`` at ``fps`` (frames = 0 turns the video off)."""

    frames: int
    fps: int


def default_video_settings(device: torch.device) -> VideoSettings:
    """A smooth 3 s video on a GPU; a short one on a CPU, where our exact rasterizer needs seconds per frame."""
    return VideoSettings(90, 30) if device.type == "cuda" else VideoSettings(12, 6)


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
    video_fn(gaussians, views, path, frames=, fps=, near=, far=) → :data:`VideoEvent` s replace the
    Reconstructor's forward / :func:`ilrm.video.render_fly_through_steps` (the Space wraps them in
    ``@spaces.GPU``). video_fn is given only data (no callables: ZeroGPU pickles a GPU function's
    arguments); its progress comes back as yielded :class:`VideoProgress`. Raises :class:`ILRMInputError`.
    """
    report = progress or (lambda f, d: None)
    # The demo feeds the training shape (centre crop), as it always has; the CLI keeps the photo's aspect.
    rec = Reconstructor(model, device=device, keep_aspect=False)
    forward_fn = forward_fn or (lambda m, v: rec.forward(v).to("cpu"))
    video_fn = video_fn or partial(render_fly_through_steps, device=rec.device)
    video = video if video is not None else default_video_settings(rec.device)
    t0 = time.perf_counter()
    cfg = model.config
    inp = prepare_input(image_files, camera_files, rec, fov_deg=fov_deg, max_side=max_side, progress=report)
    prep, timings = inp.prepared, dict(inp.timings)

    report(0.4, f"Reconstructing ({prep.views.num_views} views at {prep.views.width}×{prep.views.height})")
    t = time.perf_counter()
    g_model = forward_fn(model, prep.views)
    timings["reconstruction"] = time.perf_counter() - t

    report(0.6, "Writing the Gaussians (.ply, .splat, preview)")
    t = time.perf_counter()
    prediction = rec.result_for(prep, g_model, timings["reconstruction"])
    files = rec.export(prediction, out_dir, preview_max=preview_max)
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
        camera_source=inp.camera_source,
        num_gaussians=g_model.num_gaussians,
        num_preview=files.num_preview,
        num_splat=files.num_splat,
        timings=timings,
        warnings=inp.warnings,
        pose_info=inp.pose_info,
        device=rec.device.type,
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
        g_model, prep.views, Path(out_dir) / "fly_through.mp4",
        frames=video.frames, fps=video.fps, near=cfg.near, far=cfg.far,
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
