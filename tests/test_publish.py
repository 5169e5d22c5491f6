"""`python -m ilrm publish --dry-run`: exactly the folder that would be uploaded (offline)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from ilrm import ILRM, ILRMConfig
from ilrm.errors import ILRMInputError
from ilrm.publish import check_repo_id, publish

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def ckpt(tmp_path):
    cfg = ILRMConfig.preset("tiny", width=64, depth=2, extra={"training": {"steps": 7, "data": "procedural"}})
    ILRM(cfg).save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def _summary(tmp_path, psnr):
    d = tmp_path / f"res{psnr}"
    d.mkdir()
    s = {"protocol": "procedural-2v", "method": {"label": "iLRM (test)"}, "metrics": {"psnr": psnr, "ssim": 0.5, "lpips": None},
         "scenes": {"evaluated": 3, "protocol_total": 50}, "environment": {"device_name": "cpu"}}
    (d / "summary.json").write_text(json.dumps(s))
    return d


def test_dry_run_writes_the_upload_folder(ckpt, tmp_path):
    out = tmp_path / "upload"
    cmd = [sys.executable, "-m", "ilrm", "publish", str(ckpt), "me/ilrm-test", "--dry-run", str(out),
           "--eval", str(_summary(tmp_path, 12.5))]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["url"] is None and info["files"] == ["README.md", "config.json", "model.safetensors"]
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "ilrm" and front["license"] == "apache-2.0" and "gaussian-splatting" in front["tags"]
    assert "| procedural-2v | iLRM (test) | 12.50 | 0.500 | n/a | 3 of 50 | cpu |" in card
    assert "- steps: 7" in card and 'ILRM.from_pretrained("me/ilrm-test")' in card
    # the uploaded weights load back as the same model
    model = ILRM.from_pretrained(out)
    ref = load_file(ckpt / "model.safetensors")
    assert all(v.equal(model.state_dict()[k]) for k, v in ref.items())


def test_bad_inputs_say_what_to_fix(ckpt, tmp_path):
    with pytest.raises(ILRMInputError, match="owner/name"):
        check_repo_id("no-owner")
    with pytest.raises(ILRMInputError, match="missing model.safetensors"):
        publish(tmp_path, "me/x", dry_run_dir=tmp_path / "o")
    with pytest.raises(ILRMInputError, match="summary.json"):
        publish(ckpt, "me/x", eval_summaries=[tmp_path / "nothing.json"], dry_run_dir=tmp_path / "o2")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(ILRMInputError, match="not empty"):
        publish(ckpt, "me/x", dry_run_dir=tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"
