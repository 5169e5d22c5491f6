"""JSON round-trip shared by the frozen config dataclasses (:class:`ILRMConfig`, ``TrainConfig``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import ILRMInputError

T = TypeVar("T", bound="JsonConfig")


class JsonConfig:
    """Mixin for dataclasses: ``to_dict`` / ``from_dict`` / ``to_json`` / ``from_json``.

    Tuples are written as JSON lists; the dataclass's ``__post_init__`` turns them back, so a config
    compares equal after a round trip. Unknown keys are refused with the list of known fields, except
    ``foreign_keys``: keys other libraries write into the same ``config.json`` (and read themselves).
    """

    foreign_keys: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        d = {k: v for k, v in d.items() if k not in cls.foreign_keys}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ILRMInputError(f"unknown {cls.__name__} fields {unknown}; known fields: {sorted(known)}")
        return cls(**d)

    def to_json(self, path: str | Path | None = None) -> str:
        """The JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls: type[T], text_or_path: str | Path) -> T:
        """From JSON text or a file holding it."""
        s = str(text_or_path)
        text = s if s.lstrip().startswith("{") else Path(s).read_text()
        return cls.from_dict(json.loads(text))
