"""The example service's ``GET /alerts/{id}`` written by hand on raw asyncpg: the comparison
point of bench_service.py. One pool (the size asyncdb's PostgreSQL pool has by default), the
alert as JSON in a ``jsonb`` column of its own table, validated into the same ``Alert`` model.

    RAW_PG_DSN=postgresql://... uvicorn --app-dir benchmarks raw_alerts_app:app
"""

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from alerts_service.models import Alert

GET_ALERT = "SELECT doc FROM raw_alerts WHERE id = $1"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    pool = await asyncpg.create_pool(os.environ["RAW_PG_DSN"], min_size=1, max_size=10)
    try:
        yield {"pool": pool}
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/alerts/{alert_id}")
async def get_alert(alert_id: str, request: Request) -> Alert:
    doc = await request.state.pool.fetchval(GET_ALERT, alert_id)
    if doc is None:
        raise HTTPException(404, "alert not found")
    return Alert.model_validate_json(doc)


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}
