"""The harness and Hub model ids without a network (issue 15, defects 5 and 8).

"No network" is simulated at huggingface_hub's HTTP layer: its client raises the real connection
error of its HTTP library (``ConnectError``), with ``HF_HUB_OFFLINE`` unset, as on a machine whose
network is down. One test runs the CLI in a subprocess against a closed local port instead, so the
error comes from a real refused connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eval.fetch import fetch, hub_errors
from ilrm import ILRM, ILRMConfig
from ilrm.checkpoints import load_model
from ilrm.errors import ILRMInputError

from .fixtures_data import make_re10k_record, write_evaluation_index
from .test_eval_harness import hub_cache

REPO = Path(__file__).resolve().parents[1]
SHA = "89abcdef0123456789abcdef0123456789abcdef"
KEYS = ["sceneA", "sceneB", "sceneC"]


@pytest.fixture(autouse=True)
def _no_lpips_download(monkeypatch):
    monkeypatch.setenv("ILRM_LPIPS_FETCH", "0")


def _write_chunks(split_dir: Path, keys: list[str]) -> None:
    split_dir.mkdir(parents=True, exist_ok=True)
    records = [make_re10k_record(k, 6, scene_index=i, hw=(36, 64), left_strip=12)[0] for i, k in enumerate(keys)]
    index = {}
    for start in range(0, len(records), 2):
        name = f"{start // 2:06d}.torch"
        torch.save(records[start : start + 2], split_dir / name)
        index.update({r["key"]: name for r in records[start : start + 2]})
    (split_dir / "index.json").write_text(json.dumps(index))


@pytest.fixture(scope="module")
def re10k(tmp_path_factory):
    root = tmp_path_factory.mktemp("re10k_offline")
    _write_chunks(root / "data" / "test", KEYS)
    index = write_evaluation_index(root / "index.json", {k: {"context": [0, 5], "target": [1, 3]} for k in KEYS})
    return {"data": root / "data", "index": index}


@pytest.fixture
def no_network(monkeypatch):
    """HF_HUB_OFFLINE unset, and every request of huggingface_hub fails with its HTTP library's real
    ConnectError (the exception a machine without network raises). Back-off sleeps are skipped."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    httpx = getattr(_http, "httpx2", None) or _http.httpx
    calls: list[str] = []

    def refuse(request):
        calls.append(f"{request.method} {request.url}")
        raise httpx.ConnectError("[Errno 101] Network is unreachable", request=request)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    monkeypatch.setattr(_http.time, "sleep", lambda s: None)
    _http.set_client_factory(lambda: httpx.Client(transport=httpx.MockTransport(refuse)))
    yield calls
    _http.set_client_factory(_http.default_client_factory)


# ---- defect 5: a --source under a path with a .cache component --------------------------------------


def test_source_folder_under_a_dot_cache_path(re10k, tmp_path):
    src = tmp_path / ".cache" / "datasets" / "re10k-copy"  # e.g. ~/.cache/...
    _write_chunks(src / "test", KEYS)
    (src / ".cache" / "huggingface").mkdir(parents=True)  # a local_dir download's own metadata
    (src / ".cache" / "huggingface" / "test.lock").write_text("")
    res = fetch("re10k", source=src, index_path=re10k["index"], eval_home=tmp_path / "home")
    m = res.manifest
    assert m["format"] == "chunks" and m["scenes"] == KEYS
    assert "test/index.json" in m["files"] and "test/000000.torch" in m["files"]
    assert not any(".cache" in Path(f).parts for f in m["files"])  # inside the source, .cache is still skipped


# ---- defect 8: offline and no-network paths ---------------------------------------------------------


def test_offline_message_is_reachable():
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    with pytest.raises(ILRMInputError, match="cannot be reached") as info, hub_errors("someone/mirror"):
        raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")
    assert "hf download someone/mirror" in str(info.value)
    with pytest.raises(ILRMInputError, match="a file the protocol needs is not in"), hub_errors("someone/mirror"):
        raise EntryNotFoundError("404")


def test_fetch_without_network_uses_the_cached_refs(re10k, tmp_path, no_network):
    cache = tmp_path / "hub"
    snapshot = hub_cache(cache, "someone/re10k-mirror", re10k["data"], sha=SHA)
    res = fetch("re10k", repo_id="someone/re10k-mirror", cache_dir=cache, eval_home=tmp_path / "home",
                index_path=re10k["index"])
    assert no_network  # the Hub was asked, and could not be reached
    m = res.manifest
    assert m["revision"] == "main" and m["revision_sha"] == SHA and m["scenes"] == KEYS
    assert res.data_root == snapshot


def test_fetch_without_network_or_cache_says_what_to_do(re10k, tmp_path, no_network):
    with pytest.raises(ILRMInputError) as info:
        fetch("re10k", repo_id="someone/re10k-mirror", cache_dir=tmp_path / "empty", eval_home=tmp_path / "home",
              index_path=re10k["index"])
    text = str(info.value)
    assert "cannot be reached" in text and "hf download someone/re10k-mirror" in text and "--source" in text


def test_fetch_cli_without_network_real_refused_connection(re10k, tmp_path):
    """The CLI, HF_HUB_OFFLINE unset, the Hub endpoint a closed local port (a real ConnectError)."""
    cache = tmp_path / "hub"
    hub_cache(cache, "someone/re10k-mirror", re10k["data"], sha=SHA)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY",
                                                            "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", NO_PROXY="*", PYTHONPATH=str(REPO))
    base = [sys.executable, "-m", "eval", "fetch", "re10k", "--repo-id", "someone/re10k-mirror",
            "--index", str(re10k["index"]), "--eval-home", str(tmp_path / "home")]
    ok = subprocess.run([*base, "--cache-dir", str(cache)], capture_output=True, text=True, env=env, cwd=REPO)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert f"= {SHA}" in ok.stdout and "scenes: 3" in ok.stdout
    bad = subprocess.run([*base, "--cache-dir", str(tmp_path / "none")], capture_output=True, text=True, env=env,
                         cwd=REPO)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr[-3000:]
    assert "cannot be reached" in bad.stderr and "hf download" in bad.stderr


def _cached_model(cache: Path, repo_id: str, tmp: Path, max_bytes: int | None = None) -> ILRM:
    torch.manual_seed(0)
    model = ILRM(ILRMConfig.preset("tiny", width=128, depth=2))
    folder = tmp / "saved"
    model.save_pretrained(folder)
    if max_bytes is not None:
        from ilrm.weight_files import save_weights

        save_weights(model, folder, max_bytes=max_bytes)
    hub_cache(cache, repo_id, folder, sha=SHA, repo_type="model")
    return model


def test_hub_model_id_without_network(tmp_path, no_network):
    cache = tmp_path / "hub"
    model = _cached_model(cache, "someone/ilrm-cached", tmp_path)
    loaded = load_model("someone/ilrm-cached", cache_dir=cache)  # refs/main -> snapshot, no network
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert no_network

    with pytest.raises(ILRMInputError, match="not .*in the local Hugging Face cache") as info:
        load_model("someone/ilrm-absent", cache_dir=cache)
    assert "hf download someone/ilrm-absent" in str(info.value)


def test_hub_model_with_a_shard_missing_from_the_cache_without_network(tmp_path, no_network):
    cache = tmp_path / "hub"
    _cached_model(cache, "someone/ilrm-sharded", tmp_path, max_bytes=400_000)
    snapshot = cache / "models--someone--ilrm-sharded" / "snapshots" / SHA
    shards = sorted(snapshot.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1
    shards[-1].unlink()
    with pytest.raises(ILRMInputError, match="cannot be reached") as info:
        load_model("someone/ilrm-sharded", cache_dir=cache)
    assert shards[-1].name in str(info.value)
