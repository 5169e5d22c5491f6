"""``python -m eval fetch|run|leaderboard ...``: see :mod:`eval.cli`."""

from .cli import main

raise SystemExit(main())
