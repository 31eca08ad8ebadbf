"""What a collection encrypts: the ``encrypted=`` argument, parsed and checked (pure).

``{"ssn": "equality", "notes": "opaque", "address.zip": "equality"}`` encrypts those paths one
value each (field level). ``{"*": "opaque"}`` encrypts every field but the key into one envelope
(record level); there a top-level field may be named ``"plain"`` (stored as is, queryable) or
``"equality"`` (inside the envelope, and queryable by equality through its blind index). A mode
may be given as ``{"mode": "equality", "bits": 16}`` to size the blind index.

>>> spec = EncryptionSpec.parse({"ssn": "equality", "notes": "opaque"}, "users", ("id",))
>>> [(r.path, r.mode, r.token_field) for r in spec.rules]
[('ssn', 'equality', '_enc_bi_ssn'), ('notes', 'opaque', None)]
>>> spec.classify(("ssn",)).kind, spec.classify(("age",)).kind
('equality', 'plain')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from asyncdb.errors import ConfigurationError
from asyncdb.query.ast import Path
from asyncdb.types import check_identifier

# Hidden fields of an encrypted document (never returned, refused in user documents and queries).
RESERVED_PREFIX = "_enc"
RECORD_FIELD = "_enc"  # record level: the envelope of every field but the key
KEY_ID_FIELD = "_enc_key"  # the id of the key this document is sealed under
VERSION_FIELD = "_enc_v"  # bumped on every write: the compare-and-set condition
TOKEN_PREFIX = "_enc_bi_"  # + the path with "." as "__": the blind index of an equality field

# 24 bits: about one false positive per 16.7 million documents per queried value (see the
# README's security section for the trade-off).
DEFAULT_INDEX_BITS = 24
MAX_INDEX_BITS = 64

Mode = Literal["equality", "opaque", "plain"]
Kind = Literal["plain", "equality", "opaque", "inside", "encloses", "reserved"]


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One named path: its mode, blind-index width and hidden index field."""

    path: str
    parts: Path
    mode: Mode
    bits: int = DEFAULT_INDEX_BITS

    @property
    def token_field(self) -> str | None:
        return TOKEN_PREFIX + "__".join(self.parts) if self.mode == "equality" else None


@dataclass(frozen=True, slots=True)
class Place:
    """What a query path touches: ``kind`` and the rule it falls under (None when plain)."""

    kind: Kind
    rule: FieldRule | None = None


def is_reserved(name: str) -> bool:
    return name.startswith(RESERVED_PREFIX)


@dataclass(frozen=True, slots=True)
class EncryptionSpec:
    """The parsed ``encrypted=`` of one collection."""

    collection: str
    key: tuple[str, ...]
    rules: tuple[FieldRule, ...]
    record: bool = False
    allow_plaintext: bool = False

    @classmethod
    def parse(
        cls,
        encrypted: Mapping[str, Any],
        collection: str,
        key: tuple[str, ...],
        *,
        allow_plaintext: bool = False,
    ) -> EncryptionSpec:
        if not isinstance(encrypted, Mapping) or not encrypted:
            raise ConfigurationError(
                'encrypted must be a non-empty mapping, e.g. {"ssn": "equality"}'
            )
        record = "*" in encrypted
        if record and _mode_of("*", encrypted["*"])[0] != "opaque":
            raise ConfigurationError('record encryption is {"*": "opaque"}')
        rules: list[FieldRule] = []
        for path, value in encrypted.items():
            if path == "*":
                continue
            if not isinstance(path, str) or not path:
                raise ConfigurationError(f"bad encrypted field {path!r}")
            parts = tuple(path.split("."))
            for part in parts:
                check_identifier(part, "encrypted field name")
                if part.isdigit():
                    raise ConfigurationError(f"encrypted field {path!r}: no array positions")
            if is_reserved(parts[0]):
                raise ConfigurationError(f"{path!r}: names starting with _enc are reserved")
            if parts[0] in key:
                raise ConfigurationError(
                    f"the key field {path!r} cannot be encrypted: it locates the document "
                    "and is bound into every ciphertext of it"
                )
            mode, bits = _mode_of(path, value)
            if record and len(parts) > 1:
                raise ConfigurationError(
                    f"{path!r}: with record encryption only top-level fields can be named"
                )
            if mode == "plain" and not record:
                raise ConfigurationError(
                    f'{path!r}: "plain" names an exception to record encryption ({{"*": ...}})'
                )
            rules.append(FieldRule(path, parts, mode, bits))
        for a in rules:
            for b in rules:
                if a is not b and b.parts[: len(a.parts)] == a.parts:
                    raise ConfigurationError(f"encrypted fields {a.path!r} and {b.path!r} overlap")
        tokens = [r.token_field for r in rules if r.token_field]
        if len(set(tokens)) != len(tokens):
            raise ConfigurationError("two equality fields map to the same blind-index field")
        return cls(collection, key, tuple(rules), record, bool(allow_plaintext))

    @property
    def equality_rules(self) -> tuple[FieldRule, ...]:
        return tuple(r for r in self.rules if r.mode == "equality")

    @property
    def token_fields(self) -> tuple[str, ...]:
        return tuple(r.token_field for r in self.rules if r.token_field)

    def classify(self, path: Path) -> Place:
        """What the query path ``path`` reaches: a plain field, an encrypted field (its rule),
        a place inside an encrypted value, an object holding one, or a hidden field."""
        if not path:
            return Place("plain")
        head = path[0]
        if is_reserved(head):
            return Place("reserved")
        if head in self.key:
            return Place("plain")
        for rule in self.rules:
            n = len(rule.parts)
            if path == rule.parts:
                if rule.mode == "plain":
                    return Place("plain")
                return Place(rule.mode, rule)
            if path[:n] == rule.parts:
                return Place("plain" if rule.mode == "plain" else "inside", rule)
            if rule.parts[: len(path)] == path:
                return Place("encloses", rule)
        if self.record:
            whole = FieldRule(head, (head,), "opaque")
            return Place("opaque" if len(path) == 1 else "inside", whole)
        return Place("plain")

    def plain_fields(self) -> frozenset[str]:
        """Record level: the top-level fields stored outside the envelope (key and "plain")."""
        return frozenset(self.key) | {r.path for r in self.rules if r.mode == "plain"}

    def describe(self) -> dict[str, Any]:
        """The spec as JSON-able data (what the catalog and the CLI's ``--encrypted`` take)."""
        out: dict[str, Any] = {"*": "opaque"} if self.record else {}
        for r in self.rules:
            out[r.path] = (
                {"mode": r.mode, "bits": r.bits}
                if r.mode == "equality" and r.bits != DEFAULT_INDEX_BITS
                else r.mode
            )
        return out


def _mode_of(path: str, value: Any) -> tuple[Mode, int]:
    bits: Any = DEFAULT_INDEX_BITS
    mode: Any = value
    if isinstance(value, Mapping):
        mode = value.get("mode")
        bits = value.get("bits", DEFAULT_INDEX_BITS)
        unknown = set(value) - {"mode", "bits"}
        if unknown:
            raise ConfigurationError(f"encrypted field {path!r}: unknown options {sorted(unknown)}")
    if mode not in ("equality", "opaque", "plain"):
        raise ConfigurationError(
            f'encrypted field {path!r}: the mode is "equality", "opaque" or "plain", not {mode!r}'
        )
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_INDEX_BITS:
        raise ConfigurationError(
            f"encrypted field {path!r}: bits must be an integer from 1 to {MAX_INDEX_BITS}"
        )
    return mode, bits
