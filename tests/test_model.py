import math

import pytest
import torch

from ilrm import ILRM, ILRMConfig, ILRMInputError, Views
from ilrm.cameras import pixel_rays
from ilrm.gaussians import decode_gaussians
from ilrm.models import FullAttentionLRM, build_model
from ilrm.models.layers import ReadAttention, SelfAttention, patchify, reference_attention, unpatchify


def make_views(B=1, V=2, H=64, W=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    K = torch.tensor([[0.9 * W, 0, W / 2], [0, 0.9 * W, H / 2], [0, 0, 1.0]]).expand(B, V, 3, 3).clone()
    c2w = torch.eye(4).expand(B, V, 4, 4).clone()
    c2w[..., 0, 3] = torch.linspace(-0.5, 0.5, V)
    c2w[..., 2, 3] = torch.rand(B, V, generator=g) * 0.1
    return Views(torch.rand(B, V, 3, H, W, generator=g), K, c2w)


def small(name, **kw):
    return ILRMConfig.preset(name, width=128, depth=4, **kw)


@pytest.mark.parametrize("name", ["re10k", "dl3dv-wide", "tiny", "tiny-full"])
@pytest.mark.parametrize("V", [1, 2, 5])
def test_shapes_every_preset(name, V):
    cfg = ILRMConfig.preset(name) if name.startswith("tiny") else small(name)
    model = build_model(cfg).eval()
    views = make_views(B=2, V=V, H=32, W=48)
    with torch.no_grad():
        g = model(views)
    N = model.num_gaussians(V, 32, 48)
    f = cfg.gaussian_factor
    assert V * (32 // f) * (48 // f) == N
    assert g.means.shape == (2, N, 3) and g.quats.shape == (2, N, 4) and g.scales.shape == (2, N, 3)
    assert g.opacities.shape == (2, N) and g.sh.shape == (2, N, 1, 3)
    assert torch.allclose(g.quats.norm(dim=-1), torch.ones(2, N), atol=1e-5)
    assert torch.isfinite(g.means).all()


def test_full_size_presets_run():
    """The released sizes at their real widths, on tiny images."""
    for name in ("re10k", "dl3dv-wide"):
        model = ILRM(ILRMConfig.preset(name)).eval()
        with torch.no_grad():
            g = model(make_views(V=2, H=16, W=32))
        assert g.means.shape[1] == model.num_gaussians(2, 16, 32)


@pytest.mark.parametrize("H,W", [(30, 32), (32, 20), (0, 32)])
def test_bad_sizes_rejected_with_message(H, W):
    model = ILRM(ILRMConfig.preset("tiny"))
    with pytest.raises(ILRMInputError, match=r"multiples of 16.*try"):
        model(make_views(H=max(H, 1), W=W) if H else make_views(H=0, W=W))


def test_bad_shapes_rejected():
    v = make_views()
    with pytest.raises(ILRMInputError, match="intrinsics"):
        ILRM(ILRMConfig.preset("tiny"))(Views(v.images, v.intrinsics[:, :1], v.c2w))


def test_patchify_channel_order():
    x = torch.arange(2 * 16 * 24 * 3).float().reshape(1, 2, 16, 24, 3)  # (B, V, H, W, C)
    t = patchify(x, 8)
    assert t.shape == (1, 2 * 2 * 3, 192)
    # token 4 = view 0, patch row 1, patch col 1; channel index (ph*8 + pw)*3 + c
    for ph, pw, c in [(0, 0, 0), (2, 5, 1), (7, 7, 2)]:
        assert t[0, 4, (ph * 8 + pw) * 3 + c] == x[0, 0, 8 + ph, 8 + pw, c]
    # token 6 is the first of view 1
    assert t[0, 6, 0] == x[0, 1, 0, 0, 0]
    assert torch.equal(unpatchify(t, 2, 2, 3, 8), x)


def test_decoding_formulas():
    N = 5
    raw = torch.randn(1, N, 14) * 3
    raw[0, 0, 6:9] = 10.0  # huge scale logits → clamp
    o = torch.randn(1, N, 3)
    d = torch.nn.functional.normalize(torch.randn(1, N, 3), dim=-1)
    g = decode_gaussians(raw, o, d, sh_coeffs=1, depth_max=500.0, scale_shift=-6.9, scale_log_max=-1.2, opacity_shift=-2.0)
    depth = torch.sigmoid(raw[..., 0:3].mean(-1)) * 500
    assert torch.allclose(g.means, o + depth[..., None] * d, atol=1e-4)
    assert torch.allclose((g.means - o).norm(dim=-1), depth, atol=1e-3)  # depth is along the unit ray
    assert torch.allclose(g.scales[0, 0], torch.full((3,), math.exp(-1.2)))
    assert (g.scales <= math.exp(-1.2) + 1e-7).all()
    assert torch.allclose(g.scales[0, 1:], torch.exp(torch.clamp(raw[0, 1:, 6:9] - 6.9, max=-1.2)))
    assert torch.allclose(g.opacities, torch.sigmoid(raw[..., 13] - 2.0))
    assert torch.allclose(g.sh[..., 0, :], raw[..., 3:6])
    assert torch.allclose(g.quats, torch.nn.functional.normalize(raw[..., 9:13], dim=-1))


def test_soft_scale_clamp_keeps_a_gradient_at_the_cap():
    # The hard cap (the authors' formula) gives a saturated scale no gradient, so it can never shrink;
    # the soft cap agrees far below the cap, stays below it, and passes a gradient everywhere.
    raw = torch.zeros(1, 3, 14)
    raw[0, :, 6:9] = torch.tensor([-3.0, 5.7, 12.0])[:, None]  # log-scale -9.9 (far below), -1.2 (at), 5.1 (above)
    o, d = torch.zeros(1, 3, 3), torch.tensor([[[0.0, 0.0, 1.0]] * 3])
    kw = dict(sh_coeffs=1, depth_max=500.0, scale_shift=-6.9, scale_log_max=-1.2, opacity_shift=-2.0)
    grads = {}
    for mode in ("hard", "soft"):
        r = raw.clone().requires_grad_(True)
        g = decode_gaussians(r, o, d, scale_clamp=mode, **kw)
        g.scales.sum().backward()
        grads[mode] = r.grad[0, :, 6]
        if mode == "soft":
            assert (g.scales <= math.exp(-1.2)).all()
            assert torch.allclose(g.scales[0, 0], torch.full((3,), math.exp(-9.9)), rtol=1e-3)
    assert grads["hard"][2] == 0 and grads["soft"][2] > 0
    with pytest.raises(ValueError, match="scale_clamp"):
        ILRMConfig.preset("tiny").replace(scale_clamp="sometimes")


def test_offset_moves_ray_within_half_pixel():
    """Wide head: the Gaussian's ray passes through the grid-pixel centre shifted by sigmoid(offset) − 0.5."""
    model = ILRM(ILRMConfig.preset("tiny", depth_mode="sigmoid")).eval()
    views = make_views(V=1, H=32, W=32)
    with torch.no_grad():
        model.head.weight.zero_()  # all raw channels 0 → offset 0, depth sigmoid(0)·500
        g0 = model(views)
    K = views.intrinsics[0, 0] / 2
    K[2, 2] = 1
    o, d = pixel_rays(K, views.c2w[0, 0], 16, 16)
    expected = o + 250.0 * d
    assert torch.allclose(g0.means[0], expected.reshape(-1, 3), atol=1e-3)
    # the offset range: sigmoid(logit) − 0.5 spans (−0.5, 0.5) grid pixels
    for logit, shift in [(-50.0, -0.5), (0.0, 0.0), (50.0, 0.5)]:
        off = torch.full((1, 1, 16, 16, 2), torch.sigmoid(torch.tensor(logit)).item() - 0.5)
        o2, d2 = pixel_rays(K[None, None], views.c2w[:, :1], 16, 16, offset=off)
        # pixel (0,0) with shift lands on continuous coordinate 0.5 + shift
        cam = d2[0, 0, 0, 0] / d2[0, 0, 0, 0, 2]
        assert torch.allclose(cam[0] * K[0, 0] + K[0, 2], torch.tensor(0.5 + shift), atol=1e-4)


def test_uplift_query_layout_matches_per_token_queries():
    """Each viewpoint token issues `s` queries; attention equals the materialised formula."""
    torch.manual_seed(0)
    D, s = 128, 2
    attn = ReadAttention(D, 64, uplift=s)
    x, ctx = torch.randn(3, 5, D), torch.randn(3, 7, D)
    out = attn(x, ctx)
    h, d = D // 64, 64
    q = attn.q(attn.norm(x)).view(3, 5, s, h, d)  # our layout (s, heads, head_dim)
    k = attn.k_norm(attn.k(ctx).view(3, 7, h, d))
    v = attn.v(ctx).view(3, 7, h, d)
    q = attn.q_norm(q)
    o = torch.stack(
        [reference_attention(q[:, :, j].transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)) for j in range(s)], 2
    )  # (3, h, 5, s, d) → want (3, 5, s, h, d)
    o = o.permute(0, 3, 2, 1, 4).reshape(3, 5, s * D)
    assert torch.allclose(out, x + attn.proj(o), atol=1e-5)


def test_self_attention_matches_reference():
    torch.manual_seed(0)
    attn = SelfAttention(128, 64)
    x = torch.randn(2, 9, 128)
    qkv = attn.qkv(attn.norm(x)).view(2, 9, 3, 2, 64)
    q, k, v = attn.q_norm(qkv[:, :, 0]), attn.k_norm(qkv[:, :, 1]), qkv[:, :, 2]
    o = reference_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2).reshape(2, 9, 128)
    assert torch.allclose(attn(x), x + attn.proj(o), atol=1e-5)


def test_read_is_per_view():
    """Changing view 1's image must not change view 0's Gaussians after read blocks only."""
    cfg = ILRMConfig.preset("tiny", depth=1)  # one read block, no self block
    model = ILRM(cfg).eval()
    v = make_views(V=2, H=32, W=32)
    v2 = Views(v.images.clone(), v.intrinsics, v.c2w)
    v2.images[:, 1] = torch.rand_like(v2.images[:, 1])
    with torch.no_grad():
        a, b = model(v), model(v2)
    n = a.means.shape[1] // 2
    assert torch.allclose(a.means[:, :n], b.means[:, :n]) and not torch.allclose(a.means[:, n:], b.means[:, n:])


@pytest.mark.parametrize("name", ["tiny", "tiny-full"])
def test_gradient_reaches_every_parameter(name):
    model = build_model(ILRMConfig.preset(name, depth=4)).train()
    model.set_gradient_checkpointing(True)
    g = model(make_views(V=2, H=32, W=32))
    loss = g.means.square().mean() + g.sh.square().mean() + g.scales.mean() + g.opacities.mean() + g.quats[..., 1].mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    cfg = ILRMConfig.preset("tiny", depth=2)
    views = make_views(V=2, H=32, W=32)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(1)
        m = ILRM(cfg).train()
        m.set_gradient_checkpointing(ckpt)
        m(views).means.sum().backward()
        grads.append(m.blocks[0].attn.q.weight.grad.clone())
    assert torch.allclose(*grads, atol=1e-5)


def test_bf16_autocast_cpu():
    model = ILRM(ILRMConfig.preset("tiny")).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        g = model(make_views(V=2, H=32, W=32))
    assert g.means.dtype == torch.float32 and torch.isfinite(g.means).all()
    with torch.no_grad():
        ref = model(make_views(V=2, H=32, W=32))
    assert (g.means - ref.means).abs().max() < 5.0  # bf16 noise on depths up to 500


def test_forward_is_deterministic_and_batch_independent():
    model = FullAttentionLRM(ILRMConfig.preset("tiny", depth=2)).eval()
    v = make_views(B=2, V=2, H=32, W=32)
    with torch.no_grad():
        both = model(v)
        first = model(Views(v.images[:1], v.intrinsics[:1], v.c2w[:1]))
    assert torch.allclose(both.means[:1], first.means, atol=1e-4)
