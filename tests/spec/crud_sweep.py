"""MongoDB's CRUD specification tests (the drivers' unified-format JSON) run through asyncdb's
public API: how many cases fit the pinned API, and how many of those pass, per backend.

    git clone https://github.com/mongodb/specifications
    python tests/spec/crud_sweep.py specifications/source/crud/tests/unified sqlite:///:memory:

A case fits when every operation is one asyncdb has (on a collection: insertOne, insertMany,
find, findOne, countDocuments, estimatedDocumentCount, distinct, aggregate, updateOne,
updateMany, replaceOne, deleteOne, deleteMany, findOneAnd{Update,Replace,Delete}, bulkWrite)
with only arguments asyncdb takes, and its documents hold only portable values. Command
monitoring (``expectEvents``) is not asserted: asyncdb is not a driver. The key field is
``_id``, as in the tests. A script, not part of the CI suite (it needs the spec checkout).
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bson import Decimal128, Int64, json_util

import asyncdb

ARGS = {
    "filter",
    "update",
    "sort",
    "projection",
    "upsert",
    "returnDocument",
    "hint",
    "comment",
    "arrayFilters",
    "ordered",
    "requests",
    "pipeline",
    "fieldName",
    "skip",
    "limit",
    "batchSize",
    "document",
    "documents",
    "replacement",
}
OPS = {
    "insertOne",
    "insertMany",
    "find",
    "findOne",
    "countDocuments",
    "estimatedDocumentCount",
    "distinct",
    "aggregate",
    "updateOne",
    "updateMany",
    "replaceOne",
    "deleteOne",
    "deleteMany",
    "findOneAndUpdate",
    "findOneAndReplace",
    "findOneAndDelete",
    "bulkWrite",
}


# asyncdb's documented deviation: field names holding '.' (or starting with '$') are refused
DEVIATION = "field names must not"


class Unfit(Exception):
    """The case uses something outside asyncdb's pinned API."""


def portable(value: Any) -> Any:
    if isinstance(value, Int64):
        return int(value)
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if value is None or isinstance(value, str | bool | int | float | Decimal | datetime):
        return value
    raise Unfit(f"value {type(value).__name__}")


PIPELINE_UPDATE = {"$set", "$addFields", "$unset", "$project", "$replaceWith"}
SORTED = {"find", "findOne", "findOneAndUpdate", "findOneAndReplace", "findOneAndDelete"}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2])


def requirements(reqs: list[dict[str, Any]]) -> None:
    """asyncdb answers as a current single MongoDB server (7.0/8.0) would."""
    if not reqs:
        return
    for r in reqs:
        if "serverless" in r and r["serverless"] == "required":
            continue
        if "topologies" in r and "single" not in r["topologies"]:
            continue
        if "maxServerVersion" in r and _version(r["maxServerVersion"]) < (7, 0):
            continue
        return
    raise Unfit("server-version/topology")


STAGES = {
    "$match", "$group", "$sort", "$skip", "$limit", "$project", "$unwind", "$count",
    "$addFields", "$set", "$sortByCount", "$facet",
}  # fmt: skip


def _check_pipelines(args: dict[str, Any]) -> None:
    """Only the pinned stages (DESIGN section 2) in an aggregate or a pipeline update."""
    update = args.get("update")
    if isinstance(update, list) and any(set(st) - PIPELINE_UPDATE for st in update):
        raise Unfit("pipeline-stage")
    if any(set(st) - STAGES for st in args.get("pipeline", ())):
        raise Unfit("pipeline-stage")


def fits(test: dict[str, Any], spec: dict[str, Any]) -> None:
    requirements(test.get("runOnRequirements", []))
    entity = next((e["collection"] for e in spec["createEntities"] if "collection" in e), None)
    if entity is None:
        raise Unfit("no-collection")  # a client or database level test
    if entity.get("collectionOptions"):
        raise Unfit("collectionOptions")  # e.g. an unacknowledged write concern
    for op in test["operations"]:
        if op["object"] != "collection0" or op["name"] not in OPS:
            raise Unfit(f"operation {op['object']}.{op['name']}")
        args = op.get("arguments", {})
        _check_pipelines(args)
        if op["name"] != "find" and ("skip" in args or "limit" in args):
            raise Unfit("arguments skip/limit")
        if "sort" in args and op["name"] not in SORTED:
            raise Unfit("sort-on-update")
        extra = set(args) - ARGS
        if extra:
            raise Unfit(f"arguments {sorted(extra)}")
        for request in args.get("requests", ()):
            (name, body), *_ = request.items()
            if set(body) - ARGS or "sort" in body:
                raise Unfit(f"bulk {name} {sorted(body)}")
            _check_pipelines(body)
        portable(args)


def matches(expected: Any, actual: Any, root: bool = True) -> bool:
    """The unified format's result matching (extra fields allowed in documents below the root
    of a result; $$unsetOrMatches, $$exists, $$type)."""
    if isinstance(expected, dict) and len(expected) == 1:
        (op, arg), *_ = expected.items()
        if op == "$$unsetOrMatches":
            return actual is None or matches(arg, actual, root)
        if op == "$$exists":
            return (actual is not None) is bool(arg)
        if op == "$$type":
            names = {"int": int, "long": int, "double": float, "string": str, "object": dict}
            kinds = arg if isinstance(arg, list) else [arg]
            return any(isinstance(actual, names.get(k, object)) for k in kinds)
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        for k, v in expected.items():
            if isinstance(v, dict) and "$$exists" in v:
                if (k in actual) is not bool(v["$$exists"]):
                    return False
                continue
            if not matches(v, actual.get(k), False):
                return False
        return True
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a, False) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    return bool(expected == actual)


def _write(name: str, body: dict[str, Any]) -> Any:
    f, hint = body.get("filter"), body.get("hint")
    if name == "insertOne":
        return asyncdb.InsertOne(body["document"])
    if name == "replaceOne":
        return asyncdb.ReplaceOne(f, body["replacement"], bool(body.get("upsert")), hint=hint)
    if name in ("updateOne", "updateMany"):
        cls = asyncdb.UpdateOne if name == "updateOne" else asyncdb.UpdateMany
        return cls(
            f,
            body["update"],
            bool(body.get("upsert")),
            array_filters=body.get("arrayFilters"),
            hint=hint,
        )
    cls2 = asyncdb.DeleteOne if name == "deleteOne" else asyncdb.DeleteMany
    return cls2(f, hint=hint)


def _update_result(res: Any) -> dict[str, Any]:
    return {
        "matchedCount": res.matched_count,
        "modifiedCount": res.modified_count,
        "upsertedCount": int(res.upserted_id is not None),
        "upsertedId": res.upserted_id,
    }


async def run_op(coll: asyncdb.Collection, name: str, args: dict[str, Any]) -> Any:
    a = portable(args)
    opts = {k: a[k] for k in ("hint", "comment") if k in a}
    f = a.get("filter")
    sort = list(a["sort"].items()) if a.get("sort") else None
    after = "after" if a.get("returnDocument", "Before").lower() == "after" else "before"
    if name == "insertOne":
        key = await coll.insert_one(a["document"], **opts)
        return {"insertedId": key}
    if name == "insertMany":
        keys = await coll.insert_many(a["documents"], a.get("ordered", True), **opts)
        return {"insertedIds": dict(enumerate(keys))}
    if name in ("find", "findOne"):
        limit = 1 if name == "findOne" else a.get("limit")
        cur = coll.find(f, a.get("projection"), sort, a.get("skip", 0), limit, **opts)
        docs = await cur.to_list()
        return (docs[0] if docs else None) if name == "findOne" else docs
    if name == "countDocuments":
        return await coll.count_documents(f, allow_scan=True, **opts)
    if name == "estimatedDocumentCount":
        return await coll.estimated_document_count(**opts)
    if name == "distinct":
        return await coll.distinct(a["fieldName"], f, allow_scan=True, **opts)
    if name == "aggregate":
        return await coll.aggregate(a["pipeline"], allow_scan=True, **opts).to_list()
    if name in ("updateOne", "updateMany"):
        method = coll.update_one if name == "updateOne" else coll.update_many
        res = await method(
            f,
            a["update"],
            bool(a.get("upsert")),
            allow_scan=True,
            array_filters=a.get("arrayFilters"),
            **opts,
        )
        return _update_result(res)
    if name == "replaceOne":
        res = await coll.replace_one(
            f, a["replacement"], bool(a.get("upsert")), allow_scan=True, **opts
        )
        return _update_result(res)
    if name in ("deleteOne", "deleteMany"):
        method2 = coll.delete_one if name == "deleteOne" else coll.delete_many
        return {"deletedCount": await method2(f, allow_scan=True, **opts)}
    if name == "findOneAndUpdate":
        return await coll.find_one_and_update(
            f,
            a["update"],
            after,  # type: ignore[arg-type]
            upsert=bool(a.get("upsert")),
            sort=sort,
            projection=a.get("projection"),
            allow_scan=True,
            array_filters=a.get("arrayFilters"),
            **opts,
        )
    if name == "findOneAndReplace":
        return await coll.find_one_and_replace(
            f,
            a["replacement"],
            bool(a.get("upsert")),
            sort,
            a.get("projection"),
            after,  # type: ignore[arg-type]
            allow_scan=True,
            **opts,
        )
    if name == "findOneAndDelete":
        return await coll.find_one_and_delete(f, sort, a.get("projection"), allow_scan=True, **opts)
    assert name == "bulkWrite"
    requests = [_write(*next(iter(r.items()))) for r in a["requests"]]
    res = await coll.bulk_write(requests, a.get("ordered", True), **opts)
    return {
        "insertedCount": res.inserted_count,
        "matchedCount": res.matched_count,
        "modifiedCount": res.modified_count,
        "deletedCount": res.deleted_count,
        "upsertedCount": res.upserted_count,
        "upsertedIds": res.upserted_ids,
    }


def _unordered(op: dict[str, Any]) -> bool:
    """A find or aggregate without a sort: MongoDB's natural order is no order either, and
    asyncdb's stores return their own (DynamoDB and Cosmos DB by hash)."""
    args = op.get("arguments", {})
    if op["name"] == "find":
        return not args.get("sort")
    return op["name"] == "aggregate" and not any("$sort" in st for st in args.get("pipeline", ()))


def _json_keys(value: Any) -> Any:
    """A result as the JSON of the tests holds it (map keys as strings)."""
    if isinstance(value, dict):
        return {str(k): _json_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_keys(v) for v in value]
    return value


async def run_case(url: str, spec: dict[str, Any], test: dict[str, Any], n: int) -> str | None:
    """None when the case passes, else why not."""
    entity = next(e["collection"] for e in spec["createEntities"] if "collection" in e)
    name = f"{entity['collectionName'].replace('.', '_')[:40]}_{n}"
    async with asyncdb.connect(url) as db:
        coll = db.collection(name, key=("_id",), allow_scan=True)
        for data in spec.get("initialData", ()):
            if data["collectionName"] == entity["collectionName"] and data["documents"]:
                await coll.insert_many(portable(data["documents"]))
        for op in test["operations"]:
            try:
                got = await run_op(coll, op["name"], op.get("arguments", {}))
            except asyncdb.AsyncDBError as exc:
                if "expectError" not in op:
                    inner = [str(e) for _, e in getattr(exc, "errors", ())]
                    return f"{op['name']} raised {type(exc).__name__}: {exc} {inner}"
                continue
            if "expectError" in op:
                return f"{op['name']} did not fail ({got!r})"
            if "expectResult" in op:
                expected = portable(op["expectResult"])
                if _unordered(op) and isinstance(got, list) and isinstance(expected, list):
                    expected, got = sorted(expected, key=repr), sorted(got, key=repr)
                if not matches(expected, _json_keys(got)):
                    return f"{op['name']}: expected {expected!r}, got {got!r}"
        for outcome in test.get("outcome", ()):
            if outcome["collectionName"] != entity["collectionName"]:
                continue
            stored = await coll.find({}, sort=[("_id", 1)]).to_list()
            wanted = portable(outcome["documents"])
            if stored != wanted:
                return f"outcome: expected {wanted!r}, got {stored!r}"
        await coll.drop()
    return None


VERBOSE = False


def load(folder: str) -> list[tuple[str, dict[str, Any]]]:
    """The spec files of ``folder``, by name, as extended JSON."""
    return [(p.name, json_util.loads(p.read_text())) for p in sorted(Path(folder).glob("*.json"))]


async def main(folder: str, url: str) -> None:
    tally: Counter[str] = Counter()
    unfit: Counter[str] = Counter()
    failures: list[str] = []
    n = 0
    for name, spec in await asyncio.to_thread(load, folder):
        for test in spec["tests"]:
            n += 1
            tally["cases"] += 1
            try:
                requirements(spec.get("runOnRequirements", []))
                fits(test, spec)
            except Unfit as why:
                unfit[str(why) if VERBOSE else str(why).split(" ")[0]] += 1
                continue
            tally["fit"] += 1
            why = await run_case(url, spec, test, n)
            if why is None:
                tally["pass"] += 1
            elif DEVIATION in why and " raised " in why:
                tally["deviation"] += 1
            else:
                failures.append(f"{name}: {test['description']}: {why}")
    print(
        f"{url}: {tally['cases']} cases, {tally['fit']} fit, {tally['pass']} pass, "
        f"{tally['deviation']} the documented deviation (field names with '.' or '$')"
    )
    print("  not fitting:", dict(unfit.most_common()))
    for line in failures:
        print("  FAIL", line[:400])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
