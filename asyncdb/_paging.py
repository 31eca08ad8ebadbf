"""Opaque, signed keyset cursors for ``find_page``.

A cursor carries the sort key of the last document of a page and a digest of the query it
belongs to, signed with HMAC-SHA256 under the database's secret, so a client can neither forge a
position nor replay a cursor against another query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import orjson

from asyncdb.errors import InvalidCursor


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSigner:
    """Signs and verifies page cursors. Without a configured secret one is drawn per process,
    so cursors then stay valid for the life of the process only."""

    def __init__(self, secret: bytes | str | None = None) -> None:
        if secret is None:
            secret = os.environ.get("ASYNCDB_CURSOR_SECRET") or os.urandom(32)
        self._secret = secret.encode() if isinstance(secret, str) else secret

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:16]

    def encode(self, query_digest: str, position: bytes) -> str:
        body = orjson.dumps({"q": query_digest, "p": _b64(position)})
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def decode(self, cursor: str, query_digest: str) -> bytes:
        try:
            body_text, mac_text = cursor.split(".")
            body = _unb64(body_text)
            mac = _unb64(mac_text)
        except (ValueError, TypeError, AttributeError):
            raise InvalidCursor("malformed cursor") from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidCursor(
                "cursor signature does not verify (forged or from another database)"
            )
        data = orjson.loads(body)
        if data.get("q") != query_digest:
            raise InvalidCursor("cursor belongs to a different query")
        return _unb64(data["p"])


def query_digest(collection: str, filter_repr: str, sort_repr: str) -> str:
    """A short digest identifying the query a cursor may continue."""
    h = hashlib.sha256(f"{collection}\x00{filter_repr}\x00{sort_repr}".encode())
    return h.hexdigest()[:24]
