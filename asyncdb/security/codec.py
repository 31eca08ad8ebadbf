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

import binascii
import os
import struct
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asyncdb import _tagged_json
from asyncdb.backends.base import Doc, KeyTuple
from asyncdb.errors import DecryptionError, QueryError
from asyncdb.security.keyring import FORMAT_VERSION, NONCE_BYTES, KeyRing, hmac_sha256_of
from asyncdb.security.spec import (
    KEY_ID_FIELD,
    RECORD_FIELD,
    RESERVED_PREFIX,
    VERSION_FIELD,
    EncryptionSpec,
    FieldRule,
)

ENVELOPE_PREFIX = "ae1:"
# Per key id: the envelope header, each rule's AEAD, the blind-index MACs by path.
_Primitives = tuple[bytes, tuple[AESGCM, ...], dict[str, Callable[[bytes], bytes]]]
_ABSENT: Any = object()
RECORD_PATH = "*"


def is_envelope(value: Any) -> bool:
    return type(value) is str and value.startswith(ENVELOPE_PREFIX)


def envelope_text(blob: bytes) -> str:
    return ENVELOPE_PREFIX + binascii.b2a_base64(blob, newline=False).decode("ascii")


def envelope_bytes(text: str, field: str) -> bytes:
    try:
        return binascii.a2b_base64(text[4:], strict_mode=True)
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


def associated_data(collection: str, key: KeyTuple) -> bytes:
    """The document's part of the associated data, ``[collection, [key...]]`` as JSON; the
    field path follows it (after a NUL, which JSON text never holds)."""
    return orjson.dumps((collection, key), default=_tagged_json.tag) + b"\x00"


class Opened(NamedTuple):
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
        # Field level with top-level fields only: a tight loop with cached primitives.
        self._flat = not spec.record and all(len(r.parts) == 1 for r in spec.rules)
        self._flat_rules = tuple((r, r.path, r.path.encode()) for r in spec.rules)
        self._generation = -1
        self._hidden = (KEY_ID_FIELD, VERSION_FIELD, *spec.token_fields)
        self._primitives: dict[
            str, tuple[bytes, tuple[AESGCM, ...], dict[str, Callable[[bytes], bytes]]]
        ] = {}

    def _cached(self, key_id: str) -> _Primitives:
        """The envelope header, each rule's AEAD and (filled on use) blind-index keys under
        ``key_id`` (DecryptionError when the key is disabled or unknown), rebuilt whenever the
        ring changes."""
        ring = self.ring
        if self._generation != ring.generation:
            self._primitives.clear()
            self._generation = ring.generation
        found = self._primitives.get(key_id)
        if found is None:
            header = bytes((FORMAT_VERSION, len(key_id))) + key_id.encode("ascii")
            aeads = tuple(ring.aead(key_id, self._labels[r.path]) for r in self.spec.rules)
            found = self._primitives[key_id] = (header, aeads, {})
        return found

    # --- tokens ---------------------------------------------------------------------------

    def token(self, rule: FieldRule, value: Any, key_id: str) -> str:
        """The blind-index token of ``value`` for ``rule`` under key ``key_id``."""
        macs = self._cached(key_id)[2]
        mac = macs.get(rule.path)
        if mac is None:
            key = self.ring.derive(key_id, self._index_labels[rule.path])
            mac = macs[rule.path] = hmac_sha256_of(key)
        if type(value) is str:  # the common case, inline: the bytes _canon writes
            data = value.encode("utf-8", "surrogatepass")
            canon = b"s" + len(data).to_bytes(4, "big") + data
        else:
            canon = canonical(value)
        digest = int.from_bytes(mac(canon)[:8], "big") >> (64 - rule.bits)
        return f"{digest:0{(rule.bits + 3) // 4}x}"

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

    def _seal_value(self, path: str, value: Any, doc_aad: bytes, key_id: str) -> str:
        data = _tagged_json.dumps(value).encode()
        aad = doc_aad + path.encode()
        return envelope_text(self.ring.seal_with(self._labels[path], data, aad, key_id))

    def _open_value(self, path: str, text: str, doc_aad: bytes, key_id: str | None) -> Any:
        blob = envelope_bytes(text, path)
        aad = doc_aad + path.encode()
        data = self.ring.open_with(self._labels[path], blob, aad, path, key_id)
        return _tagged_json.loads(data)

    def key_of(self, doc: Doc) -> KeyTuple:
        return tuple(doc[f] for f in self.spec.key)

    def seal(self, doc: Doc, *, version: int, key_id: str | None = None) -> Doc:
        """The stored form of the plaintext ``doc`` (which holds its key), sealed under
        ``key_id`` (the primary by default), with ``version`` as its compare-and-set value."""
        for name in doc:
            if name[:4] == RESERVED_PREFIX:
                raise QueryError("field names starting with _enc are reserved", path=name)
        kid = self.ring.primary if key_id is None else key_id
        key = associated_data(self.spec.collection, self.key_of(doc))
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
        elif self._flat:
            header, aeads, _ = self._cached(kid)
            out = dict(doc)
            for (rule, path, path_bytes), aead in zip(self._flat_rules, aeads, strict=True):
                if path not in out:
                    continue
                value = out[path]
                nonce = os.urandom(NONCE_BYTES)
                data = _tagged_json.dumps(value).encode()
                sealed = aead.encrypt(nonce, data, header + key + path_bytes)
                out[path] = envelope_text(header + nonce + sealed)
                if rule.token_field is not None:
                    out[rule.token_field] = self.stored_tokens(rule, value, kid)
        else:
            out = dict(doc)
            for rule, container, leaf, value in _places(out, spec.rules):
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
        if self._flat:
            opened = self._open_flat(stored)
            if opened is not None:
                return opened
        return self._open(stored)

    def _open_flat(self, stored: Doc) -> Opened | None:
        """The fast path of a well-formed document; None on anything unusual, which
        :meth:`_open` then explains with the precise DecryptionError."""
        key_id = stored.get(KEY_ID_FIELD)
        if type(key_id) is not str:
            return None
        try:
            header, aeads, _ = self._cached(key_id)
            n = len(header)
            doc_aad = associated_data(self.spec.collection, self.key_of(stored))
            doc = stored.copy()
            for hidden in self._hidden:
                doc.pop(hidden, None)
            for name in doc:
                if name[:4] == RESERVED_PREFIX:
                    return None  # a hidden field of another spec: the general path drops it
            for (_, path, path_bytes), aead in zip(self._flat_rules, aeads, strict=True):
                value = doc.get(path, _ABSENT)
                if value is _ABSENT:
                    continue
                if type(value) is not str or value[:4] != ENVELOPE_PREFIX:
                    return None
                blob = binascii.a2b_base64(value[4:], strict_mode=True)
                if blob[:n] != header:
                    return None
                data = aead.decrypt(
                    blob[n : n + NONCE_BYTES],
                    blob[n + NONCE_BYTES :],
                    header + doc_aad + path_bytes,
                )
                doc[path] = _tagged_json.loads(data)
        except Exception:
            return None
        return Opened(doc, stored.get(VERSION_FIELD), key_id)

    def _open(self, stored: Doc) -> Opened:
        key_id = stored.get(KEY_ID_FIELD)
        version = stored.get(VERSION_FIELD)
        if key_id is not None and type(key_id) is not str:
            raise DecryptionError("a malformed key id field", field=KEY_ID_FIELD)
        key = associated_data(self.spec.collection, self.key_of(stored))
        spec = self.spec
        doc = {k: v for k, v in stored.items() if k[:4] != RESERVED_PREFIX}
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
        for rule, container, leaf, value in _places(doc, spec.rules):
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


def _places(doc: Doc, rules: tuple[FieldRule, ...]) -> Iterator[tuple[FieldRule, Doc, str, Any]]:
    """Each rule's value present in ``doc``: (rule, its container, its name, the value), the
    dicts on the way copied so that writing the container leaves the caller's document alone."""
    for rule in rules:
        found = _walk(doc, rule, copy=True)
        if found is not None:
            container, leaf = found
            yield rule, container, leaf, container[leaf]


def _walk(doc: Doc, rule: FieldRule, *, copy: bool) -> tuple[Doc, str] | None:
    """The container holding ``rule``'s leaf and the leaf's name, or None when absent. With
    ``copy`` the dicts along the path are copied (the caller's document is not changed)."""
    parts = rule.parts
    if len(parts) == 1:
        return (doc, parts[0]) if parts[0] in doc else None
    node = doc
    for part in parts[:-1]:
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
