"""Training loop: optimiser groups, LR schedule, data layout, loss decrease, exact resume, export,
SIGTERM handling, the CLI and a 2-process torchrun (gloo) run. CPU only; tiny models at 64²."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ilrm.checkpoints import load_model
from ilrm.config import ILRMConfig
from ilrm.data.procedural import make_example
from ilrm.errors import ILRMInputError
from ilrm.models import build_model
from ilrm.training import TrainConfig, Trainer, export_model, lr_at, param_groups, read_log, train
from ilrm.training.checkpointing import latest_checkpoint, resolve_resume, rng_state, set_rng_state
from ilrm.training.data import SampleLayout, build_train_stream
from ilrm.training.losses import render_loss
from ilrm.training.optim import build_optimizer, build_scheduler

from .fixtures_data import write_opencv_scene, write_re10k

REPO = Path(__file__).resolve().parents[1]
TINY = {"width": 64, "depth": 2}


def small_config(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(
        preset="tiny",
        model_overrides=TINY,
        height=64,
        width=64,
        num_context=2,
        num_target=1,
        batch_size=1,
        steps=2,
        lr=1e-3,
        warmup_steps=1,
        log_every=1,
        checkpoint_every=0,
        device="cpu",
        out_dir=str(tmp_path / "run"),
    )
    base.update(kw)
    return TrainConfig(**base)


# ---- optimiser and schedule ----------------------------------------------------------------------


def test_weight_decay_only_on_matrices():
    model = build_model(ILRMConfig.preset("tiny", **TINY))
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in no_decay["params"]}
    assert decayed | kept == set(names.values()) and not decayed & kept
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert "head.weight" in decayed and "image_tokenizer.weight" in decayed
    assert any("norm" in n for n in kept) and not any("norm" in n for n in decayed)
    opt = build_optimizer(model, 4e-4)
    assert opt.defaults["betas"] == (0.9, 0.95)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]


def test_lr_schedule_warmup_then_cosine():
    lr, steps, warm, lo = 4e-4, 110, 10, 4e-5
    assert lr_at(0, lr, steps, warm, lo) == pytest.approx(lr / 10)
    assert lr_at(4, lr, steps, warm, lo) == pytest.approx(lr / 2)
    assert lr_at(9, lr, steps, warm, lo) == pytest.approx(lr)
    assert lr_at(10, lr, steps, warm, lo) == pytest.approx(lr)  # peak at the end of warm-up
    assert lr_at(60, lr, steps, warm, lo) == pytest.approx(lo + (lr - lo) * 0.5)  # half-way down the cosine
    assert lr_at(35, lr, steps, warm, lo) == pytest.approx(lo + (lr - lo) * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(110, lr, steps, warm, lo) == pytest.approx(lo)
    assert lr_at(500, lr, steps, warm, lo) == pytest.approx(lo)
    after = [lr_at(s, lr, steps, warm, lo) for s in range(warm, steps + 1)]
    assert all(a >= b for a, b in zip(after, after[1:]))
    # The LambdaLR the trainer uses follows the same formula, update by update.
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = build_scheduler(opt, steps, warm, lr, lo)
    for s in range(steps + 3):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(s, lr, steps, warm, lo), rel=1e-12)
        opt.step()
        sched.step()


# ---- config and data layout ----------------------------------------------------------------------


def test_config_json_round_trip_and_validation(tmp_path):
    cfg = small_config(tmp_path, context_gap=(5, 20), betas=(0.9, 0.99))
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    assert cfg.model_config().width == 64 and cfg.model_config().image_height == 64
    assert TrainConfig(preset="tiny-full").model_config().arch == "full-attention"
    with pytest.raises(ILRMInputError, match="multiples of 16"):
        small_config(tmp_path, height=72)
    with pytest.raises(ILRMInputError, match="data must be"):
        small_config(tmp_path, data="imagenet")
    with pytest.raises(ILRMInputError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ILRMInputError, match="bad model preset"):
        small_config(tmp_path, model_overrides={"widht": 3})


def test_sample_layout_depends_only_on_global_batch():
    single = SampleLayout(batch_size=4)
    ranks = [SampleLayout(batch_size=1, grad_accum=2, world_size=2, rank=r) for r in range(2)]
    for step in range(3):
        a = sorted(single.indices(step, 0))
        b = sorted(i for lay in ranks for m in range(2) for i in lay.indices(step, m))
        assert a == b == list(range(4 * step, 4 * step + 4))
        assert all(lay.step_of(i) == step for lay in ranks for i in lay.indices(step, 1))
    # A run resumed at step 5 after 20 samples continues where the uninterrupted run would.
    resumed = SampleLayout(batch_size=4, base_step=5, base_sample=20)
    assert resumed.indices(5, 0) == single.indices(5, 0)


def test_data_streams_for_each_source(tmp_path):
    lay = SampleLayout(batch_size=2)
    proc = small_config(tmp_path).procedural_config()
    s = build_train_stream("procedural", proc, lay, start_step=0, end_step=1, train_scenes=3)
    ex = s.next_batch()
    assert ex.context.images.shape == (2, 2, 3, 64, 64) and ex.target.images.shape == (2, 1, 3, 64, 64)
    assert ex.scene_id == ["proc-000000", "proc-000001"]

    write_re10k(tmp_path / "re10k", {"a": 12, "b": 14}, split="train")
    proc_small = proc.__class__(height=32, width=32, num_context=2, num_target=2, context_gap=(3, 6))
    s = build_train_stream(f"re10k:{tmp_path / 're10k'}", proc_small, lay, start_step=0, end_step=1)
    ex = s.next_batch()
    assert ex.context.images.shape == (2, 2, 3, 32, 32) and ex.target.images.shape == (2, 2, 3, 32, 32)

    for name in ("s1", "s2"):
        write_opencv_scene(tmp_path / "dl3dv" / name, 10, hw=(27, 48))
    s = build_train_stream(f"dl3dv:{tmp_path / 'dl3dv'}", proc_small, lay, start_step=0, end_step=1, seed=1)
    ex = s.next_batch()
    assert ex.context.images.shape == (2, 2, 3, 32, 32) and torch.isfinite(ex.target.c2w).all()


# ---- loss --------------------------------------------------------------------------------------


class _FakeLPIPS(torch.nn.Module):
    def forward(self, a, b, normalize=False):
        assert normalize and a.ndim == 4
        return (a - b).abs().mean(dim=(1, 2, 3))


def test_render_loss_and_lpips_weight(tmp_path):
    cfg = small_config(tmp_path, height=32, width=32)
    ex = make_example(1, cfg.procedural_config())
    model = build_model(cfg.model_config())
    g = model(ex.context)
    plain = render_loss(g, ex.target, model.config)
    assert plain.loss.item() == pytest.approx(plain.mse.item()) and plain.lpips.item() == 0
    assert plain.psnr.item() == pytest.approx(-10 * math.log10(plain.mse.item()), abs=0.5)
    with_lp = render_loss(g, ex.target, model.config, lpips_net=_FakeLPIPS(), lpips_weight=0.5)
    assert with_lp.lpips.item() > 0
    assert with_lp.loss.item() == pytest.approx(plain.mse.item() + 0.5 * with_lp.lpips.item(), rel=1e-5)


def test_lpips_weight_without_backbone_says_what_to_do(tmp_path, monkeypatch):
    import ilrm.perceptual

    def unavailable(*args, **kwargs):
        raise ilrm.perceptual.BackboneUnavailable("no VGG16 checkpoint offline")

    monkeypatch.setattr(ilrm.perceptual, "build_lpips_vgg", unavailable)
    with pytest.raises(RuntimeError, match=r"python -m ilrm.perceptual.*--lpips-weight 0"):
        Trainer(small_config(tmp_path, lpips_weight=0.1))


# ---- training ----------------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tmp_path):
    cfg = small_config(tmp_path, lr=3e-3, warmup_steps=0, steps=100)
    trainer = Trainer(cfg)
    ex = make_example(3, cfg.procedural_config())
    losses = [float(trainer.train_step([ex]).loss) for _ in range(4)]
    assert losses[-1] < 0.97 * losses[0], losses
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_supervise_context_adds_the_context_views(tmp_path, monkeypatch):
    import ilrm.training.trainer as train_mod

    cfg = small_config(tmp_path, height=32, width=32)
    ex = make_example(2, cfg.procedural_config())
    seen = []

    def spy(g, views, *args, **kwargs):
        seen.append(views.num_views)
        return render_loss(g, views, *args, **kwargs)

    monkeypatch.setattr(train_mod, "render_loss", spy)
    Trainer(cfg).micro_loss(ex)
    Trainer(cfg.replace(supervise_context=True)).micro_loss(ex)
    assert seen == [1, 3]  # targets only by default; 1 target + 2 context views with the flag


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full = train(small_config(tmp_path, out_dir=str(tmp_path / "a")), progress=False)
    assert full.finished and [h["step"] for h in full.history] == [1, 2]

    # Stop after the first step (time limit), then resume from the latest checkpoint.
    cfg_b = small_config(tmp_path, out_dir=str(tmp_path / "b"))
    first = train(cfg_b.replace(time_limit_s=1e-3), progress=False)
    assert first.stopped == "time_limit" and first.step == 1 and not first.finished and first.final_model is None
    assert latest_checkpoint(tmp_path / "b").name == "checkpoint-00000001"
    assert first.history[0]["loss"] == full.history[0]["loss"]
    # stop_after cuts a run at a step without changing its schedule.
    cut = train(small_config(tmp_path, out_dir=str(tmp_path / "c"), stop_after=1), progress=False)
    assert cut.stopped == "stop_after" and cut.step == 1 and cut.final_model is None
    assert cut.history[0]["lr"] == full.history[0]["lr"] and cut.history[0]["loss"] == full.history[0]["loss"]
    second = train(cfg_b, resume="auto", progress=False)
    assert second.start_step == 1 and second.finished
    assert abs(second.history[0]["loss"] - full.history[1]["loss"]) <= 1e-6 * full.history[1]["loss"]

    wa, wb = (
        load_file(str(full.final_model / "model.safetensors")),
        load_file(str(second.final_model / "model.safetensors")),
    )
    # Two identical uninterrupted CPU runs already differ by up to ~1e-6 here (multithreaded
    # reductions; Adam's g/sqrt(v) magnifies tiny gradient differences), so that is the floor.
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    steps = [r["step"] for r in read_log(tmp_path / "b" / "log.jsonl") if r["kind"] == "train"]
    assert steps == [1, 2]
    state = torch.load(second.checkpoint / "training_state.pt", weights_only=True)
    assert state["step"] == 2 and state["samples_seen"] == 2 and len(state["rng"]) == 1
    assert (tmp_path / "b" / "curves.png").stat().st_size > 0
    # A fresh run into a folder with checkpoints, or a checkpoint of another model, is refused.
    with pytest.raises(ILRMInputError, match="already holds checkpoints"):
        train(cfg_b, progress=False)
    with pytest.raises(ILRMInputError, match="another model"):
        train(cfg_b.replace(model_overrides={"width": 128, "depth": 2}), resume="auto", progress=False)


def test_resolve_resume_and_rng_round_trip(tmp_path):
    assert resolve_resume(None, tmp_path) is None and resolve_resume("auto", tmp_path) is None
    with pytest.raises(ILRMInputError, match="cannot resume"):
        resolve_resume(tmp_path / "nope", tmp_path)
    import random

    import numpy as np

    st = rng_state()
    torch.save(st, tmp_path / "rng.pt")
    st = torch.load(tmp_path / "rng.pt", weights_only=True)
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(st)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_export_model_bf16(tmp_path):
    model = build_model(ILRMConfig.preset("tiny", **TINY))
    out = export_model(model, tmp_path / "final", "bfloat16", extra={"training": {"steps": 3}})
    sd = load_file(str(out / "model.safetensors"))
    assert all(v.dtype == torch.bfloat16 for v in sd.values())
    assert next(model.parameters()).dtype == torch.float32  # the model itself is untouched
    loaded = load_model(out)
    assert loaded.config.extra["weights_dtype"] == "bfloat16" and loaded.config.extra["training"]["steps"] == 3
    ref = model.state_dict()
    assert all(torch.allclose(loaded.state_dict()[k], ref[k], rtol=1e-2, atol=1e-3) for k in ref)


def test_stop_flag_turns_sigterm_into_a_request():
    from ilrm.training.run import _StopFlag

    with _StopFlag() as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert flag.reason == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


# ---- processes -----------------------------------------------------------------------------------

CLI_ARGS = ["--preset", "tiny", "--set", "width=64", "--set", "depth=2", "--size", "64", "--num-target", "1",
            "--batch-size", "1", "--lr", "1e-3", "--warmup-steps", "1", "--log-every", "1", "--checkpoint-every", "0",
            "--device", "cpu", "--no-progress"]  # fmt: skip


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _wait_for_train_record(log: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if log.exists() and any(r.get("kind") == "train" for r in read_log(log)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()}")
        time.sleep(0.2)
    raise AssertionError("no training record in time")


def test_cli_sigterm_checkpoints_then_resume_finishes(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "ilrm", "train", *CLI_ARGS, "--size", "32", "--steps", "200", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_train_record(out / "log.jsonl", proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    info = json.loads(stdout.strip().splitlines()[-1])
    assert info["stopped"] == "SIGTERM" and not info["finished"] and 1 <= info["step"] < 200
    assert latest_checkpoint(out).name == f"checkpoint-{info['step']:08d}"

    cmd = [sys.executable, "-m", "ilrm", "train", "--config", str(out / "train_config.json"), "--resume", "auto",
           "--steps", str(info["step"] + 1), "--no-progress"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info2 = json.loads(done.stdout.strip().splitlines()[-1])
    assert info2["finished"] and info2["step"] == info["step"] + 1
    model = load_model(info2["final_model"])
    assert model.config.width == 64 and model.config.extra["training"]["steps"] == info["step"] + 1


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path):
    steps = ["--steps", "3", "--batch-size"]
    single = tmp_path / "single"
    cmd = [sys.executable, "-m", "ilrm", "train", *CLI_ARGS, *steps, "2", "--out", str(single)]
    r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr

    ddp = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ilrm", "train",
           *CLI_ARGS, *steps, "1", "--out", str(ddp)]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len([ln for ln in r.stdout.splitlines() if ln.startswith("{")]) == 1  # only rank 0 reports

    a = [x for x in read_log(single / "log.jsonl") if x["kind"] == "train"]
    b = [x for x in read_log(ddp / "log.jsonl") if x["kind"] == "train"]
    assert [x["step"] for x in a] == [x["step"] for x in b] == [1, 2, 3]
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4), (a, b)
        assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-3)
    state = torch.load(ddp / "checkpoint-00000003" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2 and state["global_batch"] == 2 and len(state["rng"]) == 2
    wa, wb = load_file(str(single / "final" / "model.safetensors")), load_file(str(ddp / "final" / "model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-4) for k in wa)


@pytest.mark.parametrize("per_scene", [1, 2])
def test_deferred_procedural_stream_matches_direct_rendering(per_scene):
    # workers build ViewPlans, the main process ray-casts them (a scene's plans in one call when
    # several samples share it): same examples as rendering each sample in place
    from torch.utils.data import DataLoader

    from ilrm.data.procedural import ProceduralConfig, ProceduralScenes
    from ilrm.training.data import ProceduralTrainSet, SampleLayout, StepBatchSampler, TrainStream, collate

    cfg = ProceduralConfig(height=32, width=32, num_context=2, num_target=1)
    layout = SampleLayout(batch_size=2)
    scenes = ProceduralScenes(cfg, "train", num_scenes=5)
    direct = ProceduralTrainSet(scenes, layout, samples_per_scene=per_scene)
    deferred = ProceduralTrainSet(scenes, layout, deferred=True, samples_per_scene=per_scene)
    if per_scene > 1:  # both samples of a batch come from one scene, with different views
        a, b = direct[0], direct[1]
        assert a.scene_id == b.scene_id and not torch.equal(a.context.c2w, b.context.c2w)
    loader = DataLoader(deferred, batch_sampler=StepBatchSampler(layout, 0, 2), num_workers=1, collate_fn=list)
    stream = TrainStream(loader, render=(cfg, "cpu"))
    for step in range(2):
        got = stream.next_batch()
        want = collate([direct[g] for g in layout.indices(step, 0)])
        assert got.scene_id == want.scene_id
        for a, b in ((got.context, want.context), (got.target, want.target)):
            assert torch.equal(a.images, b.images) and torch.equal(a.c2w, b.c2w)
    stream.close()
