"""Render a camera path into an H.264 MP4, streaming frames to ffmpeg batch by batch; the fly-through
along a scene's input cameras."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .cameras import Views
from .errors import ILRMInputError
from .gaussians import Gaussians

__all__ = [
    "VideoEvent", "VideoProgress", "finish_video", "iter_render_video", "render_backend", "render_fly_through_steps", "render_video",
]

RenderFn = Callable[..., Tensor]


def _to_uint8_frames(images: Tensor, height: int, width: int) -> np.ndarray:
    """(f, 3, H, W) float in [0, 1] → (f, H', W', 3) uint8, padded to even H', W' by edge replication.

    H.264 in yuv420p needs even sides; padding (rather than letting ffmpeg rescale) keeps every
    rendered pixel unchanged.
    """
    frames = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    frames = frames.permute(0, 2, 3, 1).cpu().numpy()
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def render_video(
    gaussians: Gaussians,
    K: Tensor,
    c2w_path: Tensor,
    height: int,
    width: int,
    path: str | Path,
    *,
    fps: int = 30,
    batch_frames: int = 8,
    quality: float = 8,
    batch_index: int = 0,
    render_fn: RenderFn | None = None,
    progress: Callable[[int, int], None] | None = None,
    **render_kwargs,
) -> Path:
    """Render ``gaussians`` along a camera path and write an H.264 (yuv420p) MP4 at ``path``.

    gaussians: (B, N, ...) batch, scene ``batch_index`` is rendered; K: (3, 3) pixel intrinsics shared
    by all frames; c2w_path: (F, 4, 4) OpenCV camera-to-world poses (e.g. from ``ilrm.camera_paths``).
    Frames are rendered ``batch_frames`` at a time with ``render_fn(gaussians (1, N, ...),
    K (1, f, 3, 3), c2w (1, f, 4, 4), height, width, **render_kwargs) → (1, f, 3, H, W)`` in [0, 1]
    (default ``ilrm.rendering.render``) and piped to ffmpeg immediately, so memory stays bounded by
    one batch. Odd sides are padded by one replicated row/column (yuv420p needs even sizes).
    ``quality``: imageio's 0–10 scale (variable bit rate). ``progress(done, total)`` is called after
    each batch. The file is written with ``+faststart`` so browsers can play it while loading.
    Returns the path; a partial file is removed if rendering fails.
    """
    steps = iter_render_video(
        gaussians,
        K,
        c2w_path,
        height,
        width,
        path,
        fps=fps,
        batch_frames=batch_frames,
        quality=quality,
        batch_index=batch_index,
        render_fn=render_fn,
        **render_kwargs,
    )
    while True:
        try:
            done, total = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(done, total)


def iter_render_video(
    gaussians: Gaussians,
    K: Tensor,
    c2w_path: Tensor,
    height: int,
    width: int,
    path: str | Path,
    *,
    fps: int = 30,
    batch_frames: int = 8,
    quality: float = 8,
    batch_index: int = 0,
    render_fn: RenderFn | None = None,
    **render_kwargs,
) -> Generator[tuple[int, int], None, Path]:
    """:func:`render_video` as a generator: yields ``(frames done, total)`` after each batch and
    returns the path (``StopIteration.value``).

    Progress travels as yielded values rather than through a callback so that the caller can run it
    where callables cannot be sent (a ZeroGPU worker pickles its arguments). Closing the generator
    early removes the partial file.
    """
    import imageio.v2 as imageio  # imported here: only video writing needs ffmpeg

    if render_fn is None:
        from .rendering import render as render_fn

        # no backend asked for: the fastest for where the Gaussians are (on a CPU: the compiled kernel)
        render_kwargs.setdefault("backend", render_backend(gaussians.means.device))
    if c2w_path.ndim != 3 or c2w_path.shape[1:] != (4, 4) or c2w_path.shape[0] < 1:
        raise ILRMInputError(f"c2w_path must have shape (F ≥ 1, 4, 4), got {tuple(c2w_path.shape)}")
    if K.shape != (3, 3):
        raise ILRMInputError(f"K must be one (3, 3) intrinsics matrix in pixels, got {tuple(K.shape)}")
    if not (torch.isfinite(c2w_path).all() and torch.isfinite(K).all()):
        raise ILRMInputError("camera path or intrinsics contain NaN or infinite values")
    if height < 1 or width < 1 or batch_frames < 1 or fps <= 0:
        raise ILRMInputError(
            f"height, width, batch_frames and fps must be positive, got {height}, {width}, {batch_frames}, {fps}"
        )
    if not -gaussians.batch_size <= batch_index < gaussians.batch_size:
        raise ILRMInputError(f"batch_index {batch_index} is out of range for {gaussians.batch_size} scene(s)")
    g = gaussians.batch(batch_index % gaussians.batch_size)
    device = g.means.device
    K = K.to(device=device, dtype=torch.float32)
    c2w_path = c2w_path.to(device=device, dtype=torch.float32)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    total = c2w_path.shape[0]
    writer = imageio.get_writer(
        path,
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec="libx264",
        quality=quality,
        pixelformat="yuv420p",
        macro_block_size=2,  # sizes are already even; stops imageio from rescaling to multiples of 16
        output_params=["-movflags", "+faststart"],
        ffmpeg_log_level="error",
    )
    try:
        for start in range(0, total, batch_frames):
            poses = c2w_path[start : start + batch_frames]
            f = poses.shape[0]
            with torch.no_grad():  # not around the yield: grad mode is thread state the consumer owns
                images = render_fn(g, K.expand(1, f, 3, 3), poses[None], height, width, **render_kwargs)
            images = getattr(images, "images", images)  # a RenderOutput when depth/alpha were asked for
            if images.shape != (1, f, 3, height, width):
                raise RuntimeError(f"render_fn returned {tuple(images.shape)}, expected {(1, f, 3, height, width)}")
            for frame in _to_uint8_frames(images[0], height, width):
                writer.append_data(frame)
            del images
            yield min(start + f, total), total
    except BaseException:  # includes GeneratorExit: a consumer that stops early leaves no partial file
        with contextlib.suppress(Exception):  # ffmpeg may already be gone; the original error matters
            writer.close()
        path.unlink(missing_ok=True)
        raise
    writer.close()
    return path


def render_backend(device: torch.device) -> str:
    """gsplat on CUDA when it imports, else our pure-torch rasterizer (also on CUDA); on a CPU the
    compiled fast rasterizer (:mod:`ilrm.rendering.cpu_fast`, same rules, > 100 dB PSNR from the reference,
    ~12× faster on 2 cores; see docs/results/cpu_video.md) when it builds here, else the torch reference."""
    device = torch.device(device)
    if device.type == "cpu":
        from .rendering.cpu_fast import available

        return "cpu_fast" if available() else "torch"
    if device.type != "cuda":
        return "torch"
    from .rendering.gsplat_backend import gsplat_available

    return "gsplat" if gsplat_available() else "torch"


@dataclass(frozen=True)
class VideoProgress:
    """One step of a fly-through: ``done`` of ``total`` frames rendered (picklable, unlike a callback)."""

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
    """Render a fly-through along the input cameras into an H.264 mp4.

    gaussians: (1, N, ...) in the same frame as ``views.c2w`` (1, V, 4, 4). The cameras are ordered by a
    nearest-neighbour walk and interpolated with a small wobble (:func:`ilrm.camera_paths.fly_through`;
    one view: an orbit), rendered at the views' resolution with the first view's intrinsics.
    Yields a :class:`VideoProgress` after each batch of frames, then the video's :class:`Path`. A
    generator rather than a progress callback, because on ZeroGPU this runs in a worker process that
    receives its arguments pickled and streams each yielded value back.
    """
    from .camera_paths import fly_through, orbit_path, order_poses

    dev = torch.device(device) if device is not None else gaussians.means.device
    c2w = views.c2w[0].double()
    poses = (fly_through(c2w[order_poses(c2w)], frames) if len(c2w) > 1 else orbit_path(c2w, frames)).float()
    steps = iter_render_video(
        gaussians.to(dev),
        views.intrinsics[0, 0].float(),
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
