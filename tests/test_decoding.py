"""The decoding options for training from scratch (ILRMConfig depth_mode / scale_mode / color_init),
each checked against the formula written out by hand, and the authors' decoding left untouched."""

import math

import pytest
import torch
import torch.nn.functional as F

from ilrm import ILRM, ILRMConfig, Views
from ilrm.config import DECODING_FROM_SCRATCH
from ilrm.gaussians import SH_C0, decode_depth, decode_gaussians
from ilrm.models import FullAttentionLRM


def _views(V=2, H=32, W=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    K = torch.tensor([[40.0, 0, W / 2], [0, 36.0, H / 2], [0, 0, 1.0]]).expand(1, V, 3, 3).clone()
    c2w = torch.eye(4).expand(1, V, 4, 4).clone()
    c2w[..., 0, 3] = torch.linspace(-0.5, 0.5, V)
    return Views(torch.rand(1, V, 3, H, W, generator=g), K, c2w)


def test_disparity_depth_formula_and_range():
    x = torch.linspace(-30, 30, 121)
    d = decode_depth(x, mode="disparity", depth_max=0.0, near=0.2, far=200.0, bias=-2.8)
    by_hand = 1.0 / (1.0 / (1.0 + torch.exp(-(x - 2.8))) * (5.0 - 0.005) + 0.005)
    assert torch.allclose(d, by_hand, rtol=1e-5)
    assert (d >= 0.2 - 1e-4).all() and (d <= 200.0 + 1e-2).all()
    assert (d[1:] <= d[:-1]).all() and d[0] > 199 and d[-1] < 0.21  # larger x = nearer; saturates at far/near
    assert abs(float(decode_depth(torch.zeros(()), mode="disparity", depth_max=0, near=0.2, far=200, bias=-2.8)) - 3.43) < 0.01


def test_sigmoid_depth_is_the_authors_formula():
    x = torch.randn(50)
    assert torch.equal(decode_depth(x, mode="sigmoid", depth_max=500.0, near=0.2, far=200, bias=5.0), torch.sigmoid(x) * 500.0)


def test_footprint_scale_is_relative_to_depth_over_focal():
    torch.manual_seed(0)
    raw = torch.randn(1, 5, 14)
    o, d = torch.zeros(1, 5, 3), F.normalize(torch.randn(1, 5, 3), dim=-1)
    focal = torch.tensor([[100.0, 100.0, 50.0, 50.0, 25.0]])
    kw = dict(sh_coeffs=1, depth_max=500.0, scale_shift=0.0, scale_log_max=4.0, opacity_shift=-2.0, scale_clamp="soft",
              depth_mode="disparity", depth_near=0.2, depth_far=200.0, depth_bias=-2.8)
    g = decode_gaussians(raw, o, d, scale_mode="footprint", focal=focal, **kw)
    depth = (g.means - o).norm(dim=-1, keepdim=True)
    log_rel = 4.0 - F.softplus(4.0 - raw[..., 6:9])
    assert torch.allclose(g.scales, torch.exp(log_rel) * depth / focal[..., None], rtol=1e-5)
    # same raw, absolute mode: no depth/focal factor
    ga = decode_gaussians(raw, o, d, scale_mode="absolute", **kw)
    assert torch.allclose(ga.scales, torch.exp(log_rel), rtol=1e-5)
    with pytest.raises(ValueError, match="focal"):
        decode_gaussians(raw, o, d, scale_mode="footprint", **kw)


def test_zero_head_starts_at_one_footprint_and_the_photo_colour():
    """With the head zeroed, the from-scratch decoding puts every Gaussian ~3.4 units out, one grid
    pixel wide, and (color_init "image") coloured like the average input pixel of its grid cell."""
    cfg = ILRMConfig.preset("tiny", depth=2, color_init="image")
    model = ILRM(cfg).eval()
    views = _views()
    with torch.no_grad():
        model.head.weight.zero_()
        g = model(views)
    f = cfg.viewpoint_factor
    n = (32 // f) * (48 // f)
    centres = views.c2w[0, :, :3, 3].repeat_interleave(n, 0)[None]  # every ray starts at its camera centre
    depth = (g.means - centres).norm(dim=-1)
    assert torch.allclose(depth, torch.full_like(depth, depth[0, 0].item()), rtol=1e-4)
    assert abs(depth[0, 0].item() - 1 / (torch.sigmoid(torch.tensor(-2.8)).item() * (5 - 0.005) + 0.005)) < 1e-3
    focal_grid = math.sqrt((40.0 / f) * (36.0 / f))
    expected_scale = math.exp(4.0 - math.log1p(math.exp(4.0))) * depth[0, 0].item() / focal_grid
    assert torch.allclose(g.scales, torch.full_like(g.scales, expected_scale), rtol=1e-4)
    pooled = F.avg_pool2d(views.images[0], f)  # (V, 3, h, w)
    expected_rgb = pooled.permute(0, 2, 3, 1).reshape(1, -1, 3)
    assert torch.allclose(g.colors(), expected_rgb, atol=1e-5)
    # without color_init the zero head is mid-grey everywhere
    model0 = ILRM(cfg.replace(color_init="zero")).eval()
    with torch.no_grad():
        model0.head.weight.zero_()
        assert torch.allclose(model0(views).colors(), torch.full_like(expected_rgb, 0.5))


def test_image_colour_on_the_pixel_grid_of_the_baseline():
    cfg = ILRMConfig.preset("tiny-full", depth=1, color_init="image")
    model = FullAttentionLRM(cfg).eval()
    views = _views(V=1, H=16, W=16)
    with torch.no_grad():
        model.head.weight.zero_()
        g = model(views)
    assert torch.allclose(g.colors(), views.images[0].permute(0, 2, 3, 1).reshape(1, -1, 3), atol=1e-5)
    assert abs(SH_C0 - 0.2820947918) < 1e-9


def test_released_presets_keep_the_authors_decoding():
    for name in ("re10k", "dl3dv-wide"):
        cfg = ILRMConfig.preset(name)
        assert (cfg.depth_mode, cfg.scale_mode, cfg.scale_clamp, cfg.color_init) == ("sigmoid", "absolute", "hard", "zero")
        assert (cfg.depth_max, cfg.scale_shift, cfg.scale_log_max, cfg.opacity_shift) == (500.0, -6.9, -1.2, -2.0)
    for name in ("tiny", "small"):
        cfg = ILRMConfig.preset(name)
        assert all(getattr(cfg, k) == v for k, v in DECODING_FROM_SCRATCH.items())


@pytest.mark.parametrize("field,value", [("depth_mode", "log"), ("scale_mode", "relative"), ("color_init", "photo")])
def test_unknown_decoding_choices_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        ILRMConfig.preset("tiny", **{field: value})
    with pytest.raises(ValueError, match="depth_near"):
        ILRMConfig.preset("tiny", depth_near=5.0, depth_far=1.0)
