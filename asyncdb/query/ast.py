"""The immutable query AST: filters, updates, sort and projection.

Every node is a frozen dataclass. Paths are tuples of field names (numeric parts stay strings,
``"a.0.b"`` is ``("a", "0", "b")``). The empty path ``()`` means "the value itself" and appears only
inside a scalar ``$elemMatch``. ``to_mongo()`` renders a node back to the query language, which is
what ``explain()`` shows and what the MongoDB backend sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Path = tuple[str, ...]
CmpOp = Literal["$gt", "$gte", "$lt", "$lte"]


def path_str(path: Path) -> str:
    """``("a", "b")`` -> ``"a.b"``."""
    return ".".join(path)


class Node:
    """Base class of filter nodes."""

    __slots__ = ()

    def to_mongo(self) -> dict[str, Any]:
        raise NotImplementedError


class FieldNode(Node):
    """A condition on the values found at one path."""

    __slots__ = ()
    path: Path

    def condition(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_mongo(self) -> dict[str, Any]:
        return {path_str(self.path): self.condition()}


@dataclass(frozen=True, slots=True)
class MatchAll(Node):
    """The empty filter ``{}``."""

    def to_mongo(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class And(Node):
    children: tuple[Node, ...]

    def to_mongo(self) -> dict[str, Any]:
        return {"$and": [c.to_mongo() for c in self.children]}


@dataclass(frozen=True, slots=True)
class Or(Node):
    children: tuple[Node, ...]

    def to_mongo(self) -> dict[str, Any]:
        return {"$or": [c.to_mongo() for c in self.children]}


@dataclass(frozen=True, slots=True)
class Nor(Node):
    children: tuple[Node, ...]

    def to_mongo(self) -> dict[str, Any]:
        return {"$nor": [c.to_mongo() for c in self.children]}


@dataclass(frozen=True, slots=True)
class Not(FieldNode):
    """Negation of a field condition: ``$not``, and ``$ne``/``$nin`` as ``Not(Eq)``/``Not(In)``.

    Like MongoDB, a negation matches documents where the field is missing.
    """

    path: Path
    child: FieldNode

    def condition(self) -> dict[str, Any]:
        inner = self.child.condition()
        if isinstance(self.child, Eq):
            return {"$ne": inner["$eq"]}
        if isinstance(self.child, In):
            return {"$nin": inner["$in"]}
        return {"$not": inner}


@dataclass(frozen=True, slots=True)
class Eq(FieldNode):
    path: Path
    value: Any

    def condition(self) -> dict[str, Any]:
        return {"$eq": self.value}


@dataclass(frozen=True, slots=True)
class Cmp(FieldNode):
    path: Path
    op: CmpOp
    value: Any

    def condition(self) -> dict[str, Any]:
        return {self.op: self.value}


@dataclass(frozen=True, slots=True)
class In(FieldNode):
    path: Path
    values: tuple[Any, ...]

    def condition(self) -> dict[str, Any]:
        return {"$in": list(self.values)}


@dataclass(frozen=True, slots=True)
class Exists(FieldNode):
    path: Path
    exists: bool

    def condition(self) -> dict[str, Any]:
        return {"$exists": self.exists}


@dataclass(frozen=True, slots=True)
class Type(FieldNode):
    """``$type`` with canonical type names (``"double"``, ``"string"``, ``"number"``, ...)."""

    path: Path
    types: tuple[str, ...]

    def condition(self) -> dict[str, Any]:
        return {"$type": list(self.types) if len(self.types) != 1 else self.types[0]}


@dataclass(frozen=True, slots=True)
class Regex(FieldNode):
    path: Path
    pattern: str
    flags: str = ""

    def condition(self) -> dict[str, Any]:
        cond: dict[str, Any] = {"$regex": self.pattern}
        if self.flags:
            cond["$options"] = self.flags
        return cond


@dataclass(frozen=True, slots=True)
class All(FieldNode):
    path: Path
    values: tuple[Any, ...]

    def condition(self) -> dict[str, Any]:
        return {"$all": list(self.values)}


@dataclass(frozen=True, slots=True)
class Size(FieldNode):
    path: Path
    size: int

    def condition(self) -> dict[str, Any]:
        return {"$size": self.size}


@dataclass(frozen=True, slots=True)
class ElemMatch(FieldNode):
    """``$elemMatch``. ``scalar`` form: ``cond`` applies to each element itself (empty paths);
    document form: ``cond`` is a filter applied to each element that is a document."""

    path: Path
    cond: Node
    scalar: bool

    def condition(self) -> dict[str, Any]:
        if self.scalar:
            return {"$elemMatch": _scalar_conditions(self.cond)}
        return {"$elemMatch": self.cond.to_mongo()}


@dataclass(frozen=True, slots=True)
class Mod(FieldNode):
    path: Path
    divisor: int
    remainder: int

    def condition(self) -> dict[str, Any]:
        return {"$mod": [self.divisor, self.remainder]}


def _scalar_conditions(node: Node) -> dict[str, Any]:
    if isinstance(node, And):
        merged: dict[str, Any] = {}
        for child in node.children:
            merged.update(_scalar_conditions(child))
        return merged
    assert isinstance(node, FieldNode)
    return node.condition()


# --- updates -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpdateOp:
    """One operator applied to one path. ``op`` is the Mongo operator name."""

    op: str
    path: Path
    value: Any = None
    # $push modifiers
    each: bool = False
    slice: int | None = None
    position: int | None = None
    # $pull with a condition (a filter on the elements) instead of a plain value
    cond: Node | None = None

    def to_mongo(self) -> tuple[str, str, Any]:
        if self.op == "$push":
            if not self.each:
                return self.op, path_str(self.path), self.value[0]
            spec: dict[str, Any] = {"$each": list(self.value)}
            if self.slice is not None:
                spec["$slice"] = self.slice
            if self.position is not None:
                spec["$position"] = self.position
            return self.op, path_str(self.path), spec
        if self.op == "$addToSet":
            value = {"$each": list(self.value)} if self.each else self.value[0]
            return self.op, path_str(self.path), value
        if self.op == "$pull" and self.cond is not None:
            return self.op, path_str(self.path), _pull_condition(self.cond)
        if self.op == "$unset":
            return self.op, path_str(self.path), ""
        return self.op, path_str(self.path), self.value


def _pull_condition(node: Node) -> Any:
    if isinstance(node, ElemMatch):
        return _scalar_conditions(node.cond) if node.scalar else node.cond.to_mongo()
    return node.to_mongo()


@dataclass(frozen=True, slots=True)
class Update:
    """A parsed update document: operators, or a whole replacement document."""

    ops: tuple[UpdateOp, ...] = ()
    replacement: dict[str, Any] | None = None
    # A pipeline update: its stages (asyncdb.query.pipeline), applied with aggregation
    # expressions instead of ``ops``.
    pipeline: tuple[Any, ...] | None = None
    # Positional updates: the filters of ``$[<identifier>]`` by identifier, and the query
    # filter, whose first matched array element is what ``$`` stands for.
    array_filters: tuple[tuple[str, Node], ...] = ()
    match: Node | None = None

    @property
    def positional(self) -> bool:
        """Whether a path uses ``$``, ``$[]`` or ``$[<identifier>]``."""
        return any(part[:1] == "$" for op in self.ops for part in op.path)

    def to_mongo(self) -> dict[str, Any]:
        if self.replacement is not None:
            return dict(self.replacement)
        out: dict[str, dict[str, Any]] = {}
        for op in self.ops:
            name, path, value = op.to_mongo()
            out.setdefault(name, {})[path] = value
        return out


# --- sort and projection --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortKey:
    path: Path
    direction: Literal[1, -1]


Sort = tuple[SortKey, ...]


@dataclass(frozen=True, slots=True)
class Projection:
    """Include or exclude projection. ``key_included`` says whether the key field(s) stay
    (they do unless excluded explicitly, like ``_id`` in MongoDB)."""

    include: bool
    paths: tuple[Path, ...]
    key_excluded: bool = False
    excluded_keys: tuple[str, ...] = field(default=())
