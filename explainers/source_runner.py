"""Make one call to an upstream source the careful way, and say how it fared.

Every call runs under a timeout with one retry on a transient error (timeout, 5xx, connection
failure, 429). A 429 is retried after the server's Retry-After, unless that is longer than a
refresh can wait: then the next cycle tries again. A source that refuses us (451/403) is not asked
again for a while (`blocked_backoff_s`) instead of every cycle. The collector and the chart
service both call their sources through a `SourceRunner`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from explainers.errors import BadResponse, RateLimited, SourceBlocked, SourceError, SourceTimeout
from explainers.models import SourceState, SourceStatus
from explainers.settings import SourceSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SourceCall(Generic[T_co]):
    """One request for one source's data, as the runner makes it."""

    key: str  # status key, e.g. "okx_liquidations_btc"; blocked sources are remembered by it
    label: str  # shown to users, e.g. "OKX liquidations (BTC)"
    run: Callable[[], Awaitable[T_co]]
    stale_after: timedelta | None = None  # None: the data has no regular cycle (news, liquidations)
    timeout_s: float | None = None  # None: the settings' timeout_s


class SourceRunner:
    """Runs source calls under the settings' timeout and retry rules; remembers which sources
    refused us and until when they are left alone."""

    def __init__(self, cfg: SourceSettings) -> None:
        self.cfg = cfg
        self._blocked_until: dict[str, datetime] = {}

    async def call(self, call: SourceCall[T], now: datetime) -> tuple[T | None, SourceStatus]:
        """The call's data (None when it failed or was skipped) and its status at `now`."""
        blocked_until = self._blocked_until.get(call.key)
        if blocked_until is not None and now < blocked_until:
            return None, SourceStatus(
                source=call.key,
                label=call.label,
                state="blocked",
                reason=f"refused from this location; not asked again until {blocked_until:%H:%M} UTC",
            )
        started = time.perf_counter()
        try:
            value = await self._attempt_with_retry(call)
        except SourceError as err:
            latency = (time.perf_counter() - started) * 1000
            state: SourceState = "failed"
            if isinstance(err, SourceBlocked):
                state = "blocked"
                self._blocked_until[call.key] = now + timedelta(seconds=self.cfg.blocked_backoff_s)
            log.warning("source %s %s: %s", call.key, err.kind, err.detail)
            return None, SourceStatus(
                source=call.key,
                label=call.label,
                state=state,
                reason=f"{err.kind}: {err.detail}",
                latency_ms=latency,
            )
        latency = (time.perf_counter() - started) * 1000
        self._blocked_until.pop(call.key, None)
        as_of = _as_of(value)
        limit = call.stale_after
        stale = limit is not None and as_of is not None and now - as_of > limit
        return value, SourceStatus(
            source=call.key,
            label=call.label,
            state="stale" if stale else "ok",
            reason=f"data older than {_age(limit)}" if stale and limit else None,
            as_of=as_of,
            latency_ms=latency,
        )

    async def first(
        self, chain: Sequence[SourceCall[T]], now: datetime
    ) -> tuple[T | None, list[SourceStatus]]:
        """The data of the first call in `chain` (a source and its fallbacks) that delivers, and
        the statuses of the calls made; the rest of the chain is not asked."""
        statuses: list[SourceStatus] = []
        for call in chain:
            value, status = await self.call(call, now)
            statuses.append(status)
            if value is not None:
                return value, statuses
        return None, statuses

    async def _attempt_with_retry(self, call: SourceCall[T]) -> T:
        try:
            return await self._attempt(call)
        except SourceError as err:
            if not err.transient:
                raise
            wait = self.cfg.retry_backoff_s
            if isinstance(err, RateLimited) and err.retry_after is not None:
                wait = err.retry_after
            if wait > self.cfg.retry_wait_cap_s:
                raise  # the server asked for longer than a refresh can wait; try next cycle
            await asyncio.sleep(wait)
            return await self._attempt(call)

    async def _attempt(self, call: SourceCall[T]) -> T:
        label = call.label
        timeout_s = self.cfg.timeout_s if call.timeout_s is None else call.timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                return await call.run()
        except TimeoutError as err:
            raise SourceTimeout(label, "no answer in time") from err
        except SourceError:
            raise
        except Exception as err:  # a parser tripped on a shape we did not foresee
            log.exception("source %s returned an unexpected shape", call.key)
            raise BadResponse(label, f"unexpected response ({type(err).__name__})") from err


def _as_of(value: object) -> datetime | None:
    """The data time of a source's value; of a pair's first member (BTC and ETH prices); the
    oldest of a list's items (open interest per coin: `at`)."""
    if isinstance(value, tuple):
        value = value[0]
    if isinstance(value, list):
        times = [_as_of(item) for item in value]
        known = [t for t in times if t is not None]
        return min(known) if known else None
    as_of = getattr(value, "as_of", None)
    if as_of is None:
        as_of = getattr(value, "at", None)
    return as_of if isinstance(as_of, datetime) else None


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return (
        f"{hours / 24:g} days"
        if hours >= 24
        else f"{hours:g} h"
        if hours >= 1
        else f"{delta.seconds // 60} min"
    )
