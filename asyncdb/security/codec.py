"""Sealing and opening documents, and blind-index tokens (pure: no I/O).

A sealed value is text, ``"ae1:" + base64url(envelope)``, where the envelope (see
:meth:`KeyRing.seal_with`) carries the format version and the key id. The plaintext is the value
in asyncdb's tagged JSON (every portable type round-trips). The associated data binds the
collection, the document's key and the field path (``"*"`` for a record envelope), so a
ciphertext moved anywhere else does not open.

A blind-index token is HMAC-SHA256 of the value's canonical bytes (equal exactly when MongoDB
equality holds: ``1 == 1.0 == Decimal("1")``, ``True != 1``, documents in field order), under a
key derived per collection and field, truncated to the field's ``bits``, as hex.

>>> from asyncdb.security.keyring import KeyRing
>>> from asyncdb.security.spec import EncryptionSpec
>>> spec = EncryptionSpec.parse({"ssn": "equality"}, "users", ("id",))
>>> codec = DocumentCodec(spec, KeyRing.generate())
>>> stored = codec.seal({"id": "u1", "ssn": "123-45-6789"}, version=1)
>>> stored["ssn"].startswith("ae1:"), sorted(stored)
(True, ['_enc_bi_ssn', '_enc_key', '_enc_v', 'id', 'ssn'])
>>> codec.open(stored).doc
{'id': 'u1', 'ssn': '123-45-6789'}
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from asyncdb import _tagged_json
from asyncdb.backends.base import Doc, KeyTuple
from asyncdb.errors import DecryptionError, QueryError
from asyncdb.security.keyring import KeyRing, hmac_sha256
from asyncdb.security.spec import (
    KEY_ID_FIELD,
    RECORD_FIELD,
    VERSION_FIELD,
    EncryptionSpec,
    FieldRule,
    is_reserved,
)

ENVELOPE_PREFIX = "ae1:"
RECORD_PATH = "*"


def is_envelope(value: Any) -> bool:
    return type(value) is str and value.startswith(ENVELOPE_PREFIX)


def envelope_text(blob: bytes) -> str:
    return ENVELOPE_PREFIX + base64.urlsafe_b64encode(blob).rstrip(b"=").decode("ascii")


def envelope_bytes(text: str, field: str) -> bytes:
    body = text[len(ENVELOPE_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError(f"a malformed envelope in field {field!r}", field=field) from None


# --- canonical bytes for equality ------------------------------------------------------------


def canonical(value: Any) -> bytes:
    """Bytes equal exactly when two portable values are equal under MongoDB's rules.

    >>> canonical(1) == canonical(1.0) == canonical(Decimal("1.00"))
    True
    >>> canonical(True) == canonical(1)
    False
    """
    out = bytearray()
    _canon(value, out)
    return bytes(out)


def _canon(value: Any, out: bytearray) -> None:
    t = type(value)
    if value is None:
        out += b"z"
    elif t is bool:
        out += b"t" if value else b"f"
    elif t is str:
        data = value.encode("utf-8", "surrogatepass")
        out += b"s" + struct.pack(">I", len(data)) + data
    elif t is int or t is float or t is Decimal:
        try:
            frac = Fraction(value)
            text = f"{frac.numerator}/{frac.denominator}".encode()
        except (ValueError, OverflowError):  # NaN and infinities of Decimal
            text = str(value).encode()
        out += b"n" + struct.pack(">I", len(text)) + text
    elif t is bytes:
        out += b"b" + struct.pack(">I", len(value)) + value
    elif t is datetime:
        out += b"d" + _tagged_json.iso_date(value).encode()
    elif t is list:
        out += b"a" + struct.pack(">I", len(value))
        for item in value:
            _canon(item, out)
    elif t is dict:
        out += b"o" + struct.pack(">I", len(value))
        for k, v in value.items():
            _canon(k, out)
            _canon(v, out)
    else:
        raise QueryError(f"unsupported value type {t.__name__}")


# --- labels and associated data -------------------------------------------------------------


def _label(kind: bytes, collection: str, path: str) -> bytes:
    return b"asyncdb/" + kind + b"/v1\x00" + collection.encode() + b"\x00" + path.encode()


def associated_data(collection: str, key: KeyTuple, path: str) -> bytes:
    return _tagged_json.dumps([collection, list(key), path]).encode()


@dataclass(frozen=True, slots=True)
class Opened:
    """A stored document opened: the plaintext document, its version and key id (None when the
    document was never sealed, i.e. plaintext accepted by ``allow_plaintext``)."""

    doc: Doc
    version: int | None
    key_id: str | None


class DocumentCodec:
    """Seals plaintext documents into their stored form and opens them back, for one
    collection's :class:`EncryptionSpec` and a :class:`KeyRing` (consulted on every call, so a
    rotation step takes effect at once)."""

    def __init__(self, spec: EncryptionSpec, ring: KeyRing) -> None:
        self.spec = spec
        self.ring = ring
        name = spec.collection
        self._labels = {r.path: _label(b"field", name, r.path) for r in spec.rules}
        self._labels[RECORD_PATH] = _label(b"field", name, RECORD_PATH)
        self._index_labels = {r.path: _label(b"index", name, r.path) for r in spec.rules}
        self._plain = spec.plain_fields()

    # --- tokens ---------------------------------------------------------------------------

    def token(self, rule: FieldRule, value: Any, key_id: str) -> str:
        """The blind-index token of ``value`` for ``rule`` under key ``key_id``."""
        key = self.ring.derive(key_id, self._index_labels[rule.path])
        digest = int.from_bytes(hmac_sha256(key, canonical(value))[:8], "big")
        return format(digest >> (64 - rule.bits), f"0{(rule.bits + 3) // 4}x")

    def stored_tokens(self, rule: FieldRule, value: Any, key_id: str) -> Any:
        """What the hidden index field holds: the value's token, and for an array also each
        element's (so ``{"tags": "x"}`` finds ``["x", "y"]``, as MongoDB does)."""
        if type(value) is not list:
            return self.token(rule, value, key_id)
        tokens = [self.token(rule, value, key_id)]
        for item in value:
            t = self.token(rule, item, key_id)
            if t not in tokens:
                tokens.append(t)
        return tokens

    def query_tokens(self, rule: FieldRule, values: tuple[Any, ...]) -> list[str]:
        """The tokens a query for any of ``values`` looks up: under every enabled key."""
        out: list[str] = []
        for key_id in self.ring.enabled_ids:
            for value in values:
                t = self.token(rule, value, key_id)
                if t not in out:
                    out.append(t)
        return out

    # --- sealing --------------------------------------------------------------------------

    def _seal_value(self, path: str, value: Any, key: KeyTuple, key_id: str) -> str:
        data = _tagged_json.dumps(value).encode()
        aad = associated_data(self.spec.collection, key, path)
        return envelope_text(self.ring.seal_with(self._labels[path], data, aad, key_id))

    def _open_value(self, path: str, text: str, key: KeyTuple, key_id: str | None) -> Any:
        blob = envelope_bytes(text, path)
        if key_id is not None and self.ring.key_id_of(blob) != key_id:
            raise DecryptionError(
                f"field {path!r} is sealed under another key than its document ({key_id!r})",
                key_id=key_id,
                field=path,
            )
        aad = associated_data(self.spec.collection, key, path)
        return _tagged_json.loads(self.ring.open_with(self._labels[path], blob, aad, path))

    def key_of(self, doc: Doc) -> KeyTuple:
        return tuple(doc[f] for f in self.spec.key)

    def seal(self, doc: Doc, *, version: int, key_id: str | None = None) -> Doc:
        """The stored form of the plaintext ``doc`` (which holds its key), sealed under
        ``key_id`` (the primary by default), with ``version`` as its compare-and-set value."""
        for name in doc:
            if is_reserved(name):
                raise QueryError("field names starting with _enc are reserved", path=name)
        kid = self.ring.primary if key_id is None else key_id
        key = self.key_of(doc)
        spec = self.spec
        if spec.record:
            out: Doc = {}
            rest: Doc = {}
            for name, value in doc.items():
                (out if name in self._plain else rest)[name] = value
            payload = {"o": list(doc), "d": rest}
            out[RECORD_FIELD] = self._seal_value(RECORD_PATH, payload, key, kid)
            for rule in spec.equality_rules:
                if rule.path in rest:
                    assert rule.token_field is not None
                    out[rule.token_field] = self.stored_tokens(rule, rest[rule.path], kid)
        else:
            out = dict(doc)
            for rule in spec.rules:
                found = _walk(out, rule, copy=True)
                if found is None:
                    continue
                container, leaf = found
                value = container[leaf]
                container[leaf] = self._seal_value(rule.path, value, key, kid)
                if rule.token_field is not None:
                    out[rule.token_field] = self.stored_tokens(rule, value, kid)
        out[KEY_ID_FIELD] = kid
        out[VERSION_FIELD] = version
        return out

    def open(self, stored: Doc) -> Opened:
        """The plaintext of a stored document. ``DecryptionError`` for a ciphertext that does
        not open, and for plaintext in an encrypted field (unless ``allow_plaintext`` and the
        document was never sealed)."""
        key_id = stored.get(KEY_ID_FIELD)
        version = stored.get(VERSION_FIELD)
        if key_id is not None and type(key_id) is not str:
            raise DecryptionError("a malformed key id field", field=KEY_ID_FIELD)
        key = self.key_of(stored)
        spec = self.spec
        doc = {k: v for k, v in stored.items() if not is_reserved(k)}
        if spec.record:
            sealed = stored.get(RECORD_FIELD)
            loose = [k for k in doc if k not in self._plain]
            if sealed is None:
                if key_id is None and spec.allow_plaintext:
                    return Opened(doc, None, None)
                raise DecryptionError(
                    f"plaintext where collection {spec.collection!r} holds a record envelope "
                    "(pass allow_plaintext=True to read data not yet encrypted)",
                    key_id=key_id or "",
                    field=RECORD_PATH,
                )
            if loose:
                raise DecryptionError(
                    f"field {loose[0]!r} is stored in plaintext beside the record envelope",
                    key_id=key_id or "",
                    field=loose[0],
                )
            if not is_envelope(sealed):
                raise DecryptionError("the record envelope is not ciphertext", field=RECORD_PATH)
            payload = self._open_value(RECORD_PATH, sealed, key, key_id)
            rest = payload["d"]
            merged = {**doc, **rest}
            order = [k for k in payload["o"] if k in merged]
            order += [k for k in merged if k not in payload["o"]]
            return Opened({k: merged[k] for k in order}, version, key_id)
        for rule in spec.rules:
            found = _walk(doc, rule, copy=True)
            if found is None:
                continue
            container, leaf = found
            value = container[leaf]
            if is_envelope(value):
                container[leaf] = self._open_value(rule.path, value, key, key_id)
            elif key_id is not None or not spec.allow_plaintext:
                raise DecryptionError(
                    f"plaintext in encrypted field {rule.path!r} of collection "
                    f"{spec.collection!r} (pass allow_plaintext=True to read data not yet "
                    "encrypted)",
                    key_id=key_id or "",
                    field=rule.path,
                )
        return Opened(doc, version, key_id)


def _walk(doc: Doc, rule: FieldRule, *, copy: bool) -> tuple[Doc, str] | None:
    """The container holding ``rule``'s leaf and the leaf's name, or None when absent. With
    ``copy`` the dicts along the path are copied (the caller's document is not changed)."""
    node = doc
    for part in rule.parts[:-1]:
        child = node.get(part)
        if type(child) is list:
            raise QueryError(
                f"encrypted field {rule.path!r} lies inside an array: encrypt the array's field",
                path=rule.path,
            )
        if type(child) is not dict:
            return None
        if copy:
            child = node[part] = dict(child)
        node = child
    leaf = rule.parts[-1]
    return (node, leaf) if leaf in node else None
