import math

import numpy as np
import pytest
import torch

from ilrm.camera_paths import (
    fly_through,
    focus_point,
    interpolate_poses,
    look_at,
    orbit_path,
    order_poses,
    slerp,
)
from ilrm.errors import ILRMInputError
from ilrm.gaussians import quat_to_rotmat, rotmat_to_quat


def rot_axis_angle(axis, angle: float) -> torch.Tensor:
    axis = torch.tensor(axis, dtype=torch.float64)
    axis = axis / axis.norm()
    q = torch.cat([torch.tensor([math.cos(angle / 2)], dtype=torch.float64), math.sin(angle / 2) * axis])
    return quat_to_rotmat(q)


def converging_rig(v: int = 4, radius: float = 2.0) -> torch.Tensor:
    """Cameras on an arc, all looking at the origin (OpenCV c2w), with y pointing down (−y world up)."""
    angles = torch.linspace(-0.4, 0.4, v, dtype=torch.float64)
    pos = torch.stack([radius * torch.sin(angles), 0.1 * torch.arange(v), -radius * torch.cos(angles)], -1)
    down = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).expand_as(pos)
    return look_at(pos, torch.zeros_like(pos), down).float()


def assert_orthonormal(c2w: torch.Tensor, atol: float = 1e-5) -> None:
    R = c2w[..., :3, :3].double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye, atol=atol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=torch.float64), atol=atol, rtol=0)
    torch.testing.assert_close(c2w[..., 3, :], torch.tensor([0.0, 0, 0, 1]).expand(*c2w.shape[:-2], 4).to(c2w))


def test_slerp_midpoint_is_half_angle():
    R0 = torch.eye(3, dtype=torch.float64)
    R1 = rot_axis_angle([0.3, 1.0, -0.2], 1.2)
    q = slerp(rotmat_to_quat(R0), rotmat_to_quat(R1), torch.tensor(0.5, dtype=torch.float64))
    torch.testing.assert_close(quat_to_rotmat(q), rot_axis_angle([0.3, 1.0, -0.2], 0.6))
    # the short way round even when the quaternions have opposite signs
    q1 = -rotmat_to_quat(R1)
    q = slerp(rotmat_to_quat(R0), q1, torch.tensor(0.25, dtype=torch.float64))
    torch.testing.assert_close(quat_to_rotmat(q), rot_axis_angle([0.3, 1.0, -0.2], 0.3))
    # identical rotations stay put (no NaN from sin θ = 0)
    q = slerp(rotmat_to_quat(R1), rotmat_to_quat(R1), torch.tensor(0.5, dtype=torch.float64))
    torch.testing.assert_close(quat_to_rotmat(q), R1)


def test_interpolate_two_poses_midpoint():
    a = torch.eye(4, dtype=torch.float64)
    b = torch.eye(4, dtype=torch.float64)
    b[:3, :3] = rot_axis_angle([0, 1, 0], 0.8)
    b[:3, 3] = torch.tensor([2.0, 0.0, 1.0])
    path = interpolate_poses(torch.stack([a, b]), 5)
    assert path.shape == (5, 4, 4) and path.dtype == torch.float64
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    torch.testing.assert_close(path[2, :3, :3], rot_axis_angle([0, 1, 0], 0.4))
    torch.testing.assert_close(path[2, :3, 3], torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64))
    # evenly spaced: equal steps in position for a single segment
    steps = (path[1:, :3, 3] - path[:-1, :3, 3]).norm(dim=-1)
    torch.testing.assert_close(steps, steps[:1].expand(4))


@pytest.mark.parametrize("spacing", ["arc", "segment"])
def test_interpolate_through_rig(spacing):
    c2w = converging_rig(4)
    path = interpolate_poses(c2w, 31, spacing=spacing)
    assert path.shape == (31, 4, 4) and path.dtype == torch.float32
    torch.testing.assert_close(path[0], c2w[0], rtol=0, atol=0)
    torch.testing.assert_close(path[-1], c2w[-1], rtol=0, atol=0)
    assert_orthonormal(path)
    if spacing == "segment":  # 3 segments × 10 frames: every input pose is a frame
        for i in range(4):
            torch.testing.assert_close(path[10 * i], c2w[i], atol=1e-5, rtol=0)
    # a smooth path: no frame jumps much further than the average step
    steps = (path[1:, :3, 3] - path[:-1, :3, 3]).norm(dim=-1)
    assert float(steps.max()) < 1.6 * float(steps.mean())


def test_interpolate_loop_and_edge_cases():
    c2w = converging_rig(3)
    path = interpolate_poses(c2w, 30, loop=True, spacing="segment")
    assert path.shape == (30, 4, 4)
    for i in range(3):  # 3 segments including the way back, 10 frames each
        torch.testing.assert_close(path[10 * i], c2w[i], atol=1e-5, rtol=0)
    assert_orthonormal(path)
    # the last frame is one step (of the closing segment) before the first pose again
    gap_end = (path[-1, :3, 3] - c2w[0, :3, 3]).norm()
    gap = (path[-1, :3, 3] - path[-2, :3, 3]).norm()
    torch.testing.assert_close(gap_end, gap, rtol=1e-3, atol=0)
    one = interpolate_poses(c2w[:1], 4)
    torch.testing.assert_close(one, c2w[:1].expand(4, 4, 4))
    same = interpolate_poses(c2w[:1].expand(3, 4, 4), 5)  # repeated poses: no NaN
    assert torch.isfinite(same).all()
    with pytest.raises(ILRMInputError):
        interpolate_poses(c2w[0], 5)
    with pytest.raises(ILRMInputError):
        interpolate_poses(torch.full((2, 4, 4), float("nan")), 5)
    with pytest.raises(ILRMInputError):
        interpolate_poses(c2w, 0)


def test_focus_point():
    c2w = converging_rig(5)
    torch.testing.assert_close(focus_point(c2w), torch.zeros(3), atol=0.02, rtol=0)
    # parallel axes (a forward-facing pair): falls back to a point in front of the cameras
    par = torch.eye(4).repeat(2, 1, 1)
    par[1, 0, 3] = 1.0
    p = focus_point(par)
    assert torch.isfinite(p).all() and float(p[2]) > 0.5
    torch.testing.assert_close(p[:2], torch.tensor([0.5, 0.0]), atol=1e-3, rtol=0)


def test_orbit_stays_within_radius_and_looks_at_focus():
    c2w = converging_rig(4)
    path = orbit_path(c2w, 24, radius_fraction=0.1)
    assert path.shape == (24, 4, 4)
    assert_orthonormal(path)
    centre = c2w[:, :3, 3].mean(0)
    target = focus_point(c2w)
    radius = 0.1 * float((target - centre).norm())
    d = (path[:, :3, 3] - centre).norm(dim=-1)
    assert float(d.max()) <= radius * (1 + 1e-5) and float(d.min()) > 0.9 * radius
    to_target = torch.nn.functional.normalize(target - path[:, :3, 3], dim=-1)
    torch.testing.assert_close(path[:, :3, 2], to_target, atol=1e-5, rtol=0)
    # y stays roughly "down" like the inputs (world +y)
    assert float(path[:, 1, 1].min()) > 0.9


def test_fly_through():
    c2w = converging_rig(4)
    path = fly_through(c2w, 40, wobble=0.05)
    assert path.shape == (40, 4, 4)
    assert_orthonormal(path)
    torch.testing.assert_close(path[0], c2w[0], rtol=0, atol=0)
    torch.testing.assert_close(path[-1], c2w[-1], rtol=0, atol=0)
    base = interpolate_poses(c2w, 40)
    dist = float((focus_point(c2w) - c2w[:, :3, 3]).norm(dim=-1).mean())
    dev = (path[:, :3, 3] - base[:, :3, 3]).norm(dim=-1)
    assert float(dev.max()) <= 0.05 * dist * 1.001 and float(dev.max()) > 0.02 * dist
    torch.testing.assert_close(fly_through(c2w, 40, wobble=0.0), base)


def test_order_poses():
    c2w = converging_rig(5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    order = order_poses(c2w[perm])
    recovered = perm[order]
    assert recovered.tolist() in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0])


# ---- render_video (ilrm.video) -------------------------------------------------------------


def fake_render(calls: list):
    """A stand-in renderer: a horizontal gradient whose red level encodes the camera's x position."""

    def render_fn(gaussians, K, c2w, height, width, **kwargs):
        calls.append((tuple(K.shape), tuple(c2w.shape), kwargs))
        b, f = c2w.shape[:2]
        ramp = torch.linspace(0, 1, width).expand(b, f, height, width)
        red = (c2w[..., 0, 3].clamp(0, 1))[..., None, None].expand(b, f, height, width)
        return torch.stack([red, ramp, torch.full_like(ramp, 0.25)], dim=2)

    return render_fn


def tiny_gaussians():
    from ilrm.gaussians import Gaussians

    return Gaussians(
        means=torch.zeros(1, 1, 3),
        quats=torch.tensor([[[1.0, 0, 0, 0]]]),
        scales=torch.full((1, 1, 3), 0.1),
        opacities=torch.ones(1, 1),
        sh=torch.zeros(1, 1, 1, 3),
    )


@pytest.mark.parametrize("height,width", [(48, 64), (37, 51)])
def test_render_video_writes_h264(tmp_path, height, width):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    from ilrm.video import render_video

    frames = 21
    c2w = torch.eye(4).repeat(frames, 1, 1)
    c2w[:, 0, 3] = torch.linspace(0, 1, frames)  # red goes 0 → 255 over the video
    K = torch.tensor([[50.0, 0, width / 2], [0, 50.0, height / 2], [0, 0, 1]])
    calls, progress = [], []
    out = render_video(
        tiny_gaussians(),
        K,
        c2w,
        height,
        width,
        tmp_path / "sub" / "v.mp4",
        fps=24,
        batch_frames=8,
        render_fn=fake_render(calls),
        progress=lambda done, total: progress.append((done, total)),
        background="white",
    )
    assert out.exists() and out.stat().st_size > 0
    # streamed in batches of ≤ 8 frames, with the extra keyword passed through
    assert [c[1] for c in calls] == [(1, 8, 4, 4), (1, 8, 4, 4), (1, 5, 4, 4)]
    assert calls[0][0] == (1, 8, 3, 3) and calls[0][2] == {"background": "white"}
    assert progress == [(8, 21), (16, 21), (21, 21)]

    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert "h264" in meta["codec"]
    assert meta["fps"] == pytest.approx(24)
    even = (height + height % 2, width + width % 2)
    assert tuple(meta["size"]) == (even[1], even[0])
    decoded = [np.frombuffer(f, np.uint8).reshape(even[0], even[1], 3) for f in reader]
    assert len(decoded) == frames
    # content survives the lossy encoding: the ramp in green, the camera position in red
    first, last = decoded[0].astype(float), decoded[-1].astype(float)
    assert first[..., 0].mean() < 20 and last[..., 0].mean() > 235
    assert abs(first[..., 2].mean() - 64) < 10
    assert first[:, : width // 4, 1].mean() + 100 < first[:, -width // 4 :, 1].mean()


def test_render_video_rejects_bad_input_and_cleans_up(tmp_path):
    from ilrm.video import render_video

    K = torch.tensor([[50.0, 0, 16], [0, 50.0, 16], [0, 0, 1]])
    c2w = torch.eye(4).repeat(3, 1, 1)
    with pytest.raises(ILRMInputError, match="c2w_path"):
        render_video(tiny_gaussians(), K, c2w[0], 32, 32, tmp_path / "a.mp4", render_fn=fake_render([]))
    with pytest.raises(ILRMInputError, match="K must"):
        render_video(tiny_gaussians(), K[None], c2w, 32, 32, tmp_path / "a.mp4", render_fn=fake_render([]))

    def broken(gaussians, K, c2w, height, width):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        render_video(tiny_gaussians(), K, c2w, 32, 32, tmp_path / "b.mp4", render_fn=broken)
    assert not (tmp_path / "b.mp4").exists()


def test_render_video_with_real_renderer(tmp_path):
    """The default renderer (ilrm.render, part of the package: a broken import fails here, it is
    not skipped): one grey Gaussian at the origin, which every camera of the path looks at, is drawn
    in the middle of each frame on the white background."""
    import imageio_ffmpeg

    from ilrm.video import render_video

    c2w = orbit_path(converging_rig(2), 3, radius_fraction=0.05)
    g = tiny_gaussians()
    K = torch.tensor([[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]])
    out = render_video(g, K, c2w, 16, 16, tmp_path / "r.mp4", batch_frames=2)
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 3
    reader = imageio_ffmpeg.read_frames(str(out))
    next(reader)
    for raw in reader:
        frame = np.frombuffer(raw, np.uint8).reshape(16, 16, 3).astype(float)
        assert frame[6:10, 6:10].mean() < 200 and frame[0, 0].mean() > 235  # grey blob, white corners
