"""iLRM as a model of ``ffgs``, the neutral inference API for feed-forward Gaussian splatting.

``pyproject.toml`` exposes :data:`SPEC` under the ``ffgs.models`` entry-point group, so once ``ilrm``
is installed, ffgs loads our checkpoint folders (``config.json`` + safetensors) by ``model_type``::

    from ffgs import GSPipeline, Views
    pipe = GSPipeline.from_pretrained("checkpoints/ilrm-tiny-procedural", model_type="ilrm")
    out = pipe(Views(images, K, c2w))            # Gaussians in iLRM's normalised frame
    out.to_world().gaussians.save_ply("scene.ply")  # in the frame of c2w

(``model_type=`` is needed for folders written by ``ilrm`` itself, whose ``config.json`` has no
``model_type`` key.) The processor is our pre-processing, not a re-implementation: photos resized and
centre-cropped by :func:`ilrm.pipeline.model_input_size`, poses normalised by
:func:`ilrm.cameras.normalize_poses`, so ``pipe(views)`` returns what our own forward returns.
Only this module imports ffgs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffgs
import torch
from torch import Tensor

from ..cameras import Views, average_pose, normalize_poses, resize_and_center_crop
from ..config import ILRMConfig
from ..gaussians import Gaussians
from ..models import ILRM
from ..pipeline import check_camera_layout, model_input_size
from ..rendering import WHITE

__all__ = ["MODEL_TYPE", "SPEC", "ILRMProcessor", "ILRMProcessorConfig"]

MODEL_TYPE = "ilrm"
# Keys ffgs may add to config.json that are not ILRMConfig fields.
_FFGS_KEYS = ("model_type", "auto_map")


@dataclass
class ILRMProcessorConfig:
    """What the pre-processing reads from the model's :class:`ILRMConfig` (same field names, so
    :func:`model_input_size` takes it as it is), plus the render settings. Defaults: the ``tiny`` preset."""

    image_height: int = 256  # training resolution; with keep_aspect, its short side is kept
    image_width: int = 256
    size_multiple: int = 16  # patch size × viewpoint factor: H and W are rounded to it
    keep_aspect: bool = True  # photos keep their aspect (as the demo and CLI feed them)
    pose_scale_before_recentre: bool = False  # the RE10K normalisation quirk, per checkpoint
    near: float = 0.01  # render planes in model units
    far: float = 500.0
    background: list[float] = field(default_factory=lambda: list(WHITE))

    @classmethod
    def from_model_config(cls, config: ILRMConfig) -> ILRMProcessorConfig:
        return cls(
            image_height=config.image_height,
            image_width=config.image_width,
            size_multiple=config.size_multiple,
            pose_scale_before_recentre=config.pose_scale_before_recentre,
            near=config.near,
            far=config.far,
        )


def _read_json(pretrained: str | Path, name: str, **hub_kwargs: Any) -> dict | None:
    """``name`` from a local folder or a Hub repo, or None when the file is not there."""
    local = Path(pretrained)
    if local.is_dir():
        path = local / name
        return json.loads(path.read_text()) if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return json.loads(Path(hf_hub_download(str(pretrained), name, **hub_kwargs)).read_text())
    except EntryNotFoundError:
        return None


class ILRMProcessor(ffgs.Processor):
    """ffgs ``Views`` ↔ iLRM's :class:`~ilrm.cameras.Views` and :class:`~ilrm.gaussians.Gaussians`.

    The model frame of a scene is iLRM's normalised frame: ``x_model = s · inverse(A) · x_world`` with
    ``A`` the average input camera (:func:`~ilrm.cameras.average_pose`) and ``s`` the scale that brings
    the largest camera coordinate to 1 (both from :func:`~ilrm.cameras.normalize_poses`).
    """

    config_cls = ILRMProcessorConfig
    camera_input = "required"  # iLRM reads rays: no poses, no input

    @classmethod
    def from_pretrained(cls, pretrained: str | Path, **hub_kwargs: Any) -> ILRMProcessor:
        """Settings derived from the checkpoint's ``config.json``; a ``processor_config.json`` beside it
        (as ``GSPipeline.save_pretrained`` writes) overrides them."""
        model_config = _read_json(pretrained, "config.json", **hub_kwargs)
        if model_config is None:
            raise FileNotFoundError(f"{pretrained} has no config.json: not an iLRM checkpoint folder")
        config = ILRMConfig.from_dict({k: v for k, v in model_config.items() if k not in _FFGS_KEYS})
        settings = vars(ILRMProcessorConfig.from_model_config(config))
        saved = _read_json(pretrained, "processor_config.json", **hub_kwargs)
        return cls.from_dict({**settings, **(saved or {})}, source=f"{pretrained} processor settings")

    def preprocess(self, views: ffgs.Views, device: torch.device, **options: Any) -> ffgs.Prepared:
        """views: images [B, V, 3, H, W] in [0, 1], intrinsics [B, V, 3, 3] (pixels or normalised),
        c2w [B, V, 4, 4] OpenCV in any world frame. Returns the model input (our Views at the model's
        size, poses normalised; on ``device``) and the :class:`ffgs.ModelFrame` world → model."""
        if options:
            raise TypeError(f"iLRM's processor takes no options, got {sorted(options)}")
        views.require("intrinsics", "c2w", by="iLRM")
        cfg = self.config
        B, V, _, H, W = views.images.shape
        K = views.intrinsics.float()
        if views.normalized_intrinsics:
            K = K.clone()
            K[..., 0, :] *= W
            K[..., 1, :] *= H
        size = model_input_size(cfg, (H, W), cfg.keep_aspect)
        images, K = resize_and_center_crop(views.images.float(), K, size)
        c2w = views.c2w.double()
        poses, _, transform = normalize_poses(c2w, scale_before_recentre=cfg.pose_scale_before_recentre)
        for b in range(B):  # the same checks the library applies to its own callers
            check_camera_layout(poses[b], [f"view {i}" for i in range(V)])
        model_input = Views(images.contiguous(), K.float(), poses.float()).to(device)
        # transform = diag(s, s, s, 1) · inverse(A): its rotation rows have length s.
        scale = transform[:, 0, :3].norm(dim=-1)
        frame = ffgs.ModelFrame(anchor_c2w=average_pose(c2w).float(), scale=scale.float())
        return ffgs.Prepared(model_input, frame)

    def postprocess(self, model_output: Gaussians) -> ffgs.Gaussians:
        """Our Gaussians (B, N, ...) → ffgs Gaussians, float32, model frame, SH in the gsplat basis."""
        g = model_output.float()
        return ffgs.Gaussians(
            means=g.means, scales=g.scales, quats=g.quats, opacities=g.opacities, colors=g.sh, sh_degree=g.sh_degree
        )

    def render_planes(self, frame: ffgs.ModelFrame | None) -> tuple[float | Tensor, float | Tensor]:
        """The config's near / far are model units; in world units they are divided by the frame's scale
        ([B] tensors then)."""
        if frame is None:
            return self.config.near, self.config.far
        return self.config.near / frame.scale, self.config.far / frame.scale

    @property
    def background(self) -> tuple[float, float, float]:
        return tuple(self.config.background)

    @property
    def autocast_dtype(self) -> torch.dtype:
        return torch.bfloat16  # as our Reconstructor runs on CUDA (ffgs applies it on CUDA only)


SPEC = ffgs.ModelSpec(model_type=MODEL_TYPE, model_cls=ILRM, processor_cls=ILRMProcessor, display_name="iLRM")
