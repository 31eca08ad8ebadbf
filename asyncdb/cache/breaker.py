"""A circuit breaker for the cache's Redis calls: after ``threshold`` consecutive failures it
opens for ``cooldown`` seconds (every cache call goes straight to the backend), then lets one
probe through (half-open); the probe's success closes it, its failure opens it again.

>>> b = CircuitBreaker(threshold=2, cooldown=60.0)
>>> b.failure(OSError("down")); b.state
'closed'
>>> b.failure(OSError("down")); b.state, b.allow()
('open', False)
"""

from __future__ import annotations

import time
from typing import Literal

import structlog

log = structlog.get_logger("asyncdb.cache")

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Consecutive failures -> open for a cool-down -> one half-open probe -> closed."""

    def __init__(self, threshold: int = 3, cooldown: float = 1.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.state: State = "closed"
        self.failures = 0
        self.opened = 0  # how many times it opened
        self._reopen_at = 0.0

    def ready(self) -> bool:
        """True unless open and still cooling down (no state change)."""
        return self.state != "open" or time.monotonic() >= self._reopen_at

    def allow(self) -> bool:
        """True when a Redis call may be made now (in half-open, only for the one probe)."""
        if self.state == "closed":
            return True
        if self.state == "open" and time.monotonic() >= self._reopen_at:
            self.state = "half_open"
            log.warning("cache.circuit_half_open", probe="next redis call")
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        if self.state != "closed":
            self.state = "closed"
            log.warning("cache.circuit_closed", detail="redis answers again; cache in use")

    def failure(self, error: BaseException) -> None:
        self.failures += 1
        if self.state == "half_open" or (
            self.state == "closed" and self.failures >= self.threshold
        ):
            self.state = "open"
            self.opened += 1
            self._reopen_at = time.monotonic() + self.cooldown
            log.warning(
                "cache.circuit_open",
                error=repr(error),
                cooldown_s=self.cooldown,
                detail="redis unavailable; reads and writes go straight to the backend",
            )


__all__ = ["CircuitBreaker"]
