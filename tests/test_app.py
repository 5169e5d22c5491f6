"""The Gradio app: the handler on good and bad input, and the app served on localhost (gradio_client)."""

from __future__ import annotations

import inspect
import json
import shutil
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import gradio as gr
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from demo.app import build_demo, launch, make_handler
from demo.models import DEFAULT_CHECKPOINT, EXAMPLES_DIR, ModelSpec, ModelStore
from demo.pipeline import VideoSettings
from demo.sessions import SessionFolders
from ilrm.gaussian_files import load_ply

PROC = EXAMPLES_DIR / "procedural"
PROC_IMAGES = sorted(str(p) for p in (PROC / "images").glob("*.png"))
PROC_CAMS = [str(PROC / "opencv_cameras.json")]
VIDEO = VideoSettings(frames=3, fps=3)


def no_progress(*args, **kwargs) -> None:
    return None


@pytest.fixture(scope="module")
def store() -> ModelStore:
    return ModelStore([ModelSpec("shipped", "ilrm-tiny-procedural", str(DEFAULT_CHECKPOINT))])


@pytest.fixture()
def handler(store, tmp_path):
    return make_handler(store, SessionFolders(tmp_path / "sessions"), video=VIDEO)


def run(handler, images, cameras=None, *, video=True, fov=60.0) -> list[tuple]:
    return list(handler(images, cameras, "shipped", fov, video, None, None, no_progress))


def error_of(handler, images, cameras=None, **kw) -> str:
    with pytest.raises(gr.Error) as e:
        run(handler, images, cameras, **kw)
    return e.value.message


def noise(path: Path, h: int = 64, w: int = 64, seed: int = 0) -> str:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_example_scene_gives_preview_then_video(handler):
    outs = run(handler, PROC_IMAGES, PROC_CAMS)
    assert len(outs) == 2  # the preview and downloads first, then the same with the video
    preview, video, ply, splat, report, run_dir = outs[-1]
    assert outs[0][1] is None and outs[0][0] == preview
    g = load_ply(ply)
    splat_bytes = Path(splat).stat().st_size
    assert g.num_gaussians > 0 and splat_bytes % 32 == 0 and 0 < splat_bytes <= 32 * g.num_gaussians
    header = Path(preview).read_bytes()[:2000].split(b"end_header")[0].decode()
    assert "binary_little_endian" in header and "uchar" not in header and "element vertex" in header
    frames = iio.imread(video, index=None)
    assert frames.shape[0] == VIDEO.frames and frames.shape[-1] == 3
    assert "Gaussians:" in report and "ilrm-tiny-procedural" in report and Path(run_dir).is_dir()


def zero_gpu(fn: Callable, sent: list) -> Callable:
    """``fn`` as ZeroGPU runs a ``@spaces.GPU`` function: its arguments go to the GPU worker through a
    pickling queue (ForkingPickler), and so does what it returns or, for a generator function (the
    test ZeroGPU itself applies), each value it yields."""

    def call(*args, **kwargs):
        ForkingPickler.dumps((args, kwargs))  # raises on a closure, a lambda, a lock, ...
        sent.append((fn.__name__, args, kwargs))
        if inspect.isgeneratorfunction(fn):

            def stream():
                for item in fn(*args, **kwargs):
                    ForkingPickler.dumps(item)
                    yield item

            return stream()
        out = fn(*args, **kwargs)
        ForkingPickler.dumps(out)
        return out

    return call


@pytest.mark.parametrize("video", [True, False])
def test_gpu_functions_get_only_picklable_arguments(handler, monkeypatch, video):
    """What the handler passes to (and gets from) each GPU function survives ZeroGPU's pickling queue."""
    import demo.app as app

    sent: list = []
    monkeypatch.setattr(app, "gpu_forward", zero_gpu(app.gpu_forward, sent))
    monkeypatch.setattr(app, "gpu_video", zero_gpu(app.gpu_video, sent))
    reports: list[tuple] = []
    outs = list(handler(PROC_IMAGES, PROC_CAMS, "shipped", 60.0, video, None, None,
                        lambda f, desc=None: reports.append((f, desc))))
    assert [name for name, *_ in sent] == ["gpu_forward"] + ["gpu_video"] * video
    if video:
        assert iio.imread(outs[-1][1], index=None).shape[0] == VIDEO.frames
        # the video's progress still reaches the page, from values the GPU function yielded
        assert any(d and f"frame {VIDEO.frames}/{VIDEO.frames}" in d for _, d in reports), reports


def test_bad_inputs_become_messages(handler, tmp_path):
    a, b = noise(tmp_path / "a.png"), noise(tmp_path / "b.png", seed=1)
    assert "upload 2 to 32 photos" in error_of(handler, [])
    assert "at least 2 photos" in error_of(handler, [a])
    many = [noise(tmp_path / f"m{i}.png", 16, 16, i) for i in range(33)]
    assert "at most 32 photos" in error_of(handler, many)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n" * 50)
    assert "is not an image" in error_of(handler, [a, str(text)])
    cut = tmp_path / "cut.jpg"
    Image.open(a).save(cut, quality=90)
    cut.write_bytes(cut.read_bytes()[:200])
    assert "damaged" in error_of(handler, [a, str(cut)])
    assert "same size" in error_of(handler, [a, noise(tmp_path / "c.png", 48, 64)])
    # a camera file for other photos
    assert "no camera" in error_of(handler, [a, b], PROC_CAMS)
    # NaN and identical poses in the camera file
    data = json.loads(Path(PROC_CAMS[0]).read_text())
    for frame in data["frames"]:
        frame["file_path"] = "images/" + Path(frame["file_path"]).name
    bad = json.loads(json.dumps(data))
    bad["frames"][1]["w2c"][0][3] = float("nan")
    nan_file = tmp_path / "nan" / "opencv_cameras.json"
    nan_file.parent.mkdir()
    nan_file.write_text(json.dumps(bad))
    assert "NaN/infinite or malformed for: 'images/view1.png'" in error_of(handler, PROC_IMAGES, [str(nan_file)])
    same = json.loads(json.dumps(data))
    same["frames"][1]["w2c"] = same["frames"][0]["w2c"]
    same_file = tmp_path / "same" / "opencv_cameras.json"
    same_file.parent.mkdir()
    same_file.write_text(json.dumps(same))
    assert "same" in error_of(handler, PROC_IMAGES, [str(same_file)])
    # pose estimation that cannot work: two copies of one photo, unposed
    twin = tmp_path / "twin.png"
    shutil.copy(a, twin)
    msg = error_of(handler, [a, str(twin)])
    assert "too few matching features" in msg and "step sideways" in msg


@pytest.mark.slow
def test_served_app_with_gradio_client(store, tmp_path):
    from gradio_client import Client, handle_file

    demo = build_demo(store=store, sessions=SessionFolders(tmp_path / "s"), video=VIDEO, examples=False)
    _, url, _ = launch(demo, port=None, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "dl"))
        preview, video, ply, splat, report = client.predict(
            [handle_file(p) for p in PROC_IMAGES],
            [handle_file(PROC_CAMS[0])],
            "shipped",
            60.0,
            True,
            api_name="/reconstruct",
        )
        assert load_ply(ply).num_gaussians > 0
        video_path = video["video"] if isinstance(video, dict) else video
        assert iio.imread(video_path, index=None).shape[0] == VIDEO.frames
        assert "Gaussians:" in report
        with pytest.raises(Exception, match="at least 2 photos"):
            client.predict([handle_file(PROC_IMAGES[0])], None, "shipped", 60.0, False, api_name="/reconstruct")
    finally:
        demo.close()


def test_errors_stay_on_screen_and_are_repeated_in_the_report(store, tmp_path):
    """The page's handler: an error is shown until closed (duration None) and the report says it too."""
    from demo.app import ReportedError, with_report_on_error

    page = with_report_on_error(make_handler(store, SessionFolders(tmp_path / "s"), video=VIDEO))
    a = noise(tmp_path / "a.png")
    outs = []
    with pytest.raises(ReportedError) as e:
        for out in page([a], None, "shipped", 60.0, False, None, None, no_progress):
            outs.append(out)
    assert e.value.duration is None and "at least 2 photos" in e.value.message
    assert outs and "at least 2 photos" in outs[-1][4] and "Cannot reconstruct" in outs[-1][4]


def test_stale_session_roots_are_removed(tmp_path):
    import subprocess
    import sys

    from demo.sessions import OWNER_FILE, ROOT_PREFIX, remove_stale_roots

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone, alive, unowned = (tmp_path / f"{ROOT_PREFIX}{n}" for n in ("gone", "alive", "new"))
    for d in (gone, alive, unowned):
        d.mkdir()
    (gone / OWNER_FILE).write_text(str(dead.pid))
    import os

    (alive / OWNER_FILE).write_text(str(os.getpid()))
    assert remove_stale_roots(tmp_path) == [gone]
    assert alive.is_dir() and unowned.is_dir()  # a live owner's, and an unowned one touched today


@pytest.mark.slow
def test_examples_are_computed_at_start_and_their_runs_removed(store, tmp_path, monkeypatch):
    """Eager example cache: computed while the app starts, kept under the session root, and the
    example runs' own folders are gone once cached; a click is then served from the cache."""
    monkeypatch.delenv("GRADIO_EXAMPLES_CACHE", raising=False)
    sessions = SessionFolders(tmp_path / "s")
    demo = build_demo(store=store, sessions=sessions, video=VIDEO)
    _, url, _ = launch(demo, port=None, prevent_thread_lock=True, quiet=True)
    try:
        logs = list((sessions.root / "examples_cache").glob("*/log.csv"))
        assert logs and len(logs[0].read_text().splitlines()) > 1  # the header and the cached rows
        assert not (sessions.root / "examples").exists()
        cached = [p for p in (sessions.root / "examples_cache").rglob("*.ply")]
        assert cached, "the cached outputs live in the cache folder, not in the removed run folders"
    finally:
        demo.close()
