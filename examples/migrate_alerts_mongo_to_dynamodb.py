"""Migrate an alerts application's MongoDB database (written by the application itself with
pymongo: ObjectId ``_id``, naive datetimes) to DynamoDB, with its GSIs, then verify it and print
the CloudFormation template of the new tables.

    python examples/migrate_alerts_mongo_to_dynamodb.py MONGO_URL DYNAMODB_URL
    # e.g. mongodb://127.0.0.1:27017/alerts_app?directConnection=true
    #      dynamodb://127.0.0.1:8000?region=us-east-1&table_prefix=alerts_

The same as ``asyncdb copy MONGO_URL DYNAMODB_URL --batch-size 25 --on-error continue
--dead-letter dead.jsonl`` then ``asyncdb cloudformation DYNAMODB_URL``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timedelta

import asyncdb
from asyncdb.movement.backup import catalog_template


async def seed(mongo_url: str) -> None:
    """What the application wrote: companies, users, alerts, incidents."""
    from bson import ObjectId
    from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

    client: AsyncMongoClient[dict] = AsyncMongoClient(mongo_url)  # type: ignore[type-arg]
    db = client.get_default_database()
    companies = [ObjectId() for _ in range(3)]
    await db.companies.insert_many([{"_id": c, "name": f"co{i}"} for i, c in enumerate(companies)])
    await db.users.insert_many(
        [{"_id": ObjectId(), "company_id": companies[i % 3], "email": f"u{i}@x"} for i in range(9)]
    )
    start = datetime(2025, 1, 1)  # naive: MongoDB stores UTC
    await db.alerts.insert_many(
        [
            {
                "_id": ObjectId(),
                "company_id": companies[i % 3],
                "timestamp": start + timedelta(minutes=i),
                "status": ("open", "acknowledged", "resolved")[i % 3],
                "priority": i % 5,
            }
            for i in range(200)
        ]
    )
    await db.incidents.insert_many([{"_id": ObjectId(), "title": f"i{i}"} for i in range(5)])
    await db.alerts.create_index([("company_id", ASCENDING), ("timestamp", DESCENDING)])
    await db.alerts.create_index([("status", ASCENDING)])
    await client.close()


async def main(mongo_url: str, dynamo_url: str) -> None:
    await seed(mongo_url)
    report = await asyncdb.copy(
        mongo_url,
        dynamo_url,
        batch_size=25,
        on_error="continue",
        dead_letter="dead.jsonl",
    )
    print(json.dumps(report.to_dict()["collections"], indent=2))
    assert report.verify is not None and report.verify.equal, report.verify
    print(json.dumps(await catalog_template(dynamo_url), indent=2)[:2000])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
