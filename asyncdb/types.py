"""Public value types: results, pages, plans, capabilities and collection specs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic

from asyncdb.errors import ConfigurationError, QueryError
from asyncdb.query.ast import Node, Path, Projection, Sort

if TYPE_CHECKING:  # PEP 696 defaults: a bare Collection/Page/Cursor means documents as dicts
    from typing_extensions import TypeVar

    DocT = TypeVar("DocT", default=dict[str, Any])
else:
    from typing import TypeVar

    DocT = TypeVar("DocT")


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """The outcome of an update: how many documents matched, how many changed, the upserted key.

    ``matched`` and ``modified`` are short aliases of ``matched_count`` and ``modified_count``.
    """

    matched_count: int
    modified_count: int
    upserted_id: Any = None

    @property
    def matched(self) -> int:
        return self.matched_count

    @property
    def modified(self) -> int:
        return self.modified_count


@dataclass(frozen=True, slots=True)
class Page(Generic[DocT]):
    """One page of ``find_page``: the documents (model instances on a typed collection) and the
    opaque cursor of the next page (or None)."""

    items: list[DocT]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend does natively. An unclaimed feature raises ``NotSupported`` when used."""

    transactions: bool = False
    conditional_writes: bool = False
    ttl: bool = False
    secondary_indexes: bool = False
    unique_indexes: bool = False
    server_side_sort: bool = False
    regex_pushdown: bool = False
    keyset_pagination: bool = False
    bulk_insert: bool = False

    def __contains__(self, name: object) -> bool:
        return bool(getattr(self, str(name), False))

    def __iter__(self) -> Iterator[str]:
        return (f.name for f in fields(self) if getattr(self, f.name))


@dataclass(frozen=True, slots=True)
class Plan:
    """How a backend runs a query (``explain()``).

    ``exact`` is the part of the filter the store evaluates exactly, ``approximate`` the part it
    over-approximates (a superset, re-checked), ``residual`` what is evaluated in process by the
    reference evaluator. ``native`` is the backend's own query (SQL and parameters, a DynamoDB
    request, ...). ``access_path`` says how rows are found: ``"key"``, ``"index:<name>"`` or
    ``"scan"``. ``server_plan`` is the store's own plan (PostgreSQL's ``EXPLAIN``, SQLite's
    ``EXPLAIN QUERY PLAN``), line by line, when ``explain(..., server_plan=True)`` asked for it.
    """

    backend: str
    collection: str
    access_path: str
    native: dict[str, Any]
    exact: dict[str, Any] | None
    approximate: dict[str, Any] | None
    residual: dict[str, Any] | None
    sort_pushed: bool = False
    limit_pushed: bool = False
    client_sort: bool = False
    residual_node: Node | None = field(default=None, repr=False, compare=False)
    payload: Any = field(default=None, repr=False, compare=False)
    server_plan: tuple[str, ...] | None = None

    @property
    def scan(self) -> bool:
        return self.access_path == "scan"

    def __str__(self) -> str:
        lines = [f"{self.backend} plan for {self.collection!r}: access {self.access_path}"]
        for name, value in self.native.items():
            lines.append(f"  native {name}: {value}")
        lines.append(f"  exact in store:       {self.exact}")
        lines.append(f"  approximate in store: {self.approximate}")
        lines.append(f"  re-checked in process: {self.residual}")
        lines.append(
            f"  sort pushed: {self.sort_pushed}  limit pushed: {self.limit_pushed}"
            f"  client sort: {self.client_sort}"
        )
        if self.server_plan is not None:
            lines.append("  server plan:")
            lines.extend(f"    {line}" for line in self.server_plan)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index: fields with directions, optionally unique."""

    fields: tuple[tuple[str, int], ...]
    unique: bool = False
    name: str = ""

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(tuple(f.split(".")) for f, _ in self.fields)

    @classmethod
    def of(cls, spec: Any) -> Index:
        """``"status"``, ``("company", "priority")``, ``[("ts", -1)]``, ``{"fields": [...],
        "unique": True}`` or an :class:`Index`."""
        if isinstance(spec, Index):
            index = spec
        elif isinstance(spec, str):
            index = cls(((spec, 1),))
        elif isinstance(spec, dict):
            base = cls.of(spec.get("fields") or spec.get("keys") or ())
            index = cls(base.fields, bool(spec.get("unique", False)), str(spec.get("name", "")))
        elif isinstance(spec, list | tuple):
            items: list[tuple[str, int]] = []
            for item in spec:
                if isinstance(item, str):
                    items.append((item, 1))
                elif isinstance(item, list | tuple) and len(item) == 2 and item[1] in (1, -1):
                    items.append((str(item[0]), int(item[1])))
                else:
                    raise ConfigurationError(f"bad index field {item!r}")
            index = cls(tuple(items))
        else:
            raise ConfigurationError(f"bad index spec {spec!r}")
        if not index.fields:
            raise ConfigurationError("an index needs at least one field")
        for name, _ in index.fields:
            _check_identifier_path(name)
        if not index.name:
            suffix = "_".join(f.replace(".", "_") for f, _ in index.fields)
            index = cls(index.fields, index.unique, f"{'ux' if index.unique else 'ix'}_{suffix}")
        return index


_IDENT_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def check_identifier(name: str, what: str = "name") -> str:
    """Collection names, key fields and index names: ``[A-Za-z0-9_-]``, 1 to 128 characters."""
    if not isinstance(name, str) or not name or len(name) > 128 or not set(name) <= _IDENT_OK:
        raise ConfigurationError(
            f"invalid {what} {name!r}: use letters, digits, '_' or '-' (1-128 characters)"
        )
    return name


def _check_identifier_path(name: str) -> None:
    for part in name.split("."):
        try:
            check_identifier(part, "field name")
        except ConfigurationError as exc:
            raise QueryError(str(exc), path=name) from None


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """A collection as declared by ``db.collection(name, key=..., indexes=..., ttl=...)``."""

    name: str
    key: tuple[str, ...] = ("id",)
    indexes: tuple[Index, ...] = ()
    ttl: str | None = None
    allow_scan: bool = False
    max_scan: int = 10_000
    # What the security layer encrypts (``EncryptionSpec.describe()``), as the catalog records
    # it; None when plain or unknown. Not part of equality: the store's table is the same.
    encrypted: Any = field(default=None, compare=False)

    @property
    def single_key(self) -> bool:
        return len(self.key) == 1


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed read: filter, sort, skip, limit, projection, an optional keyset position and
    the secondary index a ``hint=`` forces (stores that can force one set it; see
    asyncdb/options.py)."""

    filter: Node
    sort: Sort = ()
    skip: int = 0
    limit: int | None = None
    projection: Projection | None = None
    after: bytes | None = None
    hint: Index | None = None
