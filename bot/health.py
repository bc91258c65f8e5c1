"""`/healthz` and `/metrics` of `whydown run`, served on 127.0.0.1 when enabled.

`Health` keeps what the endpoints report: it is the alert engine's observer (alerts recorded,
deliveries per platform and outcome) and the refresh job tells it of each refresh. Metrics live
in a CollectorRegistry of their own (never prometheus-client's global one); the gauges that
describe the moment (source states, outbox depth, stream lag and events per minute) are read when
scraped.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from bot.store import Store
from explainers.models import Explanation, SourceStatus
from explainers.streams import StreamStatus

log = logging.getLogger("whydown.health")

HOST = "127.0.0.1"
# events per minute are measured over this window of samples
_RATE_WINDOW_S = 300.0


class Streams(Protocol):
    """The liquidation streams (bot.live.LiquidationFeed)."""

    def statuses(self) -> list[StreamStatus]: ...


def _age_s(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else round(max((now - then).total_seconds(), 0.0), 3)


class Health:
    """What /healthz and /metrics report, and the aiohttp server that serves them."""

    def __init__(
        self,
        store: Store,
        *,
        streams: Streams | None,
        stale_after_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.streams = streams
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.monotonic = monotonic
        self.registry = CollectorRegistry()
        self.refresh_duration = Histogram(
            "whydown_refresh_duration_seconds",
            "Time one refresh took (collect, store, explain)",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60),
            registry=self.registry,
        )
        self.alerts = Counter(
            "whydown_alerts_recorded", "Alerts recorded", ["kind"], registry=self.registry
        )
        self.deliveries = Counter(
            "whydown_deliveries",
            "Deliveries sent, or given up (failed), per platform",
            ["platform", "outcome"],
            registry=self.registry,
        )
        self.registry.register(_Moment(self))
        self.last_refresh_at: datetime | None = None
        self.sources: list[SourceStatus] = []
        # (monotonic time, events so far) per venue, for events per minute
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # told by the refresh job and the alert engine

    def refreshed(self, explanation: Explanation | None, duration_s: float) -> None:
        """A refresh ended (None: it failed)."""
        self.refresh_duration.observe(duration_s)
        if explanation is not None:
            self.last_refresh_at = self.clock()
            self.sources = list(explanation.sources)
        self.stream_statuses()  # a sample for events per minute

    def alert_recorded(self, kind: str) -> None:
        self.alerts.labels(kind=kind).inc()

    def delivered(self, platform: str, outcome: Literal["sent", "failed"]) -> None:
        self.deliveries.labels(platform=platform, outcome=outcome).inc()

    # read when asked

    def stream_statuses(self) -> list[tuple[StreamStatus, float | None]]:
        """Each stream's status and events per minute (None until two samples exist)."""
        if self.streams is None:
            return []
        now = self.monotonic()
        result: list[tuple[StreamStatus, float | None]] = []
        for status in self.streams.statuses():
            samples = self._samples.setdefault(status.venue, deque())
            samples.append((now, status.events_total))
            while len(samples) > 2 and samples[1][0] <= now - _RATE_WINDOW_S:
                samples.popleft()
            (then, before), (_, after) = samples[0], samples[-1]
            rate = (after - before) / (now - then) * 60.0 if now > then else None
            result.append((status, rate))
        return result

    def check(self) -> tuple[int, dict[str, object]]:
        """The /healthz answer: 200 when the refresh is fresh, every stream connected and the
        store takes a write; 503 with the reasons otherwise."""
        now = self.clock()
        reasons: list[str] = []
        refresh_age = _age_s(self.last_refresh_at, now)
        if refresh_age is None:
            reasons.append("no refresh has completed yet")
        elif refresh_age > self.stale_after_s:
            reasons.append(f"the last refresh is {refresh_age:.0f} s old")
        streams: dict[str, object] = {}
        for status, rate in self.stream_statuses():
            streams[status.venue] = {
                "state": status.state,
                "age_s": _age_s(status.last_frame_at, now),
                "events_per_minute": None if rate is None else round(rate, 2),
            }
            if status.state != "ok":
                reasons.append(
                    f"stream {status.venue} is {status.state}"
                    + (f": {status.reason}" if status.reason else "")
                )
        store: dict[str, object] = {"writable": True}
        try:
            self.store.set_meta("health_checked_at", now.isoformat())
            written = self.store.get_meta("last_refresh")
            store["age_s"] = _age_s(datetime.fromisoformat(written), now) if written else None
        except Exception as err:  # sqlite3 errors, a full disk, a closed database
            store["writable"] = False
            reasons.append(f"the store is not writable ({type(err).__name__})")
        # a probe that updates an existing row can pass while new rows cannot be written
        fault = self.store.faults.current
        if fault is not None:
            store["writable"] = False
            reasons.append(
                f"history is not being kept: {fault.reason} (since {fault.since:%H:%M} UTC)"
            )
        body: dict[str, object] = {
            "status": "ok" if not reasons else "unhealthy",
            "last_refresh_age_s": refresh_age,
            "streams": streams,
            "store": store,
        }
        if reasons:
            body["reasons"] = reasons
        return (503 if reasons else 200), body

    # the server

    async def _healthz(self, request: web.Request) -> web.Response:
        status, body = self.check()
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def start(self, port: int) -> int:
        """Serve on 127.0.0.1:`port` (0: any free port); return the port."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("health and metrics on http://%s:%d/healthz and /metrics", HOST, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class _Moment(Collector):
    """The gauges read at scrape time."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def describe(self) -> Sequence[Metric]:
        return []  # collected at scrape time only; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        health = self.health
        sources = GaugeMetricFamily(
            "whydown_source_up",
            "Each source at the last refresh: 1 when ok, 0 otherwise; its state as a label",
            labels=["source", "state"],
        )
        for source in health.sources:
            sources.add_metric([source.source, source.state], 1.0 if source.state == "ok" else 0.0)
        yield sources
        yield GaugeMetricFamily(
            "whydown_outbox_pending",
            "Deliveries recorded and not yet sent or given up",
            value=health.store.pending_count(),
        )
        now = health.clock()
        lag = GaugeMetricFamily(
            "whydown_stream_lag_seconds", "Age of each stream's last frame", labels=["venue"]
        )
        rate = GaugeMetricFamily(
            "whydown_stream_events_per_minute",
            "Liquidations received per minute, per stream",
            labels=["venue"],
        )
        up = GaugeMetricFamily("whydown_stream_up", "1 when the stream is ok", labels=["venue"])
        for status, per_minute in health.stream_statuses():
            age = _age_s(status.last_frame_at, now)
            if age is not None:
                lag.add_metric([status.venue], age)
            if per_minute is not None:
                rate.add_metric([status.venue], per_minute)
            up.add_metric([status.venue], 1.0 if status.state == "ok" else 0.0)
        yield from (lag, rate, up)
