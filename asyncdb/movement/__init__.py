"""Data movement: copy, verify, backup and restore between any two backends.

>>> # report = await asyncdb.copy("mongodb://h/app", "dynamodb://h:8000?region=us-east-1")
>>> # (await asyncdb.verify(src, dst)).equal
>>> # await asyncdb.backup(src, "app.jsonl.gz"); await asyncdb.restore("app.jsonl.gz", dst)
"""

from asyncdb.movement.backup import BackupError, backup, restore
from asyncdb.movement.copier import CollectionCopy, CopyError, CopyReport, copy
from asyncdb.movement.verifier import CollectionVerify, VerifyReport, verify

__all__ = [
    "BackupError",
    "CollectionCopy",
    "CollectionVerify",
    "CopyError",
    "CopyReport",
    "VerifyReport",
    "backup",
    "copy",
    "restore",
    "verify",
]
