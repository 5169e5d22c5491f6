"""Per-session folders of the demo: one private folder per browser session, removed when it ends.

The root is a fresh ``ilrm_demo_*`` folder in the temporary directory, marked with the owning
process's id; :func:`remove_stale_roots` (called when a :class:`SessionFolders` makes its root)
deletes the roots of demo processes that are gone (killed, crashed), so nothing piles up.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

ROOT_PREFIX = "ilrm_demo_"
OWNER_FILE = ".owner_pid"
#: A root without an owner file (an older demo) counts as stale once untouched this long.
STALE_UNOWNED_S = 24 * 3600


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_roots(parent: str | Path | None = None, *, keep: Path | None = None) -> list[Path]:
    """Delete ``ilrm_demo_*`` roots under ``parent`` (default: the temp dir) whose owner process has
    exited (or, without an owner file, untouched for a day). Returns what was removed."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    for d in parent.glob(ROOT_PREFIX + "*"):
        if not d.is_dir() or (keep is not None and d.resolve() == keep.resolve()):
            continue
        owner = d / OWNER_FILE
        try:
            if owner.is_file():
                stale = not _alive(int(owner.read_text().strip() or "0"))
            else:
                stale = time.time() - d.stat().st_mtime > STALE_UNOWNED_S
        except (OSError, ValueError):
            continue
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


class SessionFolders:
    """One temporary folder per browser session under a private root, removed when the session ends.

    Each run gets a fresh sub-folder (older runs of the same session are deleted first: Gradio has
    already copied their files into its own cache). ``cleanup_all`` removes the root (at exit, and
    on SIGTERM through :func:`demo.app.install_signal_handlers`). root=None: a new ``ilrm_demo_*``
    folder in the temp dir (stale ones of dead demo processes are removed first).
    """

    def __init__(self, root: str | Path | None = None):
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
            (self.root / OWNER_FILE).write_text(str(os.getpid()))
            with contextlib.suppress(OSError):
                remove_stale_roots(self.root.parent, keep=self.root)
        else:
            self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._counter = 0

    def _session_dir(self, session: str | None) -> Path:
        safe = "".join(c for c in (session or "shared") if c.isalnum() or c in "-_")[:64] or "shared"
        return self.root / safe

    def new_run(self, session: str | None) -> Path:
        """A new empty folder for one run of ``session`` (None: runs outside a session)."""
        with self._lock:
            self._counter += 1
            n = self._counter
        base = self._session_dir(session)
        if session is not None and base.is_dir():
            for old in base.iterdir():
                shutil.rmtree(old, ignore_errors=True)
        run = base / f"run{n:05d}"
        run.mkdir(parents=True, exist_ok=True)
        return run

    def cleanup(self, session: str | None) -> None:
        """Remove ``session``'s folder (safe to call twice)."""
        if session is None:
            return
        shutil.rmtree(self._session_dir(session), ignore_errors=True)

    def cleanup_path(self, path: str | Path | None) -> None:
        """Remove a folder previously returned by :meth:`new_run` (or its session folder); ignores others."""
        if not path:
            return
        p = Path(path).resolve()
        if p != self.root.resolve() and self.root.resolve() in p.parents:
            shutil.rmtree(p, ignore_errors=True)

    def cleanup_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def format_seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {math.floor(seconds % 60)} s"
