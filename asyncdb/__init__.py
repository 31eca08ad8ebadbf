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

from asyncdb.collection import Collection, Cursor
from asyncdb.database import Database, Transaction, backend_for, connect
from asyncdb.errors import (
    AsyncDBError,
    AuditError,
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    DuplicateKey,
    InvalidCursor,
    NotSupported,
    OperationTimeout,
    QueryError,
    ScanRequired,
    TransactionError,
    UpdateError,
)
from asyncdb.observe import audit_context
from asyncdb.resilience import Health
from asyncdb.types import Capabilities, CollectionSpec, Index, Page, Plan, UpdateResult

__version__ = "0.1.0"

__all__ = [
    "AsyncDBError",
    "AuditError",
    "BackendError",
    "BackendUnavailable",
    "Capabilities",
    "Collection",
    "CollectionSpec",
    "ConfigurationError",
    "Cursor",
    "Database",
    "DuplicateKey",
    "Health",
    "Index",
    "InvalidCursor",
    "NotSupported",
    "OperationTimeout",
    "Page",
    "Plan",
    "QueryError",
    "ScanRequired",
    "Transaction",
    "TransactionError",
    "UpdateError",
    "UpdateResult",
    "audit_context",
    "backend_for",
    "connect",
]
