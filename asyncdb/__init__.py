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

from asyncdb.collection import Collection, Cursor
from asyncdb.database import Database, Transaction, backend_for, connect
from asyncdb.errors import (
    AsyncDBError,
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
    ValidationError,
    WrongEventLoop,
)
from asyncdb.resilience import Health
from asyncdb.types import Capabilities, CollectionSpec, Index, Page, Plan, UpdateResult

__version__ = "0.1.0"

if TYPE_CHECKING:
    from asyncdb.settings import Settings


def __getattr__(name: str) -> Any:
    # pydantic-settings (extra "models") is imported on first use only: the core stays light.
    if name == "Settings":
        from asyncdb.settings import Settings

        return Settings
    raise AttributeError(f"module 'asyncdb' has no attribute {name!r}")


__all__ = [
    "AsyncDBError",
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
    "Settings",
    "Transaction",
    "TransactionError",
    "UpdateError",
    "UpdateResult",
    "ValidationError",
    "WrongEventLoop",
    "backend_for",
    "connect",
]
