"""The checkpoint of a copy: its plan of parts and, per part, the position acknowledged last.

It lives in a local JSON file (``checkpoint=`` / ``--checkpoint``; by default
``.asyncdb-copy-<digest>.json`` in the working directory, the digest naming the source, the
destination, the collections and the segment), replaced atomically (write a temporary file, then
``os.replace``) after each batch the destination acknowledged. A ``kill -9`` therefore leaves
either the previous or the next state, never half of one. The plan is stored too, so a resumed
copy reuses the same key ranges even if the source changed meanwhile.

``checkpoint="dest:NAME"`` keeps it in the destination database instead, as one document of the
collection ``NAME`` (default ``_asyncdb_copy_checkpoint``, asyncdb's own: not in the catalog),
keyed by that digest, its state one tagged-JSON text replaced in a single write: a copy
started on another machine resumes from there.

>>> import asyncio, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "c.json"
>>> cp = Checkpoint(path, {"run": 1})
>>> asyncio.run(cp.set_plan("alerts", [{"lo": None, "hi": None}]))
>>> asyncio.run(cp.advance("alerts", 0, ["a9"], done=False))
>>> Checkpoint.load(path, {"run": 1}).position("alerts", 0)
['a9']
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncdb._tagged_json import dumps, loads
from asyncdb.errors import ConfigurationError

if TYPE_CHECKING:
    from asyncdb.collection import Collection

FORMAT = 1
DESTINATION = "dest:"  # checkpoint="dest:NAME": a collection of the destination
DEFAULT_COLLECTION = "_asyncdb_copy_checkpoint"


def digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(identity).encode()).hexdigest()[:16]


def default_path(identity: dict[str, Any]) -> Path:
    return Path.cwd() / f".asyncdb-copy-{digest(identity)}.json"


def _check_loaded(data: Any, identity: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigurationError(f"checkpoint {where} is not a copy checkpoint")
    if data.get("identity") != identity:
        raise ConfigurationError(
            f"checkpoint {where} belongs to another copy (source, destination, collections "
            "or segment differ); remove it or copy without resume"
        )
    collections: dict[str, Any] = data["collections"]
    return collections


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
        cp.collections = _check_loaded(data, identity, str(path))
        return cp

    def plan(self, name: str) -> list[dict[str, Any]] | None:
        entry = self.collections.get(name)
        return None if entry is None else [p["part"] for p in entry["parts"]]

    async def set_plan(self, name: str, parts: list[dict[str, Any]]) -> None:
        self.collections[name] = {
            "parts": [{"part": p, "position": None, "done": False} for p in parts]
        }
        await self.save()

    def position(self, name: str, index: int) -> Any:
        return self.collections[name]["parts"][index]["position"]

    def done(self, name: str, index: int) -> bool:
        return bool(self.collections[name]["parts"][index]["done"])

    async def advance(self, name: str, index: int, position: Any, *, done: bool) -> None:
        entry = self.collections[name]["parts"][index]
        entry["position"] = position
        entry["done"] = done
        # Progress saved late only means re-applying a few batches on resume (by key, so no
        # duplicates); a finished part is saved at once.
        if done or time.monotonic() - self._saved >= self.every:
            await self.save()

    def _body(self) -> str:
        return dumps({"format": FORMAT, "identity": self.identity, "collections": self.collections})

    async def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(self._body())  # small and local: not worth a thread
        os.replace(tmp, self.path)
        self._saved = time.monotonic()

    async def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class DestinationCheckpoint(Checkpoint):
    """The checkpoint as one document (``{"id": digest, "state": text}``) of a collection of
    the destination; saves are one replace each, one at a time, of the state as it is then."""

    def __init__(self, coll: Collection, identity: dict[str, Any], every: float = 0.0) -> None:
        super().__init__(Path(DESTINATION + coll.name), identity, every)
        self.coll = coll
        self.id = digest(identity)
        self._lock = asyncio.Lock()

    @classmethod
    async def read(
        cls, coll: Collection, identity: dict[str, Any], every: float = 0.0
    ) -> DestinationCheckpoint:
        """The checkpoint saved in ``coll``, or an empty one if there is none."""
        cp = cls(coll, identity, every)
        found = await coll.find_one({"id": cp.id}, cache=False)
        if found is not None:
            try:
                data = loads(found["state"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigurationError(f"checkpoint {cp.path} is not readable: {exc}") from None
            cp.collections = _check_loaded(data, identity, str(cp.path))
        return cp

    async def save(self) -> None:
        async with self._lock:  # in order: a later state is never overwritten by an older one
            self._saved = time.monotonic()
            await self.coll.replace_one(
                {"id": self.id}, {"id": self.id, "state": self._body()}, upsert=True
            )

    async def remove(self) -> None:
        async with self._lock:
            await self.coll.delete_one({"id": self.id})


__all__ = ["DESTINATION", "Checkpoint", "DestinationCheckpoint", "default_path", "digest"]
