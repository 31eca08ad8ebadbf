"""The README's five-line example, runnable: ``python examples/quickstart.py``.

It writes ``app.db`` in the current directory; each run adds one more alert.
"""

import asyncio

import asyncdb


async def main() -> None:
    async with asyncdb.connect("sqlite:///app.db") as db:
        alerts = db.collection("alerts", indexes=["status", "priority"])
        await alerts.insert_one({"title": "disk full", "priority": 80, "status": "open"})
        urgent = await alerts.find(
            {"priority": {"$gt": 50}}, sort=[("priority", -1)], limit=10
        ).to_list()
        print(urgent)


if __name__ == "__main__":
    asyncio.run(main())
