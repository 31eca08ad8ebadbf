"""The key ring: derivations pinned against independent implementations, the JSON/env format,
rotation states, sealing with caller AAD, and root keys kept out of every repr and error."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest

import asyncdb
from asyncdb.security.keyring import KeyRing

SALT = b"asyncdb-test-salt"


def _root(ring: KeyRing, key_id: str) -> bytes:
    entries = json.loads(ring.export())["keys"]
    return base64.b64decode(next(k["key"] for k in entries if k["id"] == key_id))


def test_scrypt_passphrase_matches_hashlib_scrypt() -> None:
    ring = KeyRing.from_passphrase("correct horse battery", SALT, n=2**12)
    expected = hashlib.scrypt(b"correct horse battery", salt=SALT, n=2**12, r=8, p=1, dklen=32)
    assert _root(ring, "k1") == expected


def test_pbkdf2_passphrase_matches_hashlib_pbkdf2() -> None:
    ring = KeyRing.from_passphrase("pw", SALT, kdf="pbkdf2", iterations=1000, key_id="legacy")
    assert ring.primary == "legacy"
    assert _root(ring, "legacy") == hashlib.pbkdf2_hmac("sha256", b"pw", SALT, 1000, 32)


def test_default_scrypt_cost_is_owasp_minimum() -> None:
    from asyncdb.security import keyring

    assert (keyring.SCRYPT_N, keyring.SCRYPT_R, keyring.SCRYPT_P) == (2**17, 8, 1)
    assert keyring.PBKDF2_ITERATIONS == 600_000


def test_short_salt_and_unknown_kdf_are_refused() -> None:
    with pytest.raises(asyncdb.ConfigurationError, match="salt"):
        KeyRing.from_passphrase("pw", b"short")
    with pytest.raises(asyncdb.ConfigurationError, match="kdf"):
        KeyRing.from_passphrase("pw", SALT, kdf="md5")  # type: ignore[arg-type]


def test_from_env_reads_json_and_bare_base64(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = KeyRing.generate()
    ring.add("k2", os.urandom(32))
    ring.promote("k2")
    ring.disable("k1")
    monkeypatch.setenv("RING_JSON", ring.export())
    again = KeyRing.from_env("RING_JSON")
    assert again.primary == "k2" and again.enabled_ids == ("k2",)
    assert again.open(ring.seal(b"data", b"aad"), b"aad") == b"data"
    key = os.urandom(32)
    monkeypatch.setenv("RING_B64", base64.b64encode(key).decode())
    bare = KeyRing.from_env("RING_B64")
    assert bare.primary == "k1" and _root(bare, "k1") == key
    monkeypatch.delenv("RING_B64")
    with pytest.raises(asyncdb.ConfigurationError, match="RING_B64"):
        KeyRing.from_env("RING_B64")


def test_bad_key_material_errors_never_show_the_key() -> None:
    secret = base64.b64encode(b"s" * 31).decode()
    with pytest.raises(asyncdb.ConfigurationError) as info:
        KeyRing.from_json(json.dumps({"keys": [{"id": "k1", "key": secret}]}))
    assert secret not in str(info.value) and "32 bytes" in str(info.value)


def test_repr_and_errors_never_show_root_keys() -> None:
    ring = KeyRing.generate()
    ring.add("k2", b"\x07" * 32)
    root = _root(ring, "k1")
    text = repr(ring) + repr(ring._keys) + str(vars(type(ring)))
    for form in (root.hex(), base64.b64encode(root).decode(), repr(root), "\\x07"):
        assert form not in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(ring)


def test_seal_binds_aad_and_names_the_key_on_failure() -> None:
    ring = KeyRing.generate("main")
    blob = ring.seal(b"checkpoint", b"thread-1")
    assert ring.key_id_of(blob) == "main"
    assert ring.open(blob, b"thread-1") == b"checkpoint"
    with pytest.raises(asyncdb.DecryptionError) as info:
        ring.open(blob, b"thread-2")
    assert info.value.key_id == "main" and "checkpoint" not in str(info.value)
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    with pytest.raises(asyncdb.DecryptionError):
        ring.open(bytes(flipped), b"thread-1")
    with pytest.raises(asyncdb.DecryptionError, match="'main'"):
        KeyRing.generate("main").open(blob, b"thread-1")  # same id, another ring


def test_rotation_states_follow_tink() -> None:
    ring = KeyRing.generate()
    old = ring.seal(b"old")
    ring.add("k2", os.urandom(32))
    assert ring.key_id_of(ring.seal(b"x")) == "k1"  # added: opens, does not seal
    ring.promote("k2")
    new = ring.seal(b"new")
    assert ring.key_id_of(new) == "k2" and ring.open(old) == b"old"
    with pytest.raises(asyncdb.ConfigurationError, match="primary"):
        ring.disable("k2")
    ring.disable("k1")
    assert ring.open(new) == b"new"
    with pytest.raises(asyncdb.DecryptionError, match="disabled") as info:
        ring.open(old)
    assert info.value.key_id == "k1"
    ring.enable("k1")
    assert ring.open(old) == b"old"
    with pytest.raises(asyncdb.ConfigurationError):
        ring.add("k2", os.urandom(32))
    with pytest.raises(asyncdb.ConfigurationError):
        ring.add("bad id!", os.urandom(32))


def test_truncated_or_garbled_envelopes_are_decryption_errors() -> None:
    ring = KeyRing.generate()
    blob = ring.seal(b"payload", b"a")
    for bad in (b"", b"\x01", b"\x02" + blob[1:], blob[:20], bytes([1, 200]) + blob[2:]):
        with pytest.raises(asyncdb.DecryptionError):
            ring.open(bad, b"a")
