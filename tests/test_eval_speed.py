"""The harness's fast path equals its reference path (CPU): batched metrics vs the scikit-image /
numpy reference, the worker loader vs ``source.load`` (same scenes, same order, same tensors), and the
background record writer (every record, in order)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eval.metrics import (
    LPIPSMetric,
    compute_metrics,
    compute_metrics_batched,
    psnr,
    psnr_torch,
    ssim,
    ssim_torch,
)
from eval.protocols import load_benchmark, open_scenes
from eval.runner import RecordWriter, iter_scenes
from tests.fixtures_data import write_dl3dv_index, write_evaluation_index, write_opencv_scene, write_re10k


def _pair(n=4, h=40, w=56, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 3, h, w, generator=g)
    render = target + 0.15 * torch.randn(n, 3, h, w, generator=g)  # unclipped, as renders can be
    render[0] = target[0]
    return render, target


def test_batched_psnr_and_ssim_equal_the_reference():
    render, target = _pair()
    ref_p, fast_p = psnr(render, target), psnr_torch(render, target).numpy()
    assert np.isinf(ref_p[0]) and np.isinf(fast_p[0])
    np.testing.assert_allclose(fast_p[1:], ref_p[1:], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ssim_torch(render, target).numpy(), ssim(render, target), rtol=0, atol=1e-6)
    # non-square, odd sizes, a chunk boundary inside the batch
    render, target = _pair(n=5, h=33, w=47, seed=1)
    np.testing.assert_allclose(ssim_torch(render, target, chunk=2).numpy(), ssim(render, target), rtol=0, atol=1e-6)


def test_compute_metrics_batched_equals_compute_metrics():
    render, target = _pair(n=3, h=64, w=64, seed=2)
    metric = LPIPSMetric()
    ref, fast = compute_metrics(render, target, metric), compute_metrics_batched(render, target, metric)
    assert set(ref) == set(fast)
    for k in ref:
        assert fast[k].dtype == np.float64 and fast[k].shape == ref[k].shape
        np.testing.assert_allclose(fast[k], ref[k], rtol=0, atol=1e-6)
    if metric.available:  # same network, same float32 inputs and batches: equal
        np.testing.assert_allclose(metric.batched(render, target).numpy(), metric(render, target), rtol=0, atol=1e-7)


def _same_scenes(a, b):
    assert [x.scene_id for x in a] == [x.scene_id for x in b]
    for x, y in zip(a, b):
        assert (x.status, x.reason, x.context_frames, x.target_frames) == (y.status, y.reason, y.context_frames,
                                                                           y.target_frames)
        if x.example is not None:
            for vx, vy in ((x.example.context, y.example.context), (x.example.target, y.example.target)):
                assert torch.equal(vx.images, vy.images) and torch.equal(vx.c2w, vy.c2w)
                assert torch.equal(vx.intrinsics, vy.intrinsics)


def test_worker_loader_yields_the_same_re10k_scenes_in_order(tmp_path):
    keys = {f"k{i}": 8 for i in range(7)}
    keys["short"] = 3  # fewer frames than its index entry needs: failed, in its place
    write_re10k(tmp_path / "data", keys, scenes_per_chunk=3)
    entries = {k: {"context": [0, 6], "target": [2, 3, 4]} for k in keys}
    entries["k5"] = None  # excluded by the index
    index = write_evaluation_index(tmp_path / "index.json", entries)
    bench = load_benchmark("re10k").with_image_size((24, 24))
    source = open_scenes(bench, tmp_path / "data", index_path=index)
    ids = list(reversed(source.scene_ids))  # any order: groups follow load()'s order
    serial = list(source.load(ids))
    assert len(serial) == len(ids) and any(s.status != "ok" for s in serial)
    assert len(source.load_groups(ids)) == 3
    _same_scenes(serial, list(iter_scenes(source, ids, num_workers=2)))
    _same_scenes(serial, list(iter_scenes(source, ids, num_workers=0)))


def test_worker_loader_yields_the_same_dl3dv_scenes_in_order(tmp_path):
    root = tmp_path / "scenes"
    entries = {}
    for name in ("a", "b", "c"):
        write_opencv_scene(root / name, 17, hw=(18, 32), scene_name=name)
        entries[name] = ([1, 3, 5, 9, 11, 13, 15, 2, 4, 6, 10, 12, 14, 7, 1, 3], list(range(1, 8)) * 4 + [9, 10, 11, 12])
    index = write_dl3dv_index(tmp_path / "index.json", entries)
    bench = load_benchmark("dl3dv-16").with_image_size((16, 32))
    source = open_scenes(bench, root, index_path=index, eval_home=tmp_path / "home")
    ids = source.scene_ids
    assert ids == ["a", "b", "c"]
    _same_scenes(list(source.load(ids)), list(iter_scenes(source, ids, num_workers=2)))


def test_record_writer_appends_every_record_in_order(tmp_path):
    path = tmp_path / "ranks" / "rank0.jsonl"
    writer = RecordWriter(path)
    for i in range(50):
        writer.append({"scene": f"s{i}", "status": "ok", "psnr": float(i)})
    writer.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["scene"] for x in lines] == [f"s{i}" for i in range(50)]


def test_record_writer_reraises_a_write_error(tmp_path):
    (tmp_path / "ranks").write_text("a file where the folder should be")
    writer = RecordWriter(tmp_path / "ranks" / "rank0.jsonl")
    writer.append({"scene": "s", "status": "ok"})
    with pytest.raises(OSError):
        writer.close()
