"""LangGraph persistence on any asyncdb backend: a checkpointer and a long-term memory store.

>>> # from asyncdb.integrations.langgraph import AsyncDBSaver, AsyncDBStore
>>> # saver = AsyncDBSaver(db)
>>> # store = AsyncDBStore(db, ttl={"default_ttl": 60, "refresh_on_read": True})
>>> # graph = builder.compile(checkpointer=saver, store=store)
"""

from asyncdb.integrations.langgraph.saver import AsyncDBSaver
from asyncdb.integrations.langgraph.store import AsyncDBStore

__all__ = ["AsyncDBSaver", "AsyncDBStore"]
