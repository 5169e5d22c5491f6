"""Convert DL3DV-Benchmark scenes (nerfstudio ``transforms.json`` + ``images_4/``) to undistorted
``opencv_cameras.json`` folders, following Long-LRM's processing (the DL3DV-140 protocol).

Input layout of one benchmark scene (``DL3DV/DL3DV-Benchmark`` on the Hub)::

    <scene>/nerfstudio/transforms.json     # w, h, fl_x, fl_y, cx, cy, k1, k2, p1, p2, frames[...]
    <scene>/nerfstudio/images_4/frame_00001.png ...   # 960×540 (1/4 of the 3840×2160 originals)

A frame's ``file_path`` in ``transforms.json`` names the full-resolution image, e.g.
``images/frame_00001.png``; the 1/4 image is ``nerfstudio/images_4/`` + its base name
(``frame_00001.png``). Only the base name is kept.

Per scene (portrait scenes, ``h > w`` in ``transforms.json``, are skipped and reported):
- intrinsics ``fl_x, fl_y, cx, cy`` are given for (``w``, ``h``) and scaled to the stored image
  size (each by the ratio of that axis); distortion ``(k1, k2, p1, p2)``;
- new camera matrix = ``cv2.getOptimalNewCameraMatrix(K, dist, (w, h), alpha=0, newImgSize=(w, h))``
  (alpha 0: only valid pixels, no black borders) and the image is ``cv2.undistort(image, K, dist,
  None, K_new)`` (bilinear);
- pose: ``transform_matrix`` is a nerfstudio/OpenGL c2w; negate its columns 1 and 2 (rows 0–2),
  reorder the rows to (1, 0, 2, 3), negate row 2, and invert → OpenCV w2c.

Output: ``<out>/<scene_name>/opencv_cameras.json`` and ``<out>/<scene_name>/images_undistort/<base
name>``; frames keep the order of ``transforms.json`` (the k-means input indices refer to it).

Command line: ``python -m ilrm.data.dl3dv_convert BENCHMARK_ROOT OUT_ROOT [--scenes ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ILRMInputError

IMAGE_FOLDER = "images_4"
OUT_IMAGE_FOLDER = "images_undistort"


def nerfstudio_to_w2c(transform_matrix: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """DL3DV nerfstudio c2w (4×4 or 3×4) → OpenCV world-to-camera (4, 4) float64 (Long-LRM's rule).

    Negating columns 1 and 2 turns OpenGL camera axes (x right, y up, z back) into OpenCV ones;
    the row permutation and negation change the world frame the way the DL3DV conversion did.
    """
    c2w = np.asarray(transform_matrix, dtype=np.float64)
    if c2w.shape == (3, 4):
        c2w = np.concatenate([c2w, [[0.0, 0.0, 0.0, 1.0]]], axis=0)
    if c2w.shape != (4, 4):
        raise ILRMInputError(f"transform_matrix must be 4×4 or 3×4, got {c2w.shape}")
    c2w = c2w.copy()
    c2w[0:3, 1:3] *= -1
    c2w = c2w[[1, 0, 2, 3], :]
    c2w[2, :] *= -1
    return np.linalg.inv(c2w)


def scaled_camera(meta: dict[str, Any], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel intrinsics (3, 3) for an image of (height, width) and the distortion (k1, k2, p1, p2).

    ``meta`` is ``transforms.json``; its ``fl_x, fl_y, cx, cy`` are for its ``w`` × ``h``.
    """
    sx, sy = width / meta["w"], height / meta["h"]
    K = np.array(
        [[meta["fl_x"] * sx, 0.0, meta["cx"] * sx], [0.0, meta["fl_y"] * sy, meta["cy"] * sy], [0.0, 0.0, 1.0]],
        dtype=np.float64,
    )
    dist = np.array([meta.get(k, 0.0) for k in ("k1", "k2", "p1", "p2")], dtype=np.float64)
    return K, dist


def undistort_image(image: np.ndarray, K: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undistort (H, W[, C]) ``image`` taken with (K, dist). Returns (image, K_new) with K_new the
    alpha-0 optimal new camera matrix for the same size."""
    import cv2

    h, w = image.shape[:2]
    K_new, _roi = cv2.getOptimalNewCameraMatrix(K, dist, (w, h), 0, (w, h))
    return cv2.undistort(image, K, dist, None, K_new), K_new


@dataclass
class SceneResult:
    """Outcome of converting one scene: status is "converted", "exists" (already done),
    "skipped-portrait" or "failed" (with ``reason``)."""

    scene_name: str
    status: str
    num_frames: int = 0
    out_dir: Path | None = None
    reason: str = ""


@dataclass
class ConversionReport:
    """Per-scene results of :func:`convert_benchmark`."""

    results: list[SceneResult] = field(default_factory=list)

    def names(self, status: str) -> list[str]:
        return [r.scene_name for r in self.results if r.status == status]

    @property
    def converted(self) -> list[str]:
        return self.names("converted") + self.names("exists")

    @property
    def skipped_portrait(self) -> list[str]:
        return self.names("skipped-portrait")

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(r.scene_name, r.reason) for r in self.results if r.status == "failed"]


def _nerfstudio_dir(scene_dir: Path) -> Path:
    if (scene_dir / "nerfstudio" / "transforms.json").exists():
        return scene_dir / "nerfstudio"
    if (scene_dir / "transforms.json").exists():
        return scene_dir
    raise ILRMInputError(f"no nerfstudio/transforms.json in {scene_dir} (expected a DL3DV-Benchmark scene)")


def convert_scene(
    scene_dir: str | Path,
    out_dir: str | Path,
    *,
    scene_name: str | None = None,
    image_folder: str = IMAGE_FOLDER,
    overwrite: bool = False,
) -> SceneResult:
    """Convert one DL3DV-Benchmark scene folder into ``out_dir`` (see the module docstring).

    scene_dir: the scene folder (holding ``nerfstudio/``) or its ``nerfstudio`` folder.
    scene_name: default the scene folder's name (the DL3DV hash the k-means index uses).
    A finished conversion (``opencv_cameras.json`` present) is kept unless ``overwrite``; the JSON is
    written last, so an interrupted scene is redone.
    """
    import cv2

    scene_dir = Path(scene_dir)
    ns_dir = _nerfstudio_dir(scene_dir)
    if scene_name is None:
        scene_name = (ns_dir.parent if ns_dir.name == "nerfstudio" else ns_dir).name
    out_dir = Path(out_dir)
    out_json = out_dir / "opencv_cameras.json"
    try:
        meta = json.loads((ns_dir / "transforms.json").read_text())
    except json.JSONDecodeError as e:
        raise ILRMInputError(f"{ns_dir / 'transforms.json'} is not valid JSON: {e}") from e
    if meta["h"] > meta["w"]:
        return SceneResult(scene_name, "skipped-portrait", reason=f"portrait {meta['h']}×{meta['w']} (h > w)")
    if out_json.exists() and not overwrite:
        n = len(json.loads(out_json.read_text())["frames"])
        return SceneResult(scene_name, "exists", n, out_dir)

    (out_dir / OUT_IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    frames = []
    for frame in meta["frames"]:
        base = Path(frame["file_path"]).name  # "images/frame_00001.png" -> "frame_00001.png"
        src = ns_dir / image_folder / base
        image = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if image is None:
            raise ILRMInputError(f"cannot read {src}")
        h, w = image.shape[:2]
        K, dist = scaled_camera(meta, h, w)
        image, K_new = undistort_image(image, K, dist)
        rel = f"{OUT_IMAGE_FOLDER}/{base}"
        if not cv2.imwrite(str(out_dir / rel), image):
            raise ILRMInputError(f"cannot write {out_dir / rel}")
        frames.append(
            {
                "file_path": rel,
                "w2c": nerfstudio_to_w2c(frame["transform_matrix"]).tolist(),
                "h": int(h),
                "w": int(w),
                "fx": float(K_new[0, 0]),
                "fy": float(K_new[1, 1]),
                "cx": float(K_new[0, 2]),
                "cy": float(K_new[1, 2]),
            }
        )
    tmp = out_json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"scene_name": scene_name, "frames": frames}, indent=2))
    os.replace(tmp, out_json)
    return SceneResult(scene_name, "converted", len(frames), out_dir)


def find_benchmark_scenes(root: str | Path) -> list[Path]:
    """Scene folders under ``root`` that hold ``nerfstudio/transforms.json`` (one level), sorted."""
    root = Path(root)
    if (root / "nerfstudio" / "transforms.json").exists():
        return [root]
    return sorted(p.parent.parent for p in root.glob("*/nerfstudio/transforms.json"))


def convert_benchmark(
    root: str | Path,
    out_root: str | Path,
    *,
    scenes: Iterable[str] | None = None,
    image_folder: str = IMAGE_FOLDER,
    overwrite: bool = False,
    num_workers: int = 1,
) -> ConversionReport:
    """Convert every (or the named) DL3DV-Benchmark scene under ``root`` into ``out_root/<scene>/``.

    Errors in one scene are recorded as "failed" and do not stop the others.
    """
    dirs = find_benchmark_scenes(root)
    if scenes is not None:
        keep = set(scenes)
        dirs = [d for d in dirs if d.name in keep]

    def one(d: Path) -> SceneResult:
        try:
            return convert_scene(d, Path(out_root) / d.name, image_folder=image_folder, overwrite=overwrite)
        except (ILRMInputError, OSError, KeyError, ValueError) as e:
            return SceneResult(d.name, "failed", reason=f"{type(e).__name__}: {e}")

    if num_workers > 1:  # cv2 releases the GIL, threads are enough
        with ThreadPoolExecutor(num_workers) as pool:
            results = list(pool.map(one, dirs))
    else:
        results = [one(d) for d in dirs]
    return ConversionReport(results)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", help="DL3DV-Benchmark folder (scene folders with nerfstudio/transforms.json)")
    ap.add_argument("out", help="output folder (one opencv_cameras.json folder per scene)")
    ap.add_argument("--scenes", nargs="*", help="only these scene names")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args(argv)
    report = convert_benchmark(
        args.root, args.out, scenes=args.scenes, overwrite=args.overwrite, num_workers=args.workers
    )
    print(
        f"converted {len(report.converted)}, skipped (portrait) {len(report.skipped_portrait)}, "
        f"failed {len(report.failed)}"
    )
    for name in report.skipped_portrait:
        print(f"  skipped portrait: {name}")
    for name, reason in report.failed:
        print(f"  FAILED {name}: {reason}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
