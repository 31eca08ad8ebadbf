"""The optional in-process cache (L1): a bounded LRU of encoded values with a TTL.

Entries hold the encoded bytes, so every hit decodes a fresh object (callers may mutate what
they get). Invalidation is O(1): each collection has a generation number, an entry remembers the
generation it was filled under, and a bump makes every older entry of that collection a miss.

>>> l1 = LocalCache(max_entries=2, ttl=60.0)
>>> gen = l1.generation("c"); l1.put("c", "x", b"payload", gen); l1.get("c", "x")
b'payload'
>>> l1.invalidate("c"); l1.get("c", "x") is None
True
"""

from __future__ import annotations

import time
from collections import OrderedDict

Generation = tuple[int, int]


class LocalCache:
    """Bounded LRU with TTL, invalidated per collection by generation."""

    def __init__(self, max_entries: int = 10_000, ttl: float = 5.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[tuple[str, str], tuple[float, Generation, bytes]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._cleared = 0  # bumped by clear(): kills fills of reads that began before it

    def generation(self, collection: str) -> Generation:
        """Snapshot before a read; pass it to :meth:`put` so a fill that raced a write is dead."""
        return (self._cleared, self._generations.get(collection, 0))

    def get(self, collection: str, name: str) -> bytes | None:
        entry = self._entries.get((collection, name))
        if entry is None:
            return None
        expires, gen, payload = entry
        if gen != self.generation(collection) or expires < time.monotonic():
            del self._entries[(collection, name)]
            return None
        self._entries.move_to_end((collection, name))
        return payload

    def put(self, collection: str, name: str, payload: bytes, generation: Generation) -> None:
        if generation != self.generation(collection):
            return  # a write happened since the read began
        self._entries[(collection, name)] = (time.monotonic() + self.ttl, generation, payload)
        self._entries.move_to_end((collection, name))
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, collection: str) -> None:
        self._generations[collection] = self._generations.get(collection, 0) + 1

    def clear(self) -> None:
        self._cleared += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["LocalCache"]
