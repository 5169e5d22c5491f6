"""Tests of ilrm.refine: a few Adam steps lower the MSE on the input views (CPU, torch backend)."""

from __future__ import annotations

import math

import pytest
import torch

from ilrm.cameras import Views
from ilrm.errors import ILRMInputError
from ilrm.gaussians import Gaussians
from ilrm.refine import RefineStep, refine
from ilrm.rendering import render


def _scene(seed: int = 0, N: int = 150) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    z = torch.rand(1, N, generator=gen) * 2 + 2
    xy = (torch.rand(1, N, 2, generator=gen) * 2 - 1) * 0.5 * z[..., None]
    means = torch.cat([xy, z[..., None]], -1)
    quats = torch.nn.functional.normalize(torch.randn(1, N, 4, generator=gen), dim=-1)
    scales = torch.exp(torch.rand(1, N, 3, generator=gen) * math.log(4) + math.log(0.05))
    opacities = torch.rand(1, N, generator=gen) * 0.6 + 0.3
    sh = torch.randn(1, N, 1, 3, generator=gen)
    return Gaussians(means, quats, scales, opacities, sh)


def _views(g: Gaussians, H: int = 32, W: int = 32) -> Views:
    K = torch.tensor([[32.0, 0, 16], [0, 32.0, 16], [0, 0, 1]]).expand(1, 2, 3, 3).clone()
    c2w = torch.eye(4).expand(1, 2, 4, 4).clone()
    c2w[0, 1, 0, 3] = 0.3
    with torch.no_grad():
        images = render(g, K, c2w, H, W)
    return Views(images=images, intrinsics=K, c2w=c2w)


def _perturb(g: Gaussians, seed: int = 1) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    noise = lambda t, s: t + s * torch.randn(t.shape, generator=gen)
    return Gaussians(
        noise(g.means, 0.01),
        torch.nn.functional.normalize(noise(g.quats, 0.1), dim=-1),
        g.scales * torch.exp(noise(torch.zeros_like(g.scales), 0.1)),
        (g.opacities + 0.2 * torch.randn(g.opacities.shape, generator=gen)).clamp(0.05, 0.95),
        noise(g.sh, 0.3),
    )


def test_ten_steps_lower_the_mse_on_input_views() -> None:
    truth = _scene()
    views = _views(truth)
    start = _perturb(truth)
    seen: list[RefineStep] = []
    out, stats = refine(start, views, steps=10, return_stats=True, callback=seen.append)

    assert len(stats.losses) == len(stats.step_seconds) == 10 and [s.step for s in seen] == list(range(10))
    assert all(s > 0 for s in stats.step_seconds)
    assert stats.final_loss < stats.losses[0]
    assert stats.losses[-1] < stats.losses[0]
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(render(start, views.intrinsics, views.c2w, 32, 32), views.images)
        after = torch.nn.functional.mse_loss(render(out, views.intrinsics, views.c2w, 32, 32), views.images)
    assert float(after) == pytest.approx(stats.final_loss, rel=1e-5)
    assert float(after) < 0.95 * float(before)

    # activated, detached, same shapes; the input is left untouched
    for name in ("means", "quats", "scales", "opacities", "sh"):
        t = getattr(out, name)
        assert t.shape == getattr(start, name).shape and not t.requires_grad
    torch.testing.assert_close(out.quats.norm(dim=-1), torch.ones(1, 150))
    assert (out.scales > 0).all() and ((out.opacities > 0) & (out.opacities < 1)).all()
    assert not torch.equal(out.means, start.means)
    # refine() is the same optimisation without the history
    torch.testing.assert_close(refine(start, views, steps=10).sh, out.sh)


def test_zero_steps_keeps_the_gaussians_and_checks_inputs() -> None:
    truth = _scene(N=20)
    views = _views(truth)
    out = refine(truth, views, steps=0)
    torch.testing.assert_close(out.means, truth.means)
    torch.testing.assert_close(out.scales, truth.scales)
    torch.testing.assert_close(out.opacities, truth.opacities)
    two = Gaussians.cat([truth, truth], dim=0)
    with pytest.raises(ILRMInputError, match="scenes"):
        refine(two, views)
    with pytest.raises(ILRMInputError, match="steps"):
        refine(truth, views, steps=-1)
