"""The documents of the alerts-and-incidents service: companies, alerts, incidents, sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field


def now() -> datetime:
    """The current time at the millisecond precision every backend stores."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    CORRELATED = "correlated"
    RESOLVED = "resolved"


class CompanyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class Company(CompanyIn):
    id: str | None = None
    created_at: AwareDatetime = Field(default_factory=now)


class AlertIn(BaseModel):
    """What a monitoring tool posts."""

    title: str = Field(min_length=1, max_length=500)
    severity: Severity
    priority: int = Field(ge=0, le=100)
    tags: list[str] = Field(default_factory=list, max_length=20)
    source: str = "api"


class Alert(AlertIn):
    id: str | None = None
    company_id: str
    status: AlertStatus = AlertStatus.ACTIVE
    incident_id: str | None = None
    created_at: AwareDatetime = Field(default_factory=now)


class AlertUpdate(BaseModel):
    status: AlertStatus


class IncidentIn(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    alert_ids: list[str] = Field(min_length=1, max_length=100)


class Incident(IncidentIn):
    id: str | None = None
    company_id: str
    priority: int
    severity: Severity
    created_at: AwareDatetime = Field(default_factory=now)


class SessionIn(BaseModel):
    user_id: str = Field(min_length=1, max_length=200)


class Session(BaseModel):
    """A login session: its key is the SHA-256 of the bearer token (the token itself is not
    stored); the collection's TTL field ``expires_at`` removes it when it expires."""

    id: str
    user_id: str
    created_at: AwareDatetime = Field(default_factory=now)
    expires_at: AwareDatetime


class SessionOut(BaseModel):
    token: str
    user_id: str
    expires_at: AwareDatetime
