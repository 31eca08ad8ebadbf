"""The README's twelve-line FastAPI service: ``uvicorn --app-dir examples fastapi_minimal:app``."""

from typing import Annotated

import pydantic
from fastapi import Depends, FastAPI

import asyncdb
from asyncdb.integrations.fastapi import AsyncDB


class Alert(pydantic.BaseModel):
    id: str | None = None
    priority: int


adb = AsyncDB("sqlite:///app.db")  # or AsyncDB(settings=asyncdb.Settings())
app = FastAPI(lifespan=adb.lifespan)
adb.install_error_handlers(app)


@app.get("/alerts/{alert_id}")
async def get_alert(
    alert_id: str, db: Annotated[asyncdb.Database, Depends(adb.db)]
) -> Alert | None:
    return await db.collection("alerts", model=Alert).find_one({"id": alert_id})
