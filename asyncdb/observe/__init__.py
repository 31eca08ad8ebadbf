"""Observability: the audit trail, OpenTelemetry spans and metrics, ``db.metrics()``, slow
operation warnings and the query-shape redaction they all share.

>>> # db = await asyncdb.connect(url, audit="audit_log", tracing=True, slow_ms=200)
>>> # with asyncdb.audit_context(actor="u42", tenant="acme"):
>>> #     await db.collection("alerts").update_one({"id": "a1"}, {"$set": {"status": "ok"}})
>>> # db.metrics()["collections"]["alerts"]["update_one"]["count"]
"""

from asyncdb.observe.audit import ChainReport, audit_context, verify_chain
from asyncdb.observe.redaction import native_query_text, query_shape

__all__ = ["ChainReport", "audit_context", "native_query_text", "query_shape", "verify_chain"]
