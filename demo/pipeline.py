"""Uploads → :class:`ilrm.pipeline.Reconstructor` → what the demo shows (no Gradio; testable on its own).

    uploads ─► photos (checked, EXIF-rotated, huge ones downscaled)
            ─► cameras (camera file, or estimated with pycolmap)
            ─► Reconstructor: Views at the model's resolution, poses normalised as in training
            ─► Gaussians in the user's camera frame ─► preview .ply + full .ply + .splat  (first result)
            ─► held-out photos rendered and scored (PSNR / SSIM), when asked          (another result)
            ─► fly-through .mp4 along the input cameras                               (final result)

>>> store = ModelStore(default_model_specs())
>>> model, spec = store.get("shipped")
>>> result = reconstruct(["a.jpg", "b.jpg"], ["opencv_cameras.json"], model, "out/", model_label=spec.label)

Every problem with the user's input raises :class:`ilrm.errors.ILRMInputError` with a message that
says what to do; the UI turns those into ``gr.Error``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ilrm.cameras import Views
from ilrm.errors import ILRMInputError
from ilrm.gaussians import Gaussians
from ilrm.pipeline import Prepared, Reconstructor
from ilrm.video import VideoEvent, finish_video, render_fly_through_steps

ProgressFn = Callable[[float, str], None]


@dataclass
class Targets:
    """Photos kept out of the model's input, to render and score: images (3, Hᵢ, Wᵢ) in [0, 1],
    intrinsics (T, 3, 3) in their pixels, c2w (T, 4, 4) in the user's frame."""

    images: list[Tensor]
    intrinsics: Tensor
    c2w: Tensor
    names: list[str]
    note: str = ""  # how their cameras were obtained


@dataclass
class PreparedInput:
    """Photos and cameras ready for the model: the Reconstructor's :class:`~ilrm.pipeline.Prepared`
    plus where the cameras came from, the pose estimate's numbers (if estimated), stage timings and
    the held-out photos (``targets``, None when none)."""

    prepared: Prepared
    camera_source: str
    pose_info: dict | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    targets: Targets | None = None

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
    target_indices: Sequence[int] = (),
) -> PreparedInput:
    """Load and check the photos, get cameras (file or pycolmap), and prepare them for the model.

    fov_deg: field of view across the long side, the focal-length prior for photos without EXIF when
    cameras are estimated. target_indices: photos (indices into ``image_files``) kept out of the
    input and returned as :class:`Targets` with cameras in the same frame (from the camera file, or
    estimated together with the inputs). Raises :class:`ILRMInputError`.
    """
    from ilrm.photos import downscale_warnings, load_photos, photo_cameras

    report = progress or (lambda f, d: None)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    report(0.02, "Reading photos")
    paths = _as_paths(image_files)
    held = sorted({int(i) for i in target_indices})
    if held and (held[0] < 0 or held[-1] >= len(paths)):
        raise ILRMInputError(f"held-out photos {held} are out of range: {len(paths)} photos were uploaded")
    if held and len(paths) - len(held) < 2:
        raise ILRMInputError(
            f"holding out {len(held)} of {len(paths)} photos leaves fewer than 2 inputs: upload more photos, or "
            "turn off the held-out photo"
        )
    photos = load_photos(paths, max_side=max_side, max_views=max_views + len(held))
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
    keep = [i for i in range(len(photos)) if i not in held]
    prepared = reconstructor.prepare(
        [posed.images[i] for i in keep], posed.intrinsics[keep], posed.c2w[keep], names=[posed.names[i] for i in keep]
    )
    warnings += [w for w in prepared.warnings if w not in warnings]
    timings["preprocess"] = time.perf_counter() - t
    targets = None
    if held:
        note = "cameras from the camera file" if cams_in else "cameras estimated together with the inputs"
        targets = Targets([posed.images[i] for i in held], posed.intrinsics[held], posed.c2w[held],
                          [posed.names[i] for i in held], note)
    return PreparedInput(prepared, posed.source, posed.pose_info, warnings, timings, targets)


def hold_out_index(num_photos: int) -> int:
    """The photo a "hold out one photo" run keeps out: the middle one in upload order (so the
    model interpolates between its neighbours)."""
    return num_photos // 2


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM of (N, 3, H, W) images in [0, 1]: Gaussian window 11 / σ 1.5, K1 0.01, K2 0.03, valid
    region (the settings of the harness's scikit-image SSIM, in torch: the Space has no scikit-image)."""
    x, y = x.double(), y.double()
    coords = torch.arange(window, dtype=x.dtype) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, window, window)
    if min(x.shape[-2:]) < window:
        raise ValueError(f"images smaller than the SSIM window ({window} px)")

    def conv(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, groups=x.shape[1])

    mu_x, mu_y = conv(x), conv(y)
    sxx, syy, sxy = conv(x * x) - mu_x**2, conv(y * y) - mu_y**2, conv(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def psnr(x: Tensor, y: Tensor) -> float:
    """PSNR in dB of images in [0, 1] (renders clipped, as in the harness)."""
    mse = float((x.clamp(0, 1).double() - y.double()).square().mean())
    return -10.0 * math.log10(max(mse, 1e-10))


def score_targets(rec: Reconstructor, prediction, targets: Targets) -> list[dict]:
    """Render ``targets``' cameras (:meth:`Reconstructor.render`) at the model's input size and score them
    against the photos (resized and centre-cropped as the inputs were): [{name, psnr, ssim}]."""
    from ilrm.cameras import resize_and_center_crop

    views = prediction.prepared.views
    H, W = views.height, views.width
    gt, K = zip(*(resize_and_center_crop(im.float(), k.float(), (H, W)) for im, k in zip(targets.images,
                                                                                      targets.intrinsics)))
    renders = rec.render(prediction, torch.stack(K), targets.c2w, H, W)
    return [
        {"name": name, "psnr": psnr(renders[j : j + 1], gt[j][None]), "ssim": ssim(renders[j : j + 1], gt[j][None])}
        for j, name in enumerate(targets.names)
    ]


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
    #: why this model ran (e.g. the automatic choice by hardware and photo count); None: not given
    model_reason: str | None = None
    #: held-out photos rendered and scored: [{"name", "psnr", "ssim"}]; None: none were held out
    quality: list[dict] | None = None
    quality_note: str = ""
    quality_pending: bool = False

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
            *([f"**Why this model:** {self.model_reason}  "] if self.model_reason else []),
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
        if self.quality:
            scores = " · ".join(f"{q['name']}: PSNR {q['psnr']:.2f} dB, SSIM {q['ssim']:.3f}" for q in self.quality)
            mean = ""
            if len(self.quality) > 1:
                mean = (f" (mean PSNR {sum(q['psnr'] for q in self.quality) / len(self.quality):.2f} dB, "
                        f"SSIM {sum(q['ssim'] for q in self.quality) / len(self.quality):.3f})")
            note = f"; {self.quality_note}" if self.quality_note else ""
            lines.append(f"**Quality on photos the model did not see:** {scores}{mean} at {w}×{h}{note}  ")
        elif self.quality_pending:
            lines.append("**Quality on held-out photos:** rendering…  ")
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
    hold_out: bool = False,
    eval_files: Sequence[str | Path] | str | Path | None = None,
    model_reason: str | None = None,
) -> Iterator[ReconstructionResult]:
    """Run the pipeline; yield a result once the preview and downloads exist, then once more with the
    held-out scores (when asked), then once more with the video.

    The model is fed at the input size its config declares (:func:`ilrm.pipeline.model_input_size`:
    the photo's aspect where the model was trained on it, a centre crop where it needs a square).
    hold_out: keep one photo (:func:`hold_out_index`, needs 3+) out of the input, render its camera and
    report PSNR/SSIM against it. eval_files: further uploaded photos used only for scoring (their
    cameras come from the camera file, or are estimated together with the inputs). model_reason: why
    this model runs (e.g. :meth:`demo.models.ModelStore.get_for`'s choice), shown in the report.

    video: frames/fps of the fly-through (None: :func:`default_video_settings` for the device;
    ``frames=0``: no video, a single result is yielded). forward_fn(model, views) → CPU Gaussians and
    video_fn(gaussians, views, path, frames=, fps=, near=, far=) → :data:`VideoEvent` s replace the
    Reconstructor's forward / :func:`ilrm.video.render_fly_through_steps` (the Space wraps them in
    ``@spaces.GPU``). video_fn is given only data (no callables: ZeroGPU pickles a GPU function's
    arguments); its progress comes back as yielded :class:`VideoProgress`. Raises :class:`ILRMInputError`.
    """
    report = progress or (lambda f, d: None)
    # The input size follows what the model was trained on (ILRMConfig.input_sizes), as in the CLI.
    rec = Reconstructor(model, device=device)
    forward_fn = forward_fn or (lambda m, v: rec.forward(v).to("cpu"))
    video_fn = video_fn or partial(render_fly_through_steps, device=rec.device)
    video = video if video is not None else default_video_settings(rec.device)
    t0 = time.perf_counter()
    cfg = model.config
    inputs, extra = _as_paths(image_files), _as_paths(eval_files)
    held = ([hold_out_index(len(inputs))] if hold_out and len(inputs) >= 3 else []) + \
        list(range(len(inputs), len(inputs) + len(extra)))
    inp = prepare_input(inputs + extra, camera_files, rec, fov_deg=fov_deg, max_side=max_side, progress=report,
                        target_indices=held)
    prep, timings = inp.prepared, dict(inp.timings)
    if hold_out and len(inputs) < 3:
        inp.warnings.append("holding out a photo needs 3 or more photos (2 stay as inputs); no quality number this time.")

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
        model_reason=model_reason,
        quality_note=inp.targets.note if inp.targets is not None else "",
        quality_pending=inp.targets is not None,
    )
    yield result
    if inp.targets is not None:
        report(0.65, f"Rendering {len(inp.targets.names)} held-out photo(s) for PSNR/SSIM")
        t = time.perf_counter()
        quality = score_targets(rec, prediction, inp.targets)
        timings = dict(timings, quality=time.perf_counter() - t)
        result = replace(result, quality=quality, quality_pending=False, timings=timings)
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
    timings = dict(result.timings, rendering=time.perf_counter() - t)
    yield replace(result, video=Path(path), timings=timings, video_pending=False)


# ---- ZeroGPU durations ----------------------------------------------------------------------------
# ZeroGPU checks the visitor's remaining quota against the duration a GPU function *requests*
# (``@spaces.GPU(duration=...)``; only the time used is charged), so an oversized fixed default
# refuses visitors who could have run. These size it by the work. Estimates, not measured on
# ZeroGPU: the DL3DV model's forward for 32 views at 544×960 takes 0.57 s on an H200
# (docs/results/gpu_benchmark.md); the margins cover moving the weights to the GPU, the first CUDA
# call and a slower GPU slice.
FORWARD_BASE_S = 10.0
FORWARD_PER_VIEW_S = 0.5
VIDEO_BASE_S = 10.0
VIDEO_PER_FRAME_S = 0.05  # + per million Gaussians per frame, below (torch rasterizer on the GPU)
VIDEO_PER_MGAUSS_FRAME_S = 0.1
MAX_DURATION_S = 120


def forward_seconds(num_views: int, height: int = 256, width: int = 256) -> int:
    """Seconds to request for one model forward: grows with the views and their pixels (at 256² per view)."""
    pixels = max(height * width / (256 * 256), 1.0)
    return int(min(max(FORWARD_BASE_S + FORWARD_PER_VIEW_S * num_views * pixels, 10), MAX_DURATION_S // 2))


def video_seconds(num_gaussians: int, frames: int) -> int:
    """Seconds to request for the fly-through: per frame, a fixed cost plus one per million Gaussians (×1.5)."""
    per_frame = VIDEO_PER_FRAME_S + VIDEO_PER_MGAUSS_FRAME_S * num_gaussians / 1e6
    return int(min(max(VIDEO_BASE_S + 1.5 * frames * per_frame, 10), MAX_DURATION_S))


def _find(kind: type, args: tuple, kwargs: dict):
    return next((a for a in (*args, *kwargs.values()) if isinstance(a, kind)), None)


def gpu_forward_duration(*args, **kwargs) -> int:
    """``@spaces.GPU(duration=gpu_forward_duration)`` for a forward function: ZeroGPU calls it with the
    GPU function's own arguments; the first :class:`Views` among them sizes the request."""
    views = _find(Views, args, kwargs)
    if views is None:
        return int(MAX_DURATION_S // 2)
    return forward_seconds(views.num_views, views.height, views.width)


def gpu_video_duration(*args, frames: int = 90, **kwargs) -> int:
    """``@spaces.GPU(duration=gpu_video_duration)`` for the video function (its ``frames=`` keyword and the
    first :class:`Gaussians` among its arguments size the request)."""
    g = _find(Gaussians, args, kwargs)
    return video_seconds(g.num_gaussians if g is not None else 1_000_000, int(frames))


def reconstruct(*args, **kwargs) -> ReconstructionResult:
    """:func:`reconstruct_iter` run to the end; returns the final result (with the video when on)."""
    result = None
    for result in reconstruct_iter(*args, **kwargs):  # noqa: B007 - the last one is the answer
        pass
    assert result is not None
    return result
