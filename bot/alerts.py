"""The alert rule, cooldown and escalation, and the engine that records alerts and fans them out.

The rule: alert a subscription when the market is down (the core's
verdict) and at least its minimum number of drivers fire together; then stay quiet for its
cooldown unless more drivers fire than at its last alert or the drop deepens by
`escalation_drop_pts`. Every alert and its deliveries are written in one transaction before any
message is sent, so a crash loses nothing and repeats only a message that was in flight. An alert
that cannot be written (the database or disk is full) is not sent.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from bot.delivery import (
    AlertMessage,
    DeliveryObserver,
    Dispatcher,
    FanOutReport,
    Job,
    Notifier,
)
from bot.pacing import PLATFORM_LIMITS, Clock, PlatformLimits, SystemClock
from bot.store import (
    MIN_DRIVERS_HIGHEST,
    MIN_DRIVERS_LOWEST,
    Alert,
    AlertChart,
    AlertKind,
    Store,
    Subscription,
    is_full,
)
from explainers import formatting as fmt
from explainers.models import Explanation

log = logging.getLogger("whydown.alerts")

# percentages arrive with a few decimals; keep a drop of exactly N points from missing by an ulp
_DROP_TOLERANCE = 1e-9

Decision = Literal["alert", "eased", "clear"]


class AlertSettings(BaseModel):
    """Defaults for the alert rule and for delivery."""

    default_min_drivers: int = Field(
        3,
        ge=MIN_DRIVERS_LOWEST,
        le=MIN_DRIVERS_HIGHEST,
        description="drivers that must fire together, for a subscription that names no number",
    )
    cooldown_s: int = Field(
        6 * 3600, ge=0, description="quiet time after an alert, unless the situation escalates"
    )
    escalation_drop_pts: float = Field(
        3.0, gt=0, description="a 24h drop this many points deeper than at the last alert"
    )
    eased_followup: bool = Field(
        False, description="tell alerted chats once when the pressure has eased"
    )
    pending_max_age_s: int = Field(
        3600, ge=0, description="at start, unsent alerts older than this are dropped"
    )
    max_attempts: int = Field(5, ge=1, description="tries per message before giving up")
    backoff_base_s: float = Field(
        2.0, ge=0, description="first retry wait after a transient failure; doubles each time"
    )
    deactivate_after: int = Field(
        3, ge=1, description="permanent failures in a row that deactivate a subscription"
    )


def condition_holds(explanation: Explanation, min_drivers: int) -> bool:
    """The market is down and at least `min_drivers` drivers fired."""
    return explanation.verdict == "down" and len(explanation.fired) >= min_drivers


def clearly_eased(explanation: Explanation, min_drivers: int) -> bool:
    """The condition fails even if every driver we could not read had fired."""
    if explanation.verdict == "not_down":
        return True
    if explanation.verdict != "down":
        return False  # unknown market: no evidence either way
    unknown = sum(1 for d in explanation.drivers if d.state == "unknown")
    return len(explanation.fired) + unknown < min_drivers


def escalated(explanation: Explanation, subscription: Subscription, drop_pts: float) -> bool:
    """More drivers than at the subscription's last alert, or a drop `drop_pts` deeper."""
    if subscription.last_alert_drivers is None:
        return True
    if len(explanation.fired) > subscription.last_alert_drivers:
        return True
    now, then = explanation.market_change_24h, subscription.last_alert_drop
    return now is not None and then is not None and now <= then - drop_pts + _DROP_TOLERANCE


def decide(
    explanation: Explanation, subscription: Subscription, settings: AlertSettings, now: datetime
) -> Decision | None:
    """What this evaluation means for one subscription: alert, ease, clear, or nothing."""
    if condition_holds(explanation, subscription.min_drivers):
        if subscription.last_alert_at is None:
            return "alert"
        cooldown = (
            settings.cooldown_s if subscription.cooldown_s is None else subscription.cooldown_s
        )
        if (now - subscription.last_alert_at).total_seconds() >= cooldown:
            return "alert"
        if escalated(explanation, subscription, settings.escalation_drop_pts):
            return "alert"
        return None
    if subscription.alerting and clearly_eased(explanation, subscription.min_drivers):
        return "eased" if settings.eased_followup else "clear"
    return None


def alert_key(kind: Literal["alert", "eased"], explanation: Explanation) -> str:
    """One key per evaluated situation: re-evaluating the same data reuses the alert row."""
    fired = ",".join(sorted(d.key for d in explanation.fired))
    return f"{kind}|{explanation.data_time.isoformat()}|{fired}"


#: subscriptions decided and recorded per transaction, and pending deliveries read per batch:
#: small enough that one batch never holds the event loop for long (see bench/fanout_large.py)
BATCH = 250
#: a read of pending deliveries looks at most this many batches' worth of them: a platform with
#: few subscriptions among many never makes one read walk the whole outbox
SCAN_FACTOR = 4


class AlertChartLike(Protocol):
    """A drawn chart (explainers.chart_service.Chart)."""

    @property
    def png(self) -> bytes: ...

    @property
    def caption(self) -> str: ...

    @property
    def filename(self) -> str: ...


class AlertCharts(Protocol):
    """Draws the chart of exactly an alert's data (explainers.chart_service.ChartMaker)."""

    async def for_alert(
        self, explanation: Explanation, timeout_s: float = 20.0
    ) -> AlertChartLike | None: ...


class EngineObserver(DeliveryObserver, Protocol):
    """Told of each alert recorded and each delivery's outcome (the metrics)."""

    def alert_recorded(self, kind: str) -> None: ...


@dataclass
class _Recorded:
    """What one evaluation wrote: its alert rows and the range of delivery ids it added."""

    alert: Alert | None = None
    alert_ids: list[int] = field(default_factory=list)
    after_id: int = 0  # the deliveries it added have ids above this ...
    upto_id: int = 0  # ... and up to this
    due: dict[Decision, int] = field(default_factory=lambda: {"alert": 0, "eased": 0, "clear": 0})


class AlertEngine:
    """Evaluates the rule after each refresh and delivers alerts through the notifiers."""

    def __init__(
        self,
        store: Store,
        settings: AlertSettings,
        notifiers: Mapping[str, Notifier],
        clock: Clock | None = None,
        limits: Mapping[str, PlatformLimits] = PLATFORM_LIMITS,
        *,
        charts: AlertCharts | None = None,
        chart_wait_s: float = 20.0,
        batch: int = BATCH,
        observer: EngineObserver | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._notifiers = dict(notifiers)
        self._clock = clock or SystemClock()
        self._charts = charts
        self._chart_wait_s = chart_wait_s
        self._batch = batch
        self._observer = observer
        # one evaluation records at a time: each one's deliveries are a range of ids of its own
        self._recording = asyncio.Lock()
        self._dispatcher = Dispatcher(
            store,
            self._notifiers,
            limits,
            self._clock,
            max_attempts=settings.max_attempts,
            backoff_base_s=settings.backoff_base_s,
            deactivate_after=settings.deactivate_after,
            queue_mark=batch,
            observer=observer,
        )

    async def evaluate(self, explanation: Explanation) -> Alert | None:
        """Record and deliver an alert to every due subscription; return it, or None."""
        if self._dispatcher.stopping:
            return None
        now = self._clock.now()
        async with self._recording:
            try:
                recorded = await self._record(explanation, now)
            except sqlite3.OperationalError as err:
                if not is_full(err):
                    raise
                # nothing is sent that the outbox cannot account for; the fault is logged once
                self._store.faults.failed(err, "recording an alert")
                log.debug("an alert could not be recorded: nothing is sent for it")
                return None
        if not any(recorded.due.values()):
            return None
        alert = recorded.alert
        if alert is not None:
            log.info(
                "alert %d recorded: %d drivers fired (%s), market %s in 24h, %d subscriptions",
                alert.id,
                alert.driver_count,
                ", ".join(alert.drivers),
                fmt.pct(alert.market_change_24h),
                recorded.due["alert"],
            )
            await self._keep_chart(alert.id, explanation)
        if recorded.due["eased"]:
            log.info("pressure eased for %d alerted subscriptions", recorded.due["eased"])
        feeds = {
            platform: self._feed(
                platform, recorded.after_id, recorded.upto_id, alert_ids=recorded.alert_ids
            )
            for platform in self._notifiers
        }
        report = await self._dispatcher.run_feeds(feeds)
        log.info(
            "fan-out: %d sent, %d failed, %d retried, %d deactivated, %d left pending",
            report.sent,
            report.failed,
            report.retried,
            report.deactivated,
            report.unfinished,
        )
        return alert

    async def _record(self, explanation: Explanation, now: datetime) -> _Recorded:
        """Write the alert rows, their pending deliveries and the subscriptions' new state, a
        batch of subscriptions per transaction, yielding to the event loop between batches.

        Every delivery is recorded before any is sent. A crash between two batches leaves the
        later subscriptions without this alert and without its mark: the next evaluation after
        the restart finds them due, so they are alerted then if the condition still holds."""
        recorded = _Recorded(after_id=self._store.last_delivery_id())
        rows: dict[AlertKind, Alert] = {}
        after = 0
        while True:
            batch = self._store.subs.batch(after, self._batch)
            if not batch:
                break
            after = batch[-1].id
            due: dict[Decision, list[Subscription]] = {"alert": [], "eased": [], "clear": []}
            for subscription in batch:
                if subscription.platform not in self._notifiers:
                    continue  # no front-end for it in this run: its state stays as it was
                decision = decide(explanation, subscription, self._settings, now)
                if decision is not None:
                    due[decision].append(subscription)
            if any(due.values()):
                with self._store.transaction():
                    for kind in ("alert", "eased"):
                        targets = [s.id for s in due[kind]]
                        if not targets:
                            continue
                        if kind not in rows:
                            key = alert_key(kind, explanation)
                            rows[kind] = self._store.add_alert(kind, explanation, key, now)
                            recorded.alert_ids.append(rows[kind].id)
                            if self._observer is not None:
                                self._observer.alert_recorded(kind)
                        self._store.outbox.queue(rows[kind].id, targets, now)
                        if kind == "alert":
                            self._store.mark_alerted(
                                targets, now, len(explanation.fired), explanation.market_change_24h
                            )
                    self._store.clear_alerting(s.id for s in [*due["eased"], *due["clear"]])
                for decision, items in due.items():
                    recorded.due[decision] += len(items)
            await asyncio.sleep(0)  # a large audience must not stall the event loop
        recorded.alert = rows.get("alert")
        recorded.upto_id = self._store.last_delivery_id()
        return recorded

    async def _keep_chart(self, alert_id: int, explanation: Explanation) -> None:
        """Draw the alert's chart once and keep it with the alert, before any delivery: every
        delivery carries it, those resumed after a restart included."""
        if self._charts is None or self._store.alert_chart(alert_id) is not None:
            return
        try:
            chart = await self._charts.for_alert(explanation, timeout_s=self._chart_wait_s)
        except Exception:  # a chart is never worth an alert: it goes out without one
            log.exception("alert %d: chart not drawn", alert_id)
            return
        if chart is not None:
            self._store.set_alert_chart(
                alert_id, AlertChart(png=chart.png, caption=chart.caption, filename=chart.filename)
            )

    def _message(self, cache: dict[int, AlertMessage | None], alert_id: int) -> AlertMessage | None:
        if alert_id not in cache:
            alert = self._store.alert(alert_id)
            cache[alert_id] = (
                AlertMessage(
                    kind=alert.kind,
                    alert_id=alert.id,
                    explanation=alert.explanation,
                    chart=self._store.alert_chart(alert.id),
                )
                if alert is not None
                else None
            )
        return cache[alert_id]

    async def _feed(
        self, platform: str, after_id: int, upto_id: int, *, alert_ids: Sequence[int] = ()
    ) -> AsyncIterator[list[Job]]:
        """One platform's pending deliveries in the id range, a batch at a time."""
        messages: dict[int, AlertMessage | None] = {}
        if upto_id <= after_id:
            return
        while True:
            rows, next_after = self._store.outbox.pending_page(
                after_id,
                self._batch,
                upto_id=upto_id,
                alert_ids=alert_ids,
                platform=platform,
                scan=SCAN_FACTOR * self._batch,
            )
            jobs: list[Job] = []
            for delivery, subscription in rows:
                message = self._message(messages, delivery.alert_id)
                if message is not None:
                    jobs.append(Job(delivery.id, subscription, message, delivery.attempts))
            if jobs:
                yield jobs
            if next_after is None:
                return
            after_id = next_after
            await asyncio.sleep(0)  # one read at a time: other platforms' and sends' turn

    async def resume_pending(self) -> FanOutReport:
        """At start: send deliveries a crash or stop left pending, unless too old to matter."""
        now = self._clock.now()
        report = FanOutReport()
        upto = self._store.last_delivery_id()  # a concurrent evaluation's are its own to send
        cutoff = now - timedelta(seconds=self._settings.pending_max_age_s)
        report.expired = self._store.outbox.fail_pending(
            "expired", upto_id=upto, created_before=cutoff
        )
        report.failed = self._store.outbox.fail_pending("unsubscribed", upto_id=upto, inactive=True)
        pending = self._store.outbox.pending_counts(upto_id=upto)
        waiting = sum(n for platform, n in pending.items() if platform in self._notifiers)
        if waiting or report.expired:
            log.info("resuming %d pending deliveries (%d expired)", waiting, report.expired)
        feeds = {platform: self._feed(platform, 0, upto) for platform in self._notifiers}
        report.add(await self._dispatcher.run_feeds(feeds))
        return report

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Stop sending: in-flight sends finish (up to `timeout_s`), the rest stay pending."""
        self._dispatcher.stop()
        workers = self._dispatcher.workers()
        if not workers:
            return
        _, late = await asyncio.wait(workers, timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
