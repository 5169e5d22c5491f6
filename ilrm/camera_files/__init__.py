"""Camera files next to photos, read into one :class:`CameraSet`, and matched to the photos by name.

One convention comes out of every reader: c2w in OpenCV axes (x right, y down, z forward) and
pixel intrinsics ``K`` with continuous pixel coordinates (the centre of the top-left pixel is
(0.5, 0.5), which is COLMAP's convention too, so COLMAP intrinsics are used unchanged). Formats:

- our ``opencv_cameras.json``: ``{scene_name?, frames: [{file_path, w2c (4×4), h, w, fx, fy, cx, cy}]}``
- nerfstudio / instant-ngp / NeRF-synthetic ``transforms.json``: c2w ``transform_matrix`` in OpenGL
  axes (x right, y up, z back), converted by negating the camera's y and z axes; intrinsics
  ``fl_x, fl_y, cx, cy, w, h`` shared at the top level or per frame, or ``camera_angle_x`` (and
  optionally ``camera_angle_y``) when no focal length is given.
- COLMAP models, text (``cameras.txt`` + ``images.txt``) or binary (``cameras.bin`` +
  ``images.bin``), loose, in a model folder or in a zip; parsed by ``pycolmap``. Lens distortion
  parameters are ignored with a warning; fisheye and other non-pinhole models are refused.

Entry points: :func:`read_camera_set` (a file or a folder, format detected), :func:`find_scene`
(a scene folder's photos and cameras), :func:`load_camera_files` (uploaded files), and
:func:`match_cameras` (cameras in the photos' order with intrinsics for their size). Every problem
raises :class:`~ilrm.errors.ILRMInputError` with a message that says what to fix.

Modules, each importing only those above it: ``sets`` (NamedCamera, CameraSet, name_list),
``json_formats`` (opencv_cameras.json, transforms.json), ``colmap`` (COLMAP via pycolmap),
``archives`` (uploaded files and zips, size caps), ``matching`` (cameras to photos), ``scenes``
(camera files and scene folders on disk).
"""

from __future__ import annotations

from .archives import MAX_FILE_BYTES, load_camera_files
from .colmap import parse_colmap_binary, parse_colmap_text
from .json_formats import (
    OpenCVCamerasFile,
    OpenCVFrameEntry,
    parse_camera_json,
    parse_opencv_cameras,
    parse_transforms,
    read_opencv_cameras_file,
)
from .matching import MatchedCameras, match_cameras
from .scenes import IMAGE_EXTENSIONS, SceneFiles, find_camera_file, find_scene, read_camera_set
from .sets import CameraSet, NamedCamera, name_list

__all__ = [
    "NamedCamera",
    "CameraSet",
    "MatchedCameras",
    "SceneFiles",
    "OpenCVFrameEntry",
    "OpenCVCamerasFile",
    "read_camera_set",
    "find_camera_file",
    "find_scene",
    "load_camera_files",
    "read_opencv_cameras_file",
    "parse_camera_json",
    "parse_opencv_cameras",
    "parse_transforms",
    "parse_colmap_text",
    "parse_colmap_binary",
    "match_cameras",
    "name_list",
    "IMAGE_EXTENSIONS",
    "MAX_FILE_BYTES",
]
