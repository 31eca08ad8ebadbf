"""The key ring: root keys with ids, one primary, rotation as data (Tink's keyset model).

A ring holds 256-bit root keys under short ids (``"k1"``, ``"k2"``). The primary key seals new
data; every enabled key opens data sealed under it; a disabled key opens nothing. Keys are never
used directly: each purpose (a collection's field, its blind index, a caller's ``seal``) gets its
own key derived with HKDF-SHA256 from the root key and a label naming the purpose.

Root keys never appear in a ``repr``, a log line or an error message; only ``export()`` returns
them (to store the ring in a secret manager).

>>> ring = KeyRing.generate()
>>> blob = ring.seal(b"secret", aad=b"thread-1")
>>> ring.open(blob, aad=b"thread-1")
b'secret'
>>> ring
<KeyRing primary='k1' keys=['k1']>
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from asyncdb.errors import ConfigurationError, DecryptionError

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
FORMAT_VERSION = 1
# scrypt N=2**17, r=8, p=1 (128 MiB) and PBKDF2-HMAC-SHA256 with 600,000 iterations are
# OWASP's 2023 password-storage minimums.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
PBKDF2_ITERATIONS = 600_000

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
_SEAL_LABEL = b"asyncdb/seal/v1"


def check_key_id(key_id: Any) -> str:
    """A key id: 1-32 characters of ``[A-Za-z0-9_-]`` (it is stored in every ciphertext)."""
    if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
        raise ConfigurationError(f"invalid key id {key_id!r}: use 1-32 letters, digits, '_' or '-'")
    return key_id


def _key_bytes(key: Any, key_id: str) -> bytes:
    if isinstance(key, bytearray | memoryview):
        key = bytes(key)
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        # The message never includes the value: it may be a key of the wrong length.
        raise ConfigurationError(f"key {key_id!r} must be {KEY_BYTES} bytes")
    return key


@dataclass(slots=True)
class _Key:
    material: bytes
    enabled: bool = True

    def __repr__(self) -> str:  # never the material
        return f"<key {'enabled' if self.enabled else 'disabled'}>"


class KeyRing:
    """Root keys by id, one of them primary. Build one with :meth:`generate`,
    :meth:`from_passphrase`, :meth:`from_env` or :meth:`from_json`.

    Rotation (Tink's four phases) is ``add`` then ``promote`` then, once ``rotate_keys()`` has
    re-sealed the data, ``disable``; each step takes effect at once on every open collection.

    >>> ring = KeyRing.generate()
    >>> ring.add("k2", os.urandom(32)); ring.promote("k2"); ring.disable("k1")
    >>> ring.primary, ring.enabled_ids
    ('k2', ('k2',))
    """

    __slots__ = ("_aeads", "_derived", "_keys", "_primary", "generation")

    def __init__(self, keys: dict[str, bytes], primary: str) -> None:
        if not keys:
            raise ConfigurationError("a key ring needs at least one key")
        self._keys: dict[str, _Key] = {
            check_key_id(k): _Key(_key_bytes(v, k)) for k, v in keys.items()
        }
        if primary not in self._keys:
            raise ConfigurationError(f"the primary key {primary!r} is not in the ring")
        self._primary = primary
        self._derived: dict[tuple[str, bytes], bytes] = {}
        self._aeads: dict[tuple[str, bytes], AESGCM] = {}
        # Bumped by every add/promote/disable/enable: caches of derived keys check it.
        self.generation = 0

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def generate(cls, key_id: str = "k1") -> KeyRing:
        """A ring of one fresh random 256-bit key (``os.urandom``), primary.

        >>> KeyRing.generate().primary
        'k1'
        """
        return cls({check_key_id(key_id): os.urandom(KEY_BYTES)}, key_id)

    @classmethod
    def from_passphrase(
        cls,
        passphrase: str | bytes,
        salt: str | bytes,
        *,
        kdf: Literal["scrypt", "pbkdf2"] = "scrypt",
        key_id: str = "k1",
        n: int = SCRYPT_N,
        r: int = SCRYPT_R,
        p: int = SCRYPT_P,
        iterations: int = PBKDF2_ITERATIONS,
    ) -> KeyRing:
        """A ring of one key derived from a passphrase and a salt (at least 16 bytes; store it
        beside the data, it is not secret). scrypt (``n``, ``r``, ``p``) by default;
        ``kdf="pbkdf2"`` derives PBKDF2-HMAC-SHA256 with ``iterations`` rounds, for
        deployments that already derive their keys that way.

        >>> ring = KeyRing.from_passphrase("correct horse", b"0123456789abcdef", n=2**10)
        >>> ring.primary
        'k1'
        """
        check_key_id(key_id)  # every check before the key exists (no key in a traceback)
        secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
        salt_bytes = salt.encode() if isinstance(salt, str) else salt
        if not isinstance(secret, bytes) or not secret:
            raise ConfigurationError("the passphrase must be a non-empty str or bytes")
        if not isinstance(salt_bytes, bytes) or len(salt_bytes) < 16:
            raise ConfigurationError("the salt must be at least 16 bytes")
        if kdf == "scrypt":
            key = Scrypt(salt=salt_bytes, length=KEY_BYTES, n=n, r=r, p=p).derive(secret)
        elif kdf == "pbkdf2":
            if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
                raise ConfigurationError("iterations must be a positive integer")
            key = PBKDF2HMAC(
                algorithm=hashes.SHA256(),
                length=KEY_BYTES,
                salt=salt_bytes,
                iterations=iterations,
            ).derive(secret)
        else:
            raise ConfigurationError(f'kdf must be "scrypt" or "pbkdf2", not {kdf!r}')
        return cls({key_id: key}, key_id)

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRing:
        """A ring from its JSON form (what :meth:`export` writes)::

            {"primary": "k2",
             "keys": [{"id": "k1", "key": "<base64 of 32 bytes>", "enabled": false},
                      {"id": "k2", "key": "<base64 of 32 bytes>"}]}

        A bare base64 string of 32 bytes (no JSON) is a ring of one key, ``"k1"``.
        """
        stripped = text.strip() if isinstance(text, str | bytes) else text
        if isinstance(stripped, bytes):
            stripped = stripped.decode("utf-8", "replace")
        if not isinstance(stripped, str) or not stripped:
            raise ConfigurationError("an empty key ring")
        if not stripped.startswith("{"):
            return cls({"k1": _b64(stripped, "k1")}, "k1")
        try:
            data = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            raise ConfigurationError("the key ring is not valid JSON") from None
        entries = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ConfigurationError('the key ring JSON needs a non-empty "keys" list')
        keys: dict[str, bytes] = {}
        disabled: list[str] = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise ConfigurationError("each key ring entry must be an object")
            key_id = check_key_id(entry.get("id"))
            if key_id in keys:
                raise ConfigurationError(f"the key id {key_id!r} appears twice")
            keys[key_id] = _b64(entry.get("key"), key_id)
            if entry.get("enabled", True) is False:
                disabled.append(key_id)
        primary = data.get("primary", next(iter(keys)))
        ring = cls(keys, primary)
        for key_id in disabled:
            ring.disable(key_id)
        return ring

    @classmethod
    def from_env(cls, name: str = "ASYNCDB_KEYRING") -> KeyRing:
        """The ring in the environment variable ``name`` (the format of :meth:`from_json`).

        >>> # python -c 'import asyncdb; print(asyncdb.KeyRing.generate().export())' > ring.json
        >>> # export ASYNCDB_KEYRING="$(cat ring.json)"
        """
        value = os.environ.get(name)
        if not value:
            raise ConfigurationError(f"the environment variable {name} holds no key ring")
        return cls.from_json(value)

    def export(self) -> str:
        """The ring as JSON text, root keys included (base64): store it as a secret."""
        return orjson.dumps(
            {
                "primary": self._primary,
                "keys": [
                    {
                        "id": key_id,
                        "key": base64.b64encode(k.material).decode(),
                        "enabled": k.enabled,
                    }
                    for key_id, k in self._keys.items()
                ],
            }
        ).decode()

    # --- rotation ---------------------------------------------------------------------------

    def add(self, key_id: str, key: bytes) -> None:
        """Add an enabled, non-primary key (phase 2 of a rotation: it opens data, seals none)."""
        check_key_id(key_id)
        if key_id in self._keys:
            raise ConfigurationError(f"the key ring already holds a key {key_id!r}")
        self._keys[key_id] = _Key(_key_bytes(key, key_id))
        self.generation += 1

    def promote(self, key_id: str) -> None:
        """Make ``key_id`` (enabled) the primary: new data is sealed under it."""
        key = self._get(key_id)
        if not key.enabled:
            raise ConfigurationError(f"key {key_id!r} is disabled; enable it before promoting")
        self._primary = key_id
        self.generation += 1

    def disable(self, key_id: str) -> None:
        """Disable a key: data sealed under it no longer opens (``DecryptionError``)."""
        key = self._get(key_id)
        if key_id == self._primary:
            raise ConfigurationError(f"key {key_id!r} is the primary; promote another first")
        key.enabled = False
        self.generation += 1

    def enable(self, key_id: str) -> None:
        """Undo :meth:`disable`."""
        self._get(key_id).enabled = True
        self.generation += 1

    def _get(self, key_id: str) -> _Key:
        key = self._keys.get(key_id)
        if key is None:
            raise ConfigurationError(f"no key {key_id!r} in the key ring")
        return key

    @property
    def primary(self) -> str:
        """The id of the key that seals new data."""
        return self._primary

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @property
    def enabled_ids(self) -> tuple[str, ...]:
        """The ids of the keys that open data (the primary first)."""
        rest = [k for k, v in self._keys.items() if v.enabled and k != self._primary]
        return (self._primary, *rest)

    def is_enabled(self, key_id: str) -> bool:
        key = self._keys.get(key_id)
        return key is not None and key.enabled

    # --- derived keys and the envelope --------------------------------------------------------

    def _key(self, key_id: str, field: str = "") -> _Key:
        key = self._keys.get(key_id)
        if key is None or not key.enabled:
            state = "disabled" if key is not None else "unknown"
            raise DecryptionError(
                f"key {key_id!r} is {state}: cannot decrypt{_at(field)}",
                key_id=key_id,
                field=field,
            )
        return key

    def derive(self, key_id: str, label: bytes) -> bytes:
        """The 256-bit key of ``label`` (a purpose) under root key ``key_id``: HKDF-SHA256
        with the label as ``info``. Memoised; raises ``DecryptionError`` for a disabled or
        unknown key."""
        key = self._key(key_id)  # checked on every call: a disable takes effect at once
        derived = self._derived.get((key_id, label))
        if derived is None:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label)
            derived = self._derived[(key_id, label)] = hkdf.derive(key.material)
        return derived

    def aead(self, key_id: str, label: bytes, field: str = "") -> AESGCM:
        """The AES-256-GCM primitive of ``label`` under ``key_id`` (``DecryptionError`` for a
        disabled or unknown key). Callers that cache it must drop it when ``generation``
        changes."""
        self._key(key_id, field)
        aead = self._aeads.get((key_id, label))
        if aead is None:
            aead = self._aeads[(key_id, label)] = AESGCM(self.derive(key_id, label))
        return aead

    def seal_with(self, label: bytes, data: bytes, aad: bytes, key_id: str | None = None) -> bytes:
        """The envelope of ``data`` under the key of ``label`` (primary unless ``key_id``):
        ``version | len(key id) | key id | nonce(12) | AES-256-GCM ciphertext and tag``. The
        GCM associated data is the header (version and key id) followed by ``aad``."""
        kid = self._primary if key_id is None else key_id
        header = bytes((FORMAT_VERSION, len(kid))) + kid.encode("ascii")
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self.aead(kid, label).encrypt(nonce, data, header + aad)

    def open_with(
        self,
        label: bytes,
        blob: bytes,
        aad: bytes,
        field: str = "",
        expect_key_id: str | None = None,
    ) -> bytes:
        """The data of an envelope from :meth:`seal_with`; ``DecryptionError`` (naming the key
        id and ``field``, never the data) when it was tampered with, moved (other ``aad``),
        sealed by another ring, its key is unknown or disabled, or it is not under
        ``expect_key_id`` (when given)."""
        if len(blob) < 2 + NONCE_BYTES + TAG_BYTES or blob[0] != FORMAT_VERSION:
            raise DecryptionError(f"not an asyncdb envelope{_at(field)}", field=field)
        end = 2 + blob[1]
        if len(blob) < end + NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(f"a truncated envelope{_at(field)}", field=field)
        kid = blob[2:end].decode("ascii", "replace")
        if expect_key_id is not None and kid != expect_key_id:
            raise DecryptionError(
                f"ciphertext{_at(field)} is under key {kid!r}, its document under "
                f"{expect_key_id!r}",
                key_id=expect_key_id,
                field=field,
            )
        aead = self.aead(kid, label, field)
        try:
            return aead.decrypt(
                blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :], blob[:end] + aad
            )
        except InvalidTag:
            raise DecryptionError(
                f"ciphertext{_at(field)} under key {kid!r} does not authenticate: tampered, "
                "moved from another document, field or collection, or sealed by another key ring",
                key_id=kid,
                field=field,
            ) from None

    def seal(self, data: bytes, aad: bytes = b"") -> bytes:
        """Encrypt ``data`` under the primary key, bound to ``aad`` (which must be given again
        to open it). For callers that store bytes of their own (checkpoints, files).

        >>> ring = KeyRing.generate()
        >>> ring.open(ring.seal(b"x", b"ctx"), b"ctx")
        b'x'
        """
        return self.seal_with(_SEAL_LABEL, bytes(data), bytes(aad))

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        """The bytes :meth:`seal` sealed with the same ``aad``; ``DecryptionError`` otherwise."""
        return self.open_with(_SEAL_LABEL, bytes(blob), bytes(aad))

    def key_id_of(self, blob: bytes) -> str:
        """The id of the key a sealed blob is under (to re-seal blobs not under the primary)."""
        return envelope_key_id(bytes(blob), "")[0]

    def __repr__(self) -> str:
        ids = [k if v.enabled else f"{k} (disabled)" for k, v in self._keys.items()]
        return f"<KeyRing primary={self._primary!r} keys={ids}>"

    def __reduce__(self) -> Any:
        raise TypeError("a KeyRing is not picklable (it would copy root keys); use export()")


def _at(field: str) -> str:
    return f" of field {field!r}" if field else ""


def envelope_key_id(blob: bytes, field: str) -> tuple[str, bytes]:
    """The key id of an envelope and the rest after its header (nonce, ciphertext, tag)."""
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        raise DecryptionError(f"not an asyncdb envelope (format version){_at(field)}", field=field)
    n = blob[1]
    raw = blob[2 : 2 + n]
    kid = raw.decode("ascii", "replace")
    if not _KEY_ID.match(kid) or len(blob) < 2 + n + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError(f"a malformed envelope{_at(field)}", field=field)
    return kid, blob[2 + n :]


def _b64(value: Any, key_id: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigurationError(f"key {key_id!r} must be a base64 string")
    try:
        return _key_bytes(base64.b64decode(value, validate=True), key_id)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"key {key_id!r} is not valid base64") from None


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def hmac_sha256_of(key: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 under ``key`` as a function, the keyed state computed once (copied per
    message: faster than ``hmac.digest`` for many short messages)."""
    keyed = hmac.new(key, digestmod=hashlib.sha256)

    def mac(data: bytes) -> bytes:
        h = keyed.copy()
        h.update(data)
        return h.digest()

    return mac
