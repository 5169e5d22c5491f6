"""Procedural scenes: analytic checks of the ray caster, textures, trajectories, sampler and dataset."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from ilrm.cameras import pixel_rays
from ilrm.data.example import Example, collate
from ilrm.data.procedural import (
    NUM_TEST_SCENES,
    TEST_SEED_START,
    TRAIN_SEED_LIMIT,
    ProceduralConfig,
    ProceduralScenes,
    ViewPlan,
    make_example,
    make_scene,
    render_scene,
    sample_view_indices,
    scene_id,
)
from ilrm.data.procedural.geometry import RoomGeometry
from ilrm.data.procedural.raycast import build_mip_atlas, sample_textures
from ilrm.data.procedural.textures import MATERIAL_PHOTOS, PATTERNS, PICTURE_PHOTOS, available_photos, make_texture
from ilrm.errors import ILRMInputError

SMALL = ProceduralConfig(height=32, width=32, num_context=2, num_target=2)


# ---- helpers ---------------------------------------------------------------------------------


def _empty_room(
    lo=(-2.0, -3.0, 0.0), hi=(2.0, 3.0, 3.0), textures: torch.Tensor | None = None, **prims
) -> RoomGeometry:
    """A room with optional primitives given as lists: box=(center, half, yaw), sphere=(center, r),
    cylinder=(center, r, half_height)."""
    f = lambda x: torch.tensor(x, dtype=torch.float32)
    boxes, spheres, cyls = prims.get("boxes", []), prims.get("spheres", []), prims.get("cylinders", [])
    tex = textures if textures is not None else torch.full((1, 3, 8, 8), 0.5)

    def mat(n):
        return dict(tex=torch.zeros(n, dtype=torch.long), tile=torch.ones(n, 2), uvoff=torch.zeros(n, 2))

    mb, ms, mc = mat(len(boxes)), mat(len(spheres)), mat(len(cyls))
    return RoomGeometry(
        room_min=f(lo),
        room_max=f(hi),
        room_tex=torch.zeros(6, dtype=torch.long),
        room_tile=torch.ones(6, 2),
        room_uvoff=torch.zeros(6, 2),
        box_center=f([b[0] for b in boxes]).view(-1, 3),
        box_half=f([b[1] for b in boxes]).view(-1, 3),
        box_yaw=f([b[2] for b in boxes]).view(-1),
        box_tex=mb["tex"],
        box_tile=mb["tile"],
        box_uvoff=mb["uvoff"],
        sphere_center=f([s[0] for s in spheres]).view(-1, 3),
        sphere_radius=f([s[1] for s in spheres]).view(-1),
        sphere_tex=ms["tex"],
        sphere_tile=ms["tile"],
        sphere_uvoff=ms["uvoff"],
        cyl_center=f([c[0] for c in cyls]).view(-1, 3),
        cyl_radius=f([c[1] for c in cyls]).view(-1),
        cyl_half_height=f([c[2] for c in cyls]).view(-1),
        cyl_tex=mc["tex"],
        cyl_tile=mc["tile"],
        cyl_uvoff=mc["uvoff"],
        textures=tex,
        light_pos=f([0.0, 0.0, 2.5]),
        light_power=0.5,
        light_range=3.0,
        fill_dir=f([0.0, 0.0, -1.0]),
        fill_power=0.2,
        ambient=0.3,
    )


def _camera(pos, forward) -> torch.Tensor:
    """OpenCV c2w (1, 4, 4) at pos looking along a horizontal ``forward`` (z up world)."""
    f = torch.tensor(forward, dtype=torch.float32)
    f = f / f.norm()
    right = torch.linalg.cross(f, torch.tensor([0.0, 0.0, 1.0]), dim=-1)
    down = torch.linalg.cross(f, right, dim=-1)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, f, torch.tensor(pos, dtype=torch.float32)
    return c2w[None]


def _K(size: int, hfov_deg: float = 60.0) -> torch.Tensor:
    f = 0.5 * size / math.tan(math.radians(hfov_deg) / 2)
    return torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])


# ---- ray caster ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forward", "distance"), [((1, 0, 0), 2.0), ((-1, 0, 0), 2.0), ((0, 1, 0), 3.0), ((0, -1, 0), 3.0)]
)
def test_empty_room_depth_is_wall_distance(forward, distance):
    geom = _empty_room(hi=(2.0, 3.0, 4.0))
    images, depth = render_scene(geom, _K(16), _camera([0.0, 0.0, 2.0], forward), 16, 16)
    # A 60° view of a wall 2-3 m away spans at most ±1.74 m: it sees only that wall.
    torch.testing.assert_close(depth, torch.full_like(depth, distance), atol=1e-4, rtol=0)
    assert images.shape == (1, 3, 16, 16) and torch.isfinite(images).all()


def test_floor_depth_matches_ray_plane_intersection():
    geom = _empty_room()
    c2w = _camera([0.0, 0.0, 1.5], (1, 0, 0))
    tilt = math.radians(-40)  # look down: rotate about the camera x axis
    R = torch.tensor([[1, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    c2w[0, :3, :3] = c2w[0, :3, :3] @ R
    K = _K(17)
    _, depth = render_scene(geom, K, c2w, 17, 17)
    o, d = pixel_rays(K[None], c2w, 17, 17)
    t_floor = -o[..., 2] / d[..., 2]  # floor z = 0
    t_wall = (2.0 - o[..., 0]) / d[..., 0]  # +x wall
    t = torch.where(d[..., 2] < 0, torch.minimum(t_floor, t_wall), t_wall)
    z = t * (d * c2w[:, None, None, :3, 2]).sum(-1)
    torch.testing.assert_close(depth, z, atol=1e-4, rtol=1e-5)
    assert (depth < 1.99).any(), "the bottom rows should see the floor"


@pytest.mark.parametrize(
    ("prims", "expected"),
    [
        ({"spheres": [([1.5, 0.0, 1.5], 0.5)]}, 1.0),
        ({"boxes": [([1.2, 0.0, 1.5], [0.2, 0.3, 0.3], 0.0)]}, 1.0),
        ({"boxes": [([1.5, 0.0, 1.5], [0.25, 0.25, 0.25], math.pi / 4)]}, 1.5 - 0.25 * math.sqrt(2)),
        ({"cylinders": [([1.5, 0.0, 1.5], 0.5, 0.4)]}, 1.0),
        ({"cylinders": [([1.5, 0.0, 1.0], 0.4, 0.3)]}, None),  # below the camera's axis: the wall behind
    ],
)
def test_primitive_hit_at_expected_depth(prims, expected):
    geom = _empty_room(**prims)
    _, depth = render_scene(geom, _K(33), _camera([0.0, 0.0, 1.5], (1, 0, 0)), 33, 33)
    centre = depth[0, 16, 16].item()  # odd size: the centre pixel's ray is the optical axis
    assert centre == pytest.approx(2.0 if expected is None else expected, abs=1e-4)
    if expected is not None:
        assert (depth > expected + 0.1).any(), "the object should not fill the whole view"


def test_cylinder_cap_seen_from_above():
    geom = _empty_room(cylinders=[([0.0, 0.0, 0.5], 0.3, 0.5)])  # top cap at z = 1
    c2w = _camera([0.0, 0.0, 2.0], (1, 0, 0))
    c2w[0, :3, :3] = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # looking straight down
    _, depth = render_scene(geom, _K(33), c2w, 33, 33)
    assert depth[0, 16, 16].item() == pytest.approx(1.0, abs=1e-4)
    assert depth[0, 0, 0].item() == pytest.approx(2.0, abs=1e-4)  # the floor around it


def test_texture_lookup_wraps_and_mips():
    T = 8
    tex = torch.rand(3, 3, T, T, generator=torch.Generator().manual_seed(0))
    atlases = build_mip_atlas(tex, min_size=2)
    assert [a.shape[-2] for a in atlases] == [T + 2, T // 2 + 2, T // 4 + 2]
    ij = torch.tensor([[0, 0], [3, 5], [7, 7], [2, 0]])  # (row, col) texels
    idx = torch.tensor([0, 1, 2, 1])
    uv = torch.stack([(ij[:, 1] + 0.5) / T, (ij[:, 0] + 0.5) / T], -1)
    want = tex[idx, :, ij[:, 0], ij[:, 1]]
    zero = torch.zeros(4)
    torch.testing.assert_close(sample_textures(atlases, idx, uv, zero), want)
    torch.testing.assert_close(sample_textures(atlases, idx, uv + torch.tensor([3.0, -2.0]), zero), want)  # periodic
    # Between the last and the first texel the lookup wraps around.
    mid = sample_textures(atlases, torch.tensor([0]), torch.tensor([[0.0, 0.5 / T]]), torch.zeros(1))
    torch.testing.assert_close(mid[0], 0.5 * (tex[0, :, 0, 0] + tex[0, :, 0, T - 1]))
    # Coarsest level = 2×2 block means; beyond it the lookup is clamped.
    uv_c = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])  # 2×2 texel centres
    coarse = sample_textures(atlases, idx, uv_c, torch.full((4,), 10.0))
    blocks = torch.nn.functional.avg_pool2d(tex, 4)
    torch.testing.assert_close(coarse, blocks[idx, :, (uv_c[:, 1] > 0.5).long(), (uv_c[:, 0] > 0.5).long()])
    # Half-way between levels 0 and 1: the mean of the two lookups.
    half = sample_textures(atlases, idx, uv, torch.full((4,), 0.5))
    lvl1 = sample_textures(atlases, idx, uv, torch.ones(4))
    torch.testing.assert_close(half, 0.5 * (want + lvl1))


def test_supersampling_antialiases_but_keeps_content():
    scene = make_scene(3, SMALL)
    K = scene.intrinsics(32, 32)
    c2w = scene.c2w[[0, 5]]
    im1, d1 = render_scene(scene, K, c2w, 32, 32)
    im3, d3 = render_scene(scene, K, c2w, 32, 32, supersample=3)
    assert im3.shape == im1.shape and d3.shape == d1.shape
    assert 0 < (im3 - im1).abs().mean() < 0.05


# ---- textures --------------------------------------------------------------------------------


def test_bundled_photos_load_offline():
    assert available_photos() == list(MATERIAL_PHOTOS + PICTURE_PHOTOS)


@pytest.mark.parametrize("kind", [*PATTERNS, "photo:gravel", "picture:astronaut"])
def test_textures_are_valid_and_seamless(kind):
    img = make_texture(kind, np.random.RandomState(0), 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.float32
    assert img.min() >= 0 and img.max() <= 1 and img.std() > 0.005
    np.testing.assert_array_equal(img, make_texture(kind, np.random.RandomState(0), 64))
    if not kind.startswith("picture:"):
        assert _seam_excess(img) < 1.2


def _seam_excess(img: np.ndarray) -> float:
    """How much bigger the jump across the wrap-around seam is than the largest jump between two
    neighbouring interior columns/rows (≤ 1: seamless)."""
    ratios = []
    for axis in (0, 1):
        x = np.moveaxis(img, axis, 0)
        inner = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2)).max()
        ratios.append(np.abs(x[0] - x[-1]).mean() / (inner + 0.01))
    return max(ratios)


def test_seam_check_catches_non_periodic_images():
    assert _seam_excess(make_texture("picture:astronaut", np.random.RandomState(0), 64)) > 1.2
    ramp = np.broadcast_to(np.linspace(0, 1, 64)[:, None, None], (64, 64, 3))
    assert _seam_excess(ramp) > 1.2


# ---- scenes, trajectories and examples --------------------------------------------------------


def test_same_seed_same_example_and_different_seeds_differ():
    a, b, c = make_example(7, SMALL), make_example(7, SMALL), make_example(8, SMALL)
    for va, vb in ((a.context, b.context), (a.target, b.target)):
        assert torch.equal(va.images, vb.images) and torch.equal(va.c2w, vb.c2w)
        assert torch.equal(va.intrinsics, vb.intrinsics)
    assert (a.context.images - c.context.images).abs().mean() > 0.02
    assert a.scene_id == "proc-000007" and c.scene_id == scene_id(8)


@pytest.mark.parametrize(("n_ctx", "n_tgt"), [(2, 3), (8, 2)])
def test_example_shapes_and_normalised_poses(n_ctx, n_tgt):
    cfg = ProceduralConfig(height=24, width=40, num_context=n_ctx, num_target=n_tgt, context_gap=(20, 60))
    ex = make_example(11, cfg)
    assert isinstance(ex, Example)
    for views, v in ((ex.context, n_ctx), (ex.target, n_tgt)):
        views.validate()
        assert views.images.shape == (1, v, 3, 24, 40) and views.images.dtype == torch.float32
        assert views.images.min() >= 0 and views.images.max() <= 1
        R = views.c2w[0, :, :3, :3]
        torch.testing.assert_close(R.transpose(-1, -2) @ R, torch.eye(3).expand(v, 3, 3), atol=1e-5, rtol=0)
    K = ex.context.intrinsics[0, 0]
    assert K[0, 2] == 20 and K[1, 2] == 12 and K[0, 0] == K[1, 1]
    hfov = 2 * math.degrees(math.atan(20 / K[0, 0].item()))
    assert 50 <= hfov <= 70
    pos = ex.context.c2w[0, :, :3, 3]
    torch.testing.assert_close(pos.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    assert pos.abs().max().item() == pytest.approx(1.0, abs=1e-5)
    batch = collate([ex, make_example(12, cfg)])
    assert batch.context.images.shape[0] == 2 and batch.scene_id == ["proc-000011", "proc-000012"]


def test_scenes_are_well_formed():
    """Several scenes: cameras inside the room, clear of objects, upright; images not degenerate."""
    for seed in range(6):
        scene = make_scene(seed, SMALL)
        g = scene.geometry
        pos = scene.c2w[:, :3, 3].float()
        assert scene.num_frames >= 60  # a walk of at least a few metres
        assert ((pos > g.room_min + 0.3) & (pos < g.room_max - 0.3)).all()
        assert ((pos[:, 2] > 1.2) & (pos[:, 2] < 1.8)).all()
        # Camera "down" points down (small roll/pitch) and the path is smooth (no jumps between frames).
        assert (scene.c2w[:, 2, 1] < -0.8).all()
        steps = (pos[1:] - pos[:-1]).norm(dim=-1)
        assert steps.max() < 2 * SMALL.frame_spacing
        turn = (scene.c2w[1:, :3, 2] * scene.c2w[:-1, :3, 2]).sum(-1).clamp(-1, 1).acos()
        assert turn.max() < math.radians(5)
        # Outside every object (with the clearance used for placement, minus the walls' thickness).
        if len(g.sphere_radius):
            assert ((pos[:, None] - g.sphere_center).norm(dim=-1) > g.sphere_radius + 0.3).all()
        if len(g.box_yaw):
            rel = pos[:, None] - g.box_center
            c, s = torch.cos(g.box_yaw), torch.sin(g.box_yaw)
            local = torch.stack(
                [c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1], rel[..., 2]], -1
            )
            outside = (local.abs() - g.box_half).clamp_min(0).norm(dim=-1)
            assert (outside > 0.3).all()
        # Rendered frames: finite, textured, nothing glued to the lens.
        idx = torch.linspace(0, scene.num_frames - 1, 4).long()
        images, depth = render_scene(scene, scene.intrinsics(32, 32), scene.c2w[idx], 32, 32)
        assert torch.isfinite(images).all() and torch.isfinite(depth).all()
        assert (images.flatten(1).std(-1) > 0.02).all()
        assert depth.min() > 0.2 and depth.max() < 14  # inside a room of at most 9 × 9 × 3.2 m
        assert len(scene.texture_kinds) == g.textures.shape[0]


def test_multi_view_consistency():
    """Unproject view 0 with its depth, project into view 1: colours agree where both see the point."""
    cfg = ProceduralConfig(height=48, width=48, num_context=2, num_target=1, context_gap=(8, 12), supersample=1)
    ex, dctx, _ = make_example(5, cfg, with_depth=True)
    K, c2w, img = ex.context.intrinsics[0], ex.context.c2w[0], ex.context.images[0]
    o, d = pixel_rays(K[0], c2w[0], 48, 48)
    z_axis = (d * c2w[0, :3, 2]).sum(-1)
    pts = o + d * (dctx[0, 0] / z_axis)[..., None]  # (H, W, 3) in normalised world units
    w2c = torch.linalg.inv(c2w[1])
    cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
    uvw = cam @ K[1].T
    u, v = uvw[..., 0] / uvw[..., 2], uvw[..., 1] / uvw[..., 2]
    col, row = u.floor().long(), v.floor().long()
    ok = (cam[..., 2] > 0) & (col >= 1) & (col < 47) & (row >= 1) & (row < 47)
    col, row = col.clamp(0, 47), row.clamp(0, 47)
    visible = ok & ((dctx[0, 1][row, col] - cam[..., 2]).abs() < 0.02 * cam[..., 2])  # not occluded
    assert visible.float().mean() > 0.3
    err = (img[1][:, row, col] - img[0]).abs().mean(0)[visible]
    shuffled = (img[1][:, row, col] - img[0].flip(-1)).abs().mean(0)[visible]
    assert err.median() < 0.05 and err.median() < 0.5 * shuffled.median()


# ---- view sampler ----------------------------------------------------------------------------


@pytest.mark.parametrize("n_ctx", [1, 2, 8])
def test_sampler_between(n_ctx):
    rng = np.random.RandomState(0)
    for _ in range(50):
        ctx, tgt = sample_view_indices(200, n_ctx, 4, (20, 60), "between", rng)
        assert len(ctx) == n_ctx == len(set(ctx)) and ctx == sorted(ctx) and len(tgt) == 4
        if n_ctx > 1:
            assert 20 <= ctx[-1] - ctx[0] <= 60
            assert all(ctx[0] <= t <= ctx[-1] for t in tgt)
            assert not set(tgt) & set(ctx)
        assert min(ctx + tgt) >= 0 and max(ctx + tgt) < 200


def test_sampler_placements_and_edge_cases():
    rng = np.random.RandomState(1)
    outside = 0
    for _ in range(50):
        ctx, tgt = sample_view_indices(300, 2, 3, (30, 40), "beyond", rng)
        outside += all(t < ctx[0] or t > ctx[-1] for t in tgt)
        assert all(ctx[0] - 20 <= t <= ctx[-1] + 20 for t in tgt)
    assert outside == 50
    spread = [t for _ in range(50) for t in sample_view_indices(300, 2, 3, (10, 10), "random", rng)[1]]
    assert max(spread) - min(spread) > 200
    ctx, tgt = sample_view_indices(10, 2, 20, (50, 80), "between", rng)  # gap clipped, targets repeat
    assert ctx == [0, 9] and len(tgt) == 20
    with pytest.raises(ILRMInputError):
        sample_view_indices(3, 8, 1, (2, 5), "between", rng)
    with pytest.raises(ILRMInputError):
        sample_view_indices(30, 2, 1, (2, 5), "sideways", rng)
    a = sample_view_indices(300, 8, 4, (30, 90), "between", np.random.RandomState(5))
    assert a == sample_view_indices(300, 8, 4, (30, 90), "between", np.random.RandomState(5))


# ---- dataset and config ----------------------------------------------------------------------


def test_train_and_test_splits_are_disjoint():
    train = ProceduralScenes(SMALL, "train")
    test = ProceduralScenes(SMALL, "test")
    assert len(test) == NUM_TEST_SCENES
    assert train.seed(len(train) - 1) < TRAIN_SEED_LIMIT <= TEST_SEED_START == test.seed(0)
    assert ProceduralScenes(SMALL, "train", start=TRAIN_SEED_LIMIT - 5, num_scenes=5).seed(4) == TRAIN_SEED_LIMIT - 1
    with pytest.raises(ILRMInputError):
        ProceduralScenes(SMALL, "train", start=TRAIN_SEED_LIMIT - 5, num_scenes=6)
    with pytest.raises(ILRMInputError):
        ProceduralScenes(SMALL, "val")
    with pytest.raises(IndexError):
        test.seed(NUM_TEST_SCENES)


def test_dataset_items_and_epochs():
    cfg = ProceduralConfig(height=16, width=16, num_context=2, num_target=1)
    train = ProceduralScenes(cfg, "train", num_scenes=10)
    test = ProceduralScenes(cfg, "test", num_scenes=3)
    ex = test[2]
    assert ex.scene_id == scene_id(TEST_SEED_START + 2) and ex.context.images.shape == (1, 2, 3, 16, 16)
    before = train[0].context.c2w
    train.set_epoch(1)
    after = train[0].context.c2w
    assert not torch.equal(before, after), "another epoch should draw other views"
    test.set_epoch(1)
    assert torch.equal(test[2].context.images, ex.context.images), "the test split is fixed"
    ex_d, dc, dt = train.example(0, with_depth=True)
    assert dc.shape == (1, 2, 16, 16) and dt.shape == (1, 1, 16, 16) and (dc > 0).all()


def test_deferred_plans_render_like_examples():
    cfg = ProceduralConfig(height=16, width=16, num_context=2, num_target=2)
    ds = ProceduralScenes(cfg, "train", num_scenes=4, deferred=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=list)
    plans = next(iter(loader))
    assert isinstance(plans[0], ViewPlan) and plans[0].scene.geometry.textures.dtype == torch.uint8
    batch = ds.render(plans)
    assert batch.context.images.shape == (2, 2, 3, 16, 16) and batch.scene_id == ["proc-000000", "proc-000001"]
    direct = make_example(1, cfg)
    assert torch.equal(batch.target.images[1:], direct.target.images)
    assert torch.equal(batch.context.c2w[1:], direct.context.c2w)


def test_config_validation():
    with pytest.raises(ILRMInputError):
        ProceduralConfig(target_placement="nowhere")
    with pytest.raises(ILRMInputError):
        ProceduralConfig(context_gap=(10, 5))
    with pytest.raises(ILRMInputError):
        ProceduralConfig(texture_size=100)
    assert ProceduralConfig(context_gap=[3, 4]).context_gap == (3, 4)


def test_speed(capsys):
    """Timings (printed, not asserted): 2 context + 2 target views at 64² and 256² on this machine."""
    lines = []
    for size in (64, 256):
        cfg = ProceduralConfig(height=size, width=size, num_context=2, num_target=2)
        make_example(100, cfg)  # warm caches (photos)
        t0 = time.perf_counter()
        make_example(101, cfg)
        lines.append(f"procedural example 2+2 views at {size}²: {time.perf_counter() - t0:.2f} s (CPU)")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
