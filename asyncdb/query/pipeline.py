"""Parse aggregation pipelines (and pipeline updates) into an immutable AST.

Only the subset of DESIGN section 2 is accepted; anything else is a
:class:`~asyncdb.errors.QueryError` before any I/O, naming the stage path
(``"pipeline[2].$group.n"``). Evaluation is :mod:`asyncdb.query.aggregate`.

>>> p = parse_pipeline([{"$match": {"a": 1}}, {"$group": {"_id": "$b", "n": {"$sum": 1}}}])
>>> [type(s).__name__ for s in p]
['Match', 'Group']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asyncdb.errors import QueryError
from asyncdb.query.ast import Node, Path, Sort, Update, path_str
from asyncdb.query.parse import bind_update, parse_filter, parse_path, parse_sort, parse_update
from asyncdb.query.values import is_number, normalize_value

MAX_EXPRESSION_DEPTH = 100

# --- expressions ---------------------------------------------------------------------------------


class Expr:
    """Base class of aggregation expressions."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class FieldRef(Expr):
    """``"$a.b"`` (a path of the current document) or ``"$$ROOT"``/``"$$CURRENT"`` (``path``
    empty, or the path after them)."""

    path: Path


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    value: Any


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """An operator over argument expressions (``{"$add": ["$a", 1]}``)."""

    op: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class DocExpr(Expr):
    """An expression object: ``{"total": "$a", "k": {"$literal": 1}}``."""

    fields: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class ArrayExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class DateTrunc(Expr):
    date: Expr
    unit: Expr
    bin_size: Expr
    timezone: Expr
    start_of_week: Expr


@dataclass(frozen=True, slots=True)
class SetField(Expr):
    field: str
    input: Expr
    value: Expr


# operator name -> (fewest, most) arguments (None: any number)
_ARITY: dict[str, tuple[int, int | None]] = {
    "$add": (0, None),
    "$subtract": (2, 2),
    "$multiply": (0, None),
    "$divide": (2, 2),
    "$mod": (2, 2),
    "$concat": (0, None),
    "$toLower": (1, 1),
    "$toUpper": (1, 1),
    "$ifNull": (2, None),
    "$cond": (3, 3),
    "$eq": (2, 2),
    "$ne": (2, 2),
    "$gt": (2, 2),
    "$gte": (2, 2),
    "$lt": (2, 2),
    "$lte": (2, 2),
    "$and": (0, None),
    "$or": (0, None),
    "$not": (1, 1),
    "$size": (1, 1),
}
EXPRESSION_OPERATORS = frozenset(_ARITY) | {"$literal", "$dateTrunc", "$setField"}


def parse_expression(spec: Any, where: str, depth: int = 0) -> Expr:
    """Parse one aggregation expression.

    >>> parse_expression({"$add": ["$a", 1]}, "x")
    Call(op='$add', args=(FieldRef(path=('a',)), Literal(value=1)))
    """
    if depth > MAX_EXPRESSION_DEPTH:
        raise QueryError("expression nested deeper than 100 levels", path=where)
    if isinstance(spec, str):
        if spec.startswith("$$"):
            return _variable(spec, where)
        if spec.startswith("$"):
            if len(spec) == 1:
                raise QueryError("'$' is not a valid field path", path=where)
            return FieldRef(parse_path(spec[1:], where))
        return Literal(spec)
    if isinstance(spec, Mapping):
        keys = list(spec)
        if keys and isinstance(keys[0], str) and keys[0].startswith("$"):
            if len(keys) != 1:
                raise QueryError(
                    "an expression object with an operator takes exactly one field", path=where
                )
            return _operator(keys[0], spec[keys[0]], f"{where}.{keys[0]}", depth)
        fields: list[tuple[str, Expr]] = []
        for key, value in spec.items():
            _check_output_name(key, where)
            fields.append((key, parse_expression(value, f"{where}.{key}", depth + 1)))
        return DocExpr(tuple(fields))
    if isinstance(spec, list | tuple):
        return ArrayExpr(
            tuple(parse_expression(v, f"{where}.{i}", depth + 1) for i, v in enumerate(spec))
        )
    return Literal(normalize_value(spec, where))


def _variable(spec: str, where: str) -> FieldRef:
    name, _, rest = spec[2:].partition(".")
    if name not in ("ROOT", "CURRENT"):
        raise QueryError(
            f"the variable $${name} is not supported (only $$ROOT and $$CURRENT)", path=where
        )
    return FieldRef(parse_path(rest, where) if rest else ())


def _check_output_name(key: Any, where: str) -> None:
    if not isinstance(key, str) or not key:
        raise QueryError("field names must be non-empty strings", path=where)
    if key.startswith("$"):
        raise QueryError(f"field names must not start with '$': {key!r}", path=f"{where}.{key}")
    if "." in key:
        raise QueryError(f"field names must not contain '.': {key!r}", path=f"{where}.{key}")


def _operator(op: str, arg: Any, where: str, depth: int) -> Expr:
    if op == "$literal":
        return Literal(normalize_value(arg, where))
    if op == "$dateTrunc":
        return _date_trunc(arg, where, depth)
    if op == "$setField":
        return _set_field(arg, where, depth)
    arity = _ARITY.get(op)
    if arity is None:
        raise QueryError(f"unsupported expression operator {op!r}", path=where)
    if op == "$cond" and isinstance(arg, Mapping):
        if set(arg) != {"if", "then", "else"}:
            raise QueryError("$cond takes if, then and else", path=where)
        arg = [arg["if"], arg["then"], arg["else"]]
    items = list(arg) if isinstance(arg, list | tuple) else [arg]
    low, high = arity
    if len(items) < low or (high is not None and len(items) > high):
        want = str(low) if low == high else f"at least {low}"
        raise QueryError(f"{op} takes {want} arguments, got {len(items)}", path=where)
    return Call(
        op, tuple(parse_expression(v, f"{where}.{i}", depth + 1) for i, v in enumerate(items))
    )


def _named_args(
    arg: Any, where: str, required: set[str], optional: set[str], op: str
) -> dict[str, Any]:
    if not isinstance(arg, Mapping):
        raise QueryError(f"{op} takes a document of named arguments", path=where)
    unknown = set(arg) - required - optional
    if unknown:
        raise QueryError(f"{op} does not take {sorted(unknown)[0]!r}", path=where)
    missing = required - set(arg)
    if missing:
        raise QueryError(f"{op} needs {sorted(missing)[0]!r}", path=where)
    return dict(arg)


def _date_trunc(arg: Any, where: str, depth: int) -> DateTrunc:
    args = _named_args(
        arg, where, {"date", "unit"}, {"binSize", "timezone", "startOfWeek"}, "$dateTrunc"
    )

    def sub(name: str, default: Any) -> Expr:
        return parse_expression(args.get(name, default), f"{where}.{name}", depth + 1)

    return DateTrunc(
        sub("date", None),
        sub("unit", None),
        sub("binSize", 1),
        sub("timezone", "UTC"),
        sub("startOfWeek", "sunday"),
    )


def _set_field(arg: Any, where: str, depth: int) -> SetField:
    args = _named_args(arg, where, {"field", "input", "value"}, set(), "$setField")
    name = args["field"]
    if isinstance(name, Mapping) and set(name) == {"$literal"}:
        name = name["$literal"]
    if not isinstance(name, str):
        raise QueryError("$setField needs a constant string field name", path=f"{where}.field")
    return SetField(
        name,
        parse_expression(args["input"], f"{where}.input", depth + 1),
        parse_expression(args["value"], f"{where}.value", depth + 1),
    )


# --- stages --------------------------------------------------------------------------------------


class Stage:
    """Base class of pipeline stages."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Match(Stage):
    filter: Node
    spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Accumulator:
    op: str
    expr: Expr


ACCUMULATORS = frozenset(
    {"$sum", "$avg", "$min", "$max", "$first", "$last", "$push", "$addToSet", "$count"}
)


@dataclass(frozen=True, slots=True)
class Group(Stage):
    key: Expr
    accumulators: tuple[tuple[str, Accumulator], ...]


@dataclass(frozen=True, slots=True)
class SortStage(Stage):
    sort: Sort


@dataclass(frozen=True, slots=True)
class Skip(Stage):
    n: int


@dataclass(frozen=True, slots=True)
class Limit(Stage):
    n: int


@dataclass(frozen=True, slots=True)
class ProjectTree:
    """A ``$project``: ``include`` (inclusion mode, with computed fields) or exclusion;
    ``fields`` maps a name to True (keep), False (drop), an :class:`Expr` or a sub-tree."""

    include: bool
    fields: tuple[tuple[str, Any], ...]
    id_excluded: bool = False


@dataclass(frozen=True, slots=True)
class Project(Stage):
    tree: ProjectTree


@dataclass(frozen=True, slots=True)
class Unwind(Stage):
    path: Path
    include_index: str | None = None
    preserve: bool = False


@dataclass(frozen=True, slots=True)
class Count(Stage):
    field: str


@dataclass(frozen=True, slots=True)
class AddFields(Stage):
    fields: tuple[tuple[Path, Expr], ...]


@dataclass(frozen=True, slots=True)
class SortByCount(Stage):
    expr: Expr


@dataclass(frozen=True, slots=True)
class Facet(Stage):
    facets: tuple[tuple[str, tuple[Stage, ...]], ...]


@dataclass(frozen=True, slots=True)
class Unset(Stage):
    paths: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class ReplaceWith(Stage):
    expr: Expr


Pipeline = tuple[Stage, ...]

AGGREGATION_STAGES = frozenset(
    {
        "$match",
        "$group",
        "$sort",
        "$skip",
        "$limit",
        "$project",
        "$unwind",
        "$count",
        "$addFields",
        "$set",
        "$sortByCount",
        "$facet",
    }
)
UPDATE_STAGES = frozenset({"$set", "$addFields", "$unset", "$project", "$replaceWith"})


def parse_pipeline(spec: Any, *, where: str = "pipeline") -> Pipeline:
    """Parse an aggregation pipeline (a list of one-key stage documents)."""
    return _parse_stages(spec, where, AGGREGATION_STAGES, in_facet=False)


def parse_update_pipeline(spec: Any) -> Pipeline:
    """Parse a pipeline update: ``$set``/``$addFields``/``$unset``/``$project``/``$replaceWith``
    stages (MongoDB 4.2+ updates with aggregation expressions)."""
    stages = _parse_stages(spec, "update", UPDATE_STAGES, in_facet=False)
    if not stages:
        raise QueryError("a pipeline update needs at least one stage", path="update")
    return stages


def parse_update_spec(update: Any, node: Node, array_filters: Any = None) -> Update:
    """Any update an update method takes: a document of operators (positional paths bound to
    the query filter and ``array_filters``) or a pipeline of stages (a list).

    >>> u = parse_update_spec([{"$set": {"n": {"$add": ["$n", 1]}}}], parse_filter({}))
    >>> [type(s).__name__ for s in u.pipeline]
    ['AddFields']
    """
    if isinstance(update, list | tuple):
        parsed = Update(pipeline=parse_update_pipeline(update))
    else:
        parsed = parse_update(update)
    return bind_update(parsed, node, array_filters)


def _parse_stages(spec: Any, where: str, allowed: frozenset[str], *, in_facet: bool) -> Pipeline:
    if not isinstance(spec, list | tuple):
        raise QueryError("a pipeline is a list of stages", path=where)
    stages: list[Stage] = []
    for i, stage in enumerate(spec):
        here = f"{where}[{i}]"
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise QueryError("a stage is a document with exactly one field", path=here)
        ((name, arg),) = stage.items()
        here = f"{here}.{name}"
        if name not in allowed:
            raise QueryError(f"unsupported pipeline stage {name!r}", path=here)
        if in_facet and name == "$facet":
            raise QueryError("$facet cannot be nested in $facet", path=here)
        stages.append(_parse_stage(name, arg, here))
    return tuple(stages)


def _parse_stage(name: str, arg: Any, where: str) -> Stage:
    if name == "$match":
        if not isinstance(arg, Mapping):
            raise QueryError("$match takes a filter document", path=where)
        try:
            node = parse_filter(arg)
        except QueryError as exc:
            raise QueryError(str(exc), path=f"{where}.{exc.path}" if exc.path else where) from None
        return Match(node, dict(arg))
    if name == "$group":
        return _group(arg, where)
    if name == "$sort":
        if not isinstance(arg, Mapping) or not arg:
            raise QueryError("$sort takes a non-empty document of fields", path=where)
        try:
            return SortStage(parse_sort(list(arg.items())))
        except QueryError as exc:
            raise QueryError(str(exc), path=where) from None
    if name in ("$skip", "$limit"):
        if isinstance(arg, bool) or not isinstance(arg, int) or arg < (0 if name == "$skip" else 1):
            kind = "a non-negative" if name == "$skip" else "a positive"
            raise QueryError(f"{name} takes {kind} integer", path=where)
        return Skip(arg) if name == "$skip" else Limit(arg)
    if name == "$project":
        return Project(_project(arg, where))
    if name == "$unwind":
        return _unwind(arg, where)
    if name == "$count":
        if not isinstance(arg, str) or not arg:
            raise QueryError("$count takes a non-empty field name", path=where)
        _check_output_name(arg, where)
        return Count(arg)
    if name in ("$addFields", "$set"):
        return _add_fields(arg, where)
    if name == "$sortByCount":
        expr = parse_expression(arg, where)
        if not isinstance(expr, FieldRef | Call | DateTrunc | SetField):
            raise QueryError("$sortByCount takes a field path or an operator", path=where)
        return SortByCount(expr)
    if name == "$facet":
        if not isinstance(arg, Mapping) or not arg:
            raise QueryError("$facet takes a non-empty document of pipelines", path=where)
        facets = []
        for key, sub in arg.items():
            _check_output_name(key, where)
            facets.append(
                (key, _parse_stages(sub, f"{where}.{key}", AGGREGATION_STAGES, in_facet=True))
            )
        return Facet(tuple(facets))
    if name == "$unset":
        names = [arg] if isinstance(arg, str) else arg
        if not isinstance(names, list | tuple) or not names:
            raise QueryError("$unset takes a field name or a list of them", path=where)
        return Unset(tuple(parse_path(n, where) for n in names))
    if name == "$replaceWith":
        return ReplaceWith(parse_expression(arg, where))
    raise QueryError(f"unsupported pipeline stage {name!r}", path=where)  # pragma: no cover


def _group(arg: Any, where: str) -> Group:
    if not isinstance(arg, Mapping) or "_id" not in arg:
        raise QueryError("$group needs an _id", path=where)
    key = parse_expression(arg["_id"], f"{where}._id")
    accumulators: list[tuple[str, Accumulator]] = []
    for name, spec in arg.items():
        if name == "_id":
            continue
        here = f"{where}.{name}"
        _check_output_name(name, where)
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise QueryError("an accumulator is a document with one operator", path=here)
        ((op, expr),) = spec.items()
        if op not in ACCUMULATORS:
            raise QueryError(f"unsupported accumulator {op!r}", path=f"{here}.{op}")
        if op == "$count":
            if expr != {}:
                raise QueryError("$count takes {}", path=f"{here}.$count")
            accumulators.append((name, Accumulator("$sum", Literal(1))))
            continue
        accumulators.append((name, Accumulator(op, parse_expression(expr, f"{here}.{op}"))))
    return Group(key, tuple(accumulators))


def _unwind(arg: Any, where: str) -> Unwind:
    options: dict[str, Any] = {"path": arg} if isinstance(arg, str) else {}
    if isinstance(arg, Mapping):
        options = _named_args(
            arg, where, {"path"}, {"includeArrayIndex", "preserveNullAndEmptyArrays"}, "$unwind"
        )
    elif not isinstance(arg, str):
        raise QueryError("$unwind takes a field path or a document", path=where)
    path = options["path"]
    if not isinstance(path, str) or not path.startswith("$") or path.startswith("$$"):
        raise QueryError("$unwind's path must be a field path starting with '$'", path=where)
    index = options.get("includeArrayIndex")
    if index is not None and (not isinstance(index, str) or not index or index.startswith("$")):
        raise QueryError("includeArrayIndex must be a field name", path=where)
    preserve = options.get("preserveNullAndEmptyArrays", False)
    if not isinstance(preserve, bool):
        raise QueryError("preserveNullAndEmptyArrays must be a boolean", path=where)
    return Unwind(parse_path(path[1:], where), index, preserve)


def _add_fields(arg: Any, where: str) -> AddFields:
    if not isinstance(arg, Mapping):
        raise QueryError("$addFields takes a document of fields", path=where)
    fields: list[tuple[Path, Expr]] = []
    _flatten_fields(arg, (), where, fields)
    for i, (p, _) in enumerate(fields):
        for q, _ in fields[i + 1 :]:
            n = min(len(p), len(q))
            if p[:n] == q[:n]:
                raise QueryError("two fields of the stage collide", path=f"{where}.{path_str(q)}")
    return AddFields(tuple(fields))


def _flatten_fields(
    spec: Mapping[str, Any], prefix: Path, where: str, out: list[tuple[Path, Expr]]
) -> None:
    """``{"a": {"b": x}}`` sets ``a.b`` (merging into an existing ``a``), like ``{"a.b": x}``."""
    for key, value in spec.items():
        path = prefix + parse_path(key, where)
        here = f"{where}.{key}"
        if isinstance(value, Mapping) and value and not _is_operator(value):
            _flatten_fields(value, path, here, out)
        else:
            out.append((path, parse_expression(value, here)))


def _is_operator(value: Mapping[str, Any]) -> bool:
    first = next(iter(value))
    return isinstance(first, str) and first.startswith("$")


def _project(arg: Any, where: str) -> ProjectTree:
    if not isinstance(arg, Mapping) or not arg:
        raise QueryError("$project needs at least one output field", path=where)
    tree = _project_tree(arg, where, top=True)
    return tree


def _project_tree(spec: Mapping[str, Any], where: str, *, top: bool) -> ProjectTree:
    merged: dict[str, Any] = {}
    for key, value in spec.items():
        path = parse_path(key, where)
        here = f"{where}.{key}"
        if isinstance(value, bool) or is_number(value):
            leaf: Any = bool(value)
        elif isinstance(value, Mapping) and value and not _is_operator(value):
            leaf = _project_tree(value, here, top=False)
        elif isinstance(value, Mapping) and not value:
            raise QueryError("an empty document is not a projection", path=here)
        else:
            leaf = parse_expression(value, here)
        node = merged
        for part in path[:-1]:
            sub = node.setdefault(part, {})
            if not isinstance(sub, dict):
                raise QueryError("projection paths collide", path=here)
            node = sub
        if path[-1] in node:
            raise QueryError("projection paths collide", path=here)
        node[path[-1]] = leaf
    return _build_tree(merged, where, top=top)


def _build_tree(merged: dict[str, Any], where: str, *, top: bool) -> ProjectTree:
    fields: list[tuple[str, Any]] = []
    modes: set[bool] = set()
    id_excluded = False
    for key, leaf in merged.items():
        if isinstance(leaf, dict):
            leaf = _build_tree(leaf, f"{where}.{key}", top=False)
        if top and key == "_id" and leaf is False:
            id_excluded = True
            continue
        if isinstance(leaf, ProjectTree):
            modes.add(leaf.include)
        elif isinstance(leaf, Expr):
            modes.add(True)
        elif not (top and key == "_id"):
            modes.add(bool(leaf))
        fields.append((key, leaf))
    if len(modes) > 1:
        raise QueryError("a $project cannot mix inclusion and exclusion", path=where)
    include = modes.pop() if modes else not id_excluded
    if not include and id_excluded:
        fields.append(("_id", False))
        id_excluded = False
    return ProjectTree(include, tuple(fields), id_excluded)


def first_match(pipeline: Sequence[Stage]) -> tuple[Match | None, Pipeline]:
    """The leading ``$match`` stages merged into one (pushed down) and the rest."""
    nodes: list[Match] = []
    i = 0
    while i < len(pipeline) and isinstance(pipeline[i], Match):
        stage = pipeline[i]
        assert isinstance(stage, Match)
        nodes.append(stage)
        i += 1
    if not nodes:
        return None, tuple(pipeline)
    if len(nodes) == 1:
        return nodes[0], tuple(pipeline[i:])
    spec = {"$and": [m.spec for m in nodes]}
    return Match(parse_filter(spec), spec), tuple(pipeline[i:])


def stage_name(stage: Stage) -> str:
    """The operator name of a parsed stage (``"$group"``), for plans."""
    return _STAGE_NAMES[type(stage)]


_STAGE_NAMES: dict[type, str] = {
    Match: "$match",
    Group: "$group",
    SortStage: "$sort",
    Skip: "$skip",
    Limit: "$limit",
    Project: "$project",
    Unwind: "$unwind",
    Count: "$count",
    AddFields: "$addFields",
    SortByCount: "$sortByCount",
    Facet: "$facet",
    Unset: "$unset",
    ReplaceWith: "$replaceWith",
}


# --- rendering (what the MongoDB backend sends, and what explain() shows) -----------------------


def render_expression(expr: Expr) -> Any:
    """An expression back in MongoDB's syntax (literals as ``$literal``, so none is mistaken
    for a field path or an operator)."""
    if isinstance(expr, FieldRef):
        return "$" + path_str(expr.path) if expr.path else "$$ROOT"
    if isinstance(expr, Literal):
        return {"$literal": expr.value}
    if isinstance(expr, Call):
        return {expr.op: [render_expression(a) for a in expr.args]}
    if isinstance(expr, DocExpr):
        return {name: render_expression(e) for name, e in expr.fields}
    if isinstance(expr, ArrayExpr):
        return [render_expression(e) for e in expr.items]
    if isinstance(expr, DateTrunc):
        return {
            "$dateTrunc": {
                "date": render_expression(expr.date),
                "unit": render_expression(expr.unit),
                "binSize": render_expression(expr.bin_size),
                "timezone": render_expression(expr.timezone),
                "startOfWeek": render_expression(expr.start_of_week),
            }
        }
    if isinstance(expr, SetField):
        return {
            "$setField": {
                "field": expr.field,
                "input": render_expression(expr.input),
                "value": render_expression(expr.value),
            }
        }
    raise AssertionError(f"unknown expression {expr!r}")  # pragma: no cover


def _render_tree(tree: ProjectTree) -> dict[str, Any]:
    out: dict[str, Any] = {"_id": 0} if tree.id_excluded else {}
    for name, leaf in tree.fields:
        if isinstance(leaf, ProjectTree):
            out[name] = _render_tree(leaf)
        elif isinstance(leaf, Expr):
            out[name] = render_expression(leaf)
        else:
            out[name] = 1 if leaf else 0
    return out


def render_stage(stage: Stage) -> dict[str, Any]:
    """One parsed stage in MongoDB's syntax."""
    if isinstance(stage, Match):
        return {"$match": stage.filter.to_mongo()}
    if isinstance(stage, Group):
        spec: dict[str, Any] = {"_id": render_expression(stage.key)}
        for name, acc in stage.accumulators:
            spec[name] = {acc.op: render_expression(acc.expr)}
        return {"$group": spec}
    if isinstance(stage, SortStage):
        return {"$sort": {path_str(k.path): k.direction for k in stage.sort}}
    if isinstance(stage, Skip):
        return {"$skip": stage.n}
    if isinstance(stage, Limit):
        return {"$limit": stage.n}
    if isinstance(stage, Project):
        return {"$project": _render_tree(stage.tree)}
    if isinstance(stage, Unwind):
        unwind: dict[str, Any] = {
            "path": "$" + path_str(stage.path),
            "preserveNullAndEmptyArrays": stage.preserve,
        }
        if stage.include_index is not None:
            unwind["includeArrayIndex"] = stage.include_index
        return {"$unwind": unwind}
    if isinstance(stage, Count):
        return {"$count": stage.field}
    if isinstance(stage, AddFields):
        return {"$addFields": {path_str(p): render_expression(e) for p, e in stage.fields}}
    if isinstance(stage, SortByCount):
        return {"$sortByCount": render_expression(stage.expr)}
    if isinstance(stage, Facet):
        return {"$facet": {name: render_pipeline(sub) for name, sub in stage.facets}}
    if isinstance(stage, Unset):
        return {"$unset": [path_str(p) for p in stage.paths]}
    if isinstance(stage, ReplaceWith):
        return {"$replaceWith": render_expression(stage.expr)}
    raise AssertionError(f"unknown stage {stage!r}")  # pragma: no cover


def render_pipeline(pipeline: Sequence[Stage]) -> list[dict[str, Any]]:
    """A parsed pipeline in MongoDB's syntax.

    >>> render_pipeline(parse_pipeline([{"$group": {"_id": "$a", "n": {"$count": {}}}}]))
    [{'$group': {'_id': '$a', 'n': {'$sum': {'$literal': 1}}}}]
    """
    return [render_stage(s) for s in pipeline]


@dataclass(frozen=True, slots=True)
class Pushdown:
    """What a store's ``find`` runs of a pipeline (its leading ``$match``, then a ``$sort``,
    ``$skip`` and ``$limit`` right after it) and the stages left to run in process."""

    filter: Node
    sort: Sort
    skip: int
    limit: int | None
    rest: Pipeline


def split_find(pipeline: Pipeline) -> Pushdown:
    """Split a pipeline into the ``find`` a store runs and the rest.

    >>> p = parse_pipeline([{"$match": {"a": 1}}, {"$sort": {"t": -1}}, {"$limit": 5},
    ...                     {"$project": {"t": 1}}])
    >>> d = split_find(p); (d.limit, len(d.rest))
    (5, 1)
    """
    match, rest = first_match(pipeline)
    node: Node = match.filter if match is not None else parse_filter(None)
    sort: Sort = ()
    skip, limit = 0, None
    i = 0
    if rest and isinstance(rest[0], SortStage):
        sort = rest[0].sort
        i = 1
    while i < len(rest):
        stage = rest[i]
        if isinstance(stage, Skip):
            if limit is not None:
                if stage.n >= limit:
                    break  # nothing would be left: the in-process stages say so
                limit -= stage.n
            skip += stage.n
        elif isinstance(stage, Limit):
            limit = stage.n if limit is None else min(limit, stage.n)
        else:
            break
        i += 1
    return Pushdown(node, sort, skip, limit, rest[i:])


__all__ = [
    "ACCUMULATORS",
    "AGGREGATION_STAGES",
    "EXPRESSION_OPERATORS",
    "Accumulator",
    "AddFields",
    "ArrayExpr",
    "Call",
    "Count",
    "DateTrunc",
    "DocExpr",
    "Expr",
    "Facet",
    "FieldRef",
    "Group",
    "Limit",
    "Literal",
    "Match",
    "Pipeline",
    "Project",
    "ProjectTree",
    "Pushdown",
    "ReplaceWith",
    "SetField",
    "Skip",
    "SortByCount",
    "SortStage",
    "Stage",
    "Unset",
    "Unwind",
    "first_match",
    "parse_expression",
    "parse_pipeline",
    "parse_update_pipeline",
    "parse_update_spec",
    "render_expression",
    "render_pipeline",
    "render_stage",
    "split_find",
    "stage_name",
]
