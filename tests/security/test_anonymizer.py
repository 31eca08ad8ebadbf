"""The Anonymizer: JSON test vectors pin every operation's output; pseudonyms are recomputed from
the documented construction; encrypt round-trips and is bound to its path."""

from __future__ import annotations

import hmac
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import asyncdb
from asyncdb import _tagged_json
from asyncdb.security import Anonymizer

VECTORS = json.loads((Path(__file__).parent / "anonymizer_vectors.json").read_text())
KEY = bytes.fromhex(VECTORS["key_hex"])


def _rules() -> dict[str, Any]:
    return {p: tuple(r) if isinstance(r, list) else r for p, r in VECTORS["rules"].items()}


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["input"]["id"])
def test_vectors_pin_the_output(case: dict[str, Any]) -> None:
    anon = Anonymizer(_rules(), key=KEY)
    doc = _tagged_json.untag(case["input"])
    got = json.loads(_tagged_json.dumps(anon.apply(doc)))
    assert got == case["output"]
    assert _tagged_json.untag(case["input"]) == doc  # the input is not changed


def test_pseudonym_is_hmac_sha256_under_the_hkdf_key() -> None:
    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"asyncdb/pseudonym/v1").derive(KEY)
    data = b"Ana Lima"
    canonical = b"s" + struct.pack(">I", len(data)) + data
    expected = "ps_" + hmac.digest(key, canonical, "sha256")[:10].hex()
    out = Anonymizer({"name": "pseudonym", "alias": "pseudonym"}, key=KEY).apply(
        {"name": "Ana Lima", "alias": "Ana Lima"}
    )
    assert out == {"name": expected, "alias": expected}  # stable and linkable across fields
    other = Anonymizer({"name": "pseudonym"}, key=bytes(32)).apply({"name": "Ana Lima"})
    assert other["name"] != expected  # another key, another pseudonym


def test_encrypt_is_reversible_with_the_key_and_bound_to_the_path() -> None:
    anon = Anonymizer({"ssn": "encrypt", "card.number": "encrypt"}, key=KEY)
    doc = {"id": 1, "ssn": "123-45-6789", "card": {"number": 4111111111111111}}
    sealed = anon.apply(doc)
    assert sealed["ssn"].startswith("ae1:") and "6789" not in json.dumps(sealed)
    assert sealed["ssn"] != anon.apply(doc)["ssn"]  # random nonce
    assert anon.reveal(sealed) == doc
    swapped = {**sealed, "ssn": sealed["card"]["number"]}
    with pytest.raises(asyncdb.DecryptionError):
        anon.reveal(swapped)
    with pytest.raises(asyncdb.DecryptionError):
        Anonymizer({"ssn": "encrypt"}, key=bytes(32)).reveal(sealed)


def test_bad_rules_are_configuration_errors() -> None:
    with pytest.raises(asyncdb.ConfigurationError, match="key="):
        Anonymizer({"name": "pseudonym"})
    with pytest.raises(asyncdb.ConfigurationError, match="operation"):
        Anonymizer({"name": "hash"})
    with pytest.raises(asyncdb.QueryError, match="generalize"):
        Anonymizer({"flag": "generalize"}).apply({"flag": "yes"})
