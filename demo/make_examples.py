"""Write the demo's held-out procedural example scene (images + ``opencv_cameras.json``).

    python -m demo.make_examples            # writes demo/examples/procedural/

The scene is a held-out procedural room (:mod:`ilrm.data.procedural`, a seed of the test split that
the evaluation's first 100 scenes do not use), ray-cast at 256² with 2× supersampling. Its cameras
are stored in the scene's own metric frame (not normalised), in the same ``opencv_cameras.json``
layout as the real ``mydesk`` example, so the demo exercises the full camera-file path.
Deterministic: re-running gives the same files (up to PNG encoder bytes).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ilrm.data.procedural import TEST_SEED_START, ProceduralConfig, make_scene, render_scene, scene_id

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
#: Held-out scene: test-split seed TEST_SEED_START + 501 (the default test set is the first 100).
SEED = TEST_SEED_START + 501
#: Trajectory frames used as the example's photos (chosen for overlap and visible furniture).
FRAMES = (136, 147)
SIZE = 256
SUPERSAMPLE = 2


def write_procedural_example(
    out_dir: str | Path | None = None, *, seed: int = SEED, frames=FRAMES, size: int = SIZE
) -> Path:
    """Render ``frames`` of procedural scene ``seed`` into ``out_dir`` (default ``demo/examples/procedural``).

    Writes ``images/view{i}.png`` (size × size RGB), ``opencv_cameras.json`` (per frame: ``file_path``,
    ``w2c`` 4×4 OpenCV world-to-camera in metres, ``h``, ``w``, ``fx``, ``fy``, ``cx``, ``cy`` in pixels)
    and a ``README.md``. Returns the folder.
    """
    out = Path(out_dir) if out_dir is not None else EXAMPLES_DIR / "procedural"
    (out / "images").mkdir(parents=True, exist_ok=True)
    scene = make_scene(seed, ProceduralConfig(height=size, width=size))
    idx = list(frames)
    K = scene.intrinsics(size, size)
    c2w = scene.c2w[idx]
    images, _ = render_scene(scene, K.expand(len(idx), 3, 3), c2w, size, size, device="cpu", supersample=SUPERSAMPLE)
    records = []
    for i, (img, pose) in enumerate(zip(images, c2w)):
        name = f"images/view{i}.png"
        array = (img.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(array).save(out / name, optimize=True)
        w2c = torch.linalg.inv(pose.double()).numpy()
        records.append(
            {
                "file_path": name,
                "w2c": np.round(w2c, 10).tolist(),
                "h": size,
                "w": size,
                "fx": float(K[0, 0]),
                "fy": float(K[1, 1]),
                "cx": float(K[0, 2]),
                "cy": float(K[1, 2]),
            }
        )
    meta = {"scene_name": scene_id(seed), "frames": records}
    (out / "opencv_cameras.json").write_text(json.dumps(meta, indent=1) + "\n")
    hfov = math.degrees(scene.hfov)
    (out / "README.md").write_text(
        f"# procedural (example scene)\n\n"
        f"A held-out procedural room ({scene_id(seed)}, seed {seed}, never used for training), ray-cast "
        f"by `ilrm.data.procedural` at {size}×{size} (2× supersampled), trajectory frames {', '.join(map(str, idx))}. "
        f"Horizontal field of view {hfov:.1f}°. Cameras in `opencv_cameras.json` (OpenCV world-to-camera, "
        "metres, z up; intrinsics in pixels).\n\n"
        "Regenerate with `python -m demo.make_examples`. Textures: procedural patterns and photos bundled "
        "with scikit-image (`skimage.data`, see its licence notes).\n"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output folder (default demo/examples/procedural)")
    args = parser.parse_args(argv)
    out = write_procedural_example(args.out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
