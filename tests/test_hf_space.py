"""hf_space/deploy.py --dry-run builds a Space folder that runs on its own (offline, no upload)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
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


# ---- pins ------------------------------------------------------------------------------------------

SHA = "89abcdef0123456789abcdef0123456789abcdef"


def build_space(out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "hf_space" / "deploy.py"), "me/ilrm-demo", "--model-repo", "me/ilrm-tiny",
           *extra, "--dry-run", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def front_matter(folder: Path) -> dict:
    return yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])


def test_space_pins_the_model_and_the_authors_weights(tmp_path):
    proc = build_space(tmp_path / "a", "--model-revision", SHA, "--official-revision", "fedcba9876543210")
    assert proc.returncode == 0, proc.stderr
    # the build preloads the very commit the app loads
    assert front_matter(tmp_path / "a")["preload_from_hub"] == [f"me/ilrm-tiny model.safetensors,config.json {SHA}"]
    assert json.loads((tmp_path / "a" / "ilrm_demo.json").read_text()) == {
        "default_model": "me/ilrm-tiny", "default_revision": SHA, "official_revision": "fedcba9876543210"}
    # a sharded checkpoint preloads its shards and index
    files = "config.json,model.safetensors.index.json,model-00001-of-00002.safetensors,model-00002-of-00002.safetensors"
    proc = build_space(tmp_path / "s", "--model-revision", SHA, "--official-revision", "f" * 40, "--model-files", files)
    assert proc.returncode == 0, proc.stderr
    assert front_matter(tmp_path / "s")["preload_from_hub"] == [f"me/ilrm-tiny {files} {SHA}"]
    # the authors' weights are never left on a moving branch: pinned, or left out
    proc = build_space(tmp_path / "b")
    assert proc.returncode != 0 and "--official-revision" in proc.stderr and not (tmp_path / "b").exists()
    proc = build_space(tmp_path / "c", "--no-official-models")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "c" / "ilrm_demo.json").read_text()) == {"default_model": "me/ilrm-tiny",
                                                                          "official_models": False}


def test_upload_resolves_unpinned_revisions_to_commits(monkeypatch, tmp_path):
    """Without --dry-run, a revision not given becomes the commit main points at, and the preloaded
    files are the weight files listed at that commit (nothing is uploaded here: a stub Hub API)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy", REPO / "hf_space" / "deploy.py")
    deploy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy)

    class Hub:
        def model_info(self, repo):
            return type("Info", (), {"sha": {"me/ilrm-tiny": SHA, deploy.OFFICIAL_REPO: "e" * 40}[repo]})()

        def list_repo_files(self, repo, revision):
            assert (repo, revision) == ("me/ilrm-tiny", SHA)
            return ["README.md", "config.json", "model.safetensors", ".gitattributes"]

    pins = deploy.resolve_pins(Hub(), model_repo="me/ilrm-tiny", model_revision=None, official_revision=None,
                               official_models=True)
    assert pins == {"model_revision": SHA, "official_revision": "e" * 40,
                    "model_files": ("config.json", "model.safetensors")}


def test_space_gpu_path_chooses_the_authors_weights_at_the_pinned_revision(tmp_path):
    """In the built Space on GPU hardware (ZeroGPU sets SPACES_ZERO_GPU), the automatic choice is the
    authors' RE10K weights for 2-4 photos and the DL3DV wide ones for more, at the pinned commit; on a
    CPU host it is our checkpoint. ZeroGPU durations grow with the views."""
    pin = "f" * 40
    proc = build_space(tmp_path / "s", "--model-revision", SHA, "--official-revision", pin)
    assert proc.returncode == 0, proc.stderr
    code = (
        "import json; from demo.models import ModelStore, default_model_specs; "
        "from demo.pipeline import forward_seconds; "
        "st = ModelStore(default_model_specs()); c = {n: st.resolve('auto', n) for n in (2, 4, 8, 32)}; "
        "print(json.dumps({'hardware': st.hardware, 'default': st.default_key, "
        "'keys': {n: [x.key, st.specs[x.key].source, st.specs[x.key].revision] for n, x in c.items()}, "
        "'reason': c[2].reason, 'durations': [forward_seconds(2), forward_seconds(32, 544, 960)]}))"
    )
    base = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    for env, hardware in (({"SPACES_ZERO_GPU": "true"}, "gpu"), ({"ILRM_DEMO_HARDWARE": "cpu"}, "cpu")):
        run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "s", capture_output=True, text=True,
                             timeout=180, env={**base, **env})
        assert run.returncode == 0, run.stderr[-2000:]
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert out["hardware"] == hardware and out["default"] == "auto"
        if hardware == "gpu":
            assert out["keys"]["2"] == ["authors-re10k", "official:re10k_2view.ckpt", pin]
            assert out["keys"]["4"][0] == "authors-re10k"
            assert out["keys"]["8"] == ["authors-dl3dv-16", "official:ilrm_undistort_dl3dv_16view.pt", pin]
            assert out["keys"]["32"][0] == "authors-dl3dv-32" and "GPU host" in out["reason"]
        else:
            assert {k[0] for k in out["keys"].values()} == {"shipped"}
        assert out["durations"][0] < out["durations"][1] <= 60
    readme = (tmp_path / "s" / "README.md").read_text()
    assert "Gynjn/iLRM" in readme and "first use" in readme and "MB" in readme


# ---- the built Space in an environment made from its own requirements ------------------------------

SPACE_REQUIREMENTS = REPO / "hf_space" / "requirements.txt"
CHECKPOINT = REPO / "checkpoints" / "ilrm-tiny-procedural"

# Runs inside the Space folder: build the app from the folder's settings (default model
# me/ilrm-tiny at SHA, read from the offline Hub cache the build's preload would have filled), then
# the first example end to end, video included. Prints one JSON line.
DRIVER = r"""
import json, os, sys
sys.path.insert(0, os.getcwd())  # the Space folder, as for `python app.py` there
import app  # the Space's entry point: imports `spaces` before anything touches CUDA
from demo.app import build_demo, example_rows, make_handler
from demo.pipeline import VideoSettings
from demo.sessions import SessionFolders

d = build_demo(video=VideoSettings(3, 3), examples=False, warm_up=True)
store = d.ilrm_store
assert store.is_available("shipped"), "the warm-up did not load the default model"
row = example_rows(store.default_key)[0][0]
handler = make_handler(store, SessionFolders(sys.argv[1]), video=VideoSettings(3, 3))
outs = list(handler(*row[:5], None, None, lambda *a, **k: None))
preview, video, ply, splat, report, _ = outs[-1]
preloaded = set(json.loads(os.environ.get("ILRM_PRELOADED", "[]")))
blocked = {}
for name in sys.argv[2:]:
    try:
        __import__(name)
        blocked[name] = False
    except ImportError:
        blocked[name] = True
print(json.dumps({"app": app.__file__, "spec": [store.specs["shipped"].source, store.specs["shipped"].revision],
                  "outputs": [preview, video, ply, splat], "report": report, "blocked": blocked,
                  "module_files": sorted({str(mod.__file__) for name, mod in list(sys.modules.items())
                                          if getattr(mod, "__file__", None) and name not in preloaded})}))
"""

# Makes every top-level module outside `allowed` (JSON list in $ILRM_ALLOWED_MODULES) unimportable,
# as if it were not installed, then runs DRIVER.
BLOCKER = r"""
import importlib.abc, json, os, runpy, sys

ALLOWED = set(json.loads(os.environ["ILRM_ALLOWED_MODULES"]))


class OnlyTheSpaceRequirements(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in ALLOWED and top not in sys.builtin_module_names:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the Space's requirements)", name=name)
        return None  # let the normal finders find it


os.environ["ILRM_PRELOADED"] = json.dumps(sorted(sys.modules))  # site start-up (.pth files): not the Space's
sys.meta_path.insert(0, OnlyTheSpaceRequirements())
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

NOT_IN_THE_SPACE = ["skimage", "lpips", "torchvision", "gsplat", "matplotlib", "eval"]


def space_requirements() -> list:
    """hf_space/requirements.txt plus gradio at the README's sdk_version (the SDK installs it)."""
    from packaging.requirements import Requirement

    lines = [ln.split("#")[0].strip() for ln in SPACE_REQUIREMENTS.read_text().splitlines()]
    reqs = [Requirement(ln) for ln in lines if ln]
    sdk = yaml.safe_load((REPO / "hf_space" / "README.md").read_text().split("---\n")[1])["sdk_version"]
    return [*reqs, Requirement(f"gradio=={sdk}")]


def dependency_closure(requirements: list) -> set[str]:
    """Canonical names of the installed distributions ``requirements`` pull in (extras left out)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.skip(f"{req.name} (needed by the Space) is not installed here: pip install -r requirements.txt")
        seen.add(name)
        todo += [Requirement(r) for r in dist.requires or []]
    return seen


def allowed_modules(space: Path) -> set[str]:
    """Top-level modules the Space can import: the standard library, its own folder, and the modules
    of its requirements' dependency closure."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    closure = dependency_closure(space_requirements())
    own = {p.stem if p.suffix == ".py" else p.name for p in space.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    provided = {m for m, dists in metadata.packages_distributions().items()
                if any(canonicalize_name(d) in closure for d in dists)}
    return set(sys.stdlib_module_names) | own | provided | {"__main__", "_distutils_hack"}


def hub_cache(cache: Path, repo_id: str, src: Path, sha: str) -> None:
    """huggingface_hub's cache layout for ``src`` at commit ``sha`` (blobs + snapshot links + refs/main)."""
    import hashlib
    import os

    root = cache / ("models--" + repo_id.replace("/", "--"))
    snap = root / "snapshots" / sha
    for d in (root / "blobs", root / "refs", snap):
        d.mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text("0" * 40)  # main has moved on: only the pinned commit has the files
    for f in src.iterdir():
        if f.suffix in (".json", ".safetensors"):
            data = f.read_bytes()
            blob = root / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            (snap / f.name).symlink_to(os.path.relpath(blob, snap))


def prepared_space(tmp_path: Path) -> tuple[Path, dict]:
    """A built Space folder and the environment its run gets (offline Hub cache with the pinned model)."""
    import os

    space = tmp_path / "space"
    proc = build_space(space, "--model-revision", SHA, "--official-revision", "f" * 40)
    assert proc.returncode == 0, proc.stderr
    hub_cache(tmp_path / "hub", "me/ilrm-tiny", CHECKPOINT, SHA)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "HF_HUB_CACHE": str(tmp_path / "hub"), "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
           "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "2", "PYTHONDONTWRITEBYTECODE": "1"}
    (tmp_path / "driver.py").write_text(DRIVER)
    return space, env


def check_space_run(proc: subprocess.CompletedProcess, space: Path) -> dict:
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(out["app"]).resolve().is_relative_to(space.resolve())
    assert out["spec"] == ["me/ilrm-tiny", SHA]
    preview, video, ply, splat = out["outputs"]
    from ilrm.gaussian_files import load_ply

    n = load_ply(ply).num_gaussians
    assert n > 0 and load_ply(preview).num_gaussians > 0 and Path(splat).stat().st_size > 0
    import imageio.v3 as iio

    assert iio.imread(video, index=None).shape[0] == 3
    assert f"{n:,} predicted" in out["report"]
    return out


@pytest.mark.slow
def test_space_runs_an_example_with_only_its_requirements(tmp_path):
    """The built app, with every module outside hf_space/requirements.txt's dependency closure made
    unimportable, runs the first example end to end (preview, downloads, video) from the pinned
    preloaded weights; the installed versions here satisfy the Space's pins."""
    from importlib import metadata

    for req in space_requirements():
        version = metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), f"{req.name} {version} is not the Space's {req}"
    space, env = prepared_space(tmp_path)
    allowed = allowed_modules(space)
    env["ILRM_ALLOWED_MODULES"] = json.dumps(sorted(allowed))
    (tmp_path / "blocker.py").write_text(BLOCKER)
    proc = subprocess.run([sys.executable, str(tmp_path / "blocker.py"), str(tmp_path / "driver.py"),
                           str(tmp_path / "runs"), *NOT_IN_THE_SPACE],
                          cwd=space, env=env, capture_output=True, text=True, timeout=300)
    out = check_space_run(proc, space)
    # the blocker was active: what the development environment has beyond the Space stays out
    installed = {m for m in NOT_IN_THE_SPACE if m == "eval" or _installed(m)}
    assert installed <= {m for m, b in out["blocked"].items() if b}, out["blocked"]
    # and every module file the run loaded from site-packages belongs to an allowed package
    import sysconfig

    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    tops = set()
    for f in map(Path, out["module_files"]):
        for root in site:
            if f.resolve().is_relative_to(root):
                rel = f.resolve().relative_to(root).parts
                tops.add(rel[0].removesuffix(".py").split(".")[0] if len(rel) == 1 else rel[0])
    assert tops and tops <= allowed, sorted(tops - allowed)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _space_venv() -> Path:
    """A virtual environment made from hf_space/requirements.txt (+ the SDK's gradio) alone, cached
    by the requirements' hash under ~/.cache/ilrm; built only when ILRM_BUILD_SPACE_VENV=1."""
    import hashlib
    import os

    text = SPACE_REQUIREMENTS.read_text() + "\n".join(str(r) for r in space_requirements())
    venv = Path.home() / ".cache" / "ilrm" / f"space-venv-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file():
        return python
    if os.environ.get("ILRM_BUILD_SPACE_VENV") != "1":
        pytest.skip(f"no Space venv at {venv}; set ILRM_BUILD_SPACE_VENV=1 to build it (~6 GB, a few minutes)")
    gradio = next(str(r) for r in space_requirements() if r.name == "gradio")
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "-q", "-r", str(SPACE_REQUIREMENTS), gradio]]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            pytest.skip(f"the Space venv could not be built ({' '.join(cmd[:4])}…): {r.stderr.strip()[-300:]}")
    (venv / ".complete").write_text(text)
    return python


@pytest.mark.slow
def test_space_runs_an_example_in_a_venv_of_its_requirements(tmp_path):
    """The same run in a real virtual environment built from hf_space/requirements.txt alone."""
    python = _space_venv()
    space, env = prepared_space(tmp_path)
    proc = subprocess.run([str(python), str(tmp_path / "driver.py"), str(tmp_path / "runs"), *NOT_IN_THE_SPACE],
                          cwd=space, env=env, capture_output=True, text=True, timeout=300)
    out = check_space_run(proc, space)
    assert all(out["blocked"].values()), out["blocked"]  # none of them is installed there
