"""Limits of the public server, each checked against the app served on localhost (gradio_client):
the upload cap, the pixel cap's message, the bounded queue, the pose-estimation gate (a long pose
estimation does not hold other visitors), camera-zip caps, and SIGTERM / stale-root clean-up."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from torch import nn

from demo.app import BUSY_MESSAGE, build_demo, launch
from demo.models import EXAMPLES_DIR, ModelSpec, ModelStore
from demo.sessions import OWNER_FILE, SessionFolders
from ilrm.config import ILRMConfig

ROOT = Path(__file__).resolve().parents[1]
PROC = EXAMPLES_DIR / "procedural"
PROC_IMAGES = sorted(str(p) for p in (PROC / "images").glob("*.png"))
PROC_CAMS = str(PROC / "opencv_cameras.json")


class GatedModel(nn.Module):
    """A stand-in model whose forward waits for ``release`` (so a run can be held in the model)."""

    config = ILRMConfig.preset("tiny")

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def forward(self, views):
        from tests.test_browser import blob_gaussians

        self.entered.set()
        assert self.release.wait(60)
        return blob_gaussians(64, depth=2.0)


@pytest.fixture()
def served(tmp_path):
    """(client factory, demo, model) for an app built with the given limits, closed afterwards."""
    made = []

    def serve(**kw):
        model = GatedModel()
        store = ModelStore([ModelSpec("shipped", "stand-in", "preset:tiny")])
        store._models["shipped"] = model
        demo = build_demo(store=store, sessions=SessionFolders(tmp_path / "s"), examples=False, **kw)
        _, url, _ = launch(demo, prevent_thread_lock=True, quiet=True)
        made.append(demo)
        return (lambda: Client(url, verbose=False, download_files=str(tmp_path / "dl"))), url, demo, model

    yield serve
    for demo in made:
        demo.close()


def args(images, cams=None, video=False):
    return ([handle_file(p) for p in images], [handle_file(cams)] if cams else None, "shipped", 60.0, video)


def test_upload_over_the_cap_is_refused(served):
    """A 300 MB POST to /gradio_api/upload is refused (HTTP 413) once it passes the cap (100 MB);
    a small one is stored."""
    _, url, demo, _ = served()
    assert demo.ilrm_max_file_size == 100 * 1024 * 1024
    upload = url.rstrip("/") + "/gradio_api/upload"
    ok = httpx.post(upload, files={"files": ("a.png", Path(PROC_IMAGES[0]).read_bytes())}, timeout=30)
    assert ok.status_code == 200 and len(ok.json()) == 1

    boundary = "ilrmboundary"
    chunk = b"\0" * (1 << 20)

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.bin\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n").encode()
        for _ in range(300):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    t = time.perf_counter()
    try:
        r = httpx.post(upload, content=body(), timeout=60,
                       headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        status = r.status_code
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        status = 413  # the server stopped reading and closed the connection: refused
    assert status == 413, status
    assert time.perf_counter() - t < 30


def bomb_png(path: Path, w: int = 20000, h: int = 20000) -> str:
    """A 1-bit PNG of w×h zeros: 50 KB on disk, 400 megapixels once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (w + 7) // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return str(path)


def test_decompression_bomb_is_too_large_not_damaged(served, tmp_path):
    client, *_ = served()
    bomb = bomb_png(tmp_path / "bomb.png")
    with pytest.raises(Exception) as e:
        client().predict(*args([PROC_IMAGES[0], bomb]), api_name="/reconstruct")
    msg = str(e.value)
    assert "too large" in msg and "downscale it" in msg and "damaged" not in msg, msg


def test_full_queue_says_busy(served):
    """One run in the model, one waiting: a third is refused at once with "busy, try again"."""
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    client, _, _, model = served(concurrency_limit=1, max_queue=1)
    model.release.clear()
    c = client()
    first = c.submit(*args(PROC_IMAGES, PROC_CAMS), api_name="/reconstruct")
    assert model.entered.wait(90)
    second = c.submit(*args(PROC_IMAGES, PROC_CAMS), api_name="/reconstruct")
    deadline = time.time() + 10
    while time.time() < deadline and second.status().code.name not in ("IN_QUEUE",):
        time.sleep(0.1)
    third = client().submit(*args(PROC_IMAGES, PROC_CAMS), api_name="/reconstruct")
    with pytest.raises((QueueError, AppError)) as e:
        third.result(timeout=30)
    assert "full" in str(e.value).lower() and "try again" in str(e.value).lower(), e.value
    model.release.set()
    assert "Gaussians:" in first.result(timeout=60)[4] and "Gaussians:" in second.result(timeout=60)[4]


def test_long_pose_estimation_does_not_block_others(served, monkeypatch):
    """While one visitor's pose estimation runs (held here) and another waits for it, a visitor with
    a camera file gets results, and a third unposed visitor is told the server is busy."""
    import ilrm.photos as photos

    real = photos.photo_cameras
    started, release = threading.Event(), threading.Event()

    def slow_pose_estimation(images, camera_files, **kw):
        if camera_files:
            return real(images, camera_files, **kw)
        started.set()
        assert release.wait(60)
        return real(images, [Path(PROC_CAMS)], **kw)  # the "estimate"

    monkeypatch.setattr(photos, "photo_cameras", slow_pose_estimation)
    client, _, demo, _ = served(concurrency_limit=4)
    long_one = client().submit(*args(PROC_IMAGES), api_name="/reconstruct")
    assert started.wait(90)
    waiting = client().submit(*args(PROC_IMAGES), api_name="/reconstruct")
    deadline = time.time() + 10
    while demo.ilrm_gates.pose.waiting < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert demo.ilrm_gates.pose.waiting == 1
    t = time.perf_counter()
    out = client().predict(*args(PROC_IMAGES, PROC_CAMS), api_name="/reconstruct")
    assert "Gaussians:" in out[4] and time.perf_counter() - t < 20
    with pytest.raises(Exception) as e:
        client().predict(*args(PROC_IMAGES), api_name="/reconstruct")
    assert BUSY_MESSAGE[:40] in str(e.value), e.value
    release.set()
    assert "Gaussians:" in long_one.result(timeout=60)[4] and "Gaussians:" in waiting.result(timeout=60)[4]


def test_zip_bomb_camera_file_is_refused(served, tmp_path):
    """A small zip that unpacks to a huge images.txt is refused from its header, without unpacking."""
    bomb = tmp_path / "cameras.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cameras.txt", "1 PINHOLE 64 64 50 50 32 32\n")
        zf.writestr("images.txt", "# " + "0" * (16 << 20) + "\n")
    assert bomb.stat().st_size < 1 << 20
    client, *_ = served()
    t = time.perf_counter()
    with pytest.raises(Exception) as e:
        client().predict(*args(PROC_IMAGES, str(bomb)), api_name="/reconstruct")
    assert "compress" in str(e.value) and time.perf_counter() - t < 10, e.value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigterm_removes_the_session_root_and_stale_roots_go_at_start(tmp_path):
    """``python app.py``: a dead demo's root is removed at start; SIGTERM removes this one's, with
    no pycolmap crash dump."""
    stale = tmp_path / "ilrm_demo_stale"
    stale.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (stale / OWNER_FILE).write_text(str(dead.pid))
    port = free_port()
    env = dict(os.environ, TMPDIR=str(tmp_path), GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--no-examples"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        roots = [p for p in tmp_path.glob("ilrm_demo_*")]
        assert roots and not stale.exists(), roots
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not [p for p in tmp_path.glob("ilrm_demo_*")], out
    assert "SIGTERM (@" not in out and "Aborted at" not in out, out
    assert proc.returncode == 0, out
