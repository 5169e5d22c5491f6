"""The handheld camera walk through a room (:func:`camera_trajectory`): a smooth spline through random
waypoints, a slowly turning look direction and small wobbles, as OpenCV c2w matrices (z-up world)."""

from __future__ import annotations

import math

import numpy as np


def _catmull_rom(points: np.ndarray, samples: int = 64) -> np.ndarray:
    """Uniform Catmull-Rom spline through (K, 2) points (ends duplicated), (≈K·samples, 2)."""
    p = np.concatenate([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
        )
    out.append(points[-1:])
    return np.concatenate(out)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a 1-D signal (sigma in samples, edges held constant)."""
    if sigma < 0.5 or len(x) < 2:
        return x
    r = int(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return np.convolve(np.pad(x, r, mode="edge"), k / k.sum(), mode="valid")


def _wobble(
    rng: np.random.RandomState, s: np.ndarray, amplitude: float, wavelength: tuple[float, float], n: int = 2
) -> np.ndarray:
    """Smooth random wiggle along arc length s: a sum of n sinusoids of the given amplitude each."""
    out = np.zeros_like(s)
    for _ in range(n):
        out += amplitude * np.sin(2 * np.pi * s / rng.uniform(*wavelength) + rng.uniform(0, 2 * np.pi))
    return out


def _camera_path(
    rng: np.random.RandomState, lo: np.ndarray, hi: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Walk through the floor rectangle [lo, hi] (2,): positions (F, 2) and arc length (F,)."""
    target = rng.uniform(5.0, 12.0)
    pts = [rng.uniform(lo, hi)]
    length = 0.0
    while (length < target or len(pts) < 3) and len(pts) < 12:
        for _ in range(20):
            q = rng.uniform(lo, hi)
            step = q - pts[-1]
            if np.linalg.norm(step) < 1.0:
                continue
            if len(pts) < 2:
                break
            prev = pts[-1] - pts[-2]
            # No U-turns: they make cusps in the spline.
            if step @ prev > -0.5 * np.linalg.norm(step) * np.linalg.norm(prev):
                break
        length += float(np.linalg.norm(q - pts[-1]))
        pts.append(q)
    dense = _catmull_rom(np.stack(pts))
    dense = np.clip(dense, lo - 0.3, hi + 0.3)  # the spline may overshoot its waypoints a little
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    s = np.arange(int(arc[-1] / spacing) + 1) * spacing
    xy = np.stack([np.interp(s, arc, dense[:, 0]), np.interp(s, arc, dense[:, 1])], -1)
    return xy, s


def _look_at_c2w(pos: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """OpenCV c2w (F, 4, 4) from positions (F, 3) and yaw/pitch/roll (F,) in a z-up world."""
    f = np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)], -1)
    right = np.cross(f, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(f, right)
    c, s = np.cos(roll)[:, None], np.sin(roll)[:, None]
    right, down = c * right + s * down, -s * right + c * down
    out = np.zeros((len(pos), 4, 4))
    out[:, :3, 0], out[:, :3, 1], out[:, :3, 2], out[:, :3, 3] = right, down, f, pos
    out[:, 3, 3] = 1.0
    return out


def camera_trajectory(
    rng: np.random.RandomState, room_min: np.ndarray, room_max: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Handheld walk: c2w (F, 4, 4) and the floor positions (F, 2)."""
    # Keep the walk in the middle of the room, leaving a ring along the walls for furniture.
    margin = np.maximum(0.8, 0.22 * (room_max[:2] - room_min[:2]))
    xy, s = _camera_path(rng, room_min[:2] + margin, room_max[:2] - margin, spacing)
    tangent = np.gradient(xy, axis=0) if len(xy) > 1 else np.array([[1.0, 0.0]])
    heading = tangent / np.linalg.norm(tangent, axis=-1, keepdims=True).clip(1e-9)
    # People filming a room look across it rather than into the nearest wall: among directions
    # within ±80° of the (smoothed) walking direction, find the one that sees farthest to a wall,
    # blend it with the walking direction (per-scene weight), then smooth the blended vectors
    # (robust where the two disagree) into a slowly turning yaw.
    walk = np.arctan2(_smooth(heading[:, 1], 0.6 / spacing), _smooth(heading[:, 0], 0.6 / spacing))
    cand = walk[:, None] + np.radians(np.linspace(-80.0, 80.0, 33))[None, :]
    cx, cy = np.cos(cand), np.sin(cand)
    with np.errstate(divide="ignore"):
        tx = np.where(cx > 0, room_max[0] - xy[:, :1], room_min[0] - xy[:, :1]) / cx
        ty = np.where(cy > 0, room_max[1] - xy[:, 1:], room_min[1] - xy[:, 1:]) / cy
    free = np.minimum(np.abs(tx), np.abs(ty))
    best = cand[np.arange(len(cand)), np.argmax(np.minimum(free, 6.0) - 0.3 * np.abs(cand - walk[:, None]), axis=1)]
    w = rng.uniform(0.3, 0.9)
    blend = (1 - w) * heading + w * np.stack([np.cos(best), np.sin(best)], -1)
    sigma = 0.6 / spacing
    target = np.arctan2(_smooth(blend[:, 1], sigma), _smooth(blend[:, 0], sigma))
    # Turn towards the target direction at a bounded rate (a person turning around takes a few
    # steps), then soften the corners of the rate limit.
    heading = np.empty_like(target)
    heading[0] = target[0]
    max_step = math.radians(45.0) * spacing
    for i in range(1, len(target)):
        delta = (target[i] - heading[i - 1] + math.pi) % (2 * math.pi) - math.pi
        heading[i] = heading[i - 1] + np.clip(delta, -max_step, max_step)
    heading = _smooth(heading, 0.2 / spacing)
    look = rng.uniform(-0.35, 0.35) + rng.uniform(0.0, 0.35) * np.sin(
        2 * np.pi * s / rng.uniform(4, 10) + rng.uniform(0, 6.3)
    )
    yaw = heading + look + _wobble(rng, s, 0.004, (0.2, 0.6), 3)
    pitch = rng.uniform(-0.25, 0.05) + _wobble(rng, s, 0.03, (2.0, 5.0)) + _wobble(rng, s, 0.004, (0.2, 0.6), 3)
    roll = rng.uniform(-0.03, 0.03) + _wobble(rng, s, 0.01, (2.0, 5.0)) + _wobble(rng, s, 0.003, (0.2, 0.6), 3)
    z = rng.uniform(1.35, 1.65) + 0.012 * np.sin(2 * np.pi * s / rng.uniform(0.6, 0.8) + rng.uniform(0, 6.3))
    pos = np.concatenate([xy, z[:, None]], -1)
    return _look_at_c2w(pos, yaw, pitch, roll), xy


# ---- furniture -------------------------------------------------------------------------------
