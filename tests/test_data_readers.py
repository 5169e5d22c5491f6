"""RE10K chunk reader, DL3DV scene reader, DL3DV-Benchmark conversion and view samplers, on tiny
fixtures written in the real formats (see fixtures_data.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ilrm.cameras import normalize_poses, resize_crop_intrinsics, resize_crop_params
from ilrm.data import dl3dv_convert, re10k
from ilrm.data.dl3dv import DL3DVScenes, read_opencv_cameras
from ilrm.data.dl3dv_convert import convert_benchmark, convert_scene, nerfstudio_to_w2c
from ilrm.data.re10k import RE10KChunks, parse_cameras
from ilrm.data.sampling import (
    BoundedSampler,
    DL3DVIndexSampler,
    EvaluationIndexSampler,
    FixedViewSampler,
    RandomViewSampler,
    SkipScene,
    linear_schedule,
)
from ilrm.errors import ILRMInputError

from .fixtures_data import (
    RE10K_INTRINSICS,
    frame_colour,
    make_re10k_record,
    write_benchmark_scene,
    write_dl3dv_index,
    write_evaluation_index,
    write_opencv_scene,
    write_re10k,
)

MYDESK = Path(__file__).resolve().parents[1] / "demo" / "examples" / "mydesk"


# ---- RE10K -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def re10k_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("re10k")
    info = write_re10k(root, {"aaa": 12, "bbb": 10, "ccc": 15}, scenes_per_chunk=2)
    index = write_evaluation_index(
        root / "evaluation_index_re10k.json",
        {
            "aaa": {"context": [1, 9], "target": [3, 5, 7]},
            "bbb": None,
            "ccc": {"context": [0, 14], "target": [2, 2, 13]},
            "not_in_data": {"context": [0, 1], "target": [0]},
        },
    )
    return root, info, index


def _mean_colour(images: torch.Tensor) -> torch.Tensor:
    """(V, 3, H, W) → (V, 3) in 0..255."""
    return images.mean(dim=(-1, -2)) * 255


def test_re10k_evaluation_index_examples(re10k_root):
    root, info, index = re10k_root
    ds = RE10KChunks(root, "test", index_path=index)
    assert ds.missing_scenes() == ["not_in_data"]
    assert ds.scene_keys() == ["aaa", "ccc"]
    examples = list(ds)
    assert [e.scene_id for e in examples] == ["aaa", "ccc"]
    a, c = examples
    assert a.context.images.shape == (1, 2, 3, 256, 256)
    assert a.target.images.shape == (1, 3, 3, 256, 256)
    assert c.target.images.shape == (1, 3, 3, 256, 256)  # repeated target frames are kept
    assert a.context.images.dtype == torch.float32
    assert a.context.images.min() >= 0 and a.context.images.max() <= 1
    # The right frames were decoded: each frame has its own flat colour (JPEG: within a few levels).
    for ex, ctx, tgt in ((a, [1, 9], [3, 5, 7]), (c, [0, 14], [2, 2, 13])):
        s = info[ex.scene_id]["scene_index"]
        want_c = torch.tensor([frame_colour(s, i) for i in ctx], dtype=torch.float32)
        want_t = torch.tensor([frame_colour(s, i) for i in tgt], dtype=torch.float32)
        torch.testing.assert_close(_mean_colour(ex.context.images[0]), want_c, atol=3, rtol=0)
        torch.testing.assert_close(_mean_colour(ex.target.images[0]), want_t, atol=3, rtol=0)
    # The red strip on the left 120 of 640 columns lies in the 99 cropped resized columns.
    s = info["aaa"]["scene_index"]
    col0 = a.context.images[0, 0, :, :, :2].mean(dim=(-1, -2)) * 255
    torch.testing.assert_close(col0, torch.tensor(frame_colour(s, 1), dtype=torch.float32), atol=4, rtol=0)


def test_re10k_intrinsics_after_resize_crop(re10k_root):
    root, _, index = re10k_root
    fx_n, fy_n, cx_n, cy_n = RE10K_INTRINSICS
    ex = next(iter(RE10KChunks(root, "test", index_path=index, scenes=["aaa"])))
    K = ex.context.intrinsics[0, 0]
    # 360×640 → 256×455 (fx scales by 455/640 of 640·fx_n) → crop 99 columns.
    assert K[0, 0].item() == pytest.approx(fx_n * 455, abs=1e-3)  # 364 px
    assert K[1, 1].item() == pytest.approx(fy_n * 256, abs=1e-3)
    assert K[0, 2].item() == pytest.approx(cx_n * 455 - 99, abs=1e-3)  # 128.5
    assert K[1, 2].item() == pytest.approx(cy_n * 256, abs=1e-3)
    assert K[2].tolist() == [0.0, 0.0, 1.0]
    # pixelSplat's crop shim keeps the normalised principal point (half a pixel off).
    ex2 = next(iter(RE10KChunks(root, "test", index_path=index, scenes=["aaa"], intrinsics="pixelsplat")))
    K2 = ex2.context.intrinsics[0, 0]
    assert K2[0, 2].item() == pytest.approx(128.0) and K2[1, 2].item() == pytest.approx(128.0)
    assert K2[0, 0].item() == pytest.approx(364.0, abs=1e-3)


def test_re10k_pose_conversion_and_normalisation(re10k_root):
    root, info, index = re10k_root
    rec = info["aaa"]["record"]
    K_norm, c2w = parse_cameras(rec["cameras"])
    w2c = torch.eye(4, dtype=torch.float64).repeat(len(c2w), 1, 1)
    w2c[:, :3] = rec["cameras"][:, 6:].reshape(-1, 3, 4).double()
    torch.testing.assert_close(c2w @ w2c, torch.eye(4, dtype=torch.float64).expand_as(c2w), atol=1e-5, rtol=0)
    torch.testing.assert_close(c2w, torch.from_numpy(info["aaa"]["c2w"]), atol=1e-5, rtol=0)
    assert K_norm[0, 0, 0].item() == pytest.approx(RE10K_INTRINSICS[0])

    scales = {}
    for quirk in (True, False):
        ex = next(iter(RE10KChunks(root, "test", index_path=index, scenes=["aaa"], scale_before_recentre=quirk)))
        want_c, want_t, _ = normalize_poses(c2w[[1, 9]], c2w[[3, 5, 7]], scale_before_recentre=quirk)
        torch.testing.assert_close(ex.context.c2w[0], want_c.float(), atol=1e-5, rtol=0)
        torch.testing.assert_close(ex.target.c2w[0], want_t.float(), atol=1e-5, rtol=0)
        scales[quirk] = ex.context.c2w[0, :, :3, 3].abs().max().item()
    # Scale taken after re-centring: context positions reach exactly 1; with the quirk they do not.
    assert scales[False] == pytest.approx(1.0, abs=1e-5)
    assert scales[True] < 0.5


def test_re10k_lazy_chunks_and_decoding(re10k_root, monkeypatch):
    root, _, index = re10k_root
    loaded, decoded = [], []
    real_load, real_decode = re10k.load_chunk, re10k.decode_frame
    monkeypatch.setattr(re10k, "load_chunk", lambda p: loaded.append(Path(p).name) or real_load(p))
    monkeypatch.setattr(re10k, "decode_frame", lambda t: decoded.append(1) or real_decode(t))
    examples = list(RE10KChunks(root, "test", index_path=index, scenes=["ccc"]))
    assert [e.scene_id for e in examples] == ["ccc"]
    assert loaded == ["000001.torch"]  # "ccc" is the only scene of the second chunk
    assert len(decoded) == 4  # frames 0, 14, 2, 13: only the needed ones, repeated target decoded once


def test_re10k_training_sampler_filters_and_failures(tmp_path):
    info = write_re10k(tmp_path, {"s0": 30, "s1": 30, "short": 4}, split="train", scenes_per_chunk=3)
    chunk = torch.load(tmp_path / "train" / "000000.torch", weights_only=True)
    wide, _ = make_re10k_record("wide_fov", 30, intrinsics=(0.3, 0.3 * 640 / 360, 0.5, 0.5))
    small, _ = make_re10k_record("small_img", 30, hw=(180, 320))
    broken, _ = make_re10k_record("broken", 30)
    broken["images"] = [torch.tensor([1, 2, 3], dtype=torch.uint8)] * 30
    torch.save([*chunk, wide, small, broken], tmp_path / "train" / "000000.torch")

    sampler = BoundedSampler(num_context=2, num_target=3, min_gap=5, max_gap=10, warmup_steps=0)
    ds = RE10KChunks(tmp_path, "train", sampler=sampler, image_size=(64, 64), shuffle=True, seed=3)
    examples = list(ds)
    assert sorted(e.scene_id for e in examples) == ["s0", "s1"]
    assert examples[0].context.images.shape == (1, 2, 3, 64, 64)
    skipped = dict(ds.skipped)
    assert set(skipped) == {"short", "wide_fov", "small_img"}
    assert "field of view" in skipped["wide_fov"] and "180×320" in skipped["small_img"]
    assert [k for k, _ in ds.failed] == ["broken"]
    # Context gap within [5, 10] and targets between the context frames (recovered from colours).
    for e in examples:
        s = info[e.scene_id]["scene_index"]
        palette = torch.tensor([frame_colour(s, i) for i in range(30)], dtype=torch.float32)

        def frames(images, palette=palette):
            d = (_mean_colour(images[0])[:, None] - palette[None]).abs().sum(-1)
            return d.argmin(-1).tolist()

        left, right = frames(e.context.images)
        assert 5 <= right - left <= 10
        assert all(left <= t <= right for t in frames(e.target.images))
    with pytest.raises(ILRMInputError):
        RE10KChunks(tmp_path, "train")  # neither index nor sampler
    with pytest.raises(ILRMInputError):
        RE10KChunks(tmp_path, "val", sampler=sampler)  # no such split


# ---- DL3DV (processed scenes) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dl3dv_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dl3dv")
    scene = write_opencv_scene(root / "sceneA", 20, hw=(54, 96))
    write_opencv_scene(root / "sceneB", 20, hw=(54, 96))  # not in the index
    inputs16 = [1, 3, 5, 9, 12]
    inputs32 = [1, 2, 3, 4, 5, 6, 7, 9, 10, 11]
    index = write_dl3dv_index(root / "kmeans.json", {"sceneA": (inputs16, inputs32), "sceneZ": ([1], [1])})
    return root, scene, index, inputs16, inputs32


def test_dl3dv_reader_index_views_intrinsics_poses(dl3dv_root):
    root, scene, index, inputs16, inputs32 = dl3dv_root
    ds = DL3DVScenes(root, index, num_input=16, image_size=(64, 96))
    assert len(ds) == 1 and ds.names == ["sceneA"]
    assert ds.missing() == ["sceneZ"] and ds.unindexed() == ["sceneB"]
    assert ds.indices(0) == (inputs16, [0, 8, 16])
    ex = ds[0]
    assert ex.scene_id == "sceneA"
    assert ex.context.images.shape == (1, len(inputs16), 3, 64, 96)
    assert ex.target.images.shape == (1, 3, 3, 64, 96)
    want = torch.tensor([frame_colour(1, i) for i in [0, 8, 16]], dtype=torch.float32)
    torch.testing.assert_close(_mean_colour(ex.target.images[0]), want, atol=1.0, rtol=0)
    # Stretch 54×96 → 64×96 (the authors' 540×960 → 544×960): x unchanged, y by 64/54.
    K0 = torch.from_numpy(scene["K"])
    K = ex.context.intrinsics[0, 0].double()
    assert K[0, 0].item() == pytest.approx(K0[0, 0].item()) and K[0, 2].item() == pytest.approx(K0[0, 2].item())
    assert K[1, 1].item() == pytest.approx(K0[1, 1].item() * 64 / 54)
    assert K[1, 2].item() == pytest.approx(K0[1, 2].item() * 64 / 54)
    # Poses: c2w = inverse(w2c), normalised with the scale taken after re-centring.
    c2w = torch.from_numpy(scene["c2w"])
    want_c, want_t, _ = normalize_poses(c2w[inputs16], c2w[[0, 8, 16]])
    torch.testing.assert_close(ex.context.c2w[0], want_c.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(ex.target.c2w[0], want_t.float(), atol=1e-5, rtol=0)
    assert ex.context.c2w[0, :, :3, 3].abs().max().item() == pytest.approx(1.0, abs=1e-5)

    ds32 = DL3DVScenes(root, index, num_input=32, image_size=(64, 96))
    assert ds32[0].context.images.shape[1] == len(inputs32)


def test_dl3dv_crop_mode_and_errors(dl3dv_root, tmp_path):
    root, scene, index, inputs16, _ = dl3dv_root
    ex = DL3DVScenes(root, index, num_input=16, image_size=(64, 96), resize="crop")[0]
    assert resize_crop_params((54, 96), (64, 96)) == ((64, 114), (0, 9))
    want = resize_crop_intrinsics(torch.from_numpy(scene["K"]), (54, 96), (64, 96))
    torch.testing.assert_close(ex.context.intrinsics[0, 0].double(), want, atol=1e-4, rtol=0)
    with pytest.raises(ILRMInputError):
        DL3DVScenes(root)  # neither index nor sampler
    with pytest.raises(ILRMInputError):
        read_opencv_cameras(tmp_path)
    ds = DL3DVScenes(root, sampler=FixedViewSampler([0, 30], [1]))
    with pytest.raises(SkipScene):
        ds[0]


def test_dl3dv_reader_on_real_mydesk_scene():
    meta = json.loads((MYDESK / "opencv_cameras.json").read_text())
    ds = DL3DVScenes(MYDESK, sampler=FixedViewSampler([0, 6], [3]))
    assert ds.names == ["mydesk"]
    ex = ds[0]
    assert ex.context.images.shape == (1, 2, 3, 544, 960)
    f0 = meta["frames"][0]
    K = ex.context.intrinsics[0, 0]
    assert K[0, 0].item() == pytest.approx(f0["fx"], rel=1e-6)
    assert K[1, 1].item() == pytest.approx(f0["fy"] * 544 / 540, rel=1e-6)
    assert K[1, 2].item() == pytest.approx(f0["cy"] * 544 / 540, rel=1e-6)
    assert torch.isfinite(ex.target.c2w).all()
    R = ex.context.c2w[0, :, :3, :3]
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5, rtol=0)
    assert 0.1 < ex.context.images.mean().item() < 0.9


# ---- DL3DV-Benchmark conversion ----------------------------------------------------------------


def test_nerfstudio_pose_rule_by_hand():
    # Identity c2w with translation (1, 2, 3): negate columns 1, 2 → diag(1, -1, -1); rows (1, 0, 2)
    # → [[0,-1,0],[1,0,0],[0,0,-1]], t = (2, 1, 3); negate row 2 → [[0,-1,0],[1,0,0],[0,0,1]], t = (2, 1, -3).
    m = np.eye(4)
    m[:3, 3] = [1, 2, 3]
    c2w = np.array([[0, -1, 0, 2], [1, 0, 0, 1], [0, 0, 1, -3], [0, 0, 0, 1]], dtype=np.float64)
    np.testing.assert_allclose(nerfstudio_to_w2c(m), np.linalg.inv(c2w), atol=1e-12)
    np.testing.assert_allclose(nerfstudio_to_w2c(m[:3]), np.linalg.inv(c2w), atol=1e-12)
    # A general pose: the same rule written as matrix products.
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = q, rng.standard_normal(3)
    P = np.eye(4)[[1, 0, 2, 3]]
    want = np.linalg.inv(np.diag([1, 1, -1, 1.0]) @ P @ m @ np.diag([1, -1, -1, 1.0]))
    w2c = nerfstudio_to_w2c(m)
    np.testing.assert_allclose(w2c, want, atol=1e-12)
    assert np.linalg.det(w2c[:3, :3]) == pytest.approx(1.0)  # still a rotation


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    src = tmp_path_factory.mktemp("bench")
    name = "a" * 64  # DL3DV scene names are 64-hex hashes
    info = write_benchmark_scene(src / name, 20)
    write_benchmark_scene(src / ("b" * 64), 3, full_wh=(360, 640), image_wh=(180, 320))  # portrait
    out = tmp_path_factory.mktemp("bench_out")
    report = convert_benchmark(src, out)
    return src, out, name, info, report


def test_convert_benchmark_outputs_and_report(bench):
    src, out, name, info, report = bench
    assert report.converted == [name]
    assert report.skipped_portrait == ["b" * 64] and report.failed == []
    assert not (out / ("b" * 64) / "opencv_cameras.json").exists()
    data = json.loads((out / name / "opencv_cameras.json").read_text())
    assert data["scene_name"] == name and len(data["frames"]) == 20
    f = data["frames"][0]
    assert f["file_path"] == "images_undistort/frame_00001.png" and (f["h"], f["w"]) == (180, 320)
    # Intrinsics: transforms.json's (for 640×360) scaled to the 320×180 image, then alpha-0 new matrix.
    K, dist = info["K"], info["dist"]
    assert K[0, 0] == pytest.approx(info["meta"]["fl_x"] / 2)
    K_new, _ = cv2.getOptimalNewCameraMatrix(K, dist, (320, 180), 0, (320, 180))
    assert [f["fx"], f["fy"], f["cx"], f["cy"]] == pytest.approx([K_new[0, 0], K_new[1, 1], K_new[0, 2], K_new[1, 2]])
    meta = json.loads((src / name / "nerfstudio" / "transforms.json").read_text())
    for fr, fm in zip(data["frames"], meta["frames"]):
        np.testing.assert_allclose(fr["w2c"], nerfstudio_to_w2c(fm["transform_matrix"]), atol=1e-12)
    # Same pixels as OpenCV's own undistort of the stored (BGR) image.
    stored = cv2.imread(str(src / name / "nerfstudio" / "images_4" / "frame_00001.png"))
    want = cv2.undistort(stored, K, dist, None, K_new)
    got = cv2.imread(str(out / name / f["file_path"]))
    np.testing.assert_array_equal(got, want)
    # A second run keeps the finished scene.
    again = convert_scene(src / name, out / name)
    assert again.status == "exists" and again.num_frames == 20


def test_undistortion_recovers_the_pinhole_image(bench):
    """Undistorted output ≈ the ideal (undistorted) scene seen through K_new: straight lines again."""
    src, out, name, info, _ = bench
    K = info["K"]
    f = json.loads((out / name / "opencv_cameras.json").read_text())["frames"][0]
    K_new = np.array([[f["fx"], 0, f["cx"]], [0, f["fy"], f["cy"]], [0, 0, 1]])
    A = (K_new @ np.linalg.inv(K))[:2]
    ideal_in_new = cv2.warpAffine(info["ideal"], A, (320, 180), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    got = cv2.imread(str(out / name / f["file_path"]))[..., ::-1]
    inner = (slice(4, -4), slice(4, -4))
    err_undistorted = np.abs(got[inner].astype(float) - ideal_in_new[inner]).mean()
    err_distorted = np.abs(info["distorted"][inner].astype(float) - ideal_in_new[inner]).mean()
    assert err_undistorted < 2.0
    assert err_distorted > 4 * err_undistorted

    # Straightness of the top horizontal line: darkness centroid per column fits a line to < 0.3 px
    # (columns near the vertical lines are left out).
    def line_residual(img: np.ndarray, row: float, vertical: list[float]) -> float:
        dark = 255.0 - img[..., 0].astype(float)
        r0 = int(round(row))
        band = dark[r0 - 12 : r0 + 13]
        cols = [c for c in range(20, 300) if all(abs(c - v) > 15 for v in vertical)]
        cols = [c for c in cols if band[:, c].sum() > 100]
        ys = np.array([(band[:, c] * np.arange(band.shape[0])).sum() / band[:, c].sum() for c in cols])
        fit = np.polyval(np.polyfit(cols, ys, 1), cols)
        return float(np.abs(ys - fit).max())

    def to_new(v: float, axis: int) -> float:
        return (v - K[axis, 2]) / K[axis, axis] * K_new[axis, axis] + K_new[axis, 2]

    assert line_residual(got, to_new(40.0, 1), [to_new(60.0, 0), to_new(260.0, 0)]) < 0.3
    assert line_residual(info["distorted"], 40.0, [60.0, 260.0]) > 3.0


def test_converted_scene_through_dl3dv_reader(bench, tmp_path):
    _, out, name, _, _ = bench
    index = write_dl3dv_index(tmp_path / "kmeans.json", {name: ([2, 5, 11, 19], [1, 2, 3, 5, 11, 19])})
    ds = DL3DVScenes(out, index, num_input=16, image_size=(184, 320))
    ex = ds[0]
    assert ex.scene_id == name
    assert ex.context.images.shape == (1, 4, 3, 184, 320)
    assert ex.target.images.shape == (1, 3, 3, 184, 320)  # frames 0, 8, 16 of 20


def test_convert_cli_and_missing_images(tmp_path):
    write_benchmark_scene(tmp_path / "src" / "s1", 2)
    (tmp_path / "src" / "s1" / "nerfstudio" / "images_4" / "frame_00002.png").unlink()
    assert dl3dv_convert.main([str(tmp_path / "src"), str(tmp_path / "out"), "--workers", "1"]) == 1
    report = convert_benchmark(tmp_path / "src", tmp_path / "out")
    assert [n for n, _ in report.failed] == ["s1"] and "frame_00002.png" in report.failed[0][1]
    assert not (tmp_path / "out" / "s1" / "opencv_cameras.json").exists()


# ---- samplers ----------------------------------------------------------------------------------


def test_linear_schedule():
    assert linear_schedule(25, 45, 0, 100) == 25
    assert linear_schedule(25, 45, 50, 100) == 35
    assert linear_schedule(25, 45, 100, 100) == 45
    assert linear_schedule(25, 45, 10**6, 100) == 45
    assert linear_schedule(45, 25, 50, 100) == 35
    assert linear_schedule(25, 45, 7, 0) == 45


def test_bounded_sampler_warmup_and_ranges():
    s = BoundedSampler()  # pixelSplat RE10K defaults
    assert s.gap_range(0) == (25, 45)
    assert s.gap_range(75_000) == (35, 118)
    assert s.gap_range(150_000) == (45, 192) == s.gap_range(10**7)
    rng = np.random.default_rng(0)
    for step, (lo, hi) in ((0, (25, 45)), (150_000, (45, 192))):
        gaps = []
        for _ in range(300):
            ctx, tgt = s.sample(300, step=step, rng=rng)
            assert len(ctx) == 2 and len(tgt) == 4 and ctx[0] >= 0 and ctx[1] < 300
            gaps.append(ctx[1] - ctx[0])
            assert all(ctx[0] <= t <= ctx[1] for t in tgt) and tgt == sorted(tgt)
        assert min(gaps) >= lo and max(gaps) <= hi
        assert max(gaps) - min(gaps) > (hi - lo) // 2  # the whole range is used
    # Clipped to the scene: a 100-frame scene at the end of warm-up uses gaps up to 99.
    ctxs = [s.sample(100, step=150_000, rng=rng)[0] for _ in range(50)]
    assert all(45 <= c[1] - c[0] <= 99 for c in ctxs)
    with pytest.raises(SkipScene):
        s.sample(40, step=150_000, rng=rng)
    # More context views: distinct, strictly inside; targets may reach beyond with max_target_distance.
    s4 = BoundedSampler(num_context=4, num_target=6, min_gap=10, max_gap=20, warmup_steps=0, max_target_distance=5)
    for _ in range(100):
        ctx, tgt = s4.sample(60, rng=rng)
        assert len(set(ctx)) == 4 and ctx == sorted(ctx) and 10 <= ctx[-1] - ctx[0] <= 20
        assert all(max(0, ctx[0] - 5) <= t <= min(59, ctx[-1] + 5) for t in tgt)
    assert s.sample(300, rng=7) == s.sample(300, rng=7)  # seeded → reproducible


def test_evaluation_index_sampler(tmp_path):
    path = write_evaluation_index(tmp_path / "i.json", {"a": {"context": [3, 40], "target": [10, 20, 30]}, "b": None})
    s = EvaluationIndexSampler(path)
    assert s.usable_scenes() == ["a"]
    assert s.sample(50, scene_id="a") == ([3, 40], [10, 20, 30])
    for scene, n in (("b", 50), ("zzz", 50), ("a", 35)):
        with pytest.raises(SkipScene):
            s.sample(n, scene_id=scene)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ILRMInputError):
        EvaluationIndexSampler(tmp_path / "bad.json")


def test_dl3dv_index_sampler_on_real_index_format(tmp_path):
    real = Path(__file__).resolve().parents[1] / "eval" / "dl3dv_fold_8_kmeans_input_idx.json"
    path = write_dl3dv_index(tmp_path / "k.json", {"s": (list(range(1, 33, 2)), list(range(1, 65, 2)))})
    entry = json.loads(real.read_text())[0]  # the fixture has the shape of the real file
    assert set(entry) == {"scene_name", "fold_8_kmeans_16_input", "fold_8_kmeans_32_input"}
    s16, s32 = DL3DVIndexSampler(path, 16), DL3DVIndexSampler(path, 32)
    ctx, tgt = s16.sample(70, scene_id="s")
    assert ctx == list(range(1, 33, 2)) and tgt == list(range(0, 70, 8))
    assert len(s32.sample(70, scene_id="s")[0]) == 32
    with pytest.raises(SkipScene):
        s32.sample(40, scene_id="s")  # input index 63 out of range
    with pytest.raises(SkipScene):
        s16.sample(70, scene_id="other")


def test_random_and_fixed_samplers():
    rng = np.random.default_rng(1)
    s = RandomViewSampler(num_context=3, num_target=5)
    for _ in range(50):
        ctx, tgt = s.sample(10, rng=rng)
        assert len(set(ctx)) == 3 and len(set(tgt)) == 5 and not set(ctx) & set(tgt)
        assert ctx == sorted(ctx) and all(0 <= i < 10 for i in ctx + tgt)
    with pytest.raises(SkipScene):
        s.sample(7, rng=rng)
    overlap = RandomViewSampler(num_context=3, num_target=5, disjoint=False)
    assert len(overlap.sample(5, rng=rng)[1]) == 5
    assert FixedViewSampler([0, 2], [1])(3) == ([0, 2], [1])


def test_re10k_rank_shards_are_disjoint(tmp_path):
    write_re10k(tmp_path, {f"k{i}": 6 for i in range(6)}, split="train", scenes_per_chunk=1)
    sampler = RandomViewSampler(num_context=2, num_target=1)
    shards = [
        [
            e.scene_id
            for e in RE10KChunks(
                tmp_path, "train", sampler=sampler, image_size=(32, 32), shuffle=True, seed=5, rank=r, world_size=2
            )
        ]
        for r in range(2)
    ]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == [f"k{i}" for i in range(6)]
