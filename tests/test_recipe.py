"""The training recipe: per-step view counts and sizes, camera and photometric augmentation, the
prefetch thread, and segments that continue from exported weights."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ilrm import ILRMInputError
from ilrm.data.example import collate
from ilrm.data.procedural import ProceduralConfig, ProceduralScenes, make_scene, plan_example, render_plan, render_scene
from ilrm.training import TrainConfig, train
from ilrm.training.augment import CameraJitter, Photometric, jpeg_like, photometric, step_variant
from ilrm.training.data import ProceduralTrainSet, SampleLayout, StepBatchSampler, TrainStream, build_train_stream
from ilrm.training.optim import lr_factor

SMALL = ProceduralConfig(height=32, width=32, num_context=2, num_target=1, texture_size=16, max_objects=2)


def _psnr(a, b):
    return float(-10 * torch.log10(((a.float() - b.float()) ** 2).mean()))


def test_step_variant_is_deterministic_and_covers_the_choices():
    views, sizes = (2, 4, 8), ((32, 32), (32, 48))
    draws = [step_variant(3, s, views, sizes) for s in range(200)]
    assert draws == [step_variant(3, s, views, sizes) for s in range(200)]
    assert {v for v, _ in draws} == set(views) and {hw for _, hw in draws} == set(sizes)
    assert draws != [step_variant(4, s, views, sizes) for s in range(200)]


def test_stream_varies_views_and_size_per_step_but_not_within_one():
    layout = SampleLayout(batch_size=2)
    stream = build_train_stream(
        "procedural", SMALL, layout, start_step=0, end_step=6, train_scenes=5, samples_per_scene=2,
        view_choices=(2, 3), sizes=((32, 32), (32, 48)), seed=1,
    )
    shapes = []
    for step in range(6):
        b = stream.next_batch()
        nc, (h, w) = step_variant(1, step, (2, 3), ((32, 32), (32, 48)))
        assert b.context.images.shape == (2, nc, 3, h, w) and b.target.images.shape == (2, 1, 3, h, w)
        shapes.append(b.context.images.shape)
    assert len(set(shapes)) > 1


def test_camera_jitter_renders_exactly_with_the_intrinsics_it_reports():
    ds = ProceduralTrainSet(ProceduralScenes(SMALL, "train", num_scenes=3), SampleLayout(1), camera=CameraJitter(), seed=2)
    ex = ds[0]
    K = ex.context.intrinsics[0, 0]
    scene = make_scene(ds.scenes.seed(0), SMALL)
    K0 = scene.intrinsics(32, 32)
    assert not torch.allclose(K, K0)  # zoom or shift applied
    assert 0.8 <= float(K[0, 0] / K0[0, 0]) <= 1.25 and abs(float(K[0, 2] - K0[0, 2])) <= 0.05 * 32 + 1e-5
    # ray-casting the same frame with the reported K gives the same image
    plan = plan_example(scene.seed, SMALL, view_stream=0, scene=scene)
    img, _ = render_scene(scene, K[None], scene.c2w[plan.context[:1]], 32, 32)
    assert torch.allclose(img[0], ex.context.images[0, 0], atol=1e-5)


def _pair_example():
    ex = render_plan(plan_example(5, SMALL), SMALL)
    return collate([ex, ex])


def test_photometric_is_deterministic_and_treats_targets_like_inputs_without_noise():
    ex = _pair_example()
    same = ex.__class__(ex.context, ex.context.__class__(ex.context.images.clone(), ex.context.intrinsics, ex.context.c2w), ex.scene_id)
    clean = Photometric(noise_prob=0.0, jpeg_prob=0.0)
    a = photometric(same, seed=1, step=7, params=clean)
    assert torch.equal(a.context.images, a.target.images)  # one appearance change for every view
    assert _psnr(a.context.images, same.context.images) < 40  # and it changed something
    b = photometric(same, seed=1, step=7, params=clean)
    assert torch.equal(a.context.images, b.context.images)
    assert not torch.equal(photometric(same, seed=1, step=8, params=clean).context.images, a.context.images)
    # noise and JPEG hit the inputs only
    noisy = photometric(same, seed=1, step=7, params=Photometric(noise_prob=1.0, jpeg_prob=1.0))
    assert torch.equal(noisy.target.images, a.target.images)
    assert not torch.allclose(noisy.context.images, a.context.images, atol=1e-3)
    assert torch.equal(noisy.context.intrinsics, same.context.intrinsics) and noisy.scene_id == same.scene_id


def test_jpeg_like_matches_a_real_encoder():
    rng = np.random.RandomState(0)
    # a smooth image with edges, like a photo (pure noise would make every codec look alike)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    img = np.stack([np.sin(6 * xx) * 0.4 + 0.5, (xx > 0.5) * 0.6 + 0.2 * yy, 0.5 + 0.3 * np.cos(9 * yy)], -1)
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    x = torch.tensor(img, dtype=torch.float32).permute(2, 0, 1)[None]
    for q in (30, 75):
        buf = io.BytesIO()
        Image.fromarray((img * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=q, subsampling=2)
        pil = torch.tensor(np.asarray(Image.open(buf)), dtype=torch.float32).permute(2, 0, 1)[None] / 255
        ours = jpeg_like(x, torch.tensor([float(q)]))
        assert _psnr(ours, pil) > 33, q  # same artefacts as libjpeg, up to rounding
    assert _psnr(jpeg_like(x, torch.tensor([95.0])), x) > _psnr(jpeg_like(x, torch.tensor([20.0])), x) + 2


def test_prefetch_thread_yields_the_same_batches_in_order():
    layout = SampleLayout(batch_size=2)

    def stream(prefetch):
        ds = ProceduralTrainSet(ProceduralScenes(SMALL, "train", num_scenes=4), layout, deferred=True, samples_per_scene=2)
        loader = DataLoader(ds, batch_sampler=StepBatchSampler(layout, 0, 4), collate_fn=list)
        return TrainStream(loader, render=(SMALL, "cpu"), photometric=Photometric(), seed=3, prefetch=prefetch)

    inline, ahead = stream(0), stream(2)
    assert ahead._thread is not None
    for _ in range(4):
        a, b = inline.next_batch(), ahead.next_batch()
        assert torch.equal(a.context.images, b.context.images) and torch.equal(a.target.c2w, b.target.c2w)
    with pytest.raises(RuntimeError, match="data"):
        ahead.next_batch()  # the stream ends after 4 batches; the thread's error reaches the caller
    ahead.close()


def test_lr_restart_rewarms_then_follows_the_schedule():
    base = [lr_factor(s, 100, 10, 0.0) for s in range(100)]
    re = [lr_factor(s, 100, 10, 0.0, restart_step=40, restart_warmup=20) for s in range(100)]
    assert re[:40] == base[:40] and re[60:] == base[60:]
    assert re[40] == pytest.approx(base[40] / 20) and re[59] == pytest.approx(base[59])


def _cfg(tmp_path, name, **kw):
    return TrainConfig(
        preset="tiny", model_overrides={"width": 64, "depth": 2}, height=32, width=32, num_target=1, batch_size=1,
        steps=6, warmup_steps=1, log_every=1, checkpoint_every=0, train_scenes=4, device="cpu",
        out_dir=str(tmp_path / name), **kw,
    )


def test_segment_continues_from_exported_weights(tmp_path):
    first = train(_cfg(tmp_path, "a", stop_after=3), progress=False)
    seg = tmp_path / "a" / "segment"
    assert first.step == 3 and (seg / "config.json").is_file() and (seg / "log.jsonl").is_file()
    extra = json.loads((seg / "config.json").read_text())["extra"]["segment"]
    assert extra["step"] == 3 and extra["samples_seen"] == 3
    second = train(_cfg(tmp_path, "b", init_from=str(seg), rewarm_steps=2), progress=False)
    assert second.start_step == 3 and second.step == 6 and second.finished
    recs = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]  # one curve over both segments
    assert [r["kind"] for r in recs].count("segment") == 1
    lr4 = next(r["lr"] for r in recs if r["kind"] == "train" and r["step"] == 4)
    assert lr4 == pytest.approx(4e-4 * lr_factor(3, 6, 1, 0.0) / 2)  # first re-warm step: half the schedule's lr
    # the first loss of segment 2 is the uninterrupted run's loss at step 4: same weights, same data
    # (only the optimiser state was left behind)
    whole = train(_cfg(tmp_path, "c", stop_after=4), progress=False)
    assert second.history[0]["loss"] == pytest.approx(whole.history[3]["loss"], rel=1e-5)
    assert second.history[0]["loss"] != pytest.approx(whole.history[0]["loss"], rel=1e-3)


def test_segment_refuses_another_model(tmp_path):
    train(_cfg(tmp_path, "a", stop_after=1), progress=False)
    bad = _cfg(tmp_path, "b", init_from=str(tmp_path / "a" / "segment"))
    bad = bad.replace(model_overrides={"width": 128, "depth": 2})
    with pytest.raises(ILRMInputError, match="another model"):
        train(bad, progress=False)
    with pytest.raises(ILRMInputError, match="no config.json"):
        train(_cfg(tmp_path, "c", init_from=str(tmp_path / "nowhere")), progress=False)


def test_recipe_flags_are_validated():
    with pytest.raises(ILRMInputError, match="HxW"):
        TrainConfig(sizes=("256by448",))
    with pytest.raises(ILRMInputError, match="multiples of 16"):
        TrainConfig(sizes=("256x440",))
    with pytest.raises(ILRMInputError, match="view_choices"):
        TrainConfig(view_choices=(0, 2))


def test_model_config_records_the_view_mix():
    from ilrm import ILRMConfig

    cfg = TrainConfig(view_choices=(8, 2, 4)).model_config()
    assert cfg.num_views == 8 and cfg.trained_views == (2, 4, 8)
    assert cfg.trained_with(4) and not cfg.trained_with(3)
    assert TrainConfig(num_context=2).model_config().trained_views == ()
    assert ILRMConfig.preset("tiny").trained_with(2) and not ILRMConfig.preset("tiny").trained_with(3)
    assert ILRMConfig.from_json(cfg.to_json()) == cfg  # survives config.json
