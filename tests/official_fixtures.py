"""Build files in the authors' two released checkpoint layouts (key names and shapes from SPEC),
with random weights, for loader tests. Width/depth are parameters so tests stay small."""

from __future__ import annotations

import torch


def official_state_dict(kind: str, width: int = 128, depth: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Key → tensor exactly as in the released files (without the Lightning prefix)."""
    g = torch.Generator().manual_seed(seed)
    D = width

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.05

    if kind == "main":
        sd = {
            "input_tokenizer.weight": r(D, 384),
            "input_layernorm.weight": 1 + r(D),
            "support_tokenizer.weight": r(D, 576),
            "support_layernorm.weight": 1 + r(D),
            "token_decoder.0.weight": 1 + r(D),
            "token_decoder.1.weight": r(896, D),
        }
        s = 1
    elif kind == "wide":
        sd = {
            "image_tokenizer.1.weight": r(D, 768),
            "image_tokenizer.2.weight": 1 + r(D),
            "viewpoint_tokenizer.1.weight": r(D, 576),
            "viewpoint_tokenizer.2.weight": 1 + r(D),
            "viewpoint_token_decoder.0.weight": 1 + r(D),
            "viewpoint_token_decoder.1.weight": r(1024, D),
        }
        s = 2
    else:
        raise ValueError(kind)
    for i in range(depth):
        p = f"processor.blocks.{i}."
        if i % 2 == 0:
            sd[p + "read_cross.norm.weight"] = 1 + r(D)
            sd[p + "read_cross.q_norm.weight"] = 1 + r(64)
            sd[p + "read_cross.k_norm.weight"] = 1 + r(64)
            sd[p + "read_cross.q.weight"] = r(s * D, D)
            sd[p + "read_cross.k.weight"] = r(D, D)
            sd[p + "read_cross.v.weight"] = r(D, D)
            sd[p + "read_cross.proj.weight"] = r(D, s * D)
            sd[p + "read_ff.norm.weight"] = 1 + r(D)
            sd[p + "read_ff.fc1.weight"] = r(4 * D, D)
            sd[p + "read_ff.fc2.weight"] = r(D, 4 * D)
        else:
            sd[p + "attn.norm.weight"] = 1 + r(D)
            sd[p + "attn.q_norm.weight"] = 1 + r(64)
            sd[p + "attn.k_norm.weight"] = 1 + r(64)
            sd[p + "attn.qkv.weight"] = r(3 * D, D)
            sd[p + "attn.proj.weight"] = r(D, D)
            sd[p + "mlp.norm.weight"] = 1 + r(D)
            sd[p + "mlp.fc1.weight"] = r(4 * D, D)
            sd[p + "mlp.fc2.weight"] = r(D, 4 * D)
    return sd


class LightningHyperParams:
    """Stands for the OmegaConf/Lightning objects a real RE10K checkpoint pickles."""

    def __init__(self) -> None:
        self.lr = 4e-4


def save_official(path, kind: str, sd: dict[str, torch.Tensor], *, extra_objects: bool = True) -> None:
    """Write ``sd`` in the released container: Lightning dict for "main", plain dict for "wide"."""
    if kind == "main":
        obj = {"state_dict": {"encoder.scaler." + k: v for k, v in sd.items()}, "epoch": 7, "global_step": 100}
        if extra_objects:
            obj["hyper_parameters"] = LightningHyperParams()
    else:
        obj = {"model": sd, "step": 100}
    torch.save(obj, path)
