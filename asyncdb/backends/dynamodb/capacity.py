"""The read and write capacity a DynamoDB client consumed, from DynamoDB's own figures.

Every data-plane request asks for ``ReturnConsumedCapacity="TOTAL"`` (added through the
client's ``provide-client-params`` event, so no call site changes) and every answer's
``ConsumedCapacity`` (one entry, or a list for batches and transactions) is summed as read or
write units. ``db.metrics()["capacity"]`` shows the totals; a copy paces itself with them.

>>> meter = CapacityMeter()
>>> batch = {"ConsumedCapacity": [{"CapacityUnits": 2.0}, {"CapacityUnits": 1.5}]}
>>> meter.count(batch, "BatchWriteItem", {})
>>> meter.count({"ConsumedCapacity": {"CapacityUnits": 0.5}}, "Scan", {})
>>> meter.stats()
{'read': 0.5, 'write': 3.5}
"""

from __future__ import annotations

from typing import Any

READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
PARTIQL = frozenset({"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"})
_READ_MARK = "asyncdb_capacity_read"


def _is_select(params: dict[str, Any]) -> bool:
    statements = [params.get("Statement")]
    statements += [s.get("Statement") for s in params.get("Statements", ())]
    statements += [s.get("Statement") for s in params.get("TransactStatements", ())]
    texts = [s for s in statements if isinstance(s, str)]
    return bool(texts) and all(s.lstrip()[:6].upper() == "SELECT" for s in texts)


class CapacityMeter:
    """Capacity units consumed by one client's requests: ``read`` and ``write``."""

    def __init__(self) -> None:
        self.read = 0.0
        self.write = 0.0

    def install(self, client: Any) -> None:
        events = client.meta.events
        events.register("provide-client-params.dynamodb", self._ask)
        events.register("after-call.dynamodb", self._counted)

    def _ask(self, params: dict[str, Any], model: Any, context: Any = None, **_: Any) -> None:
        shape = model.input_shape  # None for an operation without input
        if shape is not None and "ReturnConsumedCapacity" in shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        if context is not None and model.name in PARTIQL:
            context[_READ_MARK] = _is_select(params)

    def _counted(self, parsed: Any, model: Any, context: Any = None, **_: Any) -> None:
        self.count(parsed, model.name, context or {})

    def count(self, parsed: Any, operation: str, context: dict[str, Any]) -> None:
        consumed = parsed.get("ConsumedCapacity") if isinstance(parsed, dict) else None
        if not consumed:
            return
        entries = consumed if isinstance(consumed, list) else [consumed]
        units = sum(float(e.get("CapacityUnits") or 0.0) for e in entries)
        if operation in READS or context.get(_READ_MARK):
            self.read += units
        else:
            self.write += units

    def read_units(self) -> float:
        return self.read

    def stats(self) -> dict[str, float]:
        return {"read": self.read, "write": self.write}


__all__ = ["CapacityMeter"]
