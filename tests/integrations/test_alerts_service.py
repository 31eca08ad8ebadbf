"""The example alerts-and-incidents service (examples/alerts_service), driven as its users
would: through FastAPI's TestClient (with and without ``with``) and as a real ``uvicorn``
server with several worker processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import asyncdb

from .service import example, newest_key, uvicorn_server

create_app = example("alerts_service.app").create_app


@pytest.fixture(params=["sqlite", "postgres"])
def service_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alerts.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def client(service_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(service_url)) as c:
        yield c


def new_company(c: TestClient | httpx.Client, name: str = "acme") -> str:
    r = c.post("/companies", json={"name": name})
    assert r.status_code == 201, r.text
    company_id: str = r.json()["id"]
    return company_id


def post_alert(c: TestClient | httpx.Client, company: str, **fields: Any) -> dict[str, Any]:
    body = {"title": "cpu high", "severity": "high", "priority": 50, "tags": ["cpu"], **fields}
    r = c.post(f"/companies/{company}/alerts", json=body)
    assert r.status_code == 201, r.text
    alert: dict[str, Any] = r.json()
    return alert


def test_alerts_filters_paging_incidents_and_errors(client: TestClient) -> None:
    acme, other = new_company(client), new_company(client, "globex")
    severities = ["low", "medium", "high", "critical"]
    made = [
        post_alert(
            client,
            acme,
            title=f"a{i}",
            severity=severities[i % 4],
            priority=i * 7 % 100,
            tags=["cpu"] if i % 2 else ["disk", "io"],
        )
        for i in range(12)
    ]
    post_alert(client, other, title="theirs")
    got = client.get(f"/alerts/{made[0]['id']}")
    assert got.status_code == 200 and got.json() == made[0]
    # Cursor paging: newest first, every alert of the company once, none of the other's.
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/companies/{acme}/alerts", params=params).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    newest_first = sorted(made, key=newest_key, reverse=True)
    assert seen == [a["id"] for a in newest_first]

    # Filters: query parameters and a Mongo-style JSON filter.
    def listed(**params: Any) -> set[str]:
        r = client.get(f"/companies/{acme}/alerts", params={"limit": 100, **params})
        assert r.status_code == 200, r.text
        return {a["title"] for a in r.json()["items"]}

    by_title = {a["title"]: a for a in made}
    assert listed(severity=["high", "critical"]) == {
        t for t, a in by_title.items() if a["severity"] in ("high", "critical")
    }
    assert listed(tag="io") == {t for t, a in by_title.items() if "io" in a["tags"]}
    assert listed(min_priority=40) == {t for t, a in by_title.items() if a["priority"] >= 40}
    flt = {"$or": [{"priority": {"$lt": 10}}, {"tags": {"$all": ["disk", "io"]}}]}
    assert listed(filter=json.dumps(flt)) == {
        t for t, a in by_title.items() if a["priority"] < 10 or "disk" in a["tags"]
    }
    # asyncdb errors become 400s with the mapped body; FastAPI's own validation stays 422.
    bad = client.get(f"/companies/{acme}/alerts", params={"filter": '{"$where": "1"}'})
    assert bad.status_code == 400 and bad.json()["error"] == "QueryError"
    forged = client.get(f"/companies/{acme}/alerts", params={"cursor": "x" + (cursor or "abc")})
    assert forged.status_code == 400 and forged.json()["error"] == "InvalidCursor"
    r = client.post(
        f"/companies/{acme}/alerts", json={"title": "t", "severity": "high", "priority": 101}
    )
    assert r.status_code == 422
    # An incident groups alerts in one transaction; a second claim on them is refused.
    ids = [made[1]["id"], made[2]["id"], made[5]["id"]]
    r = client.post(f"/companies/{acme}/incidents", json={"title": "storm", "alert_ids": ids})
    assert r.status_code == 201, r.text
    incident = r.json()
    assert incident["priority"] == max(made[i]["priority"] for i in (1, 2, 5))
    assert client.get(f"/incidents/{incident['id']}").json() == incident
    for alert_id in ids:
        alert = client.get(f"/alerts/{alert_id}").json()
        assert (alert["status"], alert["incident_id"]) == ("correlated", incident["id"])
    again = client.post(f"/companies/{acme}/incidents", json={"title": "x", "alert_ids": ids[:1]})
    assert again.status_code == 409
    # An alert of another company in the list: 404, and nothing changed (rolled back).
    theirs = client.get(f"/companies/{other}/alerts").json()["items"][0]["id"]
    mixed = [made[3]["id"], theirs]
    assert (
        client.post(
            f"/companies/{acme}/incidents", json={"title": "x", "alert_ids": mixed}
        ).status_code
        == 404
    )
    assert client.get(f"/alerts/{made[3]['id']}").json()["status"] == "active"
    patched = client.patch(f"/alerts/{made[3]['id']}", json={"status": "resolved"})
    assert patched.status_code == 200 and patched.json()["status"] == "resolved"
    assert client.get("/alerts/missing").status_code == 404


def test_sessions_live_in_a_ttl_collection(client: TestClient, service_url: str) -> None:
    r = client.post("/sessions", json={"user_id": "u42"})
    assert r.status_code == 201
    token = r.json()["token"]
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).json() == {
        "user_id": "u42"
    }
    assert client.get("/me", headers={"Authorization": "Bearer nope"}).status_code == 401

    async def expire_all() -> None:
        async with asyncdb.connect(service_url) as db:
            sessions = db.collection("sessions", ttl="expires_at", allow_scan=True)
            past = datetime.now(UTC) - timedelta(seconds=1)
            await sessions.update_many({}, {"$set": {"expires_at": past}})

    client.portal.call(expire_all)  # type: ignore[union-attr]
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_without_with_the_service_says_its_lifespan_did_not_run(tmp_path: Path) -> None:
    client = TestClient(create_app(f"sqlite:///{tmp_path / 'nolifespan.db'}"))  # no lifespan
    r = client.post("/companies", json={"name": "acme"})
    assert r.status_code == 500 and r.json()["error"] == "ConfigurationError"


def test_two_apps_with_two_databases_in_one_process(tmp_path: Path) -> None:
    with (
        TestClient(create_app(f"sqlite:///{tmp_path / 'tenant_a.db'}")) as a,
        TestClient(create_app(f"sqlite:///{tmp_path / 'tenant_b.db'}")) as b,
    ):
        ca, cb = new_company(a, "a"), new_company(b, "b")
        alert = post_alert(a, ca)
        assert b.get(f"/alerts/{alert['id']}").status_code == 404
        assert a.get(f"/companies/{cb}").status_code == 404
        assert b.get(f"/companies/{cb}").json()["name"] == "b"


def test_rate_limit_on_redis_per_user_and_fail_open(postgres_url: str, redis_url: str) -> None:
    with TestClient(create_app(postgres_url, cache=redis_url, rate_limit="3/60")) as c:
        company = new_company(c)
        for _ in range(3):
            post_alert(c, company)
        r = c.post(
            f"/companies/{company}/alerts", json={"title": "t", "severity": "low", "priority": 1}
        )
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        token = c.post("/sessions", json={"user_id": "u7"}).json()["token"]
        c.headers["Authorization"] = f"Bearer {token}"
        post_alert(c, company)  # another user: its own window
        alert = post_alert(c, company)
        for _ in range(2):  # the second read is a cache hit
            assert c.get(f"/alerts/{alert['id']}").json() == alert
    dead_redis = "redis://127.0.0.1:9/0"  # nothing listens: cache and limiter fail open
    with TestClient(create_app(postgres_url, cache=dead_redis, rate_limit="1/60")) as c:
        company = new_company(c)
        alerts = [post_alert(c, company) for _ in range(3)]
        assert c.get(f"/alerts/{alerts[0]['id']}").json() == alerts[0]


def test_under_uvicorn(service_url: str, tmp_path: Path) -> None:
    """A real server: two worker processes on SQLite (each opens its own Database on its own
    loop, sharing one file), one on PostgreSQL."""
    env = {"ASYNCDB_URL": service_url, "ASYNCDB_CACHE_URL": ""}
    workers = 2 if service_url.startswith("sqlite") else 1
    log = tmp_path / "uvicorn.log"
    with (
        uvicorn_server("alerts_service.app:app", env, workers=workers, log=log) as base,
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        company = new_company(http)
        made = [post_alert(http, company, title=f"t{i}", priority=i) for i in range(6)]
        # Many requests, over fresh connections so both workers serve some of them.
        for alert in made * 2:
            with httpx.Client(base_url=base, timeout=10) as one:
                assert one.get(f"/alerts/{alert['id']}").json() == alert
        page = http.get(f"/companies/{company}/alerts", params={"min_priority": 3}).json()
        newest_first = sorted(made[3:], key=newest_key, reverse=True)
        assert page["items"] == newest_first
        ids = [a["id"] for a in made[:2]]
        r = http.post(f"/companies/{company}/incidents", json={"title": "i", "alert_ids": ids})
        assert r.status_code == 201
        assert http.get("/health").json()["ok"] is True
