"""Issue 15: evaluation a reviewer can trust — runs that cannot mix, protocols that are enforced (or
labelled custom), incomplete scenes that fail and are retried, and provenance down to file hashes.

Offline, CPU, 32 px images, tiny models (as tests/test_eval_harness.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from eval.cli import main as cli_main
from eval.fetch import fetch
from eval.leaderboard import build_leaderboard, write_leaderboard
from eval.protocols import load_benchmark
from eval.records import read_records
from eval.runner import RunOptions, run
from ilrm.errors import ILRMInputError

from .fixtures_data import make_re10k_record, write_dl3dv_index, write_evaluation_index, write_opencv_scene
from .test_eval_harness import write_chunks

SIZE = (32, 32)
KEYS = [f"s{i}" for i in range(5)]


@pytest.fixture(autouse=True)
def _no_lpips_download(monkeypatch):
    monkeypatch.setenv("ILRM_LPIPS_FETCH", "0")


def make_data(root: Path, *, short: str | None = None, frames: int = 10) -> Path:
    """5 scenes, 2 per chunk; ``short`` has only 5 frames (the index needs frame 8: incomplete data)."""
    records = [make_re10k_record(k, 5 if k == short else frames, scene_index=i)[0] for i, k in enumerate(KEYS)]
    write_chunks(root / "test", records)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("trust")
    root = make_data(base / "data")
    index = write_evaluation_index(base / "index.json", {k: {"context": [1, 8], "target": [2, 5, 7]} for k in KEYS})
    return {"base": base, "root": root, "index": index}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from ilrm import ILRM, ILRMConfig

    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    torch.manual_seed(0)
    ILRM(ILRMConfig.preset("tiny", depth=1, width=64)).save_pretrained(path)
    return path


def _opts(out: Path, model: str, **kw) -> RunOptions:
    return RunOptions(benchmark=kw.pop("benchmark", "re10k"), model=model, out=out, progress=False,
                      eval_home=out.parent / "eval_home", **{"lpips": False, "image_size": SIZE, **kw})


def _run(out: Path, model: str, **kw) -> dict:
    return run(_opts(out, model, **kw)).summary


# ---- defect 1: a rerun into the same --out cannot mix models or data ---------------------------------


def test_rerun_with_other_weights_or_data_refuses_to_mix(data, checkpoint, tmp_path):
    from ilrm import ILRM, ILRMConfig

    ckpt = tmp_path / "ckpt"
    shutil.copytree(checkpoint, ckpt)
    out = tmp_path / "out"
    kw = dict(data_root=data["root"], index_path=data["index"])
    s = _run(out, str(ckpt), limit=2, **kw)
    weights = s["method"]["weights_sha256"]
    assert isinstance(weights, str) and len(weights) == 64
    recs = read_records(out)
    assert {r["weights_sha256"] for r in recs.values()} == {weights}
    assert all(len(r["data_sha256"]) == 64 for r in recs.values())
    # same weights, same data: resuming is fine
    _run(out, str(ckpt), limit=3, **kw)
    # other weights at the same path: refused
    torch.manual_seed(1)
    ILRM(ILRMConfig.preset("tiny", depth=1, width=64)).save_pretrained(ckpt)
    with pytest.raises(ILRMInputError, match="weights"):
        _run(out, str(ckpt), limit=4, **kw)
    shutil.rmtree(ckpt)
    shutil.copytree(checkpoint, ckpt)
    # other data (scene s0 re-encoded) under another root: refused too
    other = tmp_path / "other"
    shutil.copytree(data["root"], other)
    recs0 = [make_re10k_record(k, 10, scene_index=i + 7)[0] for i, k in enumerate(KEYS[:2])]
    torch.save(recs0, other / "test" / "000000.torch")
    with pytest.raises(ILRMInputError, match="data"):
        _run(out, str(ckpt), limit=4, data_root=other, index_path=data["index"])
    # --overwrite starts again
    s2 = _run(out, str(ckpt), limit=2, data_root=other, index_path=data["index"], overwrite=True)
    assert s2["scenes"]["evaluated"] == 2 and len(read_records(out)) == 2


# ---- defects 2 and 3: protocol view counts enforced, other indexes labelled custom ---------------------


def test_protocol_check_of_the_shipped_indexes_and_of_bad_ones(tmp_path):
    from eval.protocols import check_protocol

    for name in ("re10k", "dl3dv-16", "dl3dv-32"):
        assert check_protocol(load_benchmark(name)) == [], name
    dl = load_benchmark("dl3dv-16")
    official = json.loads(dl.index_path().read_text())
    few = [{**e, "fold_8_kmeans_16_input": e["fold_8_kmeans_16_input"][:4]} for e in official]
    (tmp_path / "few.json").write_text(json.dumps(few))
    problems = check_protocol(dl, tmp_path / "few.json")
    assert any("not the protocol's index" in p for p in problems)
    assert any("4 input views" in p and "16" in p for p in problems)
    overlap = [{**e, "fold_8_kmeans_16_input": [0] + e["fold_8_kmeans_16_input"][1:]} for e in official]
    (tmp_path / "overlap.json").write_text(json.dumps(overlap))
    assert any("disjoint" in p for p in check_protocol(dl, tmp_path / "overlap.json"))
    re10k = load_benchmark("re10k")
    idx = write_evaluation_index(tmp_path / "re.json", {"a": {"context": [0, 1, 2], "target": [3]}})
    assert any("3 input views" in p for p in check_protocol(re10k, idx))


def test_dl3dv_with_few_inputs_is_labelled_custom(tmp_path):
    root = tmp_path / "dl3dv"
    write_opencv_scene(root / "x", 9, hw=(36, 64))
    index = write_dl3dv_index(tmp_path / "idx.json", {"x": ([1, 3, 5, 6], [1, 2, 3, 5, 6, 7])})
    s16 = _run(tmp_path / "o16", "copy-nearest", benchmark="dl3dv-16", data_root=root, index_path=index,
               image_size=(32, 64))
    s32 = _run(tmp_path / "o32", "copy-nearest", benchmark="dl3dv-32", data_root=root, index_path=index,
               image_size=(32, 64))
    assert s16["protocol"] == "dl3dv-16[custom]@32x64" and s32["protocol"] == "dl3dv-32[custom]@32x64"
    assert s16["protocol_check"]["standard"] is False
    assert any("4 input views" in v for v in s16["protocol_check"]["violations"])
    df = build_leaderboard([tmp_path / "o16", tmp_path / "o32"])
    assert set(df["kind"]) == {"measured"}  # not beside the published 16/32-view rows


def test_index_override_is_labelled_custom(data, tmp_path):
    out = tmp_path / "cn"
    s = _run(out, "copy-nearest", data_root=data["root"], index_path=data["index"], limit=2)
    assert s["protocol"] == "re10k[custom]@32x32"
    assert any("not the protocol's index" in v for v in s["protocol_check"]["violations"])
    lb = write_leaderboard([out], tmp_path / "lb")
    df = pd.read_csv(lb["csv"])
    assert df["kind"].tolist() == ["measured"]  # no published RE10K rows next to it
    assert "custom protocol" in lb["md"].read_text()


# ---- defect 4 and 12: run after fetch --index / --limit; exit codes ------------------------------------


def test_run_after_fetch_uses_the_recorded_index_and_scenes(data, tmp_path, capsys):
    home = tmp_path / "home"
    fetch("re10k", source=data["root"], index_path=data["index"], limit=3, eval_home=home)
    out = tmp_path / "out"
    s = run(RunOptions(benchmark="re10k", model="copy-nearest", out=out, progress=False, eval_home=home,
                       lpips=False, image_size=SIZE)).summary
    assert s["scenes"]["evaluated"] == 3 and s["scenes"]["requested"] == 3  # fetch --limit 3: 3 scenes, not 4
    assert s["data"]["index_file"] == str(data["index"])
    # nothing evaluated: non-zero exit, and the leaderboard refuses the empty row
    code = cli_main(["run", "--benchmark", "re10k", "--model", "copy-nearest", "--out", str(tmp_path / "empty"),
                     "--data-root", str(data["root"]), "--image-size", "32", "32", "--no-lpips", "--no-progress",
                     "--eval-home", str(tmp_path / "nohome")])
    assert code != 0
    assert "no scene was evaluated" in capsys.readouterr().err
    with pytest.raises(ILRMInputError, match="no evaluated scenes"):
        build_leaderboard([tmp_path / "empty"])


def test_failed_scenes_exit_non_zero_strict_by_default_on_full_runs(tmp_path, capsys):
    root = make_data(tmp_path / "data", short="s1")
    index = write_evaluation_index(tmp_path / "index.json", {k: {"context": [1, 8], "target": [2, 5, 7]} for k in KEYS})
    args = ["run", "--benchmark", "re10k", "--model", "copy-nearest", "--data-root", str(root), "--index", str(index),
            "--image-size", "32", "32", "--no-lpips", "--no-progress", "--eval-home", str(tmp_path / "home")]
    assert cli_main([*args, "--out", str(tmp_path / "full")]) != 0  # full run, a failed scene
    assert "s1" in capsys.readouterr().err
    assert cli_main([*args, "--out", str(tmp_path / "part"), "--limit", "3"]) == 0  # partial: not strict
    assert cli_main([*args, "--out", str(tmp_path / "part2"), "--limit", "3", "--strict"]) != 0
    assert cli_main([*args, "--out", str(tmp_path / "full2"), "--no-strict"]) == 0


# ---- defect 7: incomplete scenes are failed (with the reason) and retried -------------------------------


def test_incomplete_scene_is_failed_and_retried_after_repair(tmp_path):
    root = make_data(tmp_path / "data", short="s4")  # s4: alone in its chunk
    index = write_evaluation_index(tmp_path / "index.json", {k: {"context": [1, 8], "target": [2, 5, 7]} for k in KEYS})
    out = tmp_path / "out"
    s = _run(out, "copy-nearest", data_root=root, index_path=index)
    assert [f["scene"] for f in s["scenes"]["failed"]] == ["s4"] and s["scenes"]["skipped"] == []
    assert "incomplete" in s["scenes"]["failed"][0]["reason"]
    # leaderboard shows the failed and skipped counts
    df = build_leaderboard([out], include_published="none")
    assert "1 failed" in df["scenes"].iloc[0] and "0 skipped" in df["scenes"].iloc[0]
    make_data(root)  # repaired: s4's chunk rewritten whole; the other chunks are the same bytes
    s = _run(out, "copy-nearest", data_root=root, index_path=index)
    assert s["scenes"]["evaluated"] == 5 and s["scenes"]["failed"] == []


def test_dl3dv_truncated_frame_list_fails_with_expected_count(tmp_path):
    root = tmp_path / "dl3dv"
    write_opencv_scene(root / "x", 17, hw=(36, 64))
    cams = json.loads((root / "x" / "opencv_cameras.json").read_text())
    cams["frames"] = cams["frames"][:9]  # 17 images on disk, 9 listed: targets 0, 8 instead of 0, 8, 16
    (root / "x" / "opencv_cameras.json").write_text(json.dumps(cams))
    write_opencv_scene(root / "y", 17, hw=(36, 64))
    index = write_dl3dv_index(tmp_path / "idx.json", {"x": ([1, 3], [1, 3]), "y": ([1, 3], [1, 3])})
    s = _run(tmp_path / "out", "copy-nearest", benchmark="dl3dv-16", data_root=root, index_path=index,
             image_size=(32, 64))
    assert s["scenes"]["evaluated"] == 1
    assert [f["scene"] for f in s["scenes"]["failed"]] == ["x"]
    reason = s["scenes"]["failed"][0]["reason"]
    assert "2 target views" in reason and "expected 3" in reason
    assert read_records(tmp_path / "out")["y"]["expected_num_target"] == 3


# ---- defect 10: lossless renders at the evaluated size ------------------------------------------------


def test_save_renders_lossless_with_hashes(data, tmp_path):
    out = tmp_path / "r"
    _run(out, "copy-nearest", data_root=data["root"], index_path=data["index"], limit=1, save_renders=True)
    rec = read_records(out)["s0"]
    path = out / rec["renders"]["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["renders"]["sha256"]
    renders = np.load(path)["renders"]
    assert renders.shape == (3, 3, *SIZE) and renders.dtype == np.float32
    # re-scored from the saved file: the recorded PSNR exactly
    from eval.protocols import open_scenes

    src = open_scenes(load_benchmark("re10k").with_image_size(SIZE), data["root"], index_path=data["index"], limit=1)
    gt = next(iter(src.load(["s0"]))).example.target.images[0].numpy()
    mse = ((np.clip(renders, 0, 1) - gt) ** 2).reshape(3, -1).mean(1)
    psnr = np.minimum(-10 * np.log10(np.maximum(mse, 1e-30)), 100.0)
    assert rec["psnr"] == pytest.approx(float(psnr.mean()), abs=1e-4)


# ---- defect 11: --overwrite removes the previous run's images -----------------------------------------


def test_overwrite_removes_previous_images(data, tmp_path):
    out = tmp_path / "o"
    _run(out, "copy-nearest", data_root=data["root"], index_path=data["index"], limit=2, save_images=True,
         save_renders=True)
    assert len(list((out / "images").iterdir())) == 2
    _run(out, "preset:tiny", data_root=data["root"], index_path=data["index"], limit=1, overwrite=True)
    assert not (out / "images").exists() or not any((out / "images").iterdir())
    assert not (out / "renders").exists() or not any((out / "renders").iterdir())
    assert list(read_records(out)) == ["s0"]


# ---- defect 12: misleading reasons and labels ---------------------------------------------------------


def test_chunk_named_by_index_but_absent_says_so(data, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(data["root"], root)
    (root / "test" / "000001.torch").unlink()
    s = _run(tmp_path / "o", "copy-nearest", data_root=root, index_path=data["index"])
    reasons = {f["scene"]: f["reason"] for f in s["scenes"]["failed"]}
    assert set(reasons) == {"s2", "s3"}
    assert "000001.torch" in reasons["s2"] and "not on disk" in reasons["s2"]


def test_preset_rows_say_random_weights(data, tmp_path):
    s = _run(tmp_path / "p", "preset:tiny", data_root=data["root"], index_path=data["index"], limit=1)
    assert "random weights" in s["method"]["label"]


def test_git_commit_env_is_recorded_next_to_git(monkeypatch):
    from eval.provenance import git_state

    monkeypatch.delenv("ILRM_GIT_COMMIT", raising=False)
    plain = git_state()
    monkeypatch.setenv("ILRM_GIT_COMMIT", "f" * 40)
    state = git_state()
    assert state["env_commit"] == "f" * 40 and state["git_commit"] == plain["commit"]
    assert state["commit_source"].startswith("ILRM_GIT_COMMIT")
    if plain["commit"]:
        assert "differs" in state["commit_source"] and state["dirty"] == plain["dirty"]


# ---- provenance a reviewer can check ------------------------------------------------------------------


def test_summary_names_data_hashes_weights_and_versions(data, checkpoint, tmp_path):
    s = _run(tmp_path / "pv", str(checkpoint), data_root=data["root"], index_path=data["index"], limit=3)
    files = s["data"]["files"]
    for rel in ("test/index.json", "test/000000.torch", "test/000001.torch"):
        assert files[rel] == "sha256:" + hashlib.sha256((data["root"] / rel).read_bytes()).hexdigest()
    assert "test/000002.torch" not in files  # only files read
    assert s["data"]["index_sha256"] == hashlib.sha256(data["index"].read_bytes()).hexdigest()
    assert s["method"]["weights_sha256"] and all(
        r["weights_sha256"] == s["method"]["weights_sha256"] for r in read_records(tmp_path / "pv").values()
    )
    env = s["environment"]
    for lib in ("PIL", "scikit-image", "opencv", "lpips", "numpy", "torch", "gsplat"):
        assert lib in env["versions"], lib
    assert env["versions"]["numpy"] == np.__version__
    assert "gpu_name" in env and "git_commit_source" in env
    backbone = env["lpips_backbone"]  # which LPIPS backbone ran, or why none did
    assert backbone.get("content_sha256") if backbone.get("available") else backbone.get("reason")


def test_hub_cache_files_are_named_by_their_etag(tmp_path):
    from eval.provenance import file_digest

    blob_data = b"chunk bytes"
    sha = hashlib.sha256(blob_data).hexdigest()
    blobs = tmp_path / "datasets--a--b" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / sha).write_bytes(blob_data)
    snap = tmp_path / "datasets--a--b" / "snapshots" / ("0" * 40) / "test"
    snap.mkdir(parents=True)
    (snap / "000000.torch").symlink_to(blobs / sha)
    assert file_digest(snap / "000000.torch") == f"sha256:{sha}"
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"xyz")
    assert file_digest(plain) == "sha256:" + hashlib.sha256(b"xyz").hexdigest()
