"""Camera paths for videos: interpolation through the input cameras and gentle orbits around them.

All poses are OpenCV camera-to-world matrices (x right, y down, z forward), shape (..., 4, 4).
Rotations are interpolated as unit quaternions (slerp); positions linearly. Computation runs in
float64 and the result is returned in the input's dtype and device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ilrm.cameras import average_pose
from ilrm.errors import ILRMInputError
from ilrm.gaussians import quat_to_rotmat, rotmat_to_quat

__all__ = [
    "fly_through",
    "focus_point",
    "interpolate_poses",
    "look_at",
    "orbit_path",
    "order_poses",
    "slerp",
]


def _check_poses(c2w: Tensor, num_frames: int, min_views: int = 1) -> Tensor:
    if c2w.ndim != 3 or c2w.shape[-2:] != (4, 4) or c2w.shape[0] < min_views:
        raise ILRMInputError(f"camera path needs c2w of shape (V ≥ {min_views}, 4, 4), got {tuple(c2w.shape)}")
    if num_frames < 1:
        raise ILRMInputError(f"num_frames must be ≥ 1, got {num_frames}")
    if not torch.isfinite(c2w).all():
        raise ILRMInputError("camera poses contain NaN or infinite values")
    return c2w.detach().to(torch.float64)


def _pose(R: Tensor, t: Tensor) -> Tensor:
    """(..., 3, 3), (..., 3) → (..., 4, 4) c2w."""
    out = torch.zeros(*t.shape[:-1], 4, 4, dtype=t.dtype, device=t.device)
    out[..., :3, :3] = R
    out[..., :3, 3] = t
    out[..., 3, 3] = 1
    return out


def slerp(q0: Tensor, q1: Tensor, t: Tensor) -> Tensor:
    """Spherical linear interpolation of unit wxyz quaternions along the shorter arc.

    q0, q1: (..., 4); t: (...) in [0, 1] (broadcast). Returns (..., 4) unit quaternions.
    """
    q0, q1 = F.normalize(q0, dim=-1), F.normalize(q1, dim=-1)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)  # q and −q are the same rotation: take the short way round
    dot = dot.abs().clamp(max=1.0)
    t = t[..., None]
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    small = sin_theta < 1e-6  # nearly identical rotations: lerp is exact to first order and stable
    safe = torch.where(small, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(small, 1 - t, torch.sin((1 - t) * theta) / safe)
    w1 = torch.where(small, t, torch.sin(t * theta) / safe)
    return F.normalize(w0 * q0 + w1 * q1, dim=-1)


def look_at(position: Tensor, target: Tensor, down: Tensor) -> Tensor:
    """OpenCV c2w at ``position`` whose z axis points at ``target`` and whose y axis is as close to ``down`` as possible.

    position, target, down: (..., 3). Returns (..., 4, 4).
    """
    z = F.normalize(target - position, dim=-1)
    x = F.normalize(torch.linalg.cross(down, z, dim=-1), dim=-1)  # right = down × forward
    y = torch.linalg.cross(z, x, dim=-1)
    return _pose(torch.stack([x, y, z], dim=-1), position)


def focus_point(c2w: Tensor, default_depth: float | None = None) -> Tensor:
    """The point the cameras look at: least-squares closest point to all optical axes.

    c2w: (V, 4, 4). When the axes are (nearly) parallel the along-axis position is undetermined, so
    the solution is regularised towards ``mean position + default_depth × mean forward``
    (``default_depth`` defaults to twice the spread of the camera centres, or 1 for a single
    camera); a solution behind the mean camera is replaced by that prior. Returns (3,).
    """
    c = _check_poses(c2w, 1)
    o, d = c[:, :3, 3], F.normalize(c[:, :3, 2], dim=-1)
    mean = average_pose(c)
    spread = float((o - o.mean(0)).norm(dim=-1).mean())
    if default_depth is None:
        default_depth = 2 * spread if spread > 1e-9 else 1.0
    prior = mean[:3, 3] + default_depth * mean[:3, 2]
    P = torch.eye(3, dtype=c.dtype) - d[:, :, None] * d[:, None, :]  # projectors orthogonal to each axis
    A = P.sum(0)
    b = (P @ o[:, :, None]).sum(0)[:, 0]
    eps = 1e-3 * len(c)
    p = torch.linalg.solve(A + eps * torch.eye(3, dtype=c.dtype), b + eps * prior)
    if float((p - mean[:3, 3]) @ mean[:3, 2]) <= 1e-3 * default_depth:
        p = prior
    return p.to(c2w)


def _segment_lengths(c: Tensor, loop: bool) -> Tensor:
    """Length of each consecutive segment: translation + (focus distance × rotation angle)."""
    keys = torch.cat([c, c[:1]]) if loop else c
    dt = (keys[1:, :3, 3] - keys[:-1, :3, 3]).norm(dim=-1)
    q = rotmat_to_quat(keys[:, :3, :3])
    angle = 2 * torch.acos((q[1:] * q[:-1]).sum(-1).abs().clamp(max=1.0))
    # Turning by θ sweeps the look-at point by ≈ r·θ, which makes rotation comparable to travel.
    r = (focus_point(c) - c[:, :3, 3]).norm(dim=-1).mean()
    return dt + r * angle


def interpolate_poses(c2w: Tensor, num_frames: int, *, loop: bool = False, spacing: str = "arc") -> Tensor:
    """Poses through the input cameras in the given order: lerp of positions, slerp of rotations.

    c2w: (V, 4, 4). ``spacing="arc"`` spaces frames evenly along the path (segment length =
    distance travelled + focus distance × angle turned), ``"segment"`` gives every segment the same
    number of frames. Without ``loop`` the first and last frames are the first and last input poses;
    with ``loop`` the path returns to the first pose and the frames are spaced so the video loops
    (the first pose is not repeated at the end). Returns (num_frames, 4, 4).
    """
    if spacing not in ("arc", "segment"):
        raise ILRMInputError(f"spacing must be 'arc' or 'segment', got {spacing!r}")
    c = _check_poses(c2w, num_frames)
    v = len(c)
    if v == 1:
        return c.expand(num_frames, 4, 4).to(c2w)
    n_seg = v if loop else v - 1
    lengths = _segment_lengths(c, loop) if spacing == "arc" else torch.ones(n_seg, dtype=c.dtype)
    if float(lengths.sum()) <= 1e-12:  # identical poses
        lengths = torch.ones(n_seg, dtype=c.dtype)
    cum = torch.cat([torch.zeros(1, dtype=c.dtype), lengths.cumsum(0)])
    cum = cum / cum[-1]
    if loop:
        s = torch.arange(num_frames, dtype=c.dtype) / num_frames
    else:
        s = torch.linspace(0, 1, num_frames, dtype=c.dtype) if num_frames > 1 else torch.zeros(1, dtype=c.dtype)
    seg = (torch.searchsorted(cum, s, right=True) - 1).clamp(0, n_seg - 1)
    # Zero-length segments (repeated poses) would divide by zero; they get no frames anyway.
    u = ((s - cum[seg]) / (cum[seg + 1] - cum[seg]).clamp_min(1e-12)).clamp(0, 1)
    keys = torch.cat([c, c[:1]]) if loop else c
    a, b = keys[seg], keys[seg + 1]
    t = a[:, :3, 3] + u[:, None] * (b[:, :3, 3] - a[:, :3, 3])
    q = slerp(rotmat_to_quat(a[:, :3, :3]), rotmat_to_quat(b[:, :3, :3]), u)
    out = _pose(quat_to_rotmat(q), t)
    if not loop:  # the endpoints are the input poses exactly, not a float64 round trip of them
        out[0], out[-1] = c[0], c[-1]
    return out.to(c2w)


def orbit_path(
    c2w: Tensor,
    num_frames: int,
    radius_fraction: float = 0.1,
    *,
    turns: float = 1.0,
    focus: Tensor | None = None,
) -> Tensor:
    """A gentle circular orbit around the mean input camera, always looking at the focus point.

    The camera centre moves on a circle of radius ``radius_fraction × |focus − mean position|`` in the
    mean camera's image plane (right/down), starting to its right, for ``turns`` turns (an integer
    number loops seamlessly). c2w: (V, 4, 4); focus: optional (3,) point to look at (default
    ``focus_point(c2w)``). Returns (num_frames, 4, 4).
    """
    c = _check_poses(c2w, num_frames)
    mean = average_pose(c)
    target = focus_point(c) if focus is None else focus.detach().to(c)
    radius = radius_fraction * float((target - mean[:3, 3]).norm())
    phi = 2 * math.pi * turns * torch.arange(num_frames, dtype=c.dtype) / num_frames
    offset = radius * (torch.cos(phi)[:, None] * mean[:3, 0] + torch.sin(phi)[:, None] * mean[:3, 1])
    pos = mean[:3, 3] + offset
    return look_at(pos, target.expand_as(pos), mean[:3, 1].expand_as(pos)).to(c2w)


def fly_through(
    c2w: Tensor,
    num_frames: int,
    wobble: float = 0.05,
    *,
    turns: float = 2.0,
    loop: bool = False,
    spacing: str = "arc",
) -> Tensor:
    """Interpolation through the input cameras plus a small circular wobble that reveals parallax.

    Each interpolated camera is displaced in its own image plane by up to ``wobble × focus distance``
    (``turns`` circles over the whole path) and re-aimed at the point it was looking at, so the scene
    stays framed. Without ``loop`` the wobble fades in and out, so the first and last frames are the
    first and last input poses. c2w: (V, 4, 4). Returns (num_frames, 4, 4).
    """
    c = _check_poses(c2w, num_frames)
    base = interpolate_poses(c, num_frames, loop=loop, spacing=spacing)
    if wobble == 0 or num_frames == 1:
        return base.to(c2w)
    dist = float((focus_point(c) - c[:, :3, 3]).norm(dim=-1).mean())
    if loop:
        s = torch.arange(num_frames, dtype=c.dtype) / num_frames
        envelope = torch.ones_like(s)
    else:
        s = torch.linspace(0, 1, num_frames, dtype=c.dtype)
        envelope = torch.sin(math.pi * s)
    phi = 2 * math.pi * turns * s
    right, down, forward, pos = base[:, :3, 0], base[:, :3, 1], base[:, :3, 2], base[:, :3, 3]
    amp = (wobble * dist * envelope)[:, None]
    new_pos = pos + amp * (torch.cos(phi)[:, None] * right + torch.sin(phi)[:, None] * down)
    out = look_at(new_pos, pos + dist * forward, down)
    if not loop:
        out[0], out[-1] = base[0], base[-1]
    return out.to(c2w)


def order_poses(c2w: Tensor) -> Tensor:
    """An order of the cameras for a smooth path (for unordered uploads): greedy nearest neighbour.

    Starts from the camera farthest from the mean position and repeatedly visits the closest
    unvisited camera centre. c2w: (V, 4, 4). Returns a (V,) long permutation.
    """
    c = _check_poses(c2w, 1)
    pos = c[:, :3, 3]
    dist = torch.cdist(pos, pos)
    current = int((pos - pos.mean(0)).norm(dim=-1).argmax())
    order = [current]
    visited = torch.zeros(len(c), dtype=torch.bool)
    visited[current] = True
    for _ in range(len(c) - 1):
        d = dist[current].masked_fill(visited, float("inf"))
        current = int(d.argmin())
        order.append(current)
        visited[current] = True
    return torch.tensor(order, dtype=torch.long)
