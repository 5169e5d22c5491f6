"""Gradio 6 Blocks UI for iLRM: photos (+ optional cameras) → 3D Gaussians, a fly-through video, files.

Only the UI lives here; the work is :mod:`demo.pipeline`. ``python app.py`` (repository root) calls
:func:`main`. Binds to 127.0.0.1 unless ``--host``/``GRADIO_SERVER_NAME`` says otherwise.
"""

from __future__ import annotations

# ZeroGPU (Hugging Face Spaces): `spaces` must be imported before anything initialises CUDA.
try:  # pragma: no cover - only installed on Spaces
    import spaces
except ImportError:  # pragma: no cover
    spaces = None

import argparse
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import gradio as gr
import torch

from demo.models import EXAMPLES_DIR, ModelStore, default_model_specs, describe_model, model_quality_markdown
from demo.pipeline import (
    ReconstructionResult,
    VideoSettings,
    default_video_settings,
    gpu_forward_duration,
    gpu_video_duration,
    reconstruct_iter,
    run_model,
)
from demo.sessions import SessionFolders
from ilrm.cameras import Views
from ilrm.errors import ILRMInputError
from ilrm.gaussians import Gaussians
from ilrm.pipeline import pick_device
from ilrm.video import VideoEvent, render_fly_through_steps

log = logging.getLogger(__name__)

IMAGE_TYPES = [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"]
CAMERA_TYPES = [".json", ".txt", ".bin", ".zip"]
DEFAULT_FOV = 60.0
API_NAME = "reconstruct"

#: Largest single upload (photo or camera file) the server accepts; ILRM_DEMO_MAX_FILE_MB overrides.
MAX_FILE_MB = 100
#: Runs the server works on at once (Gradio workers); ILRM_DEMO_CONCURRENCY overrides. Inside a
#: run, the stages have their own gates (:class:`StageGates`): pose estimation may not take them all.
DEFAULT_WORKERS = 4

CSS = """
#ilrm-info { font-size: 0.92em; }
/* the drop zone's "Drop File Here - or - Click to Upload" must fit in the camera-file box */
#ilrm-cameras .wrap { min-height: 7.5em; }
"""


class ServerBusy(Exception):
    """A stage's gate is full: the visitor is told to try again (nothing was started)."""


class Gate:
    """At most ``capacity`` runs inside a stage, at most ``max_waiting`` more waiting for it
    (None: no bound on waiting); a run beyond that gets :class:`ServerBusy` at once."""

    def __init__(self, name: str, capacity: int, max_waiting: int | None = None):
        self.name, self.capacity, self.max_waiting = name, capacity, max_waiting
        self._slots = threading.Semaphore(capacity)
        self._lock = threading.Lock()
        self.inside = 0
        self.waiting = 0

    @contextlib.contextmanager
    def enter(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self.max_waiting is not None and self.waiting >= self.max_waiting:
                    raise ServerBusy(self.name)
                self.waiting += 1
            try:
                if on_wait is not None:
                    on_wait()
                self._slots.acquire()
            finally:
                with self._lock:
                    self.waiting -= 1
        with self._lock:
            self.inside += 1
        try:
            yield
        finally:
            with self._lock:
                self.inside -= 1
            self._slots.release()


class StageGates:
    """Per-stage limits inside the worker pool, so one visitor's long stage cannot hold the server.

    pose: pycolmap pose estimation for photos without a camera file (~70 s for 32 photos on a CPU):
    ``pose_slots`` at once and as many waiting; a further unposed run is refused with a "busy" message
    while runs with a camera file go straight on. forward: the model forward, exclusive (one at a
    time on the GPU). video: the fly-through, one at a time (the preview is already on screen).
    """

    def __init__(self, pose_slots: int = 1, video_slots: int = 1):
        self.pose = Gate("pose estimation", pose_slots, max_waiting=pose_slots)
        self.forward = Gate("model", 1)
        self.video = Gate("video", video_slots)


BUSY_MESSAGE = (
    "The server is busy: other visitors' cameras are being estimated right now. Try again in a minute, "
    "or upload a camera file for your photos (runs with one do not wait for this)."
)


def gpu(duration: int | Callable[..., int]) -> Callable:
    """``@spaces.GPU(duration=...)`` on ZeroGPU (a number of seconds, or a function of the GPU function's
    arguments: the visitor's quota is checked against what is requested); a no-op decorator elsewhere."""
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


# ZeroGPU runs these in a GPU worker process and sends their arguments, and every value they
# return or yield, through a pickling queue (multiprocessing's ForkingPickler). So they take data
# only (tensors, numbers, paths; never a callback or a model) and look models up by key; they give
# back CPU tensors, file paths and small dataclasses. tests/test_app.py pickles exactly what the
# handler passes.
_STORES: dict[int, ModelStore] = {}


@gpu(duration=gpu_forward_duration)
def gpu_forward(store_id: int, key: str, views: Views) -> Gaussians:
    """Model forward on the best device; CPU Gaussians out."""
    model, _ = _STORES[store_id].get(key)
    return run_model(model, views)


@gpu(duration=gpu_video_duration)
def gpu_video(gaussians: Gaussians, views: Views, path: str | Path, **kwargs) -> Iterator[VideoEvent]:
    """Fly-through video on the best device (gsplat on CUDA when installed, else our torch rasterizer).

    A generator: ZeroGPU streams each :class:`VideoProgress` back while it renders, then the path.
    """
    yield from render_fly_through_steps(gaussians, views, path, **kwargs)


def _paths(files) -> list[str]:
    """Gradio file values (str paths or objects with .name / .path) → paths."""
    if files is None:
        return []
    if isinstance(files, (str, Path)):
        files = [files]
    out = []
    for f in files:
        p = getattr(f, "path", None) or getattr(f, "name", None) or f
        if p:
            out.append(str(p))
    return out


def _outputs(result: ReconstructionResult) -> tuple:
    video = str(result.video) if result.video is not None else None
    return str(result.preview), video, str(result.ply), str(result.splat), result.to_markdown()


def make_handler(
    store: ModelStore,
    sessions: SessionFolders,
    *,
    video: VideoSettings | None = None,
    max_side: int = 1024,
    gates: StageGates | None = None,
    session_key: str | None = None,
) -> Callable[..., Iterator[tuple]]:
    """The reconstruct event handler (a generator: preview first, then the video).

    Inputs: images (paths), camera files (paths or None), model key, field of view (°), make video
    (bool), session state, request. Outputs: preview .ply, video .mp4, full .ply, .splat, report
    (Markdown), session state (the run folder). Every failure becomes a ``gr.Error`` that stays on
    screen until closed, and is repeated in the report. gates: per-stage limits (:class:`StageGates`).
    session_key: the folder for runs without a request (example caching); default "shared".
    """
    store_id = id(store)
    _STORES[store_id] = store
    gates = gates or StageGates()

    def reconstruct(
        images,
        camera_files,
        model_key: str,
        fov_deg: float,
        make_video: bool,
        run_dir: str | None,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008 - Gradio injects its tracker through this default
        hold_out: bool = False,
    ) -> Iterator[tuple]:
        session = getattr(request, "session_hash", None) if request is not None else session_key
        shown = False  # whether results are on screen (an error then only adds to the report)
        report = ""
        pose_stage = contextlib.ExitStack()
        try:
            image_paths = _paths(images)
            if not image_paths:
                raise ILRMInputError("upload 2 to 32 photos of the scene first (or click an example below)")
            camera_paths = _paths(camera_files)
            key = model_key or store.default_key
            progress(0.0, desc="Loading the model")
            model, spec, choice = store.get_for(key, len(image_paths))
            dev = pick_device()
            if dev.type == "cpu" and model.config.width >= 512:
                gr.Warning("This model is large and runs on the CPU here: expect a minute or more.", duration=8)
            settings = video if video is not None else default_video_settings(dev)
            if not make_video:
                settings = VideoSettings(0, settings.fps)
            if not camera_paths:  # held from reading the photos until the cameras are known
                pose_stage.enter_context(gates.pose.enter(
                    lambda: progress(0.01, desc="Waiting for the pose estimator (another visitor's photos)")))
            out_dir = sessions.new_run(session)

            def forward(m, views):
                pose_stage.close()  # cameras are known: the next visitor may estimate theirs
                with gates.forward.enter(lambda: progress(0.4, desc="Waiting for the model")):
                    return gpu_forward(store_id, spec.key, views)

            def video_fn(*args, **kwargs):
                with gates.video.enter(lambda: progress(0.7, desc="Waiting for the video renderer")):
                    yield from gpu_video(*args, **kwargs)

            steps = reconstruct_iter(
                image_paths,
                camera_paths or None,
                model,
                out_dir,
                model_label=describe_model(model, spec.label),
                fov_deg=float(fov_deg) if fov_deg else None,
                video=settings,
                max_side=max_side,
                progress=lambda f, d: progress(f, desc=d),
                forward_fn=forward,
                video_fn=video_fn,
                hold_out=bool(hold_out),
                model_reason=choice.reason,
            )
            for result in steps:
                if not shown:
                    for w in result.warnings:
                        gr.Warning(w, duration=None)
                report = result.to_markdown()
                yield (*_outputs(result), str(out_dir))
                shown = True
        except ILRMInputError as e:
            raise _error(str(e), "Cannot reconstruct", shown, report) from None
        except ServerBusy:
            raise _error(BUSY_MESSAGE, "Server busy", shown, report) from None
        except gr.Error as e:
            raise _error(e.message, e.title, shown, report) from None
        except torch.OutOfMemoryError:
            raise _error("Ran out of memory: upload fewer photos or choose a smaller model.", "Out of memory",
                         shown, report) from None
        except Exception as e:  # noqa: BLE001 - never show a traceback; log it for the operator
            log.exception("reconstruction failed")
            raise _error(
                f"Something went wrong ({type(e).__name__}: {e}). Try other photos or another model; if it keeps "
                "happening, please report it.", "Error", shown, report,
            ) from None
        finally:
            pose_stage.close()

    return reconstruct


class ReportedError(gr.Error):
    """A ``gr.Error`` that stays on screen until closed and carries the report to show with it."""

    def __init__(self, message: str, title: str, report: str):
        super().__init__(message, duration=None, title=title, print_exception=False)
        self.report = report


def _error(message: str, title: str, shown: bool, report: str) -> ReportedError:
    text = f"**{title}:** {message}"
    return ReportedError(message, title, f"{report}\n\n❌ {text}" if shown and report else f"❌ {text}")


def with_report_on_error(handler: Callable[..., Iterator[tuple]]) -> Callable[..., Iterator[tuple]]:
    """``handler`` for the page: on an error, the report shows the message too (then the modal opens)."""

    def run(images, camera_files, model_key, fov_deg, make_video, run_dir, hold_out=False, request: gr.Request = None,
            progress=gr.Progress()):  # noqa: B008
        try:
            yield from handler(images, camera_files, model_key, fov_deg, make_video, run_dir, request, progress,
                               hold_out=bool(hold_out))
        except ReportedError as e:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), e.report, gr.skip()
            raise

    return run


def example_rows(default_key: str = "shipped") -> tuple[list[list], list[str]]:
    """Example rows [images, camera files, model, fov, video] and their labels (only existing scenes)."""
    rows, labels = [], []
    proc = EXAMPLES_DIR / "procedural"
    if (proc / "opencv_cameras.json").is_file():
        imgs = sorted(str(p) for p in (proc / "images").glob("*.png"))
        rows.append([imgs, [str(proc / "opencv_cameras.json")], default_key, DEFAULT_FOV, True])
        labels.append("Procedural room, 2 posed views (held-out scene)")
    desk = EXAMPLES_DIR / "mydesk"
    if (desk / "opencv_cameras.json").is_file():
        four = [str(desk / "images" / f"frame{i}.jpg") for i in (0, 140, 260, 380)]
        two = [str(desk / "images" / f"frame{i}.jpg") for i in (100, 180)]
        if all(Path(p).is_file() for p in four + two):
            rows.append([four, [str(desk / "opencv_cameras.json")], default_key, DEFAULT_FOV, True])
            labels.append("mydesk (real photos), 4 posed views")
            rows.append([four, None, default_key, DEFAULT_FOV, True])
            labels.append("mydesk, 4 views, pretend unposed (pycolmap estimates the cameras)")
            rows.append([two, None, default_key, 60.0, True])
            labels.append("mydesk, 2 views, pretend unposed (two-view estimate with a 60° field of view)")
    return rows, labels


INTRO = """
# iLRM — photos to 3D Gaussians in one forward pass
Upload **2–32 photos** of a scene taken from different positions (same camera, same size). Add a camera
file (`opencv_cameras.json`, nerfstudio `transforms.json`, or a COLMAP model: `cameras.txt` + `images.txt`,
the `.bin` files, or a zip) if you have one — photos are matched to cameras by file name. Without one,
cameras are estimated with COLMAP (pycolmap) on the CPU: 3+ photos work best; for exactly 2 photos set the
field of view (EXIF focal length is used when present).
"""


def build_demo(
    checkpoint: str | Path | None = None,
    *,
    store: ModelStore | None = None,
    sessions: SessionFolders | None = None,
    video: VideoSettings | None = None,
    concurrency_limit: int | None = None,
    max_queue: int = 32,
    max_side: int = 1024,
    examples: bool = True,
    warm_up: bool = False,
    pose_slots: int = 1,
    max_file_mb: float | None = None,
) -> gr.Blocks:
    """The Blocks app (queue configured; launch it with :func:`launch`).

    checkpoint: the default model (folder or Hub id; default from ``ILRM_DEMO_CHECKPOINT`` /
    ``ilrm_demo.json`` / ``checkpoints/ilrm-tiny-procedural``). store/sessions: inject for tests.
    video: fly-through frames/fps (default: by device). concurrency_limit: runs worked on at once
    (default ``ILRM_DEMO_CONCURRENCY`` or :data:`DEFAULT_WORKERS`); max_queue: runs waiting beyond
    those (more are told the app is busy); pose_slots: pose estimations at once (as many may wait;
    see :class:`StageGates`); max_file_mb: the upload cap :func:`launch` applies (default
    ``ILRM_DEMO_MAX_FILE_MB`` or :data:`MAX_FILE_MB`). examples: computed at start-up (cached for
    everyone; their run folders are removed once cached). warm_up: load the default model now
    (:func:`warm_up_default_model`) rather than on the first click.
    """
    store = store or ModelStore(default_model_specs(checkpoint))
    if warm_up:
        warm_up_default_model(store)
    sessions = sessions or SessionFolders()
    atexit.register(sessions.cleanup_all)
    if concurrency_limit is None:
        concurrency_limit = int(os.environ.get("ILRM_DEMO_CONCURRENCY", str(DEFAULT_WORKERS)))
    gates = StageGates(pose_slots=pose_slots)
    handler = make_handler(store, sessions, video=video, max_side=max_side, gates=gates)

    with gr.Blocks(title="iLRM: photos → 3D Gaussians", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(INTRO)
        run_state = gr.State(None, time_to_live=3600, delete_callback=sessions.cleanup_path)
        with gr.Row():
            with gr.Column(scale=1):
                images = gr.File(
                    label="Photos (2–32, same size)", file_count="multiple", file_types=IMAGE_TYPES, height=180
                )
                cameras = gr.File(
                    label="Camera file (optional)", file_count="multiple", file_types=CAMERA_TYPES, height=140,
                    elem_id="ilrm-cameras",
                )
                model = gr.Dropdown(choices=store.choices(), value=store.default_key, label="Model", interactive=True)
                with gr.Accordion("How good is each model?", open=False):
                    gr.Markdown(model_quality_markdown(store))
                fov = gr.Slider(
                    20,
                    120,
                    value=DEFAULT_FOV,
                    step=1,
                    label="Field of view (°) across the long side",
                    info="Only for photos without a camera file and without EXIF focal length.",
                )
                make_video = gr.Checkbox(value=True, label="Render a fly-through video")
                hold_out = gr.Checkbox(
                    value=False, label="Hold out one photo and score it (PSNR / SSIM)",
                    info="The middle photo is not given to the model; its render is compared with it. Needs 3+ photos.",
                )
                run = gr.Button("Reconstruct", variant="primary")
            with gr.Column(scale=2):
                preview = gr.Model3D(label="3D preview (drag to orbit, scroll to zoom)", height=480)
                info = gr.Markdown("", elem_id="ilrm-info")
                with gr.Row():
                    video_out = gr.Video(label="Fly-through", format=None, autoplay=True, loop=True, height=300)
                    with gr.Column():
                        ply_out = gr.File(label="Gaussians .ply (full, your camera frame)")
                        splat_out = gr.File(label="Gaussians .splat (web viewers)")
        outputs = [preview, video_out, ply_out, splat_out, info]
        run.click(
            with_report_on_error(handler),
            inputs=[images, cameras, model, fov, make_video, run_state, hold_out],
            outputs=[*outputs, run_state],
            api_name=API_NAME,
            api_description="Photos (+ optional camera file) → preview .ply, fly-through .mp4, full .ply, .splat, report",
            # Only the video waits for long: the preview, report and downloads show as soon as they exist.
            show_progress_on=[video_out],
            concurrency_limit=concurrency_limit,
            concurrency_id="reconstruct",
        )
        if examples:
            _add_examples(demo, store, sessions, video, max_side, gates, [images, cameras, model, fov, make_video],
                          outputs)

        def end_session(request: gr.Request) -> None:
            sessions.cleanup(getattr(request, "session_hash", None))

        demo.unload(end_session)
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=max_queue)
    demo.ilrm_store = store  # for tests and launch()
    demo.ilrm_sessions = sessions
    demo.ilrm_gates = gates
    if max_file_mb is None:
        max_file_mb = float(os.environ.get("ILRM_DEMO_MAX_FILE_MB", MAX_FILE_MB))
    demo.ilrm_max_file_size = int(max_file_mb * 1024 * 1024)
    return demo


EXAMPLE_SESSION = "examples"


def _add_examples(demo, store, sessions, video, max_side, gates, inputs, outputs) -> None:
    """The examples, computed when the app starts (Gradio's eager cache) so a click shows them at once.

    The cache lives under the session root (unless ``GRADIO_EXAMPLES_CACHE`` says otherwise), so a
    restart never shows another model's results, and the runs' own folders are removed once cached.
    """
    rows, labels = example_rows(store.default_key)
    if not rows:
        return
    handler = make_handler(store, sessions, video=video, max_side=max_side, gates=gates,
                           session_key=EXAMPLE_SESSION)

    def run_example(images, camera_files, model_key, fov_deg, make_video, progress=gr.Progress()):  # noqa: B008
        try:
            for out in handler(images, camera_files, model_key, fov_deg, make_video, None, None, progress):
                yield out[:5]
        except ReportedError as e:  # cached as it is: the report says what went wrong
            log.warning("example failed: %s", e.message)
            yield None, None, None, None, e.report

    ex = gr.Examples(
        examples=rows,
        inputs=inputs,
        outputs=outputs,
        fn=run_example,
        cache_examples=True,
        cache_mode="eager",
        example_labels=labels,
        label="Examples (computed when the app started: click one to see it at once)",
        api_name="example",
        api_visibility="private",
    )
    if not os.environ.get("GRADIO_EXAMPLES_CACHE"):
        folder = sessions.root / "examples_cache" / Path(ex.cached_folder).name
        ex.cached_folder, ex.cached_file, ex.cached_indices_file = folder, folder / "log.csv", folder / "indices.csv"

    async def drop_example_runs() -> None:  # runs after the caching (startup events run in order)
        sessions.cleanup(EXAMPLE_SESSION)

    demo.extra_startup_events.append(drop_example_runs)


def warm_up_default_model(store: ModelStore) -> bool:
    """Load the default model at start-up; returns whether it loaded.

    On a Space this reads the weights that ``preload_from_hub`` put in the cache while the app
    starts, not while the first visitor waits; on ZeroGPU it also happens in the main process, so
    each GPU worker forked from it starts with the model in memory. A failure is logged, not
    raised: the app still starts and the first run shows the error to the user.
    """
    try:
        model, spec = store.get(store.default_key)
    except ILRMInputError as e:
        log.warning("warm-up: the default model did not load: %s", e)
        return False
    log.info("warm-up: %s", describe_model(model, spec.label))
    return True


def launch(
    demo: gr.Blocks,
    *,
    host: str | None = None,
    port: int | None = None,
    share: bool = False,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
    **kwargs,
):
    """Launch with the app's theme/CSS (Gradio 6 takes them in ``launch``), on 127.0.0.1 unless told
    otherwise, with the upload cap of :func:`build_demo` (a bigger file is refused with HTTP 413)."""
    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    kwargs.setdefault("max_file_size", getattr(demo, "ilrm_max_file_size", MAX_FILE_MB * 1024 * 1024))
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        theme=gr.themes.Soft(),
        css=CSS,
        allowed_paths=[str(EXAMPLES_DIR)],
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
        show_error=True,
        footer_links=["api"],
        **kwargs,
    )


def install_signal_handlers(sessions: SessionFolders) -> None:
    """SIGTERM/SIGINT: remove the session root and exit quietly.

    pycolmap (glog) installs a failure-signal handler on import that dumps a "crash" stack trace
    on SIGTERM; it is imported here first so that ours replaces it for good.
    """
    with contextlib.suppress(ImportError):
        import pycolmap  # noqa: F401

    def stop(signum, frame) -> None:
        log.info("signal %d: removing %s and exiting", signum, sessions.root)
        sessions.cleanup_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="iLRM demo: photos → 3D Gaussians")
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or GRADIO_SERVER_PORT)")
    parser.add_argument("--checkpoint", default=None, help="default model: checkpoint folder or Hub repo id")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    parser.add_argument("--no-examples", action="store_true", help="start without the (precomputed) examples")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    sessions = SessionFolders()
    install_signal_handlers(sessions)
    demo = build_demo(args.checkpoint, sessions=sessions, warm_up=True, examples=not args.no_examples)
    launch(demo, host=args.host, port=args.port, share=args.share)
