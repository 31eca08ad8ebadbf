"""The README's security example, runnable: ``python examples/encrypted_users.py``.

Generates a key ring (print ``ring.export()`` and keep it in a secret store to reuse the data),
stores users with encrypted fields in an in-memory database, queries one by its encrypted SSN,
shows what the store holds, then rotates to a new key.
"""

import asyncio
import os

import asyncdb


async def main() -> None:
    ring = asyncdb.KeyRing.generate()
    async with asyncdb.connect("memory://", keyring=ring) as db:
        users = db.collection(
            "users", encrypted={"ssn": "equality", "email": "equality", "notes": "opaque"}
        )
        await users.insert_one(
            {"id": "u1", "ssn": "123-45-6789", "email": "ana@example.com", "notes": "vip"}
        )
        print("found:  ", await users.find_one({"ssn": "123-45-6789"}))
        print("stored: ", await db.collection("users").find_one({"id": "u1"}))
        ring.add("k2", os.urandom(32))
        ring.promote("k2")
        print("rotated:", await users.rotate_keys(), "document(s) to", ring.primary)
        ring.disable("k1")
        print("after:  ", await users.find_one({"email": "ana@example.com"}))


if __name__ == "__main__":
    asyncio.run(main())
