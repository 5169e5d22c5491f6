"""The evaluation harness (eval/): fetch from an offline Hub cache and a parquet mirror, runs on every
benchmark kind with fixtures in the real formats, resume, failed scenes, leaderboard, torchrun sharding.

Everything runs offline (HF_HUB_OFFLINE=1, set by conftest) on CPU with tiny images (32 px) and the
random-weight ``tiny`` preset or a small saved checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from eval import fetch as fetch_mod
from eval.cli import main as cli_main
from eval.fetch import DatasetAccessError, fetch, parquet_row_to_record
from eval.gs_baseline import GSConfig, optimise_scene, parse_spec
from eval.leaderboard import build_leaderboard, write_leaderboard
from eval.methods import CopyNearest, resolve_method
from eval.protocols import benchmark_names, load_benchmark, open_scenes
from eval.records import read_records
from eval.runner import RunOptions, run
from ilrm.cameras import Views
from ilrm.data.re10k import RE10KChunks, load_chunk
from ilrm.errors import ILRMInputError

from .fixtures_data import (
    make_re10k_record,
    write_benchmark_scene,
    write_dl3dv_index,
    write_evaluation_index,
)

REPO = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef0123456789abcdef01234567"
SIZE = (32, 32)


@pytest.fixture(autouse=True)
def _no_lpips_download(monkeypatch):
    monkeypatch.setenv("ILRM_LPIPS_FETCH", "0")  # never reach the registry from a test


# ---- fixtures --------------------------------------------------------------------------------------


def write_chunks(split_dir: Path, records: list[dict], per_chunk: int = 2) -> dict[str, str]:
    """pixelSplat chunks + index.json from scene records; returns {key: chunk name}."""
    split_dir.mkdir(parents=True, exist_ok=True)
    index = {}
    for start in range(0, len(records), per_chunk):
        name = f"{start // per_chunk:06d}.torch"
        torch.save(records[start : start + per_chunk], split_dir / name)
        index.update({r["key"]: name for r in records[start : start + per_chunk]})
    (split_dir / "index.json").write_text(json.dumps(index))
    return index


def hub_cache(cache: Path, repo_id: str, src: Path, sha: str = SHA, repo_type: str = "dataset") -> Path:
    """Put the files under ``src`` into a Hugging Face cache layout (blobs + snapshot symlinks +
    refs/main) as huggingface_hub would have downloaded them. Returns the snapshot folder."""
    base = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = base / "snapshots" / sha
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        data = f.read_bytes()
        blob = base / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / f.relative_to(src)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / "main").write_text(sha)
    return snapshot


KEYS = [f"scene{i}" for i in range(6)]


@pytest.fixture(scope="module")
def re10k(tmp_path_factory):
    """6 scenes in 3 chunks, scene3 corrupt (undecodable JPEGs); protocol index over them."""
    root = tmp_path_factory.mktemp("re10k")
    records = []
    for i, key in enumerate(KEYS):
        rec, _ = make_re10k_record(key, 10, scene_index=i)
        if key == "scene3":
            rec["images"] = [torch.tensor([1, 2, 3], dtype=torch.uint8)] * 10
        records.append(rec)
    write_chunks(root / "data" / "test", records)
    entries = {k: {"context": [1, 8], "target": [2, 5, 8]} for k in KEYS}
    entries["nullscene"] = None
    entries["notindata"] = {"context": [0, 1], "target": [0]}
    index = write_evaluation_index(root / "index.json", entries)
    return {"root": root, "data": root / "data", "index": index, "records": {r["key"]: r for r in records}}


def _run(tmp: Path, bench: str, model: str, **kw) -> dict:
    opts = RunOptions(benchmark=bench, model=model, out=tmp, progress=False,
                      eval_home=tmp.parent / "eval_home", **{"lpips": False, "image_size": SIZE, **kw})
    return run(opts).summary


def _table(out: Path) -> pd.DataFrame:
    df = pd.read_csv(out / "per_scene.csv")
    return df.drop(columns=["recon_time_s", "refine_time_s", "render_time_s", "peak_memory_mb", "rank"])


# ---- benchmarks as data ----------------------------------------------------------------------------


def test_benchmarks_are_data():
    assert set(benchmark_names()) == {"re10k", "dl3dv-32", "dl3dv-16", "procedural-2v", "procedural-8v"}
    re = load_benchmark("re10k")
    index = json.loads(re.index_path().read_text())
    assert re.expected_scenes == sum(v is not None for v in index.values()) == 6474
    assert (re.num_context, re.num_target, re.image_size, re.intrinsics) == (2, 3, (256, 256), "pixelsplat")
    dl = load_benchmark("dl3dv-32")
    assert len(json.loads(dl.index_path().read_text())) == dl.expected_scenes == 140
    assert dl.image_size == (544, 960) and load_benchmark("dl3dv-16").num_context == 16
    assert load_benchmark("procedural-8v").num_context == 8
    assert re.label == "re10k" and re.with_image_size((64, 64)).label == "re10k@64x64"
    with pytest.raises(ILRMInputError, match="unknown benchmark"):
        load_benchmark("nope")


# ---- fetch -----------------------------------------------------------------------------------------


def test_fetch_re10k_chunks_from_offline_cache(re10k, tmp_path):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # conftest: the tests never touch the network
    cache = tmp_path / "hub"
    snapshot = hub_cache(cache, "someone/re10k-mirror", re10k["data"])
    res = fetch("re10k", repo_id="someone/re10k-mirror", limit=3, cache_dir=cache, eval_home=tmp_path / "home",
                index_path=re10k["index"])
    m = res.manifest
    assert m["repo_id"] == "someone/re10k-mirror" and m["revision"] == "main" and m["revision_sha"] == SHA
    assert m["format"] == "chunks" and m["scenes"] == KEYS[:3]
    # only index.json and the two chunks that hold the first three protocol scenes
    assert m["allow_patterns"] == ["test/index.json", "test/000000.torch", "test/000001.torch"]
    assert res.data_root == snapshot and res.manifest_path.is_file()
    assert json.loads(res.manifest_path.read_text())["revision_sha"] == SHA
    # a missing chunk in the cache is an error, not a silent gap
    (snapshot / "test" / "000001.torch").unlink()
    with pytest.raises(ILRMInputError, match="chunk"):
        fetch("re10k", repo_id="someone/re10k-mirror", limit=3, cache_dir=cache, eval_home=tmp_path / "home",
              index_path=re10k["index"])
    with pytest.raises(ILRMInputError, match="no official Hub mirror"):
        fetch("re10k", eval_home=tmp_path / "home")


def _write_parquet(path: Path, records: list[dict]) -> None:
    import datasets

    rows = {
        "key": [r["key"] for r in records],
        "url": [r["url"] for r in records],
        "timestamps": [r["timestamps"].tolist() for r in records],
        "cameras": [r["cameras"].tolist() for r in records],
        "images": [[bytes(t.numpy().tobytes()) for t in r["images"]] for r in records],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows).to_parquet(str(path))


def test_fetch_parquet_mirror_with_datasets(re10k, tmp_path):
    recs = [re10k["records"][k] for k in KEYS if k != "scene3"]
    mirror = tmp_path / "mirror"
    _write_parquet(mirror / "data" / "test-00000-of-00002.parquet", recs[:3])
    _write_parquet(mirror / "data" / "test-00001-of-00002.parquet", recs[3:])
    _write_parquet(mirror / "data" / "train-00000-of-00001.parquet", recs[:1])  # another split: ignored
    home = tmp_path / "home"
    res = fetch("re10k", source=mirror, limit=2, eval_home=home, index_path=re10k["index"])
    assert res.manifest["format"] == "parquet" and res.manifest["scenes"] == ["scene0", "scene1"]
    assert res.manifest["converted"] == {"written": 2, "already_present": 0}
    assert sorted(res.manifest["parquet_files"]) == [f"data/test-0000{i}-of-00002.parquet" for i in (0, 1)]
    # resumable: a larger limit reads only the new scenes (scene3 is not in the mirror, so limit 4
    # takes scene0, 1, 2, 4 in protocol order)
    res = fetch("re10k", source=mirror, limit=4, eval_home=home, index_path=re10k["index"])
    assert res.manifest["scenes"] == ["scene0", "scene1", "scene2", "scene4"]
    assert res.manifest["converted"] == {"written": 2, "already_present": 2}
    # the written chunks hold the same records, JPEG bytes untouched
    index = json.loads((res.data_root / "test" / "index.json").read_text())
    assert sorted(index) == ["scene0", "scene1", "scene2", "scene4"]
    for key, chunk in index.items():
        got = next(r for r in load_chunk(res.data_root / "test" / chunk) if r["key"] == key)
        want = re10k["records"][key]
        assert all(torch.equal(a, b) for a, b in zip(got["images"], want["images"]))
        torch.testing.assert_close(got["cameras"], want["cameras"])
        assert torch.equal(got["timestamps"], want["timestamps"])
    examples = list(RE10KChunks(res.data_root, index_path=re10k["index"], image_size=SIZE))
    assert sorted(e.scene_id for e in examples) == ["scene0", "scene1", "scene2", "scene4"]
    # the same mirror as a Hub repo in the (offline) cache goes through the same datasets path
    cache = tmp_path / "hub"
    hub_cache(cache, "someone/re10k-parquet", mirror)
    res = fetch("re10k", repo_id="someone/re10k-parquet", limit=1, cache_dir=cache, eval_home=home,
                index_path=re10k["index"])
    assert res.manifest["format"] == "parquet" and res.manifest["revision_sha"] == SHA
    assert res.manifest["scenes"] == ["scene0"]
    with pytest.raises(ILRMInputError, match="images must be a list of JPEG bytes"):
        parquet_row_to_record({"key": "x", "cameras": [[0.0] * 18], "images": [123]})


def test_gated_repo_message(monkeypatch, tmp_path, capsys):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    response_cls = huggingface_hub.errors.HfHubHTTPError.__init__.__annotations__  # noqa: F841 (API check)
    http = pytest.importorskip("httpx2") if "httpx2" in sys.modules else pytest.importorskip("httpx")
    url = "https://huggingface.co/api/datasets/DL3DV/DL3DV-Benchmark/revision/main"
    response = http.Response(403, request=http.Request("GET", url))

    def refuse(*args, **kwargs):
        raise GatedRepoError("Access to dataset DL3DV/DL3DV-Benchmark is restricted.", response=response)

    monkeypatch.setattr(fetch_mod, "hub_offline", lambda: False)
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", refuse)
    with pytest.raises(DatasetAccessError) as err:
        fetch("dl3dv-32", limit=1, eval_home=tmp_path)
    msg = str(err.value)
    for part in ("https://huggingface.co/datasets/DL3DV/DL3DV-Benchmark", "request access", "HF_TOKEN",
                 "hf auth login", "HTTP 403", "CC BY-NC"):
        assert part in msg
    assert cli_main(["fetch", "dl3dv-32", "--limit", "1", "--eval-home", str(tmp_path)]) == 2
    assert "hf auth login" in capsys.readouterr().err


# ---- runs ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    """A small checkpoint in our format whose config asks for the RE10K pose quirk."""
    from ilrm import ILRM, ILRMConfig

    path = tmp_path_factory.mktemp("ckpt") / "tiny-quirk"
    torch.manual_seed(0)
    ILRM(ILRMConfig.preset("tiny", depth=2, width=128, pose_scale_before_recentre=True)).save_pretrained(path)
    return path


def test_run_re10k_checkpoint_failed_scene_and_leaderboard(re10k, saved_checkpoint, tmp_path):
    out = tmp_path / "re10k_tiny"
    s = _run(out, "re10k", str(saved_checkpoint), data_root=re10k["data"], index_path=re10k["index"], limit=4,
             save_images=True, lpips=True)
    assert s["protocol"] == "re10k[custom]@32x32"  # a test index: a custom protocol (issue 15)
    # the model's config decides the pose normalisation (RE10K quirk) and the summary says so
    assert s["data"]["scale_before_recentre"] is True and s["data"]["intrinsics"] == "pixelsplat"
    assert s["method"]["sha256"]["model.safetensors"] and s["method"]["arch"] == "ilrm"
    assert s["scenes"]["evaluated"] == 3 and s["scenes"]["requested"] == 4
    assert s["scenes"]["failed"][0]["scene"] == "scene3" and s["scenes"]["failed"][0]["reason"]
    assert s["data"]["num_missing"] == 1 and s["data"]["missing"] == ["notindata"]
    assert s["environment"]["dtype"] == "fp32" and "git_commit" in s["environment"]
    assert s["timing"]["recon_time_s_mean"] > 0
    scenes = pd.read_csv(out / "per_scene.csv")
    assert scenes["scene"].tolist() == KEYS[:4] and (scenes["protocol"] == "re10k[custom]@32x32").all()
    assert scenes.set_index("scene").loc["scene3", "status"] == "failed"
    ok = scenes[scenes.status == "ok"]
    assert s["metrics"]["psnr"] == pytest.approx(ok["psnr"].mean())  # failed scene excluded
    views = pd.read_csv(out / "per_view.csv")
    assert len(views) == 9 and views["frame"].tolist()[:3] == [2, 5, 8]
    assert views.groupby("scene")["psnr"].mean().to_dict() == pytest.approx(ok.set_index("scene")["psnr"].to_dict())
    if isinstance(s["metrics"]["lpips"], float):  # backbone cached on this machine
        assert views["lpips"].notna().all()
    else:
        assert s["metrics"]["lpips"] == "n/a" and s["metrics"]["lpips_reason"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["scene0.png", "scene1.png", "scene2.png"]
    from PIL import Image

    assert Image.open(out / "images" / "scene0.png").size == (4 * 32, 3 * 32)  # input|target|render|error

    # leaderboard: measured rows next to the published ones, protocol on every row
    lb = tmp_path / "lb"
    paths = write_leaderboard([out], lb, include_published="all")  # a custom protocol matches no published row
    df = pd.read_csv(paths["csv"])
    assert set(df["kind"]) == {"measured", "published"}
    assert df["protocol"].notna().all() and {"re10k", "re10k[custom]@32x32"} <= set(df["protocol"])
    assert "pixelSplat" in df["method"].tolist() and "iLRM (tiny-quirk)" in df["method"].tolist()
    assert "n/a (not reported)" in df["LPIPS"].tolist()  # Long-LRM's published row
    assert "3 of 6474 (subset), 1 failed, 0 skipped" in df["scenes"].tolist()
    md = paths["md"].read_text()
    assert "| measured |" in md and "| published |" in md and "iLRM paper v1, Table 1" in md
    assert "<table" in paths["html"].read_text()


def test_run_resume_never_double_counts(re10k, tmp_path):
    out = tmp_path / "copy"
    kw = dict(data_root=re10k["data"], index_path=re10k["index"])
    full = _run(out, "re10k", "copy-nearest", **kw)
    assert full["scenes"]["evaluated"] == 5 and [f["scene"] for f in full["scenes"]["failed"]] == ["scene3"]
    table = _table(out)
    rank_file = out / "ranks" / "rank000.jsonl"
    lines = rank_file.read_text().splitlines()
    assert len(lines) == 6
    # Simulate a run killed mid-way: scene4 and scene5 never finished, the last line is torn.
    kept = [ln for ln in lines if json.loads(ln)["scene"] not in ("scene4", "scene5")]
    rank_file.write_text("\n".join(kept) + "\n" + lines[-1][: len(lines[-1]) // 2])
    (out / "per_scene.csv").unlink()
    again = _run(out, "re10k", "copy-nearest", **kw)
    new = [json.loads(ln) for ln in rank_file.read_text().splitlines()[len(kept) + 1 :]]
    # only the unfinished scenes and the failed one are evaluated again
    assert sorted(r["scene"] for r in new) == ["scene3", "scene4", "scene5"]
    pd.testing.assert_frame_equal(_table(out), table)
    assert again["metrics"]["psnr"] == pytest.approx(full["metrics"]["psnr"])
    assert len(read_records(out)) == 6
    # a different run into the same folder is refused
    with pytest.raises(ILRMInputError, match="another run"):
        _run(out, "re10k", "preset:tiny", **kw)


def test_metric_values_equal_a_hand_computation(re10k, tmp_path):
    """Per-view PSNR / SSIM and the summary's means, recomputed here from the images the protocol
    defines: copy-nearest's render is the context photo whose camera centre is closest."""
    from skimage.metrics import structural_similarity

    out = tmp_path / "hand"
    s = _run(out, "re10k", "copy-nearest", data_root=re10k["data"], index_path=re10k["index"], limit=3)
    views = pd.read_csv(out / "per_view.csv").set_index(["scene", "frame"])
    source = open_scenes(load_benchmark("re10k").with_image_size(SIZE), re10k["data"], index_path=re10k["index"],
                         limit=3)
    scene_means = []
    for loaded in source.load(source.scene_ids):
        ctx, tgt = loaded.example.context, loaded.example.target
        centres = ctx.c2w[0, :, :3, 3].double().numpy()
        values = []
        for j, frame in enumerate(loaded.target_frames):
            nearest = int(np.argmin(np.linalg.norm(centres - tgt.c2w[0, j, :3, 3].double().numpy(), axis=1)))
            render = ctx.images[0, nearest].double().numpy()
            target = tgt.images[0, j].double().numpy()
            mse = np.mean((np.clip(render, 0, 1) - target) ** 2)  # over pixels and channels
            psnr = np.inf if mse == 0 else -10 * np.log10(mse)
            ssim = structural_similarity(target.astype(np.float32), render.astype(np.float32), channel_axis=0,
                                         win_size=11, gaussian_weights=True, data_range=1.0)
            row = views.loc[(loaded.scene_id, frame)]
            assert row["psnr"] == pytest.approx(psnr, abs=1e-4), (loaded.scene_id, frame)
            assert row["ssim"] == pytest.approx(ssim, abs=1e-6), (loaded.scene_id, frame)
            values.append(min(psnr, 100.0))  # exact copies count as 100 dB in the means (documented)
        scene_means.append(np.mean(values))
    assert len(scene_means) == 3 == s["scenes"]["evaluated"]
    assert s["metrics"]["psnr"] == pytest.approx(np.mean(scene_means), abs=1e-6)


def test_copy_nearest_picks_closest_camera():
    c2w = torch.eye(4).repeat(1, 3, 1, 1)
    c2w[0, :, 0, 3] = torch.tensor([0.0, 1.0, 2.0])
    target = torch.eye(4).repeat(1, 2, 1, 1)
    target[0, :, 0, 3] = torch.tensor([1.9, 0.4])
    K = torch.eye(3).repeat(1, 3, 1, 1)
    images = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(1, 3, 3, 4, 4)
    ctx = Views(images, K, c2w)
    tgt = Views(torch.zeros(1, 2, 3, 4, 4), K[:, :2], target)
    assert CopyNearest.nearest(ctx, tgt) == [2, 0]
    assert CopyNearest().render(ctx, tgt)[:, 0, 0, 0].tolist() == [2.0, 0.0]


def test_run_dl3dv_raw_layout_from_offline_hub(tmp_path):
    raw = tmp_path / "raw"
    names = ["a" * 64, "b" * 64, "c" * 64]
    write_benchmark_scene(raw / names[0], 9)
    write_benchmark_scene(raw / names[1], 3, full_wh=(360, 640), image_wh=(180, 320))  # portrait: skipped
    write_benchmark_scene(raw / names[2], 9)
    (raw / "README.md").write_text("not needed")
    index = write_dl3dv_index(tmp_path / "kmeans.json", {n: ([1, 3], [1, 3, 6]) for n in names})
    cache = tmp_path / "hub"
    snapshot = hub_cache(cache, "DL3DV/DL3DV-Benchmark", raw)
    home = tmp_path / "home"
    res = fetch("dl3dv-32", limit=3, cache_dir=cache, eval_home=home, index_path=index)
    m = res.manifest
    assert m["repo_id"] == "DL3DV/DL3DV-Benchmark" and m["revision_sha"] == SHA and m["snapshot"] == str(snapshot)
    assert f"{names[0]}/nerfstudio/images_4/*" in m["allow_patterns"] and "README.md" not in m["allow_patterns"]
    assert m["conversion"]["skipped_portrait"] == [names[1]]
    assert (res.data_root / names[0] / "opencv_cameras.json").is_file()
    # run on the raw folder directly (converted into the eval home cache) with the tiny model
    s = _run(tmp_path / "out", "dl3dv-32", "preset:tiny", data_root=raw, index_path=index, image_size=(32, 64))
    assert s["protocol"] == "dl3dv-32[custom]@32x64" and s["data"]["scale_before_recentre"] is False
    assert s["scenes"]["evaluated"] == 2
    assert s["scenes"]["skipped"][0]["scene"] == names[1] and "portrait" in s["scenes"]["skipped"][0]["reason"]
    views = pd.read_csv(tmp_path / "out" / "per_view.csv")
    assert views[views.scene == names[0]]["frame"].tolist() == [0, 8]  # every 8th frame
    rec = read_records(tmp_path / "out")[names[0]]
    assert rec["context_frames"] == [1, 3, 6] and rec["num_context"] == 3


def test_run_procedural_models_and_3dgs(tmp_path):
    s = _run(tmp_path / "tiny", "procedural-2v", "preset:tiny", limit=1, refine_steps=1)
    assert s["protocol"] == "procedural-2v@32x32" and s["scenes"]["evaluated"] == 1
    assert s["method"]["label"] == "iLRM (preset:tiny, random weights) + 1 refinement steps" and s["timing"]["refine_time_s_mean"] > 0
    gs = _run(tmp_path / "gs", "procedural-2v", "3dgs:2:depth", limit=1)
    assert gs["method"]["label"] == "3DGS per scene, 2 steps (oracle depth init)"
    assert read_records(tmp_path / "gs")["proc-1000000000"]["gs_init"] == "depth"
    cn = _run(tmp_path / "cn", "procedural-8v", "copy-nearest", limit=1)
    assert cn["scenes"]["evaluated"] == 1 and read_records(tmp_path / "cn")["proc-1000000000"]["num_context"] == 8
    with pytest.raises(ILRMInputError, match="feed-forward"):
        resolve_method("copy-nearest", load_benchmark("re10k"), device=torch.device("cpu"), dtype=None,
                       refine_steps=3)
    with pytest.raises(ILRMInputError, match="not the full-attention"):
        resolve_method("full-attention:preset:tiny", load_benchmark("re10k"), device=torch.device("cpu"), dtype=None)


def test_gs_baseline_fits_context_views():
    from ilrm.data.procedural import ProceduralConfig, ProceduralScenes

    ex, depth, _ = ProceduralScenes(ProceduralConfig(height=16, width=16, num_target=1), split="test",
                                    num_scenes=1).example(0, with_depth=True)
    result = optimise_scene(ex.context, GSConfig(steps=6, points_per_view=48, init="depth"), depth=depth)
    assert result.init == "depth" and len(result.losses) == 6 and result.time_s > 0
    assert result.losses[-1] < result.losses[0]
    assert result.gaussians.means.shape == (1, 96, 3)
    assert parse_spec("3dgs:500") == GSConfig(steps=500)
    with pytest.raises(ILRMInputError):
        parse_spec("3dgs:many")


def test_cli_run_and_leaderboard(re10k, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli_main(["run", "--benchmark", "re10k", "--model", "copy-nearest", "--out", str(out), "--limit", "2",
                     "--data-root", str(re10k["data"]), "--index", str(re10k["index"]), "--image-size", "32", "32",
                     "--no-lpips", "--no-progress", "--eval-home", str(tmp_path / "home")])
    assert code == 0
    text = capsys.readouterr().out
    assert "re10k[custom]@32x32 | copy nearest context view | PSNR" in text and "LPIPS n/a" in text
    assert cli_main(["leaderboard", str(out), "--out", str(tmp_path / "lb"), "--published", "none"]) == 0
    df = build_leaderboard([out], include_published="none")
    assert df["kind"].tolist() == ["measured"] and df["LPIPS"].iloc[0].startswith("n/a (LPIPS disabled")
    assert cli_main(["run", "--benchmark", "re10k", "--model", "copy-nearest", "--out", str(tmp_path / "x"),
                     "--eval-home", str(tmp_path / "empty")]) == 2
    assert "python -m eval fetch re10k" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_two_ranks_match_one_process(re10k, tmp_path):
    pytest.importorskip("torch.distributed")
    single = tmp_path / "single"
    _run(single, "re10k", "copy-nearest", data_root=re10k["data"], index_path=re10k["index"])
    sharded = tmp_path / "sharded"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "eval", "run",
           "--benchmark", "re10k", "--model", "copy-nearest", "--out", str(sharded), "--data-root",
           str(re10k["data"]), "--index", str(re10k["index"]), "--image-size", "32", "32", "--no-lpips",
           "--no-progress", "--device", "cpu", "--eval-home", str(tmp_path / "home"), "--no-strict"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # scene i went to rank i % 2, and rank 0 merged both files into the same table
    ranks = {r["scene"]: r["rank"] for r in read_records(sharded).values()}
    assert ranks == {k: i % 2 for i, k in enumerate(KEYS)}
    pd.testing.assert_frame_equal(_table(sharded), _table(single), check_exact=False, atol=1e-6)
    s1 = json.loads((single / "summary.json").read_text())
    s2 = json.loads((sharded / "summary.json").read_text())
    assert s2["environment"]["world_size"] == 2
    assert s2["metrics"]["psnr"] == pytest.approx(s1["metrics"]["psnr"])


def test_open_scenes_needs_data(tmp_path):
    with pytest.raises(ILRMInputError, match="fetch"):
        open_scenes(load_benchmark("re10k"), None)
    empty = tmp_path / "empty" / "test"
    empty.mkdir(parents=True)
    (empty / "x.torch").write_bytes(b"")
    with pytest.raises(ILRMInputError, match="index.json"):
        open_scenes(load_benchmark("re10k"), tmp_path / "empty")
    assert np.isfinite(0.0) and shutil.which("git") is not None


def test_fast_paths_are_part_of_the_run_identity(re10k, saved_checkpoint, tmp_path):
    """--fast-paths changes the numbers on CUDA, so a run folder holds one setting: another is refused,
    the label says which, and a folder written before the setting existed resumes as "default"."""
    out = tmp_path / "fp"
    kw = dict(data_root=re10k["data"], index_path=re10k["index"], limit=2, device="cpu")
    s = _run(out, "re10k", str(saved_checkpoint), fast_paths="fp8", **kw)
    assert s["method"]["label"] == "iLRM (tiny-quirk) [fp8]"
    assert json.loads((out / "run_config.json").read_text())["fast_paths"] == "fp8"
    with pytest.raises(ILRMInputError, match="fast_paths"):
        _run(out, "re10k", str(saved_checkpoint), **kw)
    with pytest.raises(ILRMInputError, match="--fast-paths must be one of"):
        _run(tmp_path / "bad", "re10k", str(saved_checkpoint), fast_paths="fp4", **kw)
    # an older folder: run_config.json without the key resumes with the default setting
    old = tmp_path / "old"
    _run(old, "re10k", str(saved_checkpoint), **kw)
    cfg = json.loads((old / "run_config.json").read_text())
    del cfg["fast_paths"]
    (old / "run_config.json").write_text(json.dumps(cfg))
    again = _run(old, "re10k", str(saved_checkpoint), **kw)
    assert again["scenes"]["evaluated"] == 2
