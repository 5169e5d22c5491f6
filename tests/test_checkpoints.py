import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ilrm import ILRM, ILRMConfig, ILRMInputError, Views
from ilrm.checkpoints import load_official_checkpoint, read_checkpoint_file
from ilrm.models.layers import reference_attention

from .official_fixtures import official_state_dict, save_official

WIDTH, DEPTH = 128, 4


@pytest.fixture(scope="module", params=["main", "wide"])
def official(request, tmp_path_factory):
    kind = request.param
    sd = official_state_dict(kind, WIDTH, DEPTH)
    path = tmp_path_factory.mktemp(kind) / ("re10k_2view.ckpt" if kind == "main" else "ilrm_undistort_dl3dv.pt")
    save_official(path, kind, sd)
    return kind, sd, path


def test_every_key_consumed_and_config_inferred(official):
    kind, sd, path = official
    model = load_official_checkpoint(path)
    cfg = model.config
    assert (cfg.width, cfg.depth) == (WIDTH, DEPTH)
    assert cfg.uplift_factor == (2 if kind == "wide" else 1)
    assert cfg.pose_scale_before_recentre == (kind == "main")
    assert sum(p.numel() for p in model.parameters()) == sum(v.numel() for v in sd.values())
    assert not model.training
    # every source tensor appears in the model (permutations keep the norm)
    norms = sorted(round(float(p.detach().double().square().sum()), 6) for p in model.parameters())
    assert norms == sorted(round(float(v.double().square().sum()), 6) for v in sd.values())


def test_hand_set_tokenizer_weight_selects_one_pixel_channel(official):
    """Zero the image tokenizer except one input column: tokens then depend on exactly that
    (patch row, patch col, channel) of every patch — checks the (ph, pw, c) layout and the feature order."""
    kind, sd, path = official
    sd = {k: v.clone() for k, v in sd.items()}
    key = "support_tokenizer.weight" if kind == "main" else "image_tokenizer.1.weight"
    C = 9 if kind == "main" else 12
    red = 0 if kind == "main" else 9  # [rgb, m, d] vs [o, d, m, rgb]
    ph, pw = 3, 6
    w = torch.zeros_like(sd[key])
    w[:, (ph * 8 + pw) * C + red] = torch.linspace(-1, 1, w.shape[0])
    sd[key] = w
    p2 = path.parent / ("hand_" + path.name)
    save_official(p2, kind, sd)
    model = load_official_checkpoint(p2)
    H = W = 32
    K = torch.tensor([[30.0, 0, 16], [0, 30, 16], [0, 0, 1]]).expand(1, 1, 3, 3)
    c2w = torch.eye(4).expand(1, 1, 4, 4)
    img = torch.rand(1, 1, 3, H, W)
    # With one non-zero column the pre-norm token is (2·red − 1)·w and LayerNorm removes the scale:
    # only a sign change shows. Red 0.1 → 0.6 below flips it at patch (1, 1) = token 5 of 4×4.
    img[..., 0, 8 + ph, 8 + pw] = 0.1
    other = torch.rand(1, 1, 3, H, W)
    other[..., 0, ph::8, pw::8] = img[..., 0, ph::8, pw::8]  # same red at (ph, pw) of every patch
    with torch.no_grad():
        t1 = model.image_tokens(Views(img, K, c2w))
        t2 = model.image_tokens(Views(other, K, c2w))
        bumped = img.clone()
        bumped[..., 0, 8 + ph, 8 + pw] += 0.5
        t3 = model.image_tokens(Views(bumped, K, c2w))
    assert torch.allclose(t1, t2, atol=1e-6)
    changed = (t3 - t1).abs().amax(-1) > 1e-4
    assert changed[0].nonzero().flatten().tolist() == [5]


def _authors_read_attention(sd, i, x, ctx, s):
    """The read cross-attention written directly in the authors' layout: q rows (heads, head_dim, s)."""
    p = f"processor.blocks.{i}.read_cross."
    D = x.shape[-1]
    h = D // 64
    q = F.linear(F.layer_norm(x, (D,), sd[p + "norm.weight"], eps=1e-5), sd[p + "q.weight"])
    q = q.view(*x.shape[:2], h, 64, s)
    k = F.linear(ctx, sd[p + "k.weight"]).view(*ctx.shape[:2], h, 64)
    v = F.linear(ctx, sd[p + "v.weight"]).view(*ctx.shape[:2], h, 64)
    k = F.rms_norm(k, (64,), sd[p + "k_norm.weight"], 1e-5)
    outs = []
    for j in range(s):
        qj = F.rms_norm(q[..., j], (64,), sd[p + "q_norm.weight"], 1e-5)
        outs.append(reference_attention(qj.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2))
    o = torch.stack(outs, -1).reshape(*x.shape[:2], s * D)  # (heads, head_dim, s) channel order
    return x + F.linear(o, sd[p + "proj.weight"])


def test_read_block_matches_authors_layout(official):
    kind, sd, path = official
    model = load_official_checkpoint(path)
    s = model.config.uplift_factor
    torch.manual_seed(0)
    x, ctx = torch.randn(2, 6, WIDTH), torch.randn(2, 10, WIDTH)
    with torch.no_grad():
        ours = model.blocks[2].attn(x, ctx)
    assert torch.allclose(ours, _authors_read_attention(sd, 2, x, ctx, s), atol=1e-5)


def _authors_self_block(sd, i, x):
    """The self block written from SPEC in the authors' key names: x + proj(attn(LN(x))) with the
    fused qkv output laid out (3, heads, head_dim), q/k RMS-normalised per head; then x + MLP(x)."""
    p = f"processor.blocks.{i}."
    B, N, D = x.shape
    h = D // 64
    qkv = F.linear(F.layer_norm(x, (D,), sd[p + "attn.norm.weight"], eps=1e-5), sd[p + "attn.qkv.weight"])
    q, k, v = (qkv[..., j * D : (j + 1) * D].reshape(B, N, h, 64).transpose(1, 2) for j in range(3))
    q = F.rms_norm(q, (64,), sd[p + "attn.q_norm.weight"], 1e-5)
    k = F.rms_norm(k, (64,), sd[p + "attn.k_norm.weight"], 1e-5)
    o = reference_attention(q, k, v).transpose(1, 2).reshape(B, N, D)
    x = x + F.linear(o, sd[p + "attn.proj.weight"])
    hidden = F.gelu(F.linear(F.layer_norm(x, (D,), sd[p + "mlp.norm.weight"], eps=1e-5), sd[p + "mlp.fc1.weight"]))
    return x + F.linear(hidden, sd[p + "mlp.fc2.weight"])


def test_self_block_matches_authors_layout(official):
    kind, sd, path = official
    model = load_official_checkpoint(path)
    torch.manual_seed(1)
    x = torch.randn(2, 12, WIDTH)
    for i in (1, 3):  # odd blocks are self blocks
        with torch.no_grad():
            ours = model.blocks[i](x)
        assert torch.allclose(ours, _authors_self_block(sd, i, x), atol=1e-5), i


def test_head_maps_to_decoder(official):
    kind, sd, path = official
    model = load_official_checkpoint(path)
    dec = "token_decoder.1.weight" if kind == "main" else "viewpoint_token_decoder.1.weight"
    assert torch.equal(model.head.weight, sd[dec])


def test_missing_and_unexpected_keys_listed(tmp_path):
    sd = official_state_dict("wide", WIDTH, DEPTH)
    sd.pop("processor.blocks.1.attn.qkv.weight")
    sd["processor.blocks.1.attn.bias"] = torch.zeros(3)
    save_official(tmp_path / "bad.pt", "wide", sd)
    with pytest.raises(ILRMInputError, match=r"missing keys \['processor.blocks.1.attn.qkv.weight'\].*unexpected keys \['processor.blocks.1.attn.bias'\]"):
        load_official_checkpoint(tmp_path / "bad.pt")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ILRMInputError, match="not an iLRM checkpoint"):
        load_official_checkpoint(tmp_path / "other.pt")


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('ILRM_EXPLOIT_MARKER', '/tmp/ilrm_exploit_marker')}",))


def test_restricted_unpickler_runs_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("ILRM_EXPLOIT_MARKER", str(marker))
    sd = official_state_dict("main", WIDTH, DEPTH)
    obj = {"state_dict": {"encoder.scaler." + k: v for k, v in sd.items()}, "hyper_parameters": _Exploit()}
    torch.save(obj, tmp_path / "evil.ckpt")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "evil.ckpt", weights_only=True)  # the default refuses the file…
    model = load_official_checkpoint(tmp_path / "evil.ckpt")  # …we read the tensors only
    assert not marker.exists()
    assert model.config.width == WIDTH
    raw = read_checkpoint_file(tmp_path / "evil.ckpt")
    assert "inert" in repr(raw["hyper_parameters"])


def test_trust_pickle_is_explicit(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("ILRM_EXPLOIT_MARKER", str(marker))
    torch.save({"x": _Exploit()}, tmp_path / "f.pt")
    read_checkpoint_file(tmp_path / "f.pt")
    assert not marker.exists()
    read_checkpoint_file(tmp_path / "f.pt", trust_pickle=True)
    assert marker.exists()


def test_convert_cli_writes_our_format(official, tmp_path):
    kind, sd, path = official
    out = tmp_path / "converted"
    r = subprocess.run([sys.executable, "-m", "ilrm", "convert", str(path), str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    a = load_official_checkpoint(path)
    b = ILRM.from_pretrained(out)
    assert b.config.extra["layout"] == kind and len(b.config.extra["source_sha256"]) == 64
    for (n1, p1), (n2, p2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    bad = subprocess.run([sys.executable, "-m", "ilrm", "convert", str(tmp_path / "nope.pt"), str(out)], capture_output=True, text=True)
    assert bad.returncode == 2 and "not found" in bad.stderr


def _hub_cache(cache: Path, repo_id: str, src: Path, sha: str) -> None:
    """The on-disk layout huggingface_hub uses: blobs + snapshots/<sha> symlinks + refs/main."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    (root / "blobs").mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(sha)
    snap = root / "snapshots" / sha
    snap.mkdir(parents=True)
    import hashlib

    for f in src.iterdir():
        data = f.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))


def test_from_pretrained_offline_hub_cache(tmp_path):
    model = ILRM(ILRMConfig.preset("tiny", depth=2))
    model.save_pretrained(tmp_path / "local")
    sha = "0123456789abcdef0123456789abcdef01234567"
    _hub_cache(tmp_path / "cache", "someone/ilrm-test", tmp_path / "local", sha)
    code = (
        "import sys, torch; from ilrm import ILRM; "
        "m = ILRM.from_pretrained('someone/ilrm-test', cache_dir=sys.argv[1], revision=sys.argv[2]); "
        "torch.save(m.state_dict(), sys.argv[3]); "
        "print(m.config.depth, float(sum(p.sum() for p in m.parameters())))"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for rev in ("main", sha):
        dump = tmp_path / f"loaded_{rev}.pt"
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache"), rev, str(dump)], capture_output=True,
                           text=True, env=env)
        assert r.returncode == 0, r.stderr
        depth, total = r.stdout.split()
        assert int(depth) == 2
        assert abs(float(total) - float(sum(p.detach().sum() for p in model.parameters()))) < 1e-3
        # every tensor, by name, bit for bit (a sum misses swapped or permuted weights)
        loaded, saved = torch.load(dump, weights_only=True), model.state_dict()
        assert list(loaded) == list(saved)
        assert all(torch.equal(loaded[k], saved[k]) for k in saved), [k for k in saved if not torch.equal(loaded[k], saved[k])]
    local = ILRM.from_pretrained(tmp_path / "local")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), local.state_dict().values()))


# ---- unreadable checkpoints: a message and exit 2 in both CLIs (issue 15, defect 6) ----------------


def _broken_checkpoints(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name → (path, a phrase the message must hold), one per way a checkpoint arrives unreadable."""
    good = tmp / "good.ckpt"
    save_official(good, "main", official_state_dict("main", width=128, depth=2))
    data = good.read_bytes()
    out: dict[str, tuple[Path, str]] = {}
    (tmp / "truncated.ckpt").write_bytes(data[: len(data) // 2])  # torch: RuntimeError (zip central directory)
    out["truncated-ckpt"] = (tmp / "truncated.ckpt", "truncated, damaged")
    (tmp / "empty.ckpt").write_bytes(b"")  # torch: EOFError
    out["empty-file"] = (tmp / "empty.ckpt", "is empty")
    (tmp / "text.ckpt").write_text("hello, this is not a checkpoint\n")  # torch: KeyError: 101
    out["text-file"] = (tmp / "text.ckpt", "not a checkpoint")
    folder = tmp / "ours"
    ILRM(ILRMConfig.preset("tiny", depth=2)).save_pretrained(folder)
    st = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(st[: len(st) // 2])  # safetensors: SafetensorError
    out["truncated-safetensors"] = (folder, "not a readable safetensors file")
    save_official(tmp / "width96.ckpt", "main", official_state_dict("main", width=96, depth=2))
    out["width-not-multiple-of-64"] = (tmp / "width96.ckpt", "not a multiple of the head size 64")
    return out


@pytest.fixture(scope="module")
def broken_checkpoints(tmp_path_factory):
    return _broken_checkpoints(tmp_path_factory.mktemp("broken"))


BROKEN = ["truncated-ckpt", "empty-file", "text-file", "truncated-safetensors", "width-not-multiple-of-64"]


def _assert_clean_error(r: subprocess.CompletedProcess, phrase: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "error: " in r.stderr and phrase in r.stderr, r.stderr[-2000:]
    # every message says what to do
    assert any(w in r.stderr for w in ("again", "Use the authors'", "restore")), r.stderr


@pytest.mark.parametrize("case", BROKEN)
def test_unreadable_checkpoint_eval_cli_exit_2(broken_checkpoints, case, tmp_path):
    path, phrase = broken_checkpoints[case]
    r = subprocess.run(
        [sys.executable, "-m", "eval", "run", "--benchmark", "procedural-2v", "--model", str(path),
         "--out", str(tmp_path / "out"), "--device", "cpu", "--no-lpips", "--no-progress"],
        capture_output=True, text=True, env=dict(os.environ, ILRM_LPIPS_FETCH="0"),
    )
    _assert_clean_error(r, phrase)


@pytest.mark.parametrize("case", BROKEN)
def test_unreadable_checkpoint_reconstruct_cli_exit_2(broken_checkpoints, case, tmp_path):
    path, phrase = broken_checkpoints[case]
    (tmp_path / "scene").mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "ilrm", "reconstruct", str(tmp_path / "scene"), "--out", str(tmp_path / "out"),
         "--model", str(path), "--device", "cpu"],
        capture_output=True, text=True,
    )
    _assert_clean_error(r, phrase)


def test_config_width_not_multiple_of_64_says_what_to_do(tmp_path):
    import json

    ILRM(ILRMConfig.preset("tiny", depth=2)).save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**cfg, "width": 96}))
    from ilrm.checkpoints import load_model

    with pytest.raises(ILRMInputError, match="restore the config.json"):
        load_model(tmp_path / "m")
