"""Photos + cameras → Gaussians → files: the one reconstruction path of the project.

``python -m ilrm reconstruct``, the demo and the evaluation harness's model method all go through
:class:`Reconstructor`, so each of them gets the same pre-processing and the same answer::

    rec = Reconstructor(load_model("checkpoints/ilrm-tiny-procedural"))
    prepared = rec.prepare(images, K, c2w)          # resize/crop by the model's rules, normalise poses
    result = rec.predict(prepared)                  # Gaussians in the model frame (+ the user frame)
    rec.export(result, "out/")                      # .ply / .splat / preview .ply, in the user's frame
    rec.fly_through(result, "out/fly_through.mp4", frames=90)

Cameras follow one convention everywhere: OpenCV axes, camera-to-world, pixel intrinsics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .cameras import Views, normalize_poses, resize_and_center_crop
from .config import ILRMConfig
from .errors import ILRMInputError
from .gaussians import Gaussians
from .inference import autocast_for
from .video import render_fly_through_steps

__all__ = [
    "ExportedFiles",
    "Prepared",
    "Prediction",
    "Reconstructor",
    "check_camera_layout",
    "evenly_spaced",
    "model_input_size",
    "pick_device",
    "prepare_views",
    "to_model_frame",
]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_input_size(config: ILRMConfig, in_hw: tuple[int, int], keep_aspect: bool = True) -> tuple[int, int]:
    """(H, W) to feed the model for a photo of ``in_hw``.

    Without ``keep_aspect``: the training resolution (photos are centre-cropped to its shape). With it,
    the rule the model declares (:attr:`ILRMConfig.input_sizes`): the trained short side, and the long
    side following the photo's aspect, clamped to the range of trained aspects (so a model trained on
    squares only, like the RE10K one, gets a square centre crop, and the DL3DV one 16:9) and rounded
    to the size multiple; the orientation (landscape/portrait) follows the photo. A config that
    declares no sizes keeps the photo's aspect at its training short side. ``config`` may be any
    object with ``image_height``, ``image_width`` and ``size_multiple`` (and optionally ``input_sizes``).
    """
    m = config.size_multiple
    if not keep_aspect:
        return config.image_height, config.image_width
    h, w = in_hw
    sizes = tuple(getattr(config, "input_sizes", ()) or ())
    if not sizes:
        short = min(config.image_height, config.image_width)
        s = short / min(h, w)
        return max(m, round(h * s / m) * m), max(m, round(w * s / m) * m)
    short = min(min(hw) for hw in sizes)
    ratios = [max(hw) / min(hw) for hw in sizes]
    aspect = min(max(max(h, w) / max(min(h, w), 1), min(ratios)), max(ratios))
    long = max(m, round(short * aspect / m) * m)
    short = max(m, round(short / m) * m)
    return (long, short) if h > w else (short, long)


def to_model_frame(c2w: Tensor, transform: Tensor) -> Tensor:
    """Apply a user → model transform (a similarity, (4, 4)) to more c2w poses (…, 4, 4)."""
    out = transform.to(c2w) @ c2w
    R = out[..., :3, :3]
    out[..., :3, :3] = R / torch.linalg.det(R).abs().pow(1 / 3)[..., None, None]  # keep rotations unit
    return out


def evenly_spaced(n: int, k: int) -> list[int]:
    """k indices spread over range(n), first and last included."""
    if k >= n:
        return list(range(n))
    return [round(i * (n - 1) / (k - 1)) for i in range(k)] if k > 1 else [n // 2]


def check_camera_layout(c2w: Tensor, names: Sequence[str]) -> None:
    """Reject degenerate camera sets in the normalised frame: c2w (V, 4, 4).

    After normalisation the largest camera coordinate is 1 unless every camera sits at the same
    point (the scale is clamped then), which leaves the model no parallax to work with.
    """
    if not torch.isfinite(c2w).all():
        raise ILRMInputError("the camera poses became NaN/infinite after normalisation; check the camera file")
    if len(c2w) > 1 and float(c2w[:, :3, 3].double().abs().max()) < 1e-3:
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


@dataclass
class Prepared:
    """Photos and cameras ready for the model.

    views: model input in the normalised frame (batch 1): images (1, V, 3, H, W) in [0, 1],
    intrinsics (1, V, 3, 3) pixels, c2w (1, V, 4, 4). transform: (4, 4) float64, user frame → model
    frame (a similarity). c2w_user: (V, 4, 4) float64 input cameras in the user's frame.
    """

    views: Views
    transform: Tensor
    c2w_user: Tensor
    names: list[str]
    warnings: list[str] = field(default_factory=list)


@dataclass
class Prediction:
    """Gaussians for one scene. gaussians: (1, N, ...) float32 on CPU in the model frame;
    user_gaussians: the same Gaussians in the user's frame (what files are written in)."""

    gaussians: Gaussians
    user_gaussians: Gaussians
    prepared: Prepared
    seconds: float


@dataclass
class ExportedFiles:
    """The files written by :meth:`Reconstructor.export` and how many Gaussians each holds."""

    ply: Path
    splat: Path
    preview: Path | None
    num_ply: int
    num_splat: int
    num_preview: int


def prepare_views(
    images: Tensor | Sequence[Tensor],
    K: Tensor,
    c2w: Tensor,
    config: ILRMConfig,
    *,
    size: tuple[int, int],
    names: Sequence[str] | None = None,
) -> Prepared:
    """Model input from posed photos in any world frame (the pre-processing every model was trained with).

    images: (V, 3, H, W) float in [0, 1], or V tensors (3, Hᵢ, Wᵢ) of different sizes (each is resized on
    its own; ``K[i]`` is in its photo's pixels). K: (V, 3, 3) pixel intrinsics. c2w: (V, 4, 4) OpenCV
    camera-to-world. config: the model's (pose-normalisation rule, trained views). size: model input
    (H, W): antialiased resize to cover it, then a centre crop. Raises :class:`ILRMInputError` for
    shapes, non-finite or degenerate poses.
    """
    photos = list(images) if not isinstance(images, Tensor) else list(images.unbind(0)) if images.ndim == 4 else None
    if photos is None or not photos or any(p.ndim != 3 or p.shape[0] != 3 for p in photos):
        shape = tuple(images.shape) if isinstance(images, Tensor) else [tuple(p.shape) for p in images]
        raise ILRMInputError(f"images must be (V, 3, H, W) or a list of (3, H, W) tensors, got {shape}")
    V = len(photos)
    if tuple(K.shape) != (V, 3, 3) or tuple(c2w.shape) != (V, 4, 4):
        raise ILRMInputError(
            f"need one (3, 3) intrinsics and one (4, 4) c2w per photo: {V} photos, K {tuple(K.shape)}, "
            f"c2w {tuple(c2w.shape)}"
        )
    if not torch.isfinite(c2w).all() or not torch.isfinite(K).all():
        raise ILRMInputError("camera poses or intrinsics contain NaN/inf: check the camera file")
    names = list(names) if names is not None else [f"view {i}" for i in range(V)]
    size = (int(size[0]), int(size[1]))
    ims, Ks = zip(*(resize_and_center_crop(p.float(), k.float(), size) for p, k in zip(photos, K)))
    c2w_user = c2w.double()
    ctx, _, T = normalize_poses(c2w_user, scale_before_recentre=config.pose_scale_before_recentre)
    check_camera_layout(ctx, names)
    views = Views(torch.stack(ims)[None].contiguous(), torch.stack(Ks)[None].float(), ctx.float()[None])
    views.validate()
    return Prepared(views, T, c2w_user, names, _input_warnings(photos, size, config))


def _input_warnings(photos: list[Tensor], size: tuple[int, int], cfg: ILRMConfig) -> list[str]:
    """Sentences for the user about the input: heavy crops, untrained view counts."""
    out = []
    h, w = photos[0].shape[-2:]
    aspect_in, aspect_model = w / h, size[1] / size[0]
    if max(aspect_in, aspect_model) / min(aspect_in, aspect_model) > 1.5:
        out.append(
            f"the photos ({w}×{h}) are centre-cropped to the model's {size[1]}×{size[0]} shape; parts of the "
            "scene outside the crop are not reconstructed."
        )
    if not cfg.trained_with(len(photos)):
        trained = ", ".join(map(str, cfg.trained_views or (cfg.num_views,)))
        out.append(
            f"this model was trained with {trained} views; you gave {len(photos)}. It still runs, "
            "but results are usually best with a trained number."
        )
    return out


class Reconstructor:
    """Owns the whole path for one model: prepare → predict → user frame → files / fly-through.

    model: any model of :mod:`ilrm.models` (it carries its :class:`ILRMConfig`). device: where the
    forward runs (default CUDA if available). dtype: autocast dtype of the forward, "auto" = bf16 on
    CUDA and float32 on CPU. keep_aspect: feed photos at their own aspect (the model's short side) rather
    than centre-cropping them to the training shape.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = "auto",
        keep_aspect: bool = True,
    ):
        self.model = model.eval()
        self.device = pick_device(device)
        self.dtype = (torch.bfloat16 if self.device.type == "cuda" else None) if dtype == "auto" else dtype
        self.keep_aspect = keep_aspect

    @property
    def config(self) -> ILRMConfig:
        return self.model.config

    def input_size(self, in_hw: tuple[int, int]) -> tuple[int, int]:
        """(H, W) the model is fed for photos of ``in_hw`` (H, W)."""
        return model_input_size(self.config, in_hw, self.keep_aspect)

    # ---- prepare ---------------------------------------------------------------------------------

    def prepare(
        self,
        images: Tensor | Sequence[Tensor],
        K: Tensor,
        c2w: Tensor,
        *,
        names: Sequence[str] | None = None,
        size: tuple[int, int] | None = None,
    ) -> Prepared:
        """:func:`prepare_views` with this model's config; ``size`` defaults to :meth:`input_size` of the first photo."""
        first = images[0]
        size = tuple(size) if size is not None else self.input_size((int(first.shape[-2]), int(first.shape[-1])))
        return prepare_views(images, K, c2w, self.config, size=size, names=names)

    # ---- predict ---------------------------------------------------------------------------------

    @torch.no_grad()  # not inference_mode: callers may refine the result with autograd
    def forward(self, views: Views, *, check_finite: bool = True) -> Gaussians:
        """The model on views already in its frame (B, V, ...) → float32 Gaussians on ``self.device``.

        bf16 autocast on CUDA (see ``dtype``). With ``check_finite``, raises :class:`ILRMInputError` when
        the output is not finite (the evaluation harness records such scenes instead).
        """
        self.model.to(self.device)
        with autocast_for(self.device, self.dtype):
            g = self.model(views.to(self.device))
        g = g.float()
        if check_finite and not all(torch.isfinite(t).all() for t in (g.means, g.scales, g.opacities)):
            raise ILRMInputError(
                "the model produced non-finite Gaussians for these cameras; the poses may be degenerate "
                "(check the camera file or upload photos with more overlap)"
            )
        return g

    def predict(self, prepared: Prepared) -> Prediction:
        """Gaussians for prepared input, on CPU, in the model frame and in the user's frame."""
        start = time.perf_counter()
        g = self.forward(prepared.views).to("cpu")
        return self.result_for(prepared, g, time.perf_counter() - start)

    def result_for(self, prepared: Prepared, gaussians: Gaussians, seconds: float = 0.0) -> Prediction:
        """A :class:`Prediction` from model-frame Gaussians computed elsewhere (e.g. in a ZeroGPU worker)."""
        g = gaussians.float().to("cpu")
        return Prediction(g, self.to_user_frame(g, prepared.transform), prepared, seconds)

    def __call__(self, images: Tensor | Sequence[Tensor], K: Tensor, c2w: Tensor, **kwargs) -> Prediction:
        """:meth:`prepare` then :meth:`predict`."""
        return self.predict(self.prepare(images, K, c2w, **kwargs))

    @staticmethod
    def to_user_frame(gaussians: Gaussians, transform: Tensor) -> Gaussians:
        """Gaussians from the model frame back to the user's (transform: user → model, (4, 4))."""
        back = torch.linalg.inv(transform.double())
        return gaussians.to(torch.float64).transform(back.to(gaussians.means.device)).float()

    # ---- outputs ---------------------------------------------------------------------------------

    def render(self, prediction: Prediction, K: Tensor, c2w_user: Tensor, height: int, width: int) -> Tensor:
        """Render the prediction into cameras given in the user's frame.

        K: (T, 3, 3) pixel intrinsics at (height, width); c2w_user: (T, 4, 4). Returns (T, 3, H, W) in [0, 1].
        """
        from .rendering import render

        c2w = to_model_frame(c2w_user.double(), prediction.prepared.transform).float()
        g = prediction.gaussians.to(self.device)
        with torch.no_grad():
            out = render(g, K.float()[None].to(self.device), c2w[None].to(self.device), height, width,
                         near=self.config.near, far=self.config.far)
        return out[0].clamp(0, 1).cpu()

    def export(
        self,
        prediction: Prediction,
        out_dir: str | Path,
        *,
        stem: str = "reconstruction",
        preview: bool = True,
        preview_max: int = 300_000,
    ) -> ExportedFiles:
        """Write ``<stem>.ply`` (all SH, user frame), ``<stem>.splat`` and, with ``preview``, the viewer's
        ``<stem>_preview.ply`` (moved so that Gradio's Model3D opens looking through the first input camera)."""
        from .gaussian_files import preview_ply, save_ply, save_splat

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        g = prediction.user_gaussians
        ply, splat = out / f"{stem}.ply", out / f"{stem}.splat"
        path = out / f"{stem}_preview.ply" if preview else None
        prepared = prediction.prepared  # the viewer opens looking through the first input camera

        def write_preview() -> int:
            return int(preview_ply(path, g, max_gaussians=preview_max, camera=prepared.c2w_user[0],
                                   intrinsics=prepared.views.intrinsics[0, 0],
                                   image_size=tuple(prepared.views.images.shape[-2:]))["num_written"])

        # The writers are independent and spend their time in numpy, torch and file I/O, which release
        # the GIL: side by side they take about as long as the slowest (docs/results/gpu_benchmark.md).
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="ilrm-export") as pool:
            jobs = [pool.submit(save_ply, ply, g), pool.submit(save_splat, splat, g, prune_opacity=1.0 / 255.0)]
            if preview:
                jobs.append(pool.submit(write_preview))
            counts = [j.result() for j in jobs]
        n_ply, n_splat = counts[0], counts[1]
        n_preview = counts[2] if preview else 0
        return ExportedFiles(ply, splat, path, n_ply, n_splat, n_preview)

    def fly_through_steps(self, prediction: Prediction, path: str | Path, *, frames: int, fps: int = 30):
        """The fly-through along the input cameras as a generator of :data:`ilrm.video.VideoEvent`."""
        return render_fly_through_steps(
            prediction.gaussians, prediction.prepared.views, path, frames=frames, fps=fps,
            near=self.config.near, far=self.config.far, device=self.device,
        )

    def fly_through(self, prediction: Prediction, path: str | Path, *, frames: int = 90, fps: int = 30) -> Path:
        """Render the fly-through video (H.264 mp4) and return its path."""
        from .video import finish_video

        return finish_video(self.fly_through_steps(prediction, path, frames=frames, fps=fps))

