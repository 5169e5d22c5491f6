import math

import pytest
import torch

from ilrm.cameras import (
    average_pose,
    check_image_size,
    normalize_poses,
    pixel_rays,
    ray_features,
    resize_and_center_crop,
    resize_crop_intrinsics,
    resize_crop_params,
)
from ilrm.errors import ILRMInputError


def rot_y(a):
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def pose(R, t):
    T = torch.eye(4)
    T[:3, :3], T[:3, 3] = R, torch.tensor(t)
    return T


def test_rays_through_pixel_centres():
    K = torch.tensor([[100.0, 0, 32], [0, 120, 16], [0, 0, 1]])
    c2w = pose(rot_y(0.3), [1.0, 2.0, 3.0])
    o, d = pixel_rays(K, c2w, 32, 64)
    assert o.shape == d.shape == (32, 64, 3)
    assert torch.allclose(d.norm(dim=-1), torch.ones(32, 64), atol=1e-6)
    assert torch.allclose(o[5, 7], torch.tensor([1.0, 2.0, 3.0]))
    # back into the camera: pixel (x=7, y=5) has centre (7.5, 5.5)
    dc = rot_y(0.3).T @ d[5, 7]
    assert torch.allclose(dc[0] / dc[2] * 100 + 32, torch.tensor(7.5), atol=1e-4)
    assert torch.allclose(dc[1] / dc[2] * 120 + 16, torch.tensor(5.5), atol=1e-4)
    f = ray_features(o, d, ("o", "d", "m"))
    assert torch.allclose(f[..., 6:], torch.linalg.cross(o, d, dim=-1))
    img = torch.rand(3, 32, 64)
    f = ray_features(o, d, ("rgb",), img)
    assert torch.allclose(f[3, 4], img[:, 3, 4] * 2 - 1)


def test_average_pose_and_normalisation():
    c2ws = torch.stack([pose(rot_y(0.2), [1.0, 0.5, 2.0]), pose(rot_y(-0.2), [3.0, 0.5, 2.0])])
    avg = average_pose(c2ws)
    assert torch.allclose(avg[:3, 3], torch.tensor([2.0, 0.5, 2.0]))
    assert torch.allclose(avg[:3, :3], torch.eye(3), atol=1e-6)  # mean forward of ±0.2 yaw is +z
    target = pose(rot_y(0.1), [2.0, 0.5, 3.0])[None]
    ctx, tgt, T = normalize_poses(c2ws, target)
    assert torch.allclose(ctx[:, :3, 3].abs().amax(), torch.tensor(1.0))
    assert torch.allclose(ctx[0, :3, 3], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(tgt[0, :3, 3], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    # the returned transform maps old → new poses (rotation part orthonormal, translation scaled)
    assert torch.allclose((T @ c2ws)[..., :3, 3], ctx[..., :3, 3], atol=1e-6)
    # RE10K quirk: scale from the raw translations (max |coord| = 3) instead of the re-centred (1)
    ctx_q, tgt_q, _ = normalize_poses(c2ws, target, scale_before_recentre=True)
    assert torch.allclose(ctx_q[0, :3, 3], torch.tensor([-1 / 3, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(tgt_q[0, :3, 3], torch.tensor([0.0, 0.0, 1 / 3]), atol=1e-6)


def test_normalisation_batched():
    c2ws = torch.stack([pose(rot_y(a), [a, 0, 0]) for a in (0.1, 0.5, -0.3)])
    b = torch.stack([c2ws, c2ws.flip(0)])
    ctx, _, _ = normalize_poses(b)
    single, _, _ = normalize_poses(c2ws)
    assert torch.allclose(ctx[0], single, atol=1e-6)


def random_rig(n: int, seed: int) -> torch.Tensor:
    """(n, 4, 4) cameras with general rotations (roll, pitch and yaw) and spread-out centres."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen, dtype=torch.float64), dim=-1)
    w, x, y, z = q.unbind(-1)
    R = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(n, 3, 3)
    T = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    T[:, :3, :3], T[:, :3, 3] = R, torch.randn(n, 3, generator=gen, dtype=torch.float64) * 3 + 5
    return T


@pytest.mark.parametrize("quirk", [False, True])
def test_normalisation_of_a_general_rig(quirk):
    """Any rig: the mean camera becomes the identity, the relative poses keep their rotations and
    scale their baselines by one factor, targets move with the context, and every element of a
    batch is normalised on its own."""
    rigs = torch.stack([random_rig(4, seed) for seed in range(3)])  # (3, 4, 4, 4)
    targets = torch.stack([random_rig(2, 10 + seed) for seed in range(3)])
    ctx, tgt, T = normalize_poses(rigs, targets, scale_before_recentre=quirk)
    for b in range(3):
        single_ctx, single_tgt, single_T = normalize_poses(rigs[b], targets[b], scale_before_recentre=quirk)
        torch.testing.assert_close(ctx[b], single_ctx)
        torch.testing.assert_close(tgt[b], single_tgt)
        torch.testing.assert_close(T[b], single_T)
        # the mean camera is the identity (mean position 0, mean forward +z, mean down +y)
        torch.testing.assert_close(average_pose(ctx[b]), torch.eye(4, dtype=torch.float64), atol=1e-9, rtol=0)
        # one scale: from the re-centred translations (largest coordinate 1), or the raw ones (quirk)
        recentred = torch.linalg.inv(average_pose(rigs[b])) @ rigs[b]
        s = 1 / (rigs[b] if quirk else recentred)[:, :3, 3].abs().max()
        if not quirk:
            assert float(ctx[b, :, :3, 3].abs().max()) == pytest.approx(1.0)
        for i in range(4):
            for j in range(4):
                rel_old = torch.linalg.inv(rigs[b, i]) @ rigs[b, j]
                rel_new = torch.linalg.inv(ctx[b, i]) @ ctx[b, j]
                torch.testing.assert_close(rel_new[:3, :3], rel_old[:3, :3], atol=1e-9, rtol=0)
                torch.testing.assert_close(rel_new[:3, 3], s * rel_old[:3, 3], atol=1e-9, rtol=0)
        # the transform maps old cameras (context and target) onto new ones: positions exactly,
        # rotations up to the scale it carries
        for old, new in ((rigs[b], ctx[b]), (targets[b], tgt[b])):
            moved = T[b] @ old
            torch.testing.assert_close(moved[:, :3, 3], new[:, :3, 3], atol=1e-9, rtol=0)
            torch.testing.assert_close(moved[:, :3, :3] / s, new[:, :3, :3], atol=1e-9, rtol=0)


def test_resize_crop_re10k_sizes():
    (rh, rw), (top, left) = resize_crop_params((360, 640), (256, 256))
    assert (rh, rw) == (256, 455) and (top, left) == (0, 99)
    (rh, rw), (top, left) = resize_crop_params((540, 960), (544, 960))
    assert rh == 544 and rw == 967 and top == 0 and left == 3
    K = torch.tensor([[0.9 * 640, 0, 320], [0, 0.9 * 640 * 360 / 360, 180], [0, 0, 1]])
    K2 = resize_crop_intrinsics(K, (360, 640), (256, 256))
    assert torch.allclose(K2[0, 0], torch.tensor(0.9 * 640 * 455 / 640))
    assert torch.allclose(K2[1, 1], torch.tensor(0.9 * 640 * 256 / 360))
    assert torch.allclose(K2[0, 2], torch.tensor(320 * 455 / 640 - 99))


def test_resize_and_crop_keeps_rays():
    """A ray through a scene point hits the same point before and after resize+crop."""
    img = torch.rand(1, 3, 60, 80)
    K = torch.tensor([[70.0, 0, 41], [0, 72, 29], [0, 0, 1]])
    out, K2 = resize_and_center_crop(img, K, (32, 32))
    assert out.shape == (1, 3, 32, 32)
    X = torch.tensor([0.1, -0.05, 1.0])
    u1 = (K @ X)[:2] / X[2]
    u2 = (K2 @ X)[:2] / X[2]
    (rh, rw), (top, left) = resize_crop_params((60, 80), (32, 32))
    assert torch.allclose(u2, u1 * torch.tensor([rw / 80, rh / 60]) - torch.tensor([left, top]), atol=1e-4)


def test_size_check_message():
    check_image_size(256, 256, 16)
    with pytest.raises(ILRMInputError, match=r"250×256.*multiples of 16.*try 240 or 256 × 256"):
        check_image_size(250, 256, 16)
