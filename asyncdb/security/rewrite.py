"""Queries over encrypted fields: what is refused, and what the store is asked (pure).

``check_filter`` refuses, before any I/O, every condition an encrypted field cannot answer:
ranges, ``$regex``, ``$type``, ``$size``, ``$all``, ``$elemMatch``, ``$mod``, any condition on
an "opaque" field, and conditions inside or around an encrypted value. ``pushdown`` turns the
rest into a filter over the stored documents that returns a superset of the matches: an equality
(``$eq``, ``$in``, null) becomes ``$in`` over the blind-index tokens of every enabled key, and a
negation of one (``$ne``, ``$nin``, ``$not``, ``$nor``) asks nothing of the store (a token that
differs proves inequality, an equal token proves nothing). The original filter is then re-checked
on every decrypted candidate, so neither token collisions nor negations change an answer.

>>> from asyncdb.query.parse import parse_filter
>>> from asyncdb.security.spec import EncryptionSpec
>>> spec = EncryptionSpec.parse({"ssn": "equality", "notes": "opaque"}, "users", ("id",))
>>> check_filter(parse_filter({"ssn": "123-45-6789", "age": {"$gt": 30}}), spec)
True
>>> check_filter(parse_filter({"notes": {"$exists": True}}), spec)
Traceback (most recent call last):
...
asyncdb.errors.QueryError: field 'notes' is encrypted ("opaque"): no condition ... (at 'notes')
"""

from __future__ import annotations

from collections.abc import Callable

from asyncdb.errors import QueryError
from asyncdb.query.ast import (
    And,
    ElemMatch,
    Eq,
    Exists,
    FieldNode,
    In,
    MatchAll,
    Node,
    Nor,
    Not,
    Or,
    Path,
    Sort,
    Update,
    path_str,
)
from asyncdb.query.parse import FieldAnd
from asyncdb.security.spec import KEY_ID_FIELD, EncryptionSpec, FieldRule, is_reserved

TokenFn = Callable[[FieldRule, tuple[object, ...]], list[str]]


def _field_nodes(node: Node) -> list[FieldNode]:
    if isinstance(node, And | Or | Nor):
        return [f for c in node.children for f in _field_nodes(c)]
    if isinstance(node, FieldNode):
        return [node]
    return []


def _refuse(path: Path, why: str) -> QueryError:
    return QueryError(why, path=path_str(path))


def _check_field(node: FieldNode, spec: EncryptionSpec) -> bool:
    """Raise for a condition an encrypted field cannot answer; True when it is one on an
    equality field (answered through the blind index and re-checked)."""
    place = spec.classify(node.path)
    name = path_str(node.path)
    if place.kind == "plain":
        return False
    if place.kind == "reserved":
        raise _refuse(node.path, "field names starting with _enc are reserved")
    if place.kind == "opaque":
        raise _refuse(
            node.path,
            f'field {name!r} is encrypted ("opaque"): no condition on it can be evaluated',
        )
    assert place.rule is not None
    if place.kind == "inside":
        raise _refuse(
            node.path,
            f"{name!r} lies inside the encrypted field {place.rule.path!r}: only the whole "
            "value can be compared",
        )
    if place.kind == "encloses":
        raise _refuse(
            node.path,
            f"{name!r} holds the encrypted field {place.rule.path!r}: its stored form is "
            "ciphertext, so the condition cannot be evaluated",
        )
    inner = node.child if isinstance(node, Not) else node
    if not isinstance(inner, Eq | In | Exists):
        op = _operator(inner)
        raise _refuse(
            node.path,
            f"{op} cannot be evaluated on the encrypted field {name!r}: only equality "
            "($eq, $in, $nin, $ne, $exists) is, through its blind index",
        )
    return True


def _operator(node: FieldNode) -> str:
    if isinstance(node, FieldAnd):
        return "$not"
    cond = node.condition()
    return next(iter(cond)) if cond else type(node).__name__


def check_filter(node: Node, spec: EncryptionSpec) -> bool:
    """Refuse what encrypted fields cannot answer (QueryError naming the field); True when the
    filter holds a condition on an equality field (the store's answer is then a superset)."""
    encrypted = False
    for field in _field_nodes(node):
        if isinstance(field, ElemMatch) and spec.classify(field.path).kind == "plain":
            continue  # paths inside a plain field's elements are plain
        encrypted = _check_field(field, spec) or encrypted
    return encrypted


def check_sort(sort: Sort, spec: EncryptionSpec) -> None:
    for key in sort:
        if spec.classify(key.path).kind != "plain":
            raise _refuse(
                key.path,
                f"cannot sort by {path_str(key.path)!r}: it is (or holds) an encrypted field",
            )


def check_update(update: Update, spec: EncryptionSpec) -> None:
    """Updates may change encrypted fields (they are re-sealed), never the hidden fields."""
    for op in update.ops:
        if op.path and is_reserved(op.path[0]):
            raise QueryError("field names starting with _enc are reserved", path=path_str(op.path))
        if op.op == "$rename" and isinstance(op.value, str) and is_reserved(op.value):
            raise QueryError("field names starting with _enc are reserved", path=op.value)
    if update.replacement is not None:
        for name in update.replacement:
            if is_reserved(name):
                raise QueryError("field names starting with _enc are reserved", path=name)


def pushdown(node: Node, spec: EncryptionSpec, tokens: TokenFn) -> Node:
    """A filter over stored documents that matches at least every document ``node`` matches
    (``check_filter`` must have accepted ``node``)."""
    pushed = _push(node, spec, tokens)
    return MatchAll() if pushed is None else pushed


def _touches(node: Node, spec: EncryptionSpec) -> bool:
    return any(spec.classify(f.path).kind != "plain" for f in _field_nodes(node))


def _push(node: Node, spec: EncryptionSpec, tokens: TokenFn) -> Node | None:
    """None: no restriction (every document is a candidate)."""
    if isinstance(node, And):
        kids = [p for c in node.children if (p := _push(c, spec, tokens)) is not None]
        if not kids:
            return None
        return kids[0] if len(kids) == 1 else And(tuple(kids))
    if isinstance(node, Or):
        pushed = [_push(c, spec, tokens) for c in node.children]
        if any(p is None for p in pushed):
            return None
        return Or(tuple(p for p in pushed if p is not None))
    if isinstance(node, Nor | Not):
        return None if _touches(node, spec) else node
    if not isinstance(node, FieldNode):
        return node
    place = spec.classify(node.path)
    if place.kind != "equality":
        return node
    rule = place.rule
    assert rule is not None and rule.token_field is not None
    token_path = (rule.token_field,)
    store: Node
    if isinstance(node, Exists):
        store = Exists(token_path, node.exists)
    else:
        values = (node.value,) if isinstance(node, Eq) else tuple(node.values)  # type: ignore[attr-defined]
        found: list[object] = list(tokens(rule, values))
        if any(v is None for v in values):
            found.append(None)  # {"f": null} also matches a missing field (no token)
        store = Eq(token_path, found[0]) if len(found) == 1 else In(token_path, tuple(found))
    if spec.allow_plaintext:  # documents not yet sealed have no tokens: all are candidates
        store = Or((store, Exists((KEY_ID_FIELD,), False)))
    return store
