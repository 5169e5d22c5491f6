"""Per-session folders of the demo: one private folder per browser session, removed when it ends."""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
from pathlib import Path


class SessionFolders:
    """One temporary folder per browser session under a private root, removed when the session ends.

    Each run gets a fresh sub-folder (older runs of the same session are deleted first: Gradio has
    already copied their files into its own cache). ``cleanup_all`` removes the root (call at exit).
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="ilrm_demo_"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._counter = 0

    def _session_dir(self, session: str | None) -> Path:
        safe = "".join(c for c in (session or "shared") if c.isalnum() or c in "-_")[:64] or "shared"
        return self.root / safe

    def new_run(self, session: str | None) -> Path:
        """A new empty folder for one run of ``session`` (None: runs outside a session, e.g. example caching)."""
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
