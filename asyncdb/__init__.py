"""asyncdb: one async API and one Mongo-style query language over every document store.

>>> import asyncio, asyncdb
>>> async def main():
...     async with asyncdb.connect("memory://") as db:
...         alerts = db.collection("alerts", indexes=["priority"])
...         await alerts.insert_many([{"id": "a", "priority": 9}, {"id": "b", "priority": 10}])
...         return [d["id"] async for d in alerts.find({"priority": {"$gte": 10}})]
>>> asyncio.run(main())
['b']
"""

from typing import TYPE_CHECKING, Any

from asyncdb.bulk import (
    BulkWriteResult,
    DeleteMany,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    UpdateMany,
    UpdateOne,
)
from asyncdb.collection import Collection, Cursor
from asyncdb.database import Database, Transaction, backend_for, connect
from asyncdb.errors import (
    AsyncDBError,
    AuditError,
    BackendError,
    BackendUnavailable,
    BulkWriteError,
    ConfigurationError,
    Contention,
    DecryptionError,
    DuplicateKey,
    InvalidCursor,
    KeyChanged,
    NotSupported,
    OperationTimeout,
    QueryError,
    ScanRequired,
    TransactionError,
    UpdateError,
    ValidationError,
    WrongEventLoop,
)
from asyncdb.movement import (
    BackupError,
    CopyError,
    CopyReport,
    VerifyReport,
    backup,
    copy,
    restore,
    verify,
)
from asyncdb.observe import audit_context
from asyncdb.resilience import Health
from asyncdb.types import Capabilities, CollectionSpec, Index, Page, Plan, UpdateResult

if TYPE_CHECKING:
    from asyncdb.security import Anonymizer, KeyRing

__version__ = "0.1.0"

if TYPE_CHECKING:
    from asyncdb.settings import Settings


def __getattr__(name: str) -> Any:
    # Extras imported on first use only, so the core stays light: the security layer needs
    # "security" (cryptography), Settings needs "models" (pydantic-settings).
    if name in ("KeyRing", "Anonymizer"):
        from asyncdb import security

        return getattr(security, name)
    if name == "Settings":
        from asyncdb.settings import Settings

        return Settings
    raise AttributeError(f"module 'asyncdb' has no attribute {name!r}")


__all__ = [
    "Anonymizer",
    "AsyncDBError",
    "AuditError",
    "BackendError",
    "BackendUnavailable",
    "BackupError",
    "BulkWriteError",
    "BulkWriteResult",
    "Capabilities",
    "Collection",
    "CollectionSpec",
    "ConfigurationError",
    "Contention",
    "CopyError",
    "CopyReport",
    "Cursor",
    "Database",
    "DecryptionError",
    "DeleteMany",
    "DeleteOne",
    "DuplicateKey",
    "Health",
    "Index",
    "InsertOne",
    "InvalidCursor",
    "KeyChanged",
    "KeyRing",
    "NotSupported",
    "OperationTimeout",
    "Page",
    "Plan",
    "QueryError",
    "ReplaceOne",
    "ScanRequired",
    "Settings",
    "Transaction",
    "TransactionError",
    "UpdateError",
    "UpdateMany",
    "UpdateOne",
    "UpdateResult",
    "ValidationError",
    "VerifyReport",
    "WrongEventLoop",
    "audit_context",
    "backend_for",
    "backup",
    "connect",
    "copy",
    "restore",
    "verify",
]
