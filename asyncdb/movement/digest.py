"""Digests for verification and backups: one per document, folded per range with a count.

A document's digest is BLAKE2b-128 over its exact tagged JSON (:mod:`asyncdb._tagged_json`):
field order, ``1`` vs ``1.0`` vs ``Decimal("1")``, bytes and datetimes all change it. A range's
fold is the count and the sum of its documents' digests modulo 2**128, so it does not depend on
the order the store returns them in (a DynamoDB scan and a PostgreSQL ``ORDER BY`` fold alike).

>>> a, b = {"id": "a", "n": 1}, {"id": "b", "n": 1.0}
>>> f, g = Fold(), Fold()
>>> f.add(document_digest(a)); f.add(document_digest(b))
>>> g.add(document_digest(b)); g.add(document_digest(a))
>>> f == g, document_digest({"n": 1}) == document_digest({"n": 1.0})
(True, False)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from asyncdb._tagged_json import dumps

MOD = 1 << 128


def document_digest(doc: dict[str, Any]) -> int:
    """The 128-bit digest of a document's exact tagged JSON."""
    return int.from_bytes(hashlib.blake2b(dumps(doc).encode(), digest_size=16).digest(), "big")


def key_hash(key: tuple[Any, ...]) -> int:
    """A 64-bit hash of a key, uniform over the key space (verify's ranges are its prefixes)."""
    return int.from_bytes(hashlib.blake2b(dumps(list(key)).encode(), digest_size=8).digest(), "big")


@dataclass(slots=True)
class Fold:
    """The count and order-independent sum of the digests of a set of documents."""

    count: int = 0
    total: int = 0

    def add(self, digest: int) -> None:
        self.count += 1
        self.total = (self.total + digest) % MOD

    def hex(self) -> str:
        return f"{self.total:032x}"


__all__ = ["Fold", "document_digest", "key_hash"]
