"""iLRM through ffgs's neutral API: the installed plugin loads our checkpoint and answers as we do."""

from pathlib import Path

import pytest
import torch

ffgs = pytest.importorskip("ffgs")

from ilrm.checkpoints import load_model  # noqa: E402
from ilrm.pipeline import Reconstructor  # noqa: E402

CKPT = Path(__file__).resolve().parents[1] / "checkpoints" / "ilrm-tiny-procedural"


def look_at(eye: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(4, 4) OpenCV c2w at ``eye`` looking at ``target`` (y down)."""
    z = torch.nn.functional.normalize(target - eye, dim=0)
    x = torch.nn.functional.normalize(torch.linalg.cross(torch.tensor([0.0, -1.0, 0.0]), z), dim=0)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, torch.linalg.cross(z, x), z, eye
    return c2w


def scene(h: int, w: int, views: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Smooth random photos (V, 3, h, w), pixel K (V, 3, 3) and c2w (V, 4, 4) in an arbitrary world frame
    (rotated, shifted, scaled far from iLRM's normalised one)."""
    gen = torch.Generator().manual_seed(0)
    images = torch.nn.functional.interpolate(torch.rand(views, 3, h // 8, w // 8, generator=gen), (h, w), mode="bilinear")
    K = torch.tensor([[0.9 * w, 0.0, w / 2], [0.0, 0.9 * w, h / 2], [0.0, 0.0, 1.0]]).expand(views, 3, 3).clone()
    center = torch.tensor([4.0, -1.0, 7.0])
    angles = torch.linspace(-0.3, 0.3, views)
    eyes = [center + 30 * torch.stack([a.sin(), 0.1 * a, -a.cos()]) for a in angles]
    c2w = torch.stack([look_at(e, center) for e in eyes])
    c, s = torch.cos(torch.tensor(0.7)), torch.sin(torch.tensor(0.7))
    world = torch.eye(4)
    world[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]])
    return images, K, world @ c2w


@pytest.fixture(scope="module")
def pipe():
    assert ffgs.get_model_spec("ilrm").model_cls.__name__ == "ILRM"  # resolved through the entry point
    return ffgs.GSPipeline.from_pretrained(CKPT, model_type="ilrm")


@pytest.fixture(scope="module")
def ours():
    return Reconstructor(load_model(CKPT), device="cpu")


def assert_same_gaussians(a, b, atol: float) -> None:
    """ffgs Gaussians ``a`` against ours ``b`` (both (1, N, ...))."""
    for name, ours_t in [("means", b.means), ("scales", b.scales), ("quats", b.quats), ("opacities", b.opacities)]:
        torch.testing.assert_close(getattr(a, name), ours_t, atol=atol, rtol=1e-5, msg=name)
    torch.testing.assert_close(a.colors, b.sh, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("size,normalized", [((180, 320), False), ((240, 240), True)])
def test_same_gaussians_as_our_forward(pipe, ours, size, normalized):
    images, K, c2w = scene(*size)
    prepared = ours.prepare(images, K, c2w)
    g = ours.forward(prepared.views)
    K_in = K.clone()
    if normalized:  # ffgs's other intrinsics convention: K / (W, H)
        K_in[:, 0] /= size[1]
        K_in[:, 1] /= size[0]
    out = pipe(ffgs.Views(images, K_in, c2w, normalized_intrinsics=normalized))
    assert out.space == "model" and out.gaussians.sh_degree == g.sh_degree
    assert_same_gaussians(out.gaussians, g, atol=1e-5)
    world = out.to_world()
    assert world.space == "world"
    assert_same_gaussians(world.gaussians, ours.to_user_frame(g, prepared.transform), atol=1e-4)


def test_to_world_puts_gaussians_on_the_input_cameras_rays(pipe, ours):
    """Each Gaussian lies on the ray of its grid pixel in its own view (within the head's ±½-cell
    offset): project the world-frame means with the input cameras and find the grid."""
    h, w = 256, 448  # the model's own size for this aspect: no resize, so grid = photo pixels / factor
    images, K, c2w = scene(h, w)
    out = pipe(ffgs.Views(images, K, c2w)).to_world()
    f = ours.config.gaussian_factor
    gh, gw = h // f, w // f
    means = out.gaussians.means[0].double().reshape(len(c2w), gh, gw, 3)
    ys, xs = torch.meshgrid(torch.arange(gh) + 0.5, torch.arange(gw) + 0.5, indexing="ij")
    for v in range(len(c2w)):
        cam = (torch.linalg.inv(c2w[v].double()) @ torch.cat([means[v], torch.ones(gh, gw, 1)], -1)[..., None])[..., :3, 0]
        assert (cam[..., 2] > 0).all()
        uv = (K[v].double() @ cam[..., None])[..., 0]
        uv = uv[..., :2] / uv[..., 2:]
        assert (uv[..., 0] / f - xs).abs().max() <= 0.5 + 1e-3
        assert (uv[..., 1] / f - ys).abs().max() <= 0.5 + 1e-3
    # and the planes ffgs renders with are ours, taken into world units
    near, far = pipe.processor.render_planes(out.frame)
    torch.testing.assert_close((near * out.frame.scale).float(), torch.tensor([ours.config.near]))
    assert pipe.processor.background == (1.0, 1.0, 1.0)


def test_ffgs_save_pretrained_loads_back(pipe, tmp_path):
    """A folder written by ffgs (its keys beside ours in config.json) loads in ffgs and in ilrm."""
    pipe.save_pretrained(tmp_path / "saved")
    again = ffgs.GSPipeline.from_pretrained(tmp_path / "saved")
    images, K, c2w = scene(180, 320)
    a = pipe(ffgs.Views(images, K, c2w)).gaussians
    b = again(ffgs.Views(images, K, c2w)).gaussians
    torch.testing.assert_close(a.means, b.means)
    ours_again = load_model(tmp_path / "saved")
    assert ours_again.config == load_model(CKPT).config
