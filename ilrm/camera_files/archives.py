"""Uploaded camera files: one JSON file, one zip, or the loose files of a COLMAP model, with size
caps (a zip is read member by member, so a zip bomb is refused instead of unpacked)."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from ..errors import ILRMInputError
from .colmap import parse_colmap_binary, parse_colmap_text
from .json_formats import _decode, _load_json, parse_camera_json
from .sets import CameraSet

#: Largest camera file we read, and the most bytes we take out of one zip, in bytes (a COLMAP
#: images file holds every 2D point, so it can be large; anything beyond this is refused).
MAX_FILE_BYTES = 512 * 1024 * 1024
#: Largest single member we decompress from a zip, in bytes.
MAX_MEMBER_BYTES = 256 * 1024 * 1024
#: Largest compression ratio we believe for a member bigger than :data:`RATIO_FLOOR_BYTES`: COLMAP
#: text and JSON deflate by 3-10×; a zip bomb by hundreds or thousands.
MAX_COMPRESSION_RATIO = 100
RATIO_FLOOR_BYTES = 1024 * 1024


_FORMATS_HINT = (
    "Use opencv_cameras.json, a nerfstudio transforms.json, or a COLMAP model "
    "(cameras.txt + images.txt, cameras.bin + images.bin, or a zip of them)."
)


# A camera file's members: name (inside a zip: its path there) → a function that reads its bytes.
_Members = dict[str, Callable[[], bytes]]


def load_camera_files(paths: str | Path | Sequence[str | Path]) -> CameraSet:
    """Parse an uploaded camera file (or the files of one COLMAP model) into a validated CameraSet.

    paths: one ``.json`` file, one ``.zip``, or the loose files of a COLMAP model
    (``cameras.txt`` + ``images.txt`` or ``cameras.bin`` + ``images.bin``; ``points3D``, ``rigs``,
    ``frames`` files may come along and are not read). Raises :class:`ILRMInputError`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ILRMInputError("no camera file given")
    files: _Members = {}
    for p in paths:
        if not p.is_file():
            raise ILRMInputError(f"camera file {p.name!r} cannot be read (not a file)")
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ILRMInputError(f"camera file {p.name!r} is larger than {MAX_FILE_BYTES >> 20} MB")
        if p.suffix.lower() == ".zip" or zipfile.is_zipfile(p):
            if len(paths) > 1:
                raise ILRMInputError("upload either one zip of the camera files or the loose files, not both")
            with _zip_members(p) as members:
                return _from_members(members, p.name)
        files[p.name] = p.read_bytes
    return _from_members(files, ", ".join(sorted(files)))


@contextlib.contextmanager
def _zip_members(path: Path) -> Iterator[_Members]:
    """The camera-file members of a zip, read on demand, at most :data:`MAX_FILE_BYTES` in all.

    Only the members a format needs are ever decompressed (never ``points3D``), and reading stops
    past the budget, so a zip bomb is refused instead of unpacked.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [
                i
                for i in zf.infolist()
                if not i.is_dir()
                and not PurePosixPath(i.filename).name.startswith(".")
                and "__MACOSX" not in i.filename
                and i.filename.lower().endswith((".json", ".txt", ".bin"))
            ]
            budget = [MAX_FILE_BYTES]

            def reader(info: zipfile.ZipInfo) -> Callable[[], bytes]:
                def read() -> bytes:
                    # The declared size first (cheap), then the real one: zipfile stops at the
                    # declared size, and a lying header fails its CRC check.
                    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(
                        info.compress_size, 1
                    ):
                        raise ILRMInputError(
                            f"{path.name!r} unpacks to more than camera files plausibly can: {info.filename} is "
                            f"compressed {info.file_size / max(info.compress_size, 1):.0f}× ({info.compress_size >> 10} KB "
                            f"to {info.file_size >> 20} MB); zip only the camera files, or upload them unzipped"
                        )
                    if info.file_size > MAX_MEMBER_BYTES:
                        raise ILRMInputError(
                            f"{path.name!r}: {info.filename} unpacks to {info.file_size >> 20} MB, more than "
                            f"{MAX_MEMBER_BYTES >> 20} MB for one camera file; zip only the camera files"
                        )
                    if info.file_size > budget[0]:
                        raise ILRMInputError(
                            f"{path.name!r} unpacks to more than {MAX_FILE_BYTES >> 20} MB of camera files "
                            f"({info.filename} alone is {info.file_size >> 20} MB); zip only the camera files"
                        )
                    limit = min(budget[0], MAX_MEMBER_BYTES)
                    with zf.open(info) as f:
                        data = f.read(limit + 1)
                    if len(data) > limit:
                        raise ILRMInputError(f"{path.name!r} unpacks to more than {MAX_FILE_BYTES >> 20} MB")
                    budget[0] -= len(data)
                    return data

                return read

            yield {i.filename: reader(i) for i in infos}
    except zipfile.BadZipFile as e:
        raise ILRMInputError(f"{path.name!r} is not a readable zip file ({e}); zip the camera files again") from e


def _from_members(files: _Members, label: str) -> CameraSet:
    """Pick the format from the member names (and, for JSON, its keys) and parse it."""
    by_base: dict[str, list[str]] = {}
    for name in files:
        by_base.setdefault(PurePosixPath(name).name.lower(), []).append(name)

    def one(base: str) -> Callable[[], bytes] | None:
        hits = by_base.get(base, [])
        if len(hits) > 1:
            folders = ", ".join(sorted(str(PurePosixPath(h).parent) for h in hits))
            raise ILRMInputError(
                f"{label} holds several {base} files (in {folders}); keep the one COLMAP model you want"
            )
        return files[hits[0]] if hits else None

    cams_bin, imgs_bin = one("cameras.bin"), one("images.bin")
    cams_txt, imgs_txt = one("cameras.txt"), one("images.txt")
    if cams_bin is not None or imgs_bin is not None:
        if cams_bin is None or imgs_bin is None:
            raise ILRMInputError("a binary COLMAP model needs both cameras.bin and images.bin; upload both (or a zip)")
        return parse_colmap_binary(cams_bin(), imgs_bin())
    if cams_txt is not None or imgs_txt is not None:
        if cams_txt is None or imgs_txt is None:
            raise ILRMInputError("a text COLMAP model needs both cameras.txt and images.txt; upload both (or a zip)")
        return parse_colmap_text(_decode(cams_txt(), "cameras.txt"), _decode(imgs_txt(), "images.txt"))
    jsons = [n for n in files if n.lower().endswith(".json")]
    if len(jsons) == 1:
        name = PurePosixPath(jsons[0]).name
        return parse_camera_json(_load_json(files[jsons[0]](), name), name)
    if len(jsons) > 1:
        raise ILRMInputError(f"{label} holds several JSON files ({', '.join(jsons[:5])}); upload just one camera file")
    raise ILRMInputError(f"{label} is not a camera file this app reads. {_FORMATS_HINT}")
