"""Tests of ilrm.render: the torch reference against hand computations and a brute-force
per-pixel implementation of gsplat 1.5.3's rules, gradients, and (GPU only) parity with gsplat."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from ilrm.errors import ILRMInputError
from ilrm.gaussians import Gaussians, rotmat_to_quat
from ilrm.rendering import RenderOutput, render
from ilrm.rendering.reference import rasterize_reference, sh_basis

SH_C0 = 0.28209479177387814


# ---- helpers -------------------------------------------------------------------------------


def intrinsics(f: float, cx: float, cy: float, B: int = 1, V: int = 1, dtype=torch.float32) -> torch.Tensor:
    K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=dtype)
    return K.expand(B, V, 3, 3).clone()


def identity_cams(B: int = 1, V: int = 1, dtype=torch.float32) -> torch.Tensor:
    return torch.eye(4, dtype=dtype).expand(B, V, 4, 4).clone()


def rot(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def gaussians(means, quats, scales, opacities, rgb=None, sh=None, dtype=torch.float32) -> Gaussians:
    """One scene (B = 1) from lists; colour given as rgb (degree 0) or raw SH (N, K, 3)."""
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=dtype)[None]
    if sh is None:
        sh = (t(rgb) - 0.5) / SH_C0
        sh = sh[:, :, None, :]
    else:
        sh = t(sh)
    return Gaussians(t(means), t(quats), t(scales), t(opacities), sh)


def random_scene(
    N: int,
    B: int = 1,
    sh_degree: int = 0,
    seed: int = 0,
    scale=(0.01, 0.1),
    spread: float = 0.7,
    opacity=(0.01, 0.99),
    dtype=torch.float32,
) -> Gaussians:
    """Gaussians in a frustum-like box in front of the cameras (z in [1.5, 5], |x|, |y| < spread·z)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.rand(B, N, generator=gen) * 3.5 + 1.5
    xy = (torch.rand(B, N, 2, generator=gen) * 2 - 1) * spread * z[..., None]
    means = torch.cat([xy, z[..., None]], -1)
    quats = torch.nn.functional.normalize(torch.randn(B, N, 4, generator=gen), dim=-1)
    lo, hi = math.log(scale[0]), math.log(scale[1])
    scales = torch.exp(torch.rand(B, N, 3, generator=gen) * (hi - lo) + lo)
    opacities = torch.rand(B, N, generator=gen) * (opacity[1] - opacity[0]) + opacity[0]
    sh = torch.randn(B, N, (sh_degree + 1) ** 2, 3, generator=gen) * 0.6
    return Gaussians(means, quats, scales, opacities, sh).to(dtype)


def orbit_cams(B: int, V: int, dtype=torch.float32) -> torch.Tensor:
    """V cameras near the origin looking roughly down +z, slightly rotated and shifted."""
    c2w = torch.zeros(B, V, 4, 4, dtype=torch.float64)
    for b in range(B):
        for v in range(V):
            R = rot("y", 6 * v - 3 + 2 * b) @ rot("x", 4 * v - 2)
            c2w[b, v, :3, :3] = torch.from_numpy(R)
            c2w[b, v, :3, 3] = torch.tensor([0.15 * v - 0.1, -0.05 * v + 0.03 * b, 0.1 * b])
            c2w[b, v, 3, 3] = 1
    return c2w.to(dtype)


def quat_to_R(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def sh_color_np(sh: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Degree 0 or 1 SH colour by hand (gsplat signs: -y, z, -x)."""
    c = SH_C0 * sh[0]
    if sh.shape[0] > 1:
        x, y, z = d / np.linalg.norm(d)
        c = c + 0.4886025119029199 * (-y * sh[1] + z * sh[2] - x * sh[3])
    return np.maximum(c + 0.5, 0.0)


def brute_force(g: Gaussians, K, c2w, H, W, bg, near=0.01, far=1e10, colors=None):
    """gsplat 1.5.3 classic rules, one pixel grid at a time, no tiles, float64 numpy.

    colors: optional (B, V, N, 3) precomputed colours (else degree-0/1 SH evaluated here).
    Returns images (B, V, H, W, 3), alpha (B, V, H, W) and the pixels stopped by the T rule (B, V, H, W).
    """
    B, N = g.means.shape[:2]
    V = K.shape[1]
    out = np.zeros((B, V, H, W, 3))
    out_a = np.zeros((B, V, H, W))
    out_done = np.zeros((B, V, H, W), bool)
    ys, xs = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    for b in range(B):
        for v in range(V):
            w2c = np.linalg.inv(c2w[b, v].double().numpy())
            Rw, tw = w2c[:3, :3], w2c[:3, 3]
            fx, fy, cx, cy = (float(K[b, v, 0, 0]), float(K[b, v, 1, 1]), float(K[b, v, 0, 2]), float(K[b, v, 1, 2]))
            items = []
            for n in range(N):
                mu = g.means[b, n].double().numpy()
                p = Rw @ mu + tw
                op = float(g.opacities[b, n])
                if p[2] < near or p[2] > far or op < 1 / 255:
                    continue
                Rq = quat_to_R(g.quats[b, n].double().numpy())
                S = np.diag(g.scales[b, n].double().numpy())
                cov = Rw @ Rq @ S @ S @ Rq.T @ Rw.T
                x, y, z = p
                tanx, tany = 0.5 * W / fx, 0.5 * H / fy
                u = z * np.clip(x / z, -(cx / fx + 0.3 * tanx), (W - cx) / fx + 0.3 * tanx)
                w_ = z * np.clip(y / z, -(cy / fy + 0.3 * tany), (H - cy) / fy + 0.3 * tany)
                J = np.array([[fx / z, 0, -fx * u / z**2], [0, fy / z, -fy * w_ / z**2]])
                c2 = J @ cov @ J.T + 0.3 * np.eye(2)
                if np.linalg.det(c2) <= 0:
                    continue
                m = np.array([fx * x / z + cx, fy * y / z + cy])
                ext = min(3.33, math.sqrt(2 * math.log(op * 255)))
                rx, ry = math.ceil(ext * math.sqrt(c2[0, 0])), math.ceil(ext * math.sqrt(c2[1, 1]))
                if rx <= 0 or ry <= 0 or m[0] + rx <= 0 or m[0] - rx >= W or m[1] + ry <= 0 or m[1] - ry >= H:
                    continue
                if colors is not None:
                    col = colors[b, v, n]
                else:
                    cam = np.linalg.inv(w2c)[:3, 3]
                    col = sh_color_np(g.sh[b, n].double().numpy(), mu - cam)
                items.append((z, n, m, np.linalg.inv(c2), op, col))
            items.sort(key=lambda it: (it[0], it[1]))  # depth, ties by index
            T = np.ones((H, W))
            C = np.zeros((H, W, 3))
            done = np.zeros((H, W), bool)
            for _, _, m, conic, op, col in items:
                dx, dy = m[0] - xs, m[1] - ys
                sig = 0.5 * (conic[0, 0] * dx * dx + conic[1, 1] * dy * dy) + conic[0, 1] * dx * dy
                a = np.minimum(0.999, op * np.exp(-sig))
                use = ~done & (sig >= 0) & (a >= 1 / 255)
                nT = T * (1 - a)
                stop = use & (nT <= 1e-4)
                done |= stop
                use &= ~stop
                C += np.where(use[..., None], (a * T)[..., None] * col, 0)
                T = np.where(use, nT, T)
            out[b, v] = C + T[..., None] * np.asarray(bg)[b, v]
            out_a[b, v] = 1 - T
            out_done[b, v] = done
    return out, out_a, out_done


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return float("inf") if mse == 0 else -10 * math.log10(mse)


# ---- hand-computed cases -------------------------------------------------------------------


@pytest.mark.parametrize("moved_camera", [False, True])
def test_single_gaussian_matches_hand_computation(moved_camera: bool) -> None:
    H, W, f, cx, cy = 64, 60, 100.0, 31.3, 33.1
    p_cam = np.array([0.12, -0.07, 2.0])
    R_g = rot("z", 30) @ rot("x", 20)  # Gaussian axes in the camera frame
    scales = np.array([0.05, 0.02, 0.03])
    op, rgb, bg = 0.8, np.array([0.9, 0.2, 0.4]), np.array([0.1, 0.3, 1.0])
    c2w = np.eye(4)
    if moved_camera:
        c2w[:3, :3] = rot("y", 25) @ rot("x", -10)
        c2w[:3, 3] = [0.4, -0.2, 1.5]
    p_world = c2w[:3, :3] @ p_cam + c2w[:3, 3]
    q_world = rotmat_to_quat(torch.from_numpy(c2w[:3, :3] @ R_g)).numpy()
    g = gaussians([p_world], [q_world], [scales], [op], rgb=[rgb])
    img = render(g, intrinsics(f, cx, cy), torch.from_numpy(c2w).float()[None, None], H, W, background=tuple(bg))
    assert img.shape == (1, 1, 3, H, W)

    # by hand: EWA projection in the camera frame, 0.3 px dilation, alpha with the 1/255 cut
    x, y, z = p_cam
    mean2d = np.array([f * x / z + cx, f * y / z + cy])
    J = np.array([[f / z, 0, -f * x / z**2], [0, f / z, -f * y / z**2]])
    cov2d = J @ R_g @ np.diag(scales**2) @ R_g.T @ J.T + 0.3 * np.eye(2)
    conic = np.linalg.inv(cov2d)
    ys, xs = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    d = np.stack([xs - mean2d[0], ys - mean2d[1]], -1)
    sigma = 0.5 * np.einsum("hwi,ij,hwj->hw", d, conic, d)
    alpha = np.minimum(0.999, op * np.exp(-sigma))
    alpha = np.where(alpha < 1 / 255, 0.0, alpha)
    expected = alpha[..., None] * rgb + (1 - alpha[..., None]) * bg
    got = img[0, 0].permute(1, 2, 0).double().numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)
    # the peak is in the pixel that contains the projected mean, with the expected colour there
    peak = np.unravel_index(np.argmax(alpha), alpha.shape)
    assert peak == (int(mean2d[1]), int(mean2d[0]))
    assert (alpha > 0).sum() > 20 and (alpha == 0).sum() > 1000  # a real falloff, cut at 1/255


def test_occlusion_nearer_gaussian_wins() -> None:
    H = W = 32
    K = intrinsics(40.0, 16.5, 16.5)  # principal point on the centre of pixel (16, 16)
    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    iso = [1.0, 0.0, 0.0, 0.0]
    for order in (0, 1):
        items = [([0, 0, 2.0], red), ([0, 0, 3.0], blue)]
        if order:
            items = items[::-1]  # index order must not matter, only depth
        g = gaussians([m for m, _ in items], [iso, iso], [[0.2] * 3] * 2, [0.9, 0.9], rgb=[c for _, c in items])
        px = render(g, K, identity_cams(), H, W, background=(1.0, 1.0, 1.0))[0, 0, :, 16, 16]
        # at the centre both have sigma = 0: alpha 0.9 each, red in front
        expected = 0.9 * np.array(red) + 0.1 * 0.9 * np.array(blue) + 0.01 * np.ones(3)
        np.testing.assert_allclose(px.numpy(), expected, atol=1e-6)


def test_transmittance_stop_is_exclusive() -> None:
    """gsplat stops a pixel at the Gaussian that would bring T to <= 1e-4, without compositing it."""
    K = intrinsics(40.0, 8.5, 8.5)
    iso = [1.0, 0, 0, 0]
    means = [[0, 0, 2.0], [0, 0, 2.5], [0, 0, 3.0]]
    rgbs = [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    g = gaussians(means, [iso] * 3, [[0.3] * 3] * 3, [1.0, 1.0, 1.0], rgb=rgbs)
    out = render(g, K, identity_cams(), 16, 16, background=0.0, return_alpha=True)
    px = out.images[0, 0, :, 8, 8]
    # first: alpha 0.999, T 1 -> 1e-3; second would give T = 1e-6 <= 1e-4: stop, not composited
    np.testing.assert_allclose(px.numpy(), [0.999, 0.0, 0.0], atol=1e-7)
    assert float(out.alpha[0, 0, 0, 8, 8]) == pytest.approx(0.999, abs=1e-7)


def test_background_where_nothing_is() -> None:
    H, W = 48, 40
    K = intrinsics(50.0, 20.0, 24.0, V=2)
    # one tiny Gaussian at the image centre; the corners see only background
    g = gaussians([[0, 0, 3.0]], [[1, 0, 0, 0]], [[0.01] * 3], [0.9], rgb=[[0.2, 0.7, 0.1]])
    bg = torch.tensor([[[0.25, 0.5, 0.75], [1.0, 0.0, 0.5]]])  # per view
    img = render(g, K, identity_cams(V=2), H, W, background=bg)
    for v in range(2):
        corners = img[0, v, :, :10, :10].reshape(3, -1)
        assert torch.equal(corners, bg[0, v][:, None].expand_as(corners))
        assert not torch.allclose(img[0, v, :, 24, 20], bg[0, v])
    # float / default (white) / None (black) backgrounds, and no Gaussians at all
    empty = Gaussians(
        torch.zeros(1, 0, 3), torch.zeros(1, 0, 4), torch.zeros(1, 0, 3), torch.zeros(1, 0), torch.zeros(1, 0, 1, 3)
    )
    assert torch.equal(render(empty, K, identity_cams(V=2), H, W), torch.ones(1, 2, 3, H, W))
    assert torch.equal(render(empty, K, identity_cams(V=2), H, W, background=0.5), torch.full((1, 2, 3, H, W), 0.5))
    out = render(empty, K, identity_cams(V=2), H, W, background=None, return_alpha=True, return_depth=True)
    assert torch.equal(out.images, torch.zeros(1, 2, 3, H, W))
    assert torch.equal(out.alpha, torch.zeros(1, 2, 1, H, W)) and torch.equal(out.depth, torch.zeros(1, 2, 1, H, W))


@pytest.mark.parametrize(
    ("z", "near", "far", "visible"),
    [
        (0.5, 0.01, 1e10, True),
        (0.5, 0.6, 1e10, False),  # in front of the near plane
        (0.5, 0.1, 0.4, False),  # beyond the far plane
        (-2.0, 0.01, 1e10, False),  # behind the camera
        (400.0, 0.01, 500.0, True),
        (600.0, 0.01, 500.0, False),
    ],
)
def test_near_far_culling(z: float, near: float, far: float, visible: bool) -> None:
    s = 0.02 * abs(z)
    g = gaussians([[0, 0, z]], [[1, 0, 0, 0]], [[s, s, s]], [0.9], rgb=[[0.0, 0.0, 0.0]])
    img = render(g, intrinsics(30.0, 16.0, 16.0), identity_cams(), 32, 32, near=near, far=far)
    changed = bool((img != 1.0).any())
    assert changed == visible


def test_opacity_below_threshold_is_invisible() -> None:
    K = intrinsics(30.0, 8.5, 8.5)
    make = lambda op: gaussians([[0, 0, 2.0]], [[1, 0, 0, 0]], [[0.2] * 3], [op], rgb=[[0.0, 0.0, 0.0]])
    assert torch.equal(render(make(0.0035), K, identity_cams(), 16, 16), torch.ones(1, 1, 3, 16, 16))
    px = render(make(0.0045), K, identity_cams(), 16, 16)[0, 0, 0, 8, 8]
    assert float(px) == pytest.approx(1 - 0.0045, abs=1e-6)


def test_depth_and_alpha_outputs() -> None:
    K = intrinsics(40.0, 8.5, 8.5)
    iso = [1.0, 0, 0, 0]
    g = gaussians(
        [[0, 0, 2.0], [0, 0, 4.0]], [iso, iso], [[0.3] * 3, [0.6] * 3], [0.5, 0.6], rgb=[[1, 0, 0], [0, 1, 0]]
    )
    out = render(g, K, identity_cams(), 16, 16, return_depth=True, return_alpha=True)
    assert isinstance(out, RenderOutput) and out.depth.shape == out.alpha.shape == (1, 1, 1, 16, 16)
    w1, w2 = 0.5, 0.5 * 0.6
    assert float(out.alpha[0, 0, 0, 8, 8]) == pytest.approx(w1 + w2, abs=1e-6)
    assert float(out.depth[0, 0, 0, 8, 8]) == pytest.approx((2 * w1 + 4 * w2) / (w1 + w2), abs=1e-5)
    # only what was asked for
    only_depth = render(g, K, identity_cams(), 16, 16, return_depth=True)
    assert only_depth.alpha is None and torch.equal(only_depth.depth, out.depth)
    assert isinstance(render(g, K, identity_cams(), 16, 16), torch.Tensor)
    assert render(g, K, identity_cams(), 16, 16, return_alpha=True).alpha is not None


def test_sh_degree1_view_dependent_colour_by_hand() -> None:
    K = intrinsics(40.0, 8.5, 16.5)
    cam = np.eye(4)
    cam[:3, 3] = [0.3, -0.2, 0.1]
    offset = np.array([0.6, -0.4, 2.0])  # lands on the centre of pixel (x=20, y=8)
    mean = cam[:3, 3] + offset
    sh = np.array([[-1.5, -0.4, 0.1], [0.3, 0.0, -2.0], [-0.6, 0.2, 0.0], [0.4, 0.5, -0.3]])
    g = gaussians([mean], [[1, 0, 0, 0]], [[0.2] * 3], [1.0], sh=[sh])
    px = render(g, K, torch.from_numpy(cam).float()[None, None], 32, 32, background=0.0)[0, 0, :, 8, 20]
    expected = 0.999 * sh_color_np(sh, offset)
    assert expected.min() == 0.0 and expected.max() > 0.1  # the clamp at 0 is exercised
    np.testing.assert_allclose(px.numpy(), expected, atol=1e-6)


def test_sh_basis_is_orthonormal_up_to_degree_4() -> None:
    n = 40000
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    r = torch.sqrt(1 - z * z)
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)
    Y = sh_basis(4, dirs)
    gram = 4 * math.pi / n * Y.T @ Y
    torch.testing.assert_close(gram, torch.eye(25, dtype=torch.float64), atol=2e-3, rtol=0)
    # gsplat's signs for degree 1: (-y, z, -x)
    y1 = sh_basis(1, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))[0]
    assert y1[3] < 0 and y1[1] == 0 and y1[2] == 0


# ---- against a brute-force per-pixel implementation ------------------------------------------


@pytest.mark.parametrize(
    ("N", "sh_degree", "scale", "opacity", "spread"),
    [
        (60, 1, (0.01, 0.15), (0.01, 0.99), 1.0),  # sparse, some beyond the J clamp and off-screen
        (120, 0, (0.1, 0.4), (0.9, 1.0), 0.5),  # dense and opaque: many pixels stop early
    ],
)
def test_matches_brute_force(N: int, sh_degree: int, scale, opacity, spread: float) -> None:
    B, V, H, W = 2, 2, 40, 52
    g = random_scene(N, B, sh_degree, seed=3, scale=scale, opacity=opacity, spread=spread, dtype=torch.float64)
    K = intrinsics(40.0, 26.0, 20.0, B, V, dtype=torch.float64)
    c2w = orbit_cams(B, V, dtype=torch.float64)
    bg = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64).expand(B, V, 3)
    expected, expected_alpha, stopped = brute_force(g, K, c2w, H, W, bg.numpy())
    for chunk_elements in (1, 1 << 22):  # 16-Gaussian chunks vs. whole tiles at once
        colors, _, alpha = rasterize_reference(
            g.means, g.quats, g.scales, g.opacities, g.sh, torch.linalg.inv(c2w), K, W, H,
            background=bg, chunk_elements=chunk_elements,
        )  # fmt: skip
        np.testing.assert_allclose(colors.numpy(), expected, atol=1e-9)
        np.testing.assert_allclose(alpha[..., 0].numpy(), expected_alpha, atol=1e-9)
    assert (stopped.mean() > 0.1) == (opacity[0] > 0.5)  # the opaque case does hit the stop


# ---- gradients -----------------------------------------------------------------------------


def _leaf(g: Gaussians) -> Gaussians:
    return Gaussians(*(t.detach().clone().requires_grad_() for t in (g.means, g.quats, g.scales, g.opacities, g.sh)))


def test_gradients_reach_every_parameter() -> None:
    g = _leaf(random_scene(60, 1, sh_degree=1, seed=1, scale=(0.05, 0.2)))
    K, c2w = intrinsics(30.0, 16.0, 16.0, V=2), orbit_cams(1, 2)
    img = render(g, K, c2w, 32, 32)
    weight = torch.rand(img.shape, generator=torch.Generator().manual_seed(0))
    (img * weight).sum().backward()
    for name in ("means", "quats", "scales", "opacities", "sh"):
        grad = getattr(g, name).grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert (grad.abs() > 0).any(), name


def test_checkpointed_chunks_give_plain_autograd_gradients() -> None:
    g = _leaf(random_scene(80, 1, sh_degree=0, seed=2, scale=(0.1, 0.3), opacity=(0.3, 0.95), dtype=torch.float64))
    K = intrinsics(30.0, 16.0, 16.0, V=2, dtype=torch.float64)
    vm = torch.linalg.inv(orbit_cams(1, 2, dtype=torch.float64))
    weight = torch.rand(1, 2, 32, 32, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grads = []
    for ckpt in (False, True):
        for t in (g.means, g.quats, g.scales, g.opacities, g.sh):
            t.grad = None
        colors, depth, alpha = rasterize_reference(
            g.means, g.quats, g.scales, g.opacities, g.sh, vm, K, 32, 32,
            background=torch.ones(1, 2, 3, dtype=torch.float64), with_depth=True, chunk_elements=1, use_checkpoint=ckpt,
        )  # fmt: skip
        ((colors * weight).sum() + depth.sum() + alpha.sum()).backward()
        grads.append([t.grad.clone() for t in (g.means, g.quats, g.scales, g.opacities, g.sh)])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # torch.autograd.grad works too (not only .backward())
    colors, depth, alpha = rasterize_reference(
        g.means, g.quats, g.scales, g.opacities, g.sh, vm, K, 32, 32,
        background=torch.ones(1, 2, 3, dtype=torch.float64), with_depth=True, chunk_elements=1,
    )  # fmt: skip
    (gm,) = torch.autograd.grad((colors * weight).sum() + depth.sum() + alpha.sum(), [g.means])
    torch.testing.assert_close(gm, grads[0][0], rtol=1e-9, atol=1e-12)


def test_gradcheck_small_scene() -> None:
    # large, semi-transparent Gaussians cover the whole image with alpha well inside (1/255, 0.999):
    # no threshold is crossed by the finite differences, so the rendering is smooth there
    base = random_scene(
        3, 1, sh_degree=1, seed=4, scale=(0.5, 0.8), opacity=(0.3, 0.6), spread=0.1, dtype=torch.float64
    )
    K = intrinsics(8.0, 5.0, 4.0, dtype=torch.float64)
    c2w = orbit_cams(1, 1, dtype=torch.float64)

    def f(means, quats, scales, opacities, sh):
        return render(Gaussians(means, quats, scales, opacities, sh), K, c2w, 8, 10, background=(0.2, 0.4, 0.6))

    inputs = tuple(
        t.detach().clone().requires_grad_() for t in (base.means, base.quats, base.scales, base.opacities, base.sh)
    )
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


# ---- API, errors, size ---------------------------------------------------------------------


def test_backend_and_input_errors() -> None:
    g = random_scene(4)
    K, c2w = intrinsics(30.0, 8.0, 8.0), identity_cams()
    with pytest.raises(ILRMInputError, match="CUDA"):
        render(g, K, c2w, 16, 16, backend="gsplat")
    with pytest.raises(ILRMInputError, match="backend"):
        render(g, K, c2w, 16, 16, backend="opengl")
    with pytest.raises(ILRMInputError, match="K must"):
        render(g, K[0, 0], c2w, 16, 16)
    with pytest.raises(ILRMInputError, match="near"):
        render(g, K, c2w, 16, 16, near=0.0)
    with pytest.raises(ILRMInputError, match="sh_degree"):
        render(g, K, c2w, 16, 16, sh_degree=2)
    with pytest.raises(ILRMInputError, match="background"):
        render(g, K, c2w, 16, 16, background=(1.0, 0.0))
    # (V, 3, 3) / (V, 4, 4) cameras are shared by all scenes; the result matches explicit batching
    torch.testing.assert_close(render(g, K[0], c2w[0], 16, 16), render(g, K, c2w, 16, 16))


def test_65k_gaussians_two_views_256() -> None:
    """Size sanity check: 65,536 Gaussians, 2 views at 256² (about 1-2 s on 2 CPU cores; not asserted)."""
    g = random_scene(65536, 1, sh_degree=0, seed=0, scale=(0.005, 0.05), spread=0.6)
    K, c2w = intrinsics(256.0, 128.0, 128.0, V=2), orbit_cams(1, 2)
    start = time.perf_counter()
    with torch.no_grad():
        img = render(g, K, c2w, 256, 256)
    elapsed = time.perf_counter() - start
    assert img.shape == (1, 2, 3, 256, 256) and torch.isfinite(img).all()
    assert (img < 0.99).float().mean() > 0.3  # the scene covers a good part of the images
    assert elapsed < 120


# ---- GPU parity with gsplat ------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("sh_degree", [0, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_gsplat_and_reference_agree(sh_degree: int, seed: int) -> None:
    pytest.importorskip("gsplat")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    B, V, H, W = 2, 3, 256, 256
    g = random_scene(30000, B, sh_degree, seed=seed, scale=(0.005, 0.08), spread=0.9).to("cuda")
    K = intrinsics(220.0, 128.0, 128.0, B, V).cuda()
    c2w = orbit_cams(B, V).cuda()
    ref = render(g, K, c2w, H, W, backend="torch", return_depth=True, return_alpha=True)
    gs = render(g, K, c2w, H, W, backend="gsplat", return_depth=True, return_alpha=True)
    assert psnr(gs.images, ref.images) >= 40
    assert psnr(gs.alpha, ref.alpha) >= 40
    # gradients flow through gsplat too
    g2 = _leaf(g)
    render(g2, K, c2w, H, W, backend="gsplat").mean().backward()
    assert all(getattr(g2, n).grad is not None for n in ("means", "quats", "scales", "opacities", "sh"))
