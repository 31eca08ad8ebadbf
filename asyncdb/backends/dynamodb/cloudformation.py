"""A CloudFormation template for the tables asyncdb creates (same layout as ``ensure``).

>>> from asyncdb.types import CollectionSpec, Index
>>> t = cloudformation_template([CollectionSpec("alerts", indexes=(Index.of("status"),))],
...                             prefix="app_")
>>> t["Resources"]["AppAlertsTable"]["Properties"]["TableName"]
'app_alerts'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asyncdb.types import CollectionSpec

from .codec import TTL_SHADOW
from .store import table_definition


def _logical_id(table: str) -> str:
    words = table.replace("-", "_").split("_")
    return "".join(w[:1].upper() + w[1:] for w in words if w) + "Table"


def cloudformation_template(specs: Iterable[CollectionSpec], prefix: str = "") -> dict[str, Any]:
    """An ``AWS::DynamoDB::Table`` resource per collection spec: string keys, GSIs (projection
    ALL), on-demand billing, TTL on the shadow epoch attribute when the spec has a ``ttl``."""
    resources: dict[str, Any] = {}
    for spec in specs:
        table = f"{prefix}{spec.name}"
        props = table_definition(spec, table)
        if spec.ttl is not None:
            props["TimeToLiveSpecification"] = {"AttributeName": TTL_SHADOW, "Enabled": True}
        resources[_logical_id(table)] = {"Type": "AWS::DynamoDB::Table", "Properties": props}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "asyncdb DynamoDB tables",
        "Resources": resources,
    }


__all__ = ["cloudformation_template"]
