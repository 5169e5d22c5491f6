import numpy as np
import pytest
import torch
import torch.nn.functional as F
from plyfile import PlyData, PlyElement

from ilrm.errors import ILRMInputError
from ilrm.gaussian_files import (
    OPACITY_EPS,
    load_ply,
    load_splat,
    preview_ply,
    prune,
    save_ply,
    save_splat,
)
from ilrm.gaussians import SH_C0, Gaussians


def random_gaussians(b: int = 1, n: int = 50, degree: int = 0, seed: int = 0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return Gaussians(
        means=torch.randn(b, n, 3, generator=gen) * 3,
        quats=F.normalize(torch.randn(b, n, 4, generator=gen), dim=-1),
        scales=torch.exp(torch.randn(b, n, 3, generator=gen) - 3),
        opacities=torch.rand(b, n, generator=gen) * 0.98 + 0.01,
        sh=torch.randn(b, n, k, 3, generator=gen),
    )


def assert_same(a: Gaussians, b: Gaussians, rtol: float = 2e-6, atol: float = 1e-7) -> None:
    torch.testing.assert_close(a.means, b.means, rtol=0, atol=0)
    torch.testing.assert_close(a.sh, b.sh, rtol=0, atol=0)
    torch.testing.assert_close(a.scales, b.scales, rtol=rtol, atol=atol)
    torch.testing.assert_close(a.opacities, b.opacities, rtol=rtol, atol=atol)
    torch.testing.assert_close(a.quats, b.quats, rtol=rtol, atol=atol)


@pytest.mark.parametrize("degree", [0, 3])
def test_ply_round_trip(tmp_path, degree):
    g = random_gaussians(b=2, n=64, degree=degree)
    path = tmp_path / "g.ply"
    assert save_ply(path, g, batch_index=1) == 64
    back = load_ply(path)
    assert back.sh.shape == (1, 64, (degree + 1) ** 2, 3)
    assert_same(g.batch(1), back)


def test_ply_layout_matches_3dgs(tmp_path):
    g = random_gaussians(n=7, degree=2)
    g.quats = g.quats * 3.0  # unnormalised input: the file stores the unit quaternion
    path = tmp_path / "g.ply"
    save_ply(path, g)
    ply = PlyData.read(str(path))
    assert not ply.text and ply.byte_order == "<"
    assert [e.name for e in ply.elements] == ["vertex"]
    v = ply["vertex"]
    names = [p.name for p in v.properties]
    k = 9
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    expected += [f"f_rest_{i}" for i in range(3 * (k - 1))]
    expected += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert names == expected
    assert all(p.val_dtype in ("f4", "<f4") or np.dtype(p.val_dtype) == np.float32 for p in v.properties)
    n, coeff, channel = 3, 5, 1  # f_rest is channel-major: index = channel·(K−1) + (coeff − 1)
    assert v[f"f_rest_{channel * (k - 1) + coeff - 1}"][n] == g.sh[0, n, coeff, channel].item()
    assert v["f_dc_2"][n] == g.sh[0, n, 0, 2].item()
    p = g.opacities[0, n].double()
    assert v["opacity"][n] == pytest.approx(torch.logit(p).item(), rel=1e-6)
    assert v["scale_1"][n] == pytest.approx(g.scales[0, n, 1].log().item(), rel=1e-6)
    q = F.normalize(g.quats[0, n], dim=-1)
    assert [v[f"rot_{i}"][n] for i in range(4)] == pytest.approx(q.tolist(), abs=1e-6)


def test_ply_opacity_extremes_stay_finite(tmp_path):
    g = random_gaussians(n=3)
    g.opacities = torch.tensor([[0.0, 1.0, 0.5]])
    save_ply(tmp_path / "g.ply", g)
    v = PlyData.read(str(tmp_path / "g.ply"))["vertex"]
    assert np.isfinite(v["opacity"]).all()
    back = load_ply(tmp_path / "g.ply")
    torch.testing.assert_close(back.opacities, torch.tensor([[OPACITY_EPS, 1 - OPACITY_EPS, 0.5]]))


@pytest.mark.parametrize("text,byte_order", [(False, "<"), (False, ">"), (True, "=")])
def test_load_ply_from_other_writers(tmp_path, text, byte_order):
    """Any property order, extra non-float properties, other elements, double type, ascii and big-endian."""
    g = random_gaussians(n=5, degree=1)
    path = tmp_path / "ref.ply"
    save_ply(path, g)
    v = PlyData.read(str(path))["vertex"].data
    names = list(v.dtype.names)[::-1]  # reversed order
    fields = [(n, "f8" if n == "x" else "f4") for n in names] + [("red", "u1")]
    arr = np.empty(len(v), dtype=fields)
    for n in names:
        arr[n] = v[n]
    arr["red"] = 7
    faces = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
    other = PlyElement.describe(faces, "face")
    out = tmp_path / "other.ply"
    PlyData([PlyElement.describe(arr, "vertex"), other], text=text, byte_order=byte_order).write(str(out))
    assert_same(load_ply(path), load_ply(out))


@pytest.mark.parametrize("text,byte_order", [(False, ">"), (True, "=")])
def test_load_ply_with_an_element_before_the_vertices(tmp_path, text, byte_order):
    """A big-endian or ascii file whose vertex element comes second, properties shuffled, SH degree 2."""
    g = random_gaussians(n=9, degree=2, seed=4)
    save_ply(tmp_path / "ref.ply", g)
    v = PlyData.read(str(tmp_path / "ref.ply"))["vertex"].data
    names = list(np.random.default_rng(0).permutation(list(v.dtype.names)))
    arr = np.empty(len(v), dtype=[(n, "f4") for n in names])
    for n in names:
        arr[n] = v[n]
    cams = np.zeros(2, dtype=[("fx", "f8"), ("id", "i4")])
    out = tmp_path / "shuffled.ply"
    elements = [PlyElement.describe(cams, "camera"), PlyElement.describe(arr, "vertex")]
    PlyData(elements, text=text, byte_order=byte_order).write(str(out))
    assert_same(load_ply(tmp_path / "ref.ply"), load_ply(out))


def test_load_ply_messages_for_malformed_files(tmp_path):
    good = tmp_path / "good.ply"
    save_ply(good, random_gaussians(n=4))
    data = good.read_bytes()
    bad = tmp_path / "bad.ply"
    # the header claims more vertices than the body holds (binary and ascii)
    bad.write_bytes(data.replace(b"element vertex 4", b"element vertex 40"))
    with pytest.raises(ILRMInputError, match="truncated"):
        load_ply(bad)
    ply = PlyData.read(str(good))
    ply.text = True
    ply.write(str(bad))
    lines = bad.read_bytes().splitlines(keepends=True)
    bad.write_bytes(b"".join(lines[:-1]))  # one row short
    with pytest.raises(ILRMInputError, match="truncated"):
        load_ply(bad)
    # a header absurdly larger than memory
    bad.write_bytes(b"".join(lines).replace(b"element vertex 4", b"element vertex 100000000000000"))
    with pytest.raises(ILRMInputError, match="too large|truncated"):
        load_ply(bad)
    # no vertex element; list-valued vertices; SH that is not a whole degree
    faces = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(faces, "face")]).write(str(bad))
    with pytest.raises(ILRMInputError, match="no 'vertex' element"):
        load_ply(bad)
    PlyData([PlyElement.describe(faces, "vertex")]).write(str(bad))
    with pytest.raises(ILRMInputError, match="list properties"):
        load_ply(bad)
    v = PlyData.read(str(good))["vertex"].data
    extra = np.empty(len(v), dtype=v.dtype.descr + [("f_rest_0", "f4")])
    for n in v.dtype.names:
        extra[n] = v[n]
    PlyData([PlyElement.describe(extra, "vertex")]).write(str(bad))
    with pytest.raises(ILRMInputError, match="whole degree"):
        load_ply(bad)


def test_load_ply_of_an_inria_style_file(tmp_path):
    """A file as the INRIA trainer writes it, built with plyfile rather than save_ply: rotations not
    normalised (here ×3), f_rest channel-major (all red coefficients, then green, then blue),
    activations stored raw (logit opacity, log scale)."""
    n, k = 6, 4  # SH degree 1
    rng = np.random.default_rng(3)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sh = rng.normal(size=(n, k, 3)).astype(np.float32)  # (N, coefficient, channel)
    means = rng.normal(size=(n, 3)).astype(np.float32)
    log_scales = rng.normal(size=(n, 3)) - 3
    logit_opacity = rng.normal(size=n)
    props = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    props += [f"f_rest_{i}" for i in range(3 * (k - 1))] + ["opacity", "scale_0", "scale_1", "scale_2"]
    props += ["rot_0", "rot_1", "rot_2", "rot_3"]
    v = np.zeros(n, dtype=[(name, "f4") for name in props])
    for i, axis in enumerate("xyz"):
        v[axis] = means[:, i]
        v[f"scale_{i}"] = log_scales[:, i]
    for c in range(3):
        v[f"f_dc_{c}"] = sh[:, 0, c]
        for j in range(k - 1):  # INRIA: features_rest (N, K-1, 3) transposed to (N, 3, K-1), flattened
            v[f"f_rest_{c * (k - 1) + j}"] = sh[:, 1 + j, c]
    for i in range(4):
        v[f"rot_{i}"] = 3 * q[:, i]
    v["opacity"] = logit_opacity
    path = tmp_path / "inria.ply"
    PlyData([PlyElement.describe(v, "vertex")]).write(str(path))

    g = load_ply(path)
    np.testing.assert_allclose(g.quats[0].numpy(), q, atol=1e-6)  # unit length again
    np.testing.assert_array_equal(g.sh[0].numpy(), sh)
    np.testing.assert_array_equal(g.means[0].numpy(), means)
    np.testing.assert_allclose(g.scales[0].numpy(), np.exp(log_scales), rtol=1e-6)
    np.testing.assert_allclose(g.opacities[0].numpy(), 1 / (1 + np.exp(-logit_opacity)), rtol=1e-6)
    # what a viewer draws from it: the same as from the unit quaternions
    from ilrm.gaussians import quat_to_rotmat

    unit = torch.from_numpy(q).float()
    torch.testing.assert_close(quat_to_rotmat(g.quats[0]), quat_to_rotmat(unit), atol=1e-6, rtol=0)
    # and it round-trips through our writer in the same layout
    save_ply(tmp_path / "again.ply", g)
    again = PlyData.read(str(tmp_path / "again.ply"))["vertex"]
    for name in props:
        expected = v[name] / 3 if name.startswith("rot_") else v[name]
        np.testing.assert_allclose(again[name], expected, atol=2e-6, err_msg=name)


def test_load_ply_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"hello")
    with pytest.raises(ILRMInputError, match="not a PLY"):
        load_ply(bad)
    # a plain point cloud (no Gaussian properties)
    pts = np.zeros(4, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(bad))
    with pytest.raises(ILRMInputError, match="missing properties"):
        load_ply(bad)
    # truncated body
    good = tmp_path / "good.ply"
    save_ply(good, random_gaussians(n=10))
    bad.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(ILRMInputError, match="truncated"):
        load_ply(bad)
    # unknown format
    bad.write_bytes(good.read_bytes().replace(b"binary_little_endian", b"binary_middle_endian"))
    with pytest.raises(ILRMInputError, match="format"):
        load_ply(bad)
    with pytest.raises(ILRMInputError, match="batch_index"):
        save_ply(good, random_gaussians(n=3), batch_index=2)


def test_prune_and_save_with_pruning(tmp_path):
    g = random_gaussians(n=10)
    g.opacities = torch.linspace(0.0, 0.9, 10)[None]
    g.means[0, 9, 0] = float("nan")
    kept, removed = prune(g, min_opacity=0.25)
    # opacities 0, 0.1, 0.2 below the threshold, and the NaN one
    assert removed == 4 and kept.num_gaussians == 6
    assert (kept.opacities >= 0.25).all() and torch.isfinite(kept.means).all()
    assert save_ply(tmp_path / "p.ply", g, prune_opacity=0.25) == 6
    assert load_ply(tmp_path / "p.ply").num_gaussians == 6
    with pytest.raises(ILRMInputError, match="one scene"):
        prune(random_gaussians(b=2), 0.1)


def test_splat_layout_and_round_trip(tmp_path):
    g = random_gaussians(n=40, degree=1)
    g.sh[..., 0, :] = (torch.rand(1, 40, 3) - 0.5) / SH_C0  # colours inside [0, 1]
    path = tmp_path / "g.splat"
    assert save_splat(path, g) == 40
    raw = path.read_bytes()
    assert len(raw) == 32 * 40
    back = load_splat(path)
    importance = back.scales.prod(-1) * back.opacities
    assert (importance[0, :-1] >= importance[0, 1:]).all()  # sorted, most important first
    # match each written Gaussian to its source by position (exact float32)
    order = torch.argsort(-(g.scales.prod(-1) * g.opacities)[0], stable=True)
    src = g[order]
    torch.testing.assert_close(back.means, src.means, rtol=0, atol=0)
    torch.testing.assert_close(back.scales, src.scales, rtol=0, atol=0)
    torch.testing.assert_close(back.colors(), src.colors(), rtol=0, atol=0.5 / 255 + 1e-6)
    torch.testing.assert_close(back.opacities, src.opacities, rtol=0, atol=0.5 / 255 + 1e-6)
    # 8-bit quaternions: the rotation is close, up to sign
    dots = (back.quats * src.quats).sum(-1).abs()
    assert (dots > 0.999).all()
    # first record decodes by hand as documented: 3×f32 position, 3×f32 scale, RGBA u8, rot u8 (w,x,y,z)
    rec = np.frombuffer(raw[:32], dtype="<f4", count=6)
    np.testing.assert_array_equal(rec[:3], src.means[0, 0].numpy())
    rot = np.frombuffer(raw[28:32], dtype=np.uint8).astype(np.float64)
    np.testing.assert_allclose((rot - 128) / 128, src.quats[0, 0].numpy(), atol=1 / 128)


def test_preview_ply(tmp_path):
    g = random_gaussians(n=2000)
    g.means = g.means * 40 + torch.tensor([100.0, -50.0, 7.0])
    g.opacities = g.opacities.clamp_min(0.05)
    g.opacities[0, :500] = 0.001  # near-transparent: dropped
    path = tmp_path / "preview.ply"
    info = preview_ply(path, g, max_gaussians=1000, min_opacity=0.02, target_extent=1.5)
    assert info["num_input"] == 2000 and info["num_pruned"] == 500
    assert info["num_subsampled"] == 500 and info["num_written"] == 1000
    ply = PlyData.read(str(path))
    assert [e.name for e in ply.elements] == ["vertex"] and ply.byte_order == "<" and not ply.text
    props = ply["vertex"].properties
    assert all(np.dtype(p.val_dtype) == np.float32 for p in props)
    assert not any(p.name.startswith("f_rest") for p in props)
    back = load_ply(path)
    dist = back.means[0].norm(dim=-1)
    assert back.num_gaussians == 1000
    assert float(back.means[0].median(0).values.abs().max()) < 0.05
    assert 0.6 < float(torch.quantile(dist, 0.9)) < 0.9  # ≈ target_extent / 2
    # the returned transform maps the kept world means onto the preview means
    T = torch.tensor(info["transform"], dtype=torch.float64)
    world = g.means[0].double()
    mapped = world @ T[:3, :3].T + T[:3, 3]
    d, idx = torch.cdist(back.means[0].double(), mapped).min(dim=1)
    assert float(d.max()) < 1e-4
    # scales: × scale, plus the viewer's missing dilation (≪ 1 % here); colours baked and clamped
    torch.testing.assert_close(back.scales[0].sort(-1).values, (g.scales[0, idx] * info["scale"]).sort(-1).values,
                               rtol=2e-2, atol=3e-3)
    assert float(back.colors().min()) >= -1e-6 and float(back.colors().max()) <= 1 + 1e-6
    # deterministic subsampling
    info2 = preview_ply(tmp_path / "p2.ply", g, max_gaussians=1000)
    assert info2["transform"] == info["transform"]
    assert (tmp_path / "p2.ply").read_bytes() == path.read_bytes()


def test_preview_rotation_and_errors(tmp_path):
    g = random_gaussians(n=100)
    R = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    a = preview_ply(tmp_path / "a.ply", g)
    b = preview_ply(tmp_path / "b.ply", g, rotation=R)
    ma, mb = load_ply(tmp_path / "a.ply").means[0], load_ply(tmp_path / "b.ply").means[0]
    torch.testing.assert_close(mb, ma @ R.T, atol=1e-5, rtol=0)
    assert a["scale"] == pytest.approx(b["scale"])
    with pytest.raises(ILRMInputError, match="rotation"):
        preview_ply(tmp_path / "c.ply", g, rotation=torch.diag(torch.tensor([1.0, 1.0, -1.0])))
    with pytest.raises(ILRMInputError, match="nothing to preview"):
        preview_ply(tmp_path / "c.ply", g, min_opacity=2.0)


def test_preview_through_a_camera(tmp_path):
    """With a camera: the viewer's default camera (fixed focal 1132 px) sees what that camera sees:
    each kept mean projects by K (scaled to cover the canvas) where the viewer projects its preview
    point, the median depth sits at the orbit radius, and the covariances project alike."""
    from ilrm.gaussian_files import DEFAULT_CANVAS, VIEWER_FOCAL_PX, viewer_camera

    g = random_gaussians(n=200)
    g.means[0, :, 2] = g.means[0, :, 2].abs() + 2.0  # in front of a camera at the origin looking down +z
    g.opacities.fill_(0.9)
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([0.1, -0.2, -0.5])
    K = torch.tensor([[210.0, 0, 128], [0, 200, 128], [0, 0, 1]])
    info = preview_ply(tmp_path / "p.ply", g, camera=c2w, intrinsics=K, image_size=(256, 256))
    p = load_ply(tmp_path / "p.ply")
    assert info["num_written"] == p.num_gaussians == 200 and info["num_behind"] == 0
    V = torch.from_numpy(viewer_camera())
    cam = g.means[0].double() - c2w[:3, 3].double()  # camera frame (identity rotation)
    cover = max(DEFAULT_CANVAS[0] / 256, DEFAULT_CANVAS[1] / 256)
    uv_photo = (cam[:, :2] / cam[:, 2:]) * torch.tensor([210.0, 200.0], dtype=torch.float64) * cover
    view = (p.means[0].double() - V[:3, 3]) @ V[:3, :3]
    uv_viewer = view[:, :2] / view[:, 2:] * VIEWER_FOCAL_PX
    torch.testing.assert_close(uv_viewer, uv_photo, atol=2.0, rtol=0.03)  # px; fx ≠ fy uses their mean
    assert float(view[:, 2].median()) == pytest.approx(5.0 * info["depth_stretch"], rel=1e-4)
    T = torch.tensor(info["transform"], dtype=torch.float64)
    torch.testing.assert_close(p.means[0].double(), g.means[0].double() @ T[:3, :3].T + T[:3, 3], atol=1e-4, rtol=0)
    with pytest.raises(ILRMInputError, match="intrinsics"):
        preview_ply(tmp_path / "c.ply", g, camera=c2w)
    behind = torch.eye(4)
    behind[2, 2] = behind[0, 0] = -1.0  # turned round: looking down −z
    with pytest.raises(ILRMInputError, match="behind"):
        preview_ply(tmp_path / "c.ply", g, camera=behind, intrinsics=K, image_size=(256, 256))
