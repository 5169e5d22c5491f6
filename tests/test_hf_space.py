"""hf_space/deploy.py --dry-run builds a Space folder that runs on its own (offline, no upload)."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_dry_run_builds_a_self_contained_space(tmp_path):
    out = tmp_path / "space"
    cmd = [sys.executable, str(REPO / "hf_space" / "deploy.py"), "me/ilrm-demo", "--model-repo", "me/ilrm-tiny",
           "--official-revision", "0123abc", "--dry-run", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"] == ["README.md", "app.py", "demo", "ilrm", "ilrm_demo.json", "requirements.txt"]
    meta = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["python_version"] == "3.12"
    import gradio

    assert meta["sdk_version"] == gradio.__version__  # the Space runs the Gradio we test with
    assert meta["models"] == ["me/ilrm-tiny"] and meta["preload_from_hub"] == ["me/ilrm-tiny model.safetensors,config.json"]
    for key in ("short_description", "license", "suggested_hardware"):
        assert meta[key]
    reqs = [ln.split("#")[0].strip() for ln in (out / "requirements.txt").read_text().splitlines()]
    assert "spaces" in reqs and not [r for r in reqs if r.startswith("gsplat")]
    assert json.loads((out / "ilrm_demo.json").read_text()) == {"default_model": "me/ilrm-tiny", "official_revision": "0123abc"}
    assert not list(out.rglob("__pycache__")) and (out / "demo" / "examples" / "mydesk" / "opencv_cameras.json").is_file()
    # the folder's own packages build the app, with its settings (nothing is downloaded until a run)
    code = (
        "import demo, ilrm; from demo.app import build_demo; d = build_demo(examples=False); "
        "s = d.ilrm_store.specs; print(demo.__file__); print(s['shipped'].source, s['authors-re10k'].revision)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True, timeout=180,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    where, models = proc.stdout.strip().splitlines()[-2:]
    assert Path(where).resolve().is_relative_to(out.resolve())
    assert models == "me/ilrm-tiny 0123abc"
    # a second build into the same folder is refused, the folder is kept
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "not empty" in again.stderr and (out / "app.py").is_file()
