"""Procedural scene styles: style 1 unchanged (reference values), style 2 varied and well formed."""

from __future__ import annotations

import math
import pickle
import time

import numpy as np
import pytest
import torch

from ilrm.data.procedural import (
    TEST_SEED_START,
    ProceduralConfig,
    geometry,
    make_example,
    make_scene,
    plan_example,
    render_scene,
    shading,
)
from ilrm.data.procedural.textures import ONCE_PATTERNS, make_texture
from ilrm.errors import ILRMInputError

STYLE2 = ProceduralConfig(height=32, width=32, num_context=2, num_target=2, scene_style=2)

# Style 1 at 32×32 (frames 0, F/2, F-1), computed with the code from before scene_style existed
# (commit 5388593). The held-out benchmarks are style 1, so these must never change.
STYLE1_REFERENCE = {
    0: dict(frames=185, prims=17, tex=24486417, geo=32.99675402, c2w=340.123503851,
            rgb=[1417.243854, 1333.351317, 1283.147038], depth=7497.2395),
    5: dict(frames=270, prims=21, tex=26666917, geo=84.547736011, c2w=300.424300762,
            rgb=[1265.071258, 1150.895697, 1186.130529], depth=6786.10099),
    123: dict(frames=233, prims=34, tex=30484669, geo=140.490599078, c2w=378.25558624,
              rgb=[1212.600285, 1155.149035, 1068.267664], depth=7597.82538),
    TEST_SEED_START: dict(frames=337, prims=47, tex=46053796, geo=240.015857518, c2w=521.94348109,
                          rgb=[840.81681, 769.609095, 884.873709], depth=11767.04396),
    TEST_SEED_START + 7: dict(frames=193, prims=33, tex=31028495, geo=159.256254217, c2w=21.063551616,
                              rgb=[808.281401, 718.822973, 717.531177], depth=11118.86936),
}  # fmt: skip


def _geometry_sum(g: geometry.RoomGeometry) -> float:
    parts = [g.room_min, g.room_max, g.box_center, g.box_half, g.box_yaw, g.sphere_center, g.sphere_radius]
    parts += [g.cyl_center, g.cyl_radius, g.cyl_half_height, g.light_pos, g.fill_dir, g.box_tile, g.box_uvoff]
    return sum(float(t.double().sum()) for t in parts) + g.light_power + g.light_range + g.fill_power + g.ambient


@pytest.mark.parametrize("seed", list(STYLE1_REFERENCE))
@pytest.mark.parametrize("explicit", [False, True])
def test_style1_matches_reference_from_before_style2(seed, explicit):
    cfg = ProceduralConfig(height=32, width=32, scene_style=1) if explicit else ProceduralConfig(height=32, width=32)
    ref = STYLE1_REFERENCE[seed]
    scene = make_scene(seed, cfg)
    g = scene.geometry
    assert g.lighting == 1 and scene.num_frames == ref["frames"] and g.num_primitives == ref["prims"]
    assert int(g.textures.long().sum()) == ref["tex"]
    assert _geometry_sum(g) == pytest.approx(ref["geo"], abs=1e-6)
    assert float(scene.c2w.sum()) == pytest.approx(ref["c2w"], abs=1e-8)
    frames = [0, scene.num_frames // 2, scene.num_frames - 1]
    images, depth = render_scene(scene, scene.intrinsics(32, 32), scene.c2w[frames], 32, 32)
    np.testing.assert_allclose(images.double().sum((0, 2, 3)).numpy(), ref["rgb"], rtol=0, atol=2e-3)
    assert float(depth.double().sum()) == pytest.approx(ref["depth"], abs=1e-2)


def test_scene_style_validation():
    assert ProceduralConfig().scene_style == 1
    for bad in (0, 3, "2"):
        with pytest.raises(ILRMInputError):
            ProceduralConfig(scene_style=bad)


# ---- style 2 -----------------------------------------------------------------------------------


def _render(scene, size: int = 32, n: int = 3):
    frames = torch.linspace(0, scene.num_frames - 1, n).long()
    return render_scene(scene, scene.intrinsics(size, size), scene.c2w[frames], size, size)


def test_style2_is_deterministic_and_differs_from_style1():
    a, b = make_scene(11, STYLE2), make_scene(11, STYLE2)
    for name, va in vars(a.geometry).items():
        vb = getattr(b.geometry, name)
        assert torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb, name
    assert torch.equal(a.c2w, b.c2w) and a.texture_kinds == b.texture_kinds
    ia, da = _render(a)
    ib, db = _render(b)
    assert torch.equal(ia, ib) and torch.equal(da, db)
    s1 = make_scene(11, ProceduralConfig(height=32, width=32))
    i1, _ = _render(s1)
    assert a.geometry.lighting == 2 and s1.geometry.lighting == 1
    assert (ia - i1).abs().mean() > 0.02
    assert a.texture_kinds != s1.texture_kinds


def test_style2_scenes_are_well_formed():
    """Cameras inside the room, clear of every object and below the lamps; images valid and neither
    black nor blown out; lights outside every shadow caster."""
    for seed in range(8):
        scene = make_scene(seed, STYLE2)
        g = scene.geometry
        pos = scene.c2w[:, :3, 3].float()
        assert scene.num_frames >= 60
        assert ((pos > g.room_min + 0.3) & (pos < g.room_max - 0.3)).all()
        assert ((pos[:, 2] > 1.2) & (pos[:, 2] < 1.8)).all()
        assert g.lights_pos[0, 2] > 1.95  # the ceiling light (and its shade) hang above the camera
        for p, clearance in [(pos, 0.3), (g.lights_pos[:1], 0.01)]:
            if len(g.sphere_radius):
                assert ((p[:, None] - g.sphere_center).norm(dim=-1) > g.sphere_radius + clearance).all()
            if len(g.cyl_radius):
                rel = p[:, None] - g.cyl_center
                inside = (rel[..., :2].norm(dim=-1) < g.cyl_radius + clearance) & (
                    rel[..., 2].abs() < g.cyl_half_height + clearance
                )
                assert not inside.any()
            if len(g.box_yaw):
                local = geometry.to_box_frame(p[:, None] - g.box_center, g.box_yaw)
                assert ((local.abs() - g.box_half).clamp_min(0).norm(dim=-1) > clearance).all()
        images, depth = _render(scene, 32, 4)
        assert torch.isfinite(images).all() and torch.isfinite(depth).all()
        assert images.min() >= 0 and images.max() <= 1
        assert (images.flatten(1).std(-1) > 0.02).all()
        assert 0.08 < images.mean() < 0.85
        assert depth.min() > 0.2 and depth.max() < 17.5  # halls are up to 12 × 11 × 4.2 m
        assert len(scene.texture_kinds) == g.textures.shape[0] == len(g.tex_gloss) == len(g.tex_emit)
        assert g.textures.dtype == torch.uint8


def test_style2_has_the_variety_it_promises():
    scenes = [make_scene(seed, STYLE2) for seed in range(24)]
    geoms = [s.geometry for s in scenes]
    rgb = torch.cat([g.lights_rgb for g in geoms])
    chroma = rgb.max(-1).values / rgb.min(-1).values
    assert (chroma > 1.15).mean(dtype=torch.float32) > 0.5, "light colours should not all be white"
    assert (rgb[:, 0] > rgb[:, 2]).any() and (rgb[:, 2] > rgb[:, 0]).any(), "warm and cool lights"
    assert {len(g.lights_pos) for g in geoms} == {1, 2, 3}
    assert any(g.shadows for g in geoms) and not all(g.shadows for g in geoms)
    assert any(len(g.windows) for g in geoms) and any(float(g.sun_rgb.sum()) > 0 for g in geoms)
    assert any(float(g.tex_emit.max()) > 0 for g in geoms) and all(float(g.tex_gloss.max()) > 0 for g in geoms)
    lum = torch.tensor([float(g.lights_rgb[0].sum()) for g in geoms])
    assert lum.max() > 2 * lum.min(), "a wide range of light intensities"
    sizes = torch.stack([g.room_max - g.room_min for g in geoms])
    aspect = sizes[:, :2].max(-1).values / sizes[:, :2].min(-1).values
    assert aspect.max() > 2.0 and sizes[:, 2].max() > 3.2 and sizes[:, 2].min() < 2.6
    prims = [g.num_primitives for g in geoms]
    assert min(prims) < 20 and max(prims) > 35  # open and cluttered layouts
    kinds = {k.split(":")[0] for s in scenes for k in s.texture_kinds}
    assert len(kinds & {"parquet", "mosaic", "plaid", "weave", "terrazzo", "concrete", "damask", "lacquer"}) >= 5
    assert {"window", "books", "foliage"} <= kinds
    thin = torch.cat([g.cyl_radius for g in geoms])
    assert (thin < 0.02).any() and (thin > 0.3).any(), "thin legs and poles as well as wide drums"


def test_shadows_darken_the_floor_under_a_box():
    """Light above a floating box: the floor right below it is in shadow only with shadows on."""
    f = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    base = dict(
        room_min=f([-2, -2, 0]), room_max=f([2, 2, 3]), room_tex=torch.zeros(6, dtype=torch.long),
        room_tile=torch.ones(6, 2), room_uvoff=torch.zeros(6, 2),
        box_center=f([[0, 0, 1.5]]), box_half=f([[0.3, 0.3, 0.05]]), box_yaw=f([0.0]),
        box_tex=torch.zeros(1, dtype=torch.long), box_tile=torch.ones(1, 2), box_uvoff=torch.zeros(1, 2),
        sphere_center=torch.zeros(0, 3), sphere_radius=torch.zeros(0), sphere_tex=torch.zeros(0, dtype=torch.long),
        sphere_tile=torch.zeros(0, 2), sphere_uvoff=torch.zeros(0, 2), cyl_center=torch.zeros(0, 3),
        cyl_radius=torch.zeros(0), cyl_half_height=torch.zeros(0), cyl_tex=torch.zeros(0, dtype=torch.long),
        cyl_tile=torch.zeros(0, 2), cyl_uvoff=torch.zeros(0, 2), textures=torch.full((1, 3, 8, 8), 0.5),
        light_pos=f([0, 0, 2.8]), light_power=0.5, light_range=3.0, fill_dir=f([0, 0, -1]), fill_power=0.0,
        ambient=0.1, lighting=2, lights_pos=f([[0, 0, 2.8]]), lights_rgb=f([[1.0, 1.0, 1.0]]), lights_range=f([3.0]),
        ambient_rgb=f([0.1, 0.1, 0.1]), tex_gloss=torch.zeros(1), tex_emit=torch.zeros(1),
        shadow_boxes=torch.tensor([0]),
    )  # fmt: skip
    c2w = torch.eye(4)[None]
    c2w[0, :3, :3] = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # looking down
    c2w[0, :3, 3] = torch.tensor([0.6, 0.0, 1.0])  # beside and below the box: sees the floor 1 m away
    K = torch.tensor([[16.0, 0, 16.5], [0, 16.0, 16.5], [0, 0, 1]])
    lit, _ = render_scene(geometry.RoomGeometry(**base, shadows=False), K, c2w, 33, 33)
    shadowed, depth = render_scene(geometry.RoomGeometry(**base, shadows=True), K, c2w, 33, 33)
    assert depth[0, 16, 16] == pytest.approx(1.0, abs=1e-4)
    # Row 26 sees the floor at x = 0, under the box (its shadow reaches |x| < 0.6); row 2 sees x = 1.5.
    assert (shadowed[0, :, 26, 16] < lit[0, :, 26, 16] - 0.05).all()
    assert torch.equal(shadowed[0, :, 2, 16], lit[0, :, 2, 16])
    assert (shadowed <= lit + 1e-6).all()


def test_fast_shadow_test_matches_generic_intersection():
    for seed in range(4):
        g = make_scene(seed, STYLE2).geometry
        casters = shading.shadow_casters(g)
        light = g.lights_pos[0]
        gen = torch.Generator().manual_seed(seed)
        p = g.room_min + torch.rand(5000, 3, generator=gen) * (g.room_max - g.room_min)
        local = geometry.to_box_frame(p[:, None] - casters.box_center, casters.box_yaw)
        inside = (local.abs() < casters.box_half + 2e-3).all(-1).any(-1)
        inside |= ((p[:, None] - casters.sphere_center).norm(dim=-1) < casters.sphere_radius + 2e-3).any(-1)
        rel = p[:, None] - casters.cyl_center
        inside |= (
            (rel[..., :2].norm(dim=-1) < casters.cyl_radius + 2e-3)
            & (rel[..., 2].abs() < casters.cyl_half_height + 2e-3)
        ).any(-1)
        p = p[~inside]
        to = light - p
        dist = to.norm(dim=-1)
        d = to / dist[:, None]
        t = torch.cat(
            [geometry.intersect_boxes(casters, p, d), geometry.intersect_spheres(casters, p, d),
             geometry.intersect_cylinders(casters, p, d)], 1,
        ).amin(1)  # fmt: skip
        fast = shading._blocked_from_light(casters, light, -d, dist - 1e-3)
        assert torch.equal(fast, t < dist - 1e-3)


def test_shadow_casters_skip_flush_panels():
    g = make_scene(3, STYLE2).geometry
    keep = set(g.shadow_boxes.tolist())
    assert 0 < len(keep) < len(g.box_yaw)
    for i in set(range(len(g.box_yaw))) - keep:
        assert g.box_half[i].min() < 0.03 and g.box_yaw[i] == 0


def test_tone_shoulder():
    x = torch.linspace(0, 5, 501)
    y = shading.tone_shoulder(x)
    assert torch.equal(y[x < 0.8], x[x < 0.8]) and (y <= 1).all() and (y[1:] >= y[:-1]).all()
    assert y[x < 1.2].max() < 0.98  # a gradual roll-off, not a clip


@pytest.mark.parametrize("kind", list(ONCE_PATTERNS))
def test_once_patterns_are_valid(kind):
    img = make_texture(kind, np.random.RandomState(0), 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.float32 and img.min() >= 0 and img.max() <= 1
    assert img.std() > 0.02
    np.testing.assert_array_equal(img, make_texture(kind, np.random.RandomState(0), 64))


def test_style2_examples_plans_and_pickling():
    ex = make_example(4, STYLE2)
    assert ex.context.images.shape == (1, 2, 3, 32, 32) and 0 <= ex.context.images.min() <= ex.context.images.max() <= 1
    plan = plan_example(4, STYLE2)
    blob = pickle.dumps(plan)
    back = pickle.loads(blob)
    assert len(blob) < 2_000_000  # uint8 textures at 64² plus a few small tensors
    assert torch.equal(back.scene.geometry.lights_rgb, plan.scene.geometry.lights_rgb)
    moved = plan.scene.geometry.to("cpu")
    assert moved.lighting == 2 and torch.equal(moved.windows, plan.scene.geometry.windows)


def test_style2_speed(capsys):
    """Timings (printed, not asserted): make_scene and a 6-view 128² render, style 1 vs style 2."""
    out = []
    for style in (1, 2):
        cfg = ProceduralConfig(height=128, width=128, scene_style=style)
        make_scene(300, cfg)
        t0 = time.perf_counter()
        scenes = [make_scene(s, cfg) for s in range(301, 304)]
        t1 = time.perf_counter()
        for sc in scenes:
            _render(sc, 128, 6)
        t2 = time.perf_counter()
        out.append(f"style {style}: make_scene {(t1 - t0) / 3 * 1e3:.0f} ms, 6 views at 128²: {(t2 - t1) / 3:.2f} s")
    with capsys.disabled():
        print("\n" + "\n".join(out))


def test_kelvin_colours_are_warm_to_cool():
    from ilrm.data.procedural.lighting_style2 import kelvin, luma

    warm, day, sky = kelvin(2700), kelvin(5500), kelvin(9000)
    assert warm[0] > warm[2] and sky[2] > sky[0] and abs(day[0] - day[2]) < 0.25 * day[0]
    assert all(luma(c) == pytest.approx(1.0) for c in (warm, day, sky))
    assert not math.isnan(float(warm.sum()))
