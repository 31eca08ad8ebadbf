"""On PostgreSQL, equality and ranges on key fields are also bounds on the key columns, so the
primary key serves them (a range on the second key field under an equal first one is an index
range, not a scan of the JSON documents), with exact answers: mixed-type key values keep BSON's
type brackets, and the bounds are inclusive supersets the JSON condition narrows."""

from __future__ import annotations

from typing import Any

import asyncdb


async def test_a_range_on_the_second_key_field_uses_the_primary_key_and_is_exact(
    postgres_url: str,
) -> None:
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("events", key=("tenant", "seq"), allow_scan=True)
        docs: list[dict[str, Any]] = [
            {"tenant": f"t{t}", "seq": s, "v": t * 1000 + s} for t in range(20) for s in range(100)
        ]
        docs += [{"tenant": "t1", "seq": f"s{s}", "v": -s} for s in range(5)]  # strings
        docs += [{"tenant": "t1", "seq": -(2**63), "v": 0.5}, {"tenant": "t1", "seq": 2**62}]
        await items.insert_many(docs)
        await db.native("ANALYZE events")

        def expect(test: Any) -> list[dict[str, Any]]:
            return sorted(
                (d for d in docs if d["tenant"] == "t1" and test(d["seq"])),
                key=lambda d: (isinstance(d["seq"], str), d["seq"]),
            )

        sort = [("seq", 1)]
        got = items.find({"tenant": "t1", "seq": {"$gte": 10, "$lt": 20}}, sort=sort)
        assert await got.to_list() == expect(lambda s: type(s) is int and 10 <= s < 20)
        got = items.find({"tenant": "t1", "seq": {"$gt": 98}}, sort=sort)
        assert await got.to_list() == expect(lambda s: type(s) is int and s > 98)
        got = items.find({"tenant": "t1", "seq": {"$lte": -5}}, sort=sort)
        assert await got.to_list() == expect(lambda s: type(s) is int and s <= -5)
        got = items.find({"tenant": "t1", "seq": {"$gt": "s2"}}, sort=sort)
        assert await got.to_list() == expect(lambda s: type(s) is str and s > "s2")
        got = items.find({"tenant": "t1", "seq": {"$gte": 99.5}}, sort=sort)  # a float
        assert await got.to_list() == expect(lambda s: type(s) is int and s >= 99.5)
        assert await items.count_documents({"tenant": "t3", "seq": {"$lt": 7}}) == 7

        plan = await items.explain(
            {"tenant": "t1", "seq": {"$gte": 10, "$lt": 20}}, server_plan=True
        )
        assert '"k0" =' in plan.native["sql"] and '"k1" >=' in plan.native["sql"]
        text = "\n".join(plan.server_plan or [])
        assert "events_pkey" in text and "Seq Scan" not in text, text
