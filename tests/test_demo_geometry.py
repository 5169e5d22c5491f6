"""The demo's geometry: the downloads lie in the user's camera frame, the preview is the documented
transform of the full file.

A stand-in model (no training needed) turns the first photo into one Gaussian per pixel on its
camera rays, in the model's normalised frame, so the scene has structure (the procedural room)
and its correct rendering from the first camera is known: the photo itself. The downloaded files
are then rendered at the cameras of the user's own camera file (read here, not by the pipeline).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from demo.models import EXAMPLES_DIR
from demo.pipeline import VideoSettings, prepare_input, reconstruct
from ilrm.cameras import Views, pixel_rays
from ilrm.config import ILRMConfig
from ilrm.gaussian_files import load_ply, load_splat
from ilrm.gaussians import SH_C0, Gaussians
from ilrm.pipeline import Reconstructor
from ilrm.rendering import render

PROC = EXAMPLES_DIR / "procedural"
PROC_IMAGES = sorted(str(p) for p in (PROC / "images").glob("*.png"))
PROC_CAMS = PROC / "opencv_cameras.json"
SIZE = 64  # the stand-in model's input size: 4,096 Gaussians, renders in well under a second
NEAR, FAR = 1e-3, 1e3  # wide enough for both frames (they differ by the normalisation's scale)


class PixelSplatModel(nn.Module):
    """A stand-in for ILRM: one Gaussian per pixel of view 0, at depth ``depth`` along its ray.

    The Gaussians are flat discs facing the camera (thin along the ray), so a rotation lost on the
    way to a file changes what is drawn. ``last`` keeps the (views, Gaussians) of the latest call.
    """

    def __init__(self, depth: float = 1.5):
        super().__init__()
        self.config = ILRMConfig.preset("tiny", image_height=SIZE, image_width=SIZE, trained_sizes=((SIZE, SIZE),))
        self.depth = depth
        self.last: tuple[Views, Gaussians] | None = None

    def forward(self, views: Views) -> Gaussians:
        K, c2w = views.intrinsics[0, 0], views.c2w[0, 0]
        o, d = pixel_rays(K, c2w, views.height, views.width)
        n = views.height * views.width
        means = (o + self.depth * d).reshape(1, n, 3)
        pixel = self.depth / float(K[0, 0])  # one pixel's footprint at that depth
        scales = torch.tensor([0.8 * pixel, 0.8 * pixel, 0.05 * pixel]).expand(1, n, 3).clone()
        quat = _rotmat_to_quat(c2w[:3, :3].double()).float()  # disc axes = the camera's axes
        rgb = views.images[0, 0].permute(1, 2, 0).reshape(1, n, 1, 3)
        g = Gaussians(means, quat.expand(1, n, 4).clone(), scales, torch.full((1, n), 0.99), (rgb - 0.5) / SH_C0)
        self.last = (views, g)
        return g


def _rotmat_to_quat(R: torch.Tensor) -> torch.Tensor:
    """(3, 3) rotation → (4,) wxyz (trace > 0 branch suffices here; checked below)."""
    w = math.sqrt(max(1.0 + float(R.trace()), 1e-12)) / 2
    q = torch.stack([torch.tensor(w, dtype=R.dtype), (R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w),
                     (R[1, 0] - R[0, 1]) / (4 * w)])
    return F.normalize(q, dim=0)


def user_cameras() -> torch.Tensor:
    """(V, 4, 4) camera-to-world poses straight from the example's opencv_cameras.json (w2c inverted)."""
    frames = sorted(json.loads(PROC_CAMS.read_text())["frames"], key=lambda f: f["file_path"])
    return torch.stack([torch.linalg.inv(torch.tensor(f["w2c"], dtype=torch.float64)) for f in frames])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10((a.float() - b.float()).square().mean().clamp_min(1e-12)))


def draw(g: Gaussians, K: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """(V, 3, H, W) renders of ``g`` at pixel intrinsics K (V, 3, 3) and poses c2w (V, 4, 4)."""
    return render(g, K[None].float(), c2w[None].float(), SIZE, SIZE, near=NEAR, far=FAR, backend="torch")[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    model = PixelSplatModel()
    out = tmp_path_factory.mktemp("geometry")
    result = reconstruct(PROC_IMAGES, [str(PROC_CAMS)], model, out, video=VideoSettings(0, 1), device="cpu")
    views, g_model = model.last
    return result, views, g_model


def test_stand_in_model_reproduces_its_photo(run):
    """The fixture's premise: in the model's frame, view 0's camera sees its own photo."""
    _, views, g_model = run
    R = views.c2w[0, 0, :3, :3].double()
    from ilrm.gaussians import quat_to_rotmat

    torch.testing.assert_close(quat_to_rotmat(_rotmat_to_quat(R)), R, atol=1e-6, rtol=0)
    seen = draw(g_model, views.intrinsics[0, :1], views.c2w[0, :1])
    assert psnr(seen, views.images[0, :1]) > 25
    assert float(views.images[0, 0].std()) > 0.1  # a structured scene, not a flat colour


@pytest.mark.parametrize("kind", ["ply", "splat"])
def test_downloads_render_at_the_users_cameras(run, kind):
    """The downloaded .ply/.splat, drawn at the cameras of the user's camera file, look like what the
    model's Gaussians look like from the input views (and view 0 like its photo)."""
    result, views, g_model = run
    K = views.intrinsics[0].double()
    expected = draw(g_model, K, views.c2w[0])  # the model frame, as the pipeline renders its video
    g_file = load_ply(result.ply) if kind == "ply" else load_splat(result.splat)
    seen = draw(g_file, K, user_cameras())
    # .splat stores 8-bit colours and rotations, hence the lower bar
    assert psnr(seen, expected) > (45 if kind == "ply" else 40), kind
    assert psnr(seen[:1], views.images[0, :1]) > 24


def test_prepare_input_geometry():
    """Cameras in the user's frame are the file's; the model frame is a similarity of them, with the
    mean camera at the origin looking down +z and the farthest camera at distance 1 per axis."""
    prep = prepare_input(PROC_IMAGES, [str(PROC_CAMS)], Reconstructor(PixelSplatModel(), keep_aspect=False)).prepared
    c2w_user = user_cameras()
    torch.testing.assert_close(prep.c2w_user, c2w_user, atol=1e-5, rtol=0)
    T = prep.transform
    A = T[:3, :3]
    s = float(torch.linalg.det(A)) ** (1 / 3)
    torch.testing.assert_close(A @ A.T, s * s * torch.eye(3, dtype=A.dtype), atol=1e-5, rtol=0)
    torch.testing.assert_close(prep.views.c2w[0].double()[:, :3, 3], (T @ c2w_user)[:, :3, 3], atol=1e-5, rtol=0)
    torch.testing.assert_close(prep.views.c2w[0].double()[:, :3, :3], (T @ c2w_user)[:, :3, :3] / s, atol=1e-5,
                               rtol=0)
    centres = prep.views.c2w[0, :, :3, 3].double()
    torch.testing.assert_close(centres.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-5, rtol=0)
    assert float(centres.abs().max()) == pytest.approx(1.0, abs=1e-5)
    forward = F.normalize(prep.views.c2w[0, :, :3, 2].double().mean(0), dim=0)
    torch.testing.assert_close(forward, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-5, rtol=0)


def mean_camera_rotation(c2w: np.ndarray) -> np.ndarray:
    """The documented mean camera (Reconstructor.export's preview rotation): mean forward, mean down made
    orthogonal to it, right = down × forward; returned as camera → world columns."""
    forward = c2w[:, :3, 2].mean(0)
    forward /= np.linalg.norm(forward)
    down = c2w[:, :3, 1].mean(0)
    down -= down @ forward * forward
    down /= np.linalg.norm(down)
    return np.stack([np.cross(down, forward), down, forward], axis=1)


def test_preview_is_the_documented_transform_of_the_full_file(run):
    """preview = V · diag(1, 1, k) · s · C⁻¹ x of the full file's Gaussians (opacity ≥ 0.02, in front of
    C), with C the first input camera, s = 5 / median depth, k = 1132 / (f · cover scale) and V the
    Model3D viewer's default camera: the viewer then looks through the first input camera."""
    from ilrm.gaussian_files import DEFAULT_CANVAS, VIEWER_FOCAL_PX, viewer_camera

    result, views, _ = run
    full, preview = load_ply(result.ply), load_ply(result.preview)
    keep = full.opacities[0] >= 0.02
    x = full.means[0][keep].double()
    C = user_cameras()[0]
    w2c = torch.linalg.inv(C)
    cam = x @ w2c[:3, :3].T + w2c[:3, 3]
    z_med = float(cam[:, 2].median())
    cam = cam[cam[:, 2] > 0.01 * z_med]
    p = preview.means[0].double()
    assert len(p) == len(cam) == result.num_preview
    K, (h, w) = views.intrinsics[0, 0].double(), views.images.shape[-2:]
    k = VIEWER_FOCAL_PX / (0.5 * float(K[0, 0] + K[1, 1]) * max(DEFAULT_CANVAS[0] / w, DEFAULT_CANVAS[1] / h))
    V = torch.from_numpy(viewer_camera())
    # the viewer's default camera: 5 units from the origin, looking at it, x axis horizontal
    assert float(V[:3, 3].norm()) == pytest.approx(5.0)
    torch.testing.assert_close(V[:3, 2], -V[:3, 3] / 5, atol=1e-9, rtol=0)
    assert abs(float(V[1, 0])) < 1e-9
    expected = (cam * (5.0 / z_med) * torch.tensor([1.0, 1.0, k], dtype=torch.float64)) @ V[:3, :3].T + V[:3, 3]
    np.testing.assert_allclose(p.numpy(), expected.numpy(), atol=2e-4 * float(p.abs().max()))
    # the scene lies in front of the viewer's camera, at the orbit radius (median depth 5·k)
    depth = (p - V[:3, 3]) @ V[:3, 2]
    assert float((depth > 0).double().mean()) == 1.0 and float(depth.median()) == pytest.approx(5.0 * k, rel=1e-3)
