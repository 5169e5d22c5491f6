"""Sharded weights: every file under the limit, a round trip through from_pretrained / load_model, and
clear errors for a folder that lost a shard."""

import json

import pytest
import torch

from ilrm import ILRM, ILRMConfig, ILRMInputError
from ilrm.checkpoints import load_model
from ilrm.training.checkpointing import export_model
from ilrm.weight_files import INDEX_FILE, SINGLE_FILE, load_weights, save_weights, weight_file_names


def _model():
    torch.manual_seed(0)
    return ILRM(ILRMConfig.preset("tiny", width=128, depth=2))


def test_small_model_is_one_file(tmp_path):
    m = _model()
    files = save_weights(m, tmp_path, max_bytes=10**9)
    assert [f.name for f in files] == [SINGLE_FILE] and weight_file_names(tmp_path) == [SINGLE_FILE]
    sd = load_weights(tmp_path)
    assert all(torch.equal(sd[k], v) for k, v in m.state_dict().items())


def test_shards_stay_under_the_limit_and_round_trip(tmp_path):
    m = _model()
    limit = 400_000  # bytes: forces several shards for this ~1.3 MB model
    files = save_weights(m, tmp_path, max_bytes=limit)
    shards = [f for f in files if f.name != INDEX_FILE]
    assert len(shards) > 2
    biggest = max(v.numel() * v.element_size() for v in m.state_dict().values())
    assert all(f.stat().st_size <= max(limit, biggest) + 4096 for f in shards)  # + safetensors header
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert set(index["weight_map"]) == set(m.state_dict())
    assert not (tmp_path / SINGLE_FILE).exists()
    sd = load_weights(tmp_path)
    assert all(torch.equal(sd[k], v) for k, v in m.state_dict().items())
    # a later single-file save into the same folder removes the shards (no mixing of two saves)
    save_weights(m, tmp_path, max_bytes=10**9)
    assert sorted(p.name for p in tmp_path.iterdir()) == [SINGLE_FILE]


def test_exported_bf16_shards_load_through_every_entry_point(tmp_path, monkeypatch):
    import ilrm.weight_files as wf

    m = _model().eval()
    monkeypatch.setattr(wf, "SHARD_LIMIT_BYTES", 300_000)
    monkeypatch.setattr(save_weights, "__defaults__", (300_000,))
    out = export_model(m, tmp_path / "final", "bfloat16")
    assert (out / INDEX_FILE).is_file() and len(weight_file_names(out)) > 2
    for loaded in (ILRM.from_pretrained(out), load_model(out)):
        for k, v in m.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v.to(torch.bfloat16).float()), k


def test_missing_shard_is_a_clear_error(tmp_path):
    save_weights(_model(), tmp_path, max_bytes=400_000)
    next(tmp_path.glob("model-00002-of-*.safetensors")).unlink()
    with pytest.raises(ILRMInputError, match="missing"):
        load_weights(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ILRMInputError, match="no model.safetensors"):
        load_weights(empty)
