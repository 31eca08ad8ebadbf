"""Anonymize documents before they are stored elsewhere or exported (pure: no I/O).

Rules map dotted paths (arrays on the way are walked element by element) to an operation:

- ``"mask"``: keep the shape, hide the content: an email keeps its first character and domain
  (``"a***@example.com"``), other values their last four characters (``"*******6789"``).
- ``"redact"``: remove the field.
- ``"pseudonym"``: ``"ps_" +`` 20 hex digits of HMAC-SHA256 under the key: stable and linkable
  (the same value gives the same pseudonym in every field and document), irreversible without
  the key.
- ``"generalize"``: a datetime to the first instant of its month, an ISO date string to
  ``"YYYY-MM"``, a number to the lower bound of its bucket (``("generalize", 10)`` sets the
  bucket width; 10 by default): 37 -> 30.
- ``"encrypt"``: AES-256-GCM, bound to the path (``"ae1:..."``); :meth:`Anonymizer.reveal`
  reverses it with the same key.

>>> anon = Anonymizer({"email": "mask", "name": "pseudonym", "ssn": "redact", "age": "generalize"},
...                   key=bytes(32))
>>> anon.apply({"id": 1, "email": "ana@example.com", "name": "Ana", "ssn": "1", "age": 37})
{'id': 1, 'email': 'a***@example.com', 'name': 'ps_0556145951306e371446', 'age': 30}
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from asyncdb import _tagged_json
from asyncdb.errors import ConfigurationError, QueryError
from asyncdb.security.codec import canonical, envelope_bytes, envelope_text, is_envelope
from asyncdb.security.keyring import KeyRing, hmac_sha256
from asyncdb.types import check_identifier

OPERATIONS = ("mask", "redact", "pseudonym", "generalize", "encrypt")
_PSEUDONYM_LABEL = b"asyncdb/pseudonym/v1"
_ENCRYPT_LABEL = b"asyncdb/anonymize/v1"
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-\d{2}")

Op = Callable[[Any, str], Any]


class Anonymizer:
    """Applies anonymization rules to documents; ``key`` (32 bytes or a :class:`KeyRing`) is
    needed by ``pseudonym`` and ``encrypt``."""

    def __init__(self, rules: Mapping[str, Any], *, key: bytes | KeyRing | None = None) -> None:
        if not isinstance(rules, Mapping) or not rules:
            raise ConfigurationError('rules must be a non-empty mapping, e.g. {"email": "mask"}')
        if key is None:
            self._ring: KeyRing | None = None
        elif isinstance(key, KeyRing):
            self._ring = key
        else:
            self._ring = KeyRing({"k1": key}, "k1")
        self._rules: list[tuple[str, tuple[str, ...], str, float]] = []
        for path, rule in rules.items():
            if not isinstance(path, str) or not path:
                raise ConfigurationError(f"bad anonymizer path {path!r}")
            parts = tuple(path.split("."))
            for part in parts:
                check_identifier(part, "field name")
            name, width = (rule[0], rule[1]) if isinstance(rule, tuple | list) else (rule, 10)
            if name not in OPERATIONS:
                raise ConfigurationError(f"{path!r}: the operation is one of {OPERATIONS}")
            if name != "generalize" and isinstance(rule, tuple | list):
                raise ConfigurationError(f"{path!r}: only generalize takes a parameter")
            if not (isinstance(width, int | float) and not isinstance(width, bool) and width > 0):
                raise ConfigurationError(f"{path!r}: the bucket width must be a positive number")
            if name in ("pseudonym", "encrypt") and self._ring is None:
                raise ConfigurationError(f"{path!r}: {name} needs key=")
            self._rules.append((path, parts, name, width))

    def apply(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """An anonymized copy of ``doc`` (``doc`` is not changed)."""
        out: dict[str, Any] = copy.deepcopy(dict(doc))
        for path, parts, name, width in self._rules:
            op = self._op(name, width)
            _visit(out, parts, path, op, remove=name == "redact")
        return out

    __call__ = apply

    def reveal(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``doc`` with the values of its ``encrypt`` paths decrypted (``DecryptionError`` for a
        tampered or moved one)."""
        out: dict[str, Any] = copy.deepcopy(dict(doc))
        for path, parts, name, _ in self._rules:
            if name == "encrypt":
                _visit(out, parts, path, self._decrypt, remove=False)
        return out

    def _op(self, name: str, width: float) -> Op:
        if name == "mask":
            return _mask
        if name == "pseudonym":
            return self._pseudonym
        if name == "generalize":
            return lambda value, path: _generalize(value, path, width)
        if name == "encrypt":
            return self._encrypt
        return lambda value, path: None  # redact: the field is removed by _visit

    def _pseudonym(self, value: Any, path: str) -> Any:
        assert self._ring is not None
        key = self._ring.derive(self._ring.primary, _PSEUDONYM_LABEL)
        return "ps_" + hmac_sha256(key, canonical(value))[:10].hex()

    def _encrypt(self, value: Any, path: str) -> Any:
        assert self._ring is not None
        data = _tagged_json.dumps(value).encode()
        return envelope_text(self._ring.seal_with(_ENCRYPT_LABEL, data, path.encode()))

    def _decrypt(self, value: Any, path: str) -> Any:
        assert self._ring is not None
        if not is_envelope(value):
            return value
        blob = envelope_bytes(value, path)
        return _tagged_json.loads(self._ring.open_with(_ENCRYPT_LABEL, blob, path.encode(), path))

    def __repr__(self) -> str:
        return f"<Anonymizer {[(p, n) for p, _, n, _ in self._rules]}>"


def _visit(node: Any, parts: tuple[str, ...], path: str, op: Op, *, remove: bool) -> None:
    if type(node) is list:
        for item in node:
            _visit(item, parts, path, op, remove=remove)
        return
    if type(node) is not dict or parts[0] not in node:
        return
    head, rest = parts[0], parts[1:]
    if rest:
        _visit(node[head], rest, path, op, remove=remove)
    elif remove:
        del node[head]
    elif type(node[head]) is list:
        node[head] = [op(v, path) for v in node[head]]
    else:
        node[head] = op(node[head], path)


def _mask(value: Any, path: str) -> Any:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    local, at, domain = text.partition("@")
    if at and local:
        return local[0] + "***@" + domain
    if len(text) > 4:
        return "*" * (len(text) - 4) + text[-4:]
    return "*" * len(text)


def _generalize(value: Any, path: str, width: float) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return datetime(value.year, value.month, 1, tzinfo=value.tzinfo or UTC)
    if isinstance(value, bool):
        raise QueryError("cannot generalize a boolean", path=path)
    if isinstance(value, int):
        return int(math.floor(value / width) * width)
    if isinstance(value, float):
        return math.floor(value / width) * float(width)
    if isinstance(value, Decimal):
        step = Decimal(str(width))
        return (value / step).to_integral_value(rounding="ROUND_FLOOR") * step
    if isinstance(value, str):
        match = _ISO_DATE.match(value)
        if match:
            return f"{match.group(1)}-{match.group(2)}"
    raise QueryError(
        f"cannot generalize a {type(value).__name__} (dates, ISO date strings and numbers)",
        path=path,
    )
