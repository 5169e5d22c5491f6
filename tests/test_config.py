import dataclasses

import pytest

from ilrm import ILRM, ILRMConfig, ILRMInputError
from ilrm.config import preset_names
from ilrm.models import FullAttentionLRM, count_parameters


@pytest.mark.parametrize("name", ["re10k", "dl3dv-wide", "tiny", "tiny-full"])
def test_json_round_trip(name, tmp_path):
    cfg = ILRMConfig.preset(name)
    assert ILRMConfig.from_json(cfg.to_json()) == cfg
    cfg.to_json(tmp_path / "c.json")
    assert ILRMConfig.from_json(tmp_path / "c.json") == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.width = 3  # frozen


def test_released_parameter_counts():
    assert count_parameters(ILRM(ILRMConfig.preset("re10k"))) == 171_336_960
    assert count_parameters(ILRM(ILRMConfig.preset("dl3dv-wide"))) == 185_885_952


def test_variants_differ_only_in_fields():
    a, b = ILRMConfig.preset("re10k"), ILRMConfig.preset("dl3dv-wide")
    assert a.image_features == ("rgb", "m", "d") and b.image_features == ("o", "d", "m", "rgb")
    assert (a.viewpoint_factor, a.uplift_factor, a.gaussian_channels) == (1, 1, 14)
    assert (b.viewpoint_factor, b.uplift_factor, b.gaussian_channels) == (2, 2, 16)
    assert a.pose_scale_before_recentre and not b.pose_scale_before_recentre
    tiny = ILRMConfig.preset("tiny")
    assert tiny.image_features == b.image_features and tiny.viewpoint_factor == 2 and tiny.depth == 8


def test_bad_values_rejected():
    with pytest.raises(ILRMInputError, match="unknown preset"):
        ILRMConfig.preset("nope")
    with pytest.raises(ILRMInputError, match="image_features"):
        ILRMConfig(image_features=("rgb", "x"))
    with pytest.raises(ILRMInputError, match="unknown ILRMConfig fields"):
        ILRMConfig.from_dict({"widht": 3})
    with pytest.raises(ILRMInputError, match="arch='ilrm'"):
        ILRM(ILRMConfig.preset("tiny-full"))
    assert "tiny-full" in preset_names()
    assert FullAttentionLRM(ILRMConfig.preset("tiny")).config.arch == "full-attention"
