"""The demo's automatic model choice, the input sizes each model declares, held-out scores and ZeroGPU durations."""

from __future__ import annotations

import pytest
import torch

from demo.models import AUTO_KEY, ModelSpec, ModelStore, choose_model, default_model_specs, model_quality_markdown
from demo.pipeline import forward_seconds, gpu_forward_duration, gpu_video_duration, psnr, ssim, video_seconds
from ilrm.cameras import Views
from ilrm.config import ILRMConfig
from ilrm.pipeline import model_input_size

KEYS = ["shipped", "authors-re10k", "authors-dl3dv-16", "authors-dl3dv-32"]


@pytest.mark.parametrize("n,key", [(2, "authors-re10k"), (4, "authors-re10k"), (5, "authors-dl3dv-16"),
                                   (16, "authors-dl3dv-16"), (17, "authors-dl3dv-32"), (32, "authors-dl3dv-32")])
def test_gpu_host_picks_the_authors_weights_by_photo_count(n, key):
    choice = choose_model(KEYS, n, "gpu")
    assert choice.key == key and "GPU host" in choice.reason and f"{n} photos" in choice.reason


def test_cpu_host_and_missing_official_models_pick_the_shipped_checkpoint():
    assert choose_model(KEYS, 8, "cpu").key == "shipped"
    assert "CPU host" in choose_model(KEYS, 8, "cpu").reason
    assert choose_model(["shipped"], 3, "gpu").key == "shipped"


def test_store_offers_auto_first_and_every_model(monkeypatch):
    store = ModelStore(default_model_specs(official_revision="f" * 40, settings={}), hardware="gpu")
    assert store.default_key == AUTO_KEY
    assert [k for _, k in store.choices()] == [AUTO_KEY, *KEYS]
    assert store.resolve(AUTO_KEY, 3).key == "authors-re10k"
    assert store.resolve("shipped", 3).reason == "chosen in the model list"
    assert store.specs["authors-re10k"].revision == "f" * 40


def test_auto_choice_that_cannot_download_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    specs = [ModelSpec("shipped", "tiny", "preset:tiny"),
             ModelSpec("authors-re10k", "re10k", "official:re10k_2view.ckpt", "f" * 40)]
    store = ModelStore(specs, hardware="gpu")
    model, spec, choice = store.get_for(AUTO_KEY, 2)
    assert spec.key == "shipped" and choice.fallback_from == "authors-re10k" and "could not be loaded" in choice.reason
    with pytest.raises(Exception, match="could not load"):
        store.get_for("authors-re10k", 2)  # an explicit choice is not replaced silently


def test_each_model_declares_its_input_sizes():
    re10k, wide, tiny = (ILRMConfig.preset(n) for n in ("re10k", "dl3dv-wide", "tiny"))
    assert re10k.input_sizes == ((256, 256),) and wide.input_sizes == ((544, 960),)
    assert tiny.input_sizes == ((256, 256), (256, 448))
    # square-only: centre crop; 16:9-only: 16:9; tiny keeps 1:1 … 1.75:1, orientation follows the photo
    assert model_input_size(re10k, (1080, 1920)) == (256, 256)
    assert model_input_size(wide, (1080, 1920)) == (544, 960) and model_input_size(wide, (3024, 4032)) == (544, 960)
    assert model_input_size(tiny, (1080, 1920)) == (256, 448) and model_input_size(tiny, (1920, 1080)) == (448, 256)
    assert model_input_size(tiny, (3024, 4032)) == (256, 336) and model_input_size(tiny, (500, 2000)) == (256, 448)
    assert model_input_size(tiny, (1080, 1920), keep_aspect=False) == (256, 256)
    # a recorded "image_sizes" in the checkpoint's training metadata counts (the shipped checkpoint)
    cfg = ILRMConfig(extra={"training": {"image_sizes": "256x256 and 256x448 (drawn per step)"}})
    assert cfg.input_sizes == ((256, 256), (256, 448))
    assert ILRMConfig.from_json(tiny.to_json()) == tiny
    assert "square" in re10k.describe_sizes()


def test_quality_table_reads_the_model_card():
    table = model_quality_markdown(default_model_specs(official_revision="f" * 40, settings={}))
    assert "23.52" in table and "25.16" in table  # checkpoints/ilrm-tiny-procedural/README.md
    assert table.count("not measured in this repository") == 3


def test_scores_and_durations():
    x = torch.rand(1, 3, 32, 32)
    assert ssim(x, x) == pytest.approx(1.0) and psnr(x, x) == pytest.approx(100.0)
    assert ssim(x, torch.rand(1, 3, 32, 32)) < 0.2
    views = Views(torch.zeros(1, 2, 3, 256, 256), torch.eye(3).expand(1, 2, 3, 3), torch.eye(4).expand(1, 2, 4, 4))
    assert gpu_forward_duration(0, "k", views) == forward_seconds(2) < forward_seconds(8) < forward_seconds(32, 544, 960)
    assert forward_seconds(2) <= 15 and forward_seconds(32, 544, 960) <= 60
    assert video_seconds(131_072, 90) < video_seconds(4_000_000, 90) <= 120
    assert gpu_video_duration(frames=12) < gpu_video_duration(frames=90)
