"""The checkpoint of a copy: its plan of parts and, per part, the position acknowledged last.

It lives in a local JSON file (``checkpoint=`` / ``--checkpoint``; by default
``.asyncdb-copy-<digest>.json`` in the working directory, the digest naming the source, the
destination, the collections and the segment), replaced atomically (write a temporary file, then
``os.replace``) after each batch the destination acknowledged. A ``kill -9`` therefore leaves
either the previous or the next state, never half of one. The plan is stored too, so a resumed
copy reuses the same key ranges even if the source changed meanwhile.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "c.json"
>>> cp = Checkpoint(path, {"run": 1})
>>> cp.set_plan("alerts", [{"lo": None, "hi": None}])
>>> cp.advance("alerts", 0, ["a9"], done=False)
>>> Checkpoint.load(path, {"run": 1}).position("alerts", 0)
['a9']
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from asyncdb._tagged_json import dumps, loads
from asyncdb.errors import ConfigurationError

FORMAT = 1


def default_path(identity: dict[str, Any]) -> Path:
    digest = hashlib.sha256(dumps(identity).encode()).hexdigest()[:16]
    return Path.cwd() / f".asyncdb-copy-{digest}.json"


class Checkpoint:
    """Plans and acknowledged positions per collection, saved on every change."""

    def __init__(self, path: Path, identity: dict[str, Any], every: float = 0.0) -> None:
        self.path = path
        self.identity = identity
        self.every = every  # seconds between saves of mere progress (a lagging save is safe)
        self.collections: dict[str, dict[str, Any]] = {}
        self._saved = 0.0

    @classmethod
    def load(cls, path: Path, identity: dict[str, Any], every: float = 0.0) -> Checkpoint:
        """The saved checkpoint at ``path``, or an empty one if there is none."""
        cp = cls(path, identity, every)
        if not path.exists():
            return cp
        try:
            data = loads(path.read_bytes())
        except ValueError as exc:
            raise ConfigurationError(f"checkpoint {path} is not readable: {exc}") from None
        if data.get("format") != FORMAT or data.get("identity") != identity:
            raise ConfigurationError(
                f"checkpoint {path} belongs to another copy (source, destination, collections "
                "or segment differ); remove it or copy without resume"
            )
        cp.collections = data["collections"]
        return cp

    def plan(self, name: str) -> list[dict[str, Any]] | None:
        entry = self.collections.get(name)
        return None if entry is None else [p["part"] for p in entry["parts"]]

    def set_plan(self, name: str, parts: list[dict[str, Any]]) -> None:
        self.collections[name] = {
            "parts": [{"part": p, "position": None, "done": False} for p in parts]
        }
        self.save()

    def position(self, name: str, index: int) -> Any:
        return self.collections[name]["parts"][index]["position"]

    def done(self, name: str, index: int) -> bool:
        return bool(self.collections[name]["parts"][index]["done"])

    def advance(self, name: str, index: int, position: Any, *, done: bool) -> None:
        entry = self.collections[name]["parts"][index]
        entry["position"] = position
        entry["done"] = done
        # Progress saved late only means re-applying a few batches on resume (by key, so no
        # duplicates); a finished part is saved at once.
        if done or time.monotonic() - self._saved >= self.every:
            self.save()

    def save(self) -> None:
        body = dumps({"format": FORMAT, "identity": self.identity, "collections": self.collections})
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(body)
        os.replace(tmp, self.path)
        self._saved = time.monotonic()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


__all__ = ["Checkpoint", "default_path"]
