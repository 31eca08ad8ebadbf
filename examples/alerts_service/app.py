"""The alerts-and-incidents API: companies, alerts with severity/priority/tags, incidents that
group alerts in one transaction, cursor-paged listings with Mongo-style filters, a read cache,
login sessions in a TTL collection and a per-user rate limit on the same Redis.

Run it on SQLite with no server, or on any backend by URL (``ASYNCDB_URL``); with
``ASYNCDB_CACHE_URL=redis://...`` reads go through the cache and alert creation is rate limited
(``ALERTS_RATE_LIMIT=20/60``: 20 per user per 60 s)::

    ASYNCDB_URL=sqlite:///alerts.db uvicorn --app-dir examples alerts_service.app:app
    ASYNCDB_URL=postgresql://postgres@127.0.0.1:5432/alerts \\
        ASYNCDB_CACHE_URL=redis://127.0.0.1:6379/0 uvicorn --app-dir examples alerts_service.app:app
"""

import hashlib
import json
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request

import asyncdb
from asyncdb.integrations.fastapi import AsyncDB, PageResponse
from asyncdb.integrations.ratelimit import RateLimiter

from .models import (
    Alert,
    AlertIn,
    AlertStatus,
    AlertUpdate,
    Company,
    CompanyIn,
    Incident,
    IncidentIn,
    Session,
    SessionIn,
    SessionOut,
    now,
)

T = TypeVar("T")
SESSION_LIFETIME = timedelta(hours=8)
LIMITER = "alerts_rate_limiter"
STORE = "alerts_store"


class Store:
    """The service's collections on one Database."""

    def __init__(self, db: asyncdb.Database) -> None:
        self.db = db
        self.companies = db.collection("companies", model=Company)
        self.alerts = alerts_of(db)
        self.incidents = db.collection(
            "incidents", model=Incident, indexes=[("company_id", "created_at")]
        )
        self.sessions = db.collection("sessions", model=Session, ttl="expires_at")


def alerts_of(db: asyncdb.Database | asyncdb.Transaction) -> asyncdb.Collection[Alert]:
    typed: asyncdb.Collection[Alert] = db.collection(
        "alerts", model=Alert, indexes=[("company_id", "created_at"), "incident_id"]
    )
    return typed


def _rate_limit(value: str | None) -> tuple[int, float]:
    limit, _, window = (value or "20/60").partition("/")
    return int(limit), float(window or 60)


def create_app(
    url: str | None = None, *, cache: str | None = None, rate_limit: str | None = None
) -> FastAPI:
    """The app on ``url`` (default: ASYNCDB_URL, else ``sqlite:///alerts.db``), with the read
    cache and the rate limiter on ``cache`` (default: ASYNCDB_CACHE_URL) when given."""
    settings = asyncdb.Settings()
    if url is None and settings.url is None:
        url = "sqlite:///alerts.db"
    cache_url = cache or (settings.cache_url.get_secret_value() if settings.cache_url else None)
    options: dict[str, Any] = {"cache": cache_url} if cache_url else {}
    adb = AsyncDB(url, settings=settings, name="alerts_db", **options)
    limit, window = _rate_limit(rate_limit or os.environ.get("ALERTS_RATE_LIMIT"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with adb.lifespan(app) as state:
            limiter = RateLimiter(cache_url, limit=limit, window=window) if cache_url else None
            try:  # the collections are opened once, not on every request
                yield {**state, LIMITER: limiter, STORE: Store(state[adb.name])}
            finally:
                if limiter is not None:
                    await limiter.close()

    app = FastAPI(title="alerts and incidents", lifespan=lifespan)
    adb.install_error_handlers(app)

    async def store(request: Request) -> Store:
        """The collections opened by the lifespan (a plain dependency: cheaper per request than
        a generator; outside a lifespan the service answers 500 ConfigurationError)."""
        opened: Store | None = request.scope.get("state", {}).get(STORE)
        if opened is None:
            await adb.database(request)  # raises ConfigurationError: no lifespan
        assert opened is not None
        return opened

    StoreDep = Annotated[Store, Depends(store)]

    async def session_user(
        s: StoreDep, authorization: Annotated[str | None, Header()] = None
    ) -> str | None:
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "expected 'Authorization: Bearer <token>'")
        session = await s.sessions.find_one({"id": _token_key(token)})
        if session is None:
            raise HTTPException(401, "unknown or expired session")
        return session.user_id

    UserDep = Annotated[str | None, Depends(session_user)]

    async def limit_alert_creation(request: Request, user: UserDep) -> None:
        limiter: RateLimiter | None = request.scope.get("state", {}).get(LIMITER)
        if limiter is None:
            return
        who = user or (request.client.host if request.client else "unknown")
        decision = await limiter.hit(who, "create_alert")
        if not decision.allowed:
            retry = str(max(1, round(decision.retry_after + 0.5)))
            raise HTTPException(429, "rate limit exceeded", headers={"Retry-After": retry})

    # --- sessions ---------------------------------------------------------------------------

    @app.post("/sessions", status_code=201)
    async def login(body: SessionIn, s: StoreDep) -> SessionOut:
        token = secrets.token_urlsafe(24)
        expires = now() + SESSION_LIFETIME
        await s.sessions.insert_one(
            Session(id=_token_key(token), user_id=body.user_id, expires_at=expires)
        )
        return SessionOut(token=token, user_id=body.user_id, expires_at=expires)

    @app.get("/me")
    async def me(user: UserDep) -> dict[str, str]:
        if user is None:
            raise HTTPException(401, "log in first (POST /sessions)")
        return {"user_id": user}

    # --- companies --------------------------------------------------------------------------

    @app.post("/companies", status_code=201)
    async def create_company(body: CompanyIn, s: StoreDep) -> Company:
        company = Company(name=body.name)
        await s.companies.insert_one(company)
        return company

    @app.get("/companies/{company_id}")
    async def get_company(company_id: str, s: StoreDep) -> Company:
        return _found(await s.companies.find_one({"id": company_id}), "company")

    # --- alerts -----------------------------------------------------------------------------

    @app.post(
        "/companies/{company_id}/alerts",
        status_code=201,
        dependencies=[Depends(limit_alert_creation)],
    )
    async def create_alert(company_id: str, body: AlertIn, s: StoreDep) -> Alert:
        _found(await s.companies.find_one({"id": company_id}), "company")
        alert = Alert(company_id=company_id, **body.model_dump())
        await s.alerts.insert_one(alert)
        return alert

    @app.get("/alerts/{alert_id}")
    async def get_alert(alert_id: str, s: StoreDep) -> Alert:
        return _found(await s.alerts.find_one({"id": alert_id}), "alert")

    @app.patch("/alerts/{alert_id}")
    async def update_alert(alert_id: str, body: AlertUpdate, s: StoreDep) -> Alert:
        after = await s.alerts.find_one_and_update(
            {"id": alert_id}, {"$set": {"status": body.status}}
        )
        return _found(after, "alert")

    @app.get("/companies/{company_id}/alerts")
    async def list_alerts(
        company_id: str,
        s: StoreDep,
        severity: Annotated[list[str] | None, Query()] = None,
        status: AlertStatus | None = None,
        tag: str | None = None,
        min_priority: int | None = None,
        filter: Annotated[str | None, Query(description="a Mongo-style filter, JSON")] = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> PageResponse[Alert]:
        clauses: list[dict[str, Any]] = [{"company_id": company_id}]
        if severity:
            clauses.append({"severity": {"$in": severity}})
        if status is not None:
            clauses.append({"status": status})
        if tag is not None:
            clauses.append({"tags": tag})
        if min_priority is not None:
            clauses.append({"priority": {"$gte": min_priority}})
        if filter is not None:
            clauses.append(_json_filter(filter))
        page = await s.alerts.find_page(
            {"$and": clauses}, sort=[("created_at", -1), ("id", -1)], limit=limit, cursor=cursor
        )
        return PageResponse[Alert].of(page)

    # --- incidents --------------------------------------------------------------------------

    @app.post("/companies/{company_id}/incidents", status_code=201)
    async def create_incident(company_id: str, body: IncidentIn, s: StoreDep) -> Incident:
        ids = sorted(set(body.alert_ids))
        async with s.db.transaction() as tx:  # the incident and its alerts, or nothing
            alerts = alerts_of(tx)
            found = await alerts.find({"id": {"$in": ids}, "company_id": company_id}).to_list()
            if len(found) != len(ids):
                raise HTTPException(404, "an alert of this company was not found")
            if any(a.incident_id is not None for a in found):
                raise HTTPException(409, "an alert already belongs to an incident")
            top = max(found, key=lambda a: a.priority)
            incident = Incident(
                company_id=company_id,
                title=body.title,
                alert_ids=ids,
                priority=top.priority,
                severity=top.severity,
            )
            incidents = tx.collection("incidents", model=Incident)
            await incidents.insert_one(incident)
            await alerts.update_many(
                {"id": {"$in": ids}},
                {"$set": {"incident_id": incident.id, "status": AlertStatus.CORRELATED}},
            )
        return incident

    @app.get("/incidents/{incident_id}")
    async def get_incident(incident_id: str, s: StoreDep) -> Incident:
        return _found(await s.incidents.find_one({"id": incident_id}), "incident")

    @app.get("/health")
    async def health(db: Annotated[asyncdb.Database, Depends(adb.database)]) -> dict[str, Any]:
        h = await db.health()
        return {"ok": h.ok, "backend": h.backend, "latency_ms": round(h.latency_ms, 3)}

    return app


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _found(value: T | None, what: str) -> T:
    if value is None:
        raise HTTPException(404, f"{what} not found")
    return value


def _json_filter(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError:
        raise HTTPException(400, "filter must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise HTTPException(400, "filter must be a JSON object")
    return parsed


app = create_app()
