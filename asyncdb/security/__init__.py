"""Field and record encryption, blind indexes, key rotation and anonymization.

Needs the ``security`` extra (``cryptography``). The key ring holds root keys; collections opened
with ``encrypted=`` seal their fields with AES-256-GCM under keys derived per collection and
field, and answer equality queries through blind indexes.

>>> import asyncio, asyncdb
>>> async def main():
...     ring = asyncdb.KeyRing.generate()
...     async with asyncdb.connect("memory://", keyring=ring) as db:
...         users = db.collection("users", encrypted={"ssn": "equality"})
...         await users.insert_one({"id": "u1", "ssn": "123-45-6789"})
...         return await users.find_one({"ssn": "123-45-6789"})
>>> asyncio.run(main())
{'id': 'u1', 'ssn': '123-45-6789'}
"""

from asyncdb.security.anonymizer import Anonymizer
from asyncdb.security.collection import EncryptedCollection
from asyncdb.security.keyring import KeyRing
from asyncdb.security.spec import EncryptionSpec

__all__ = ["Anonymizer", "EncryptedCollection", "EncryptionSpec", "KeyRing"]
