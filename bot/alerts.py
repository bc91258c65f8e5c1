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
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from bot.delivery import AlertMessage, Dispatcher, FanOutReport, Job, Notifier
from bot.pacing import PLATFORM_LIMITS, Clock, PlatformLimits, SystemClock
from bot.store import (
    MIN_DRIVERS_HIGHEST,
    MIN_DRIVERS_LOWEST,
    Alert,
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


class AlertEngine:
    """Evaluates the rule after each refresh and delivers alerts through the notifiers."""

    def __init__(
        self,
        store: Store,
        settings: AlertSettings,
        notifiers: Mapping[str, Notifier],
        clock: Clock | None = None,
        limits: Mapping[str, PlatformLimits] = PLATFORM_LIMITS,
    ) -> None:
        self._store = store
        self._settings = settings
        self._notifiers = dict(notifiers)
        self._clock = clock or SystemClock()
        self._dispatcher = Dispatcher(
            store,
            self._notifiers,
            limits,
            self._clock,
            max_attempts=settings.max_attempts,
            backoff_base_s=settings.backoff_base_s,
            deactivate_after=settings.deactivate_after,
        )

    async def evaluate(self, explanation: Explanation) -> Alert | None:
        """Record and deliver an alert to every due subscription; return it, or None."""
        if self._dispatcher.stopping:
            return None
        now = self._clock.now()
        due: dict[Decision, list[Subscription]] = {"alert": [], "eased": [], "clear": []}
        for subscription in self._store.subscriptions(active_only=True):
            if subscription.platform not in self._notifiers:
                continue  # no front-end for it in this run: its state stays as it was
            decision = decide(explanation, subscription, self._settings, now)
            if decision is not None:
                due[decision].append(subscription)
        if not due["alert"] and not due["eased"] and not due["clear"]:
            return None
        try:
            alert, jobs = self._record(explanation, now, due)
        except sqlite3.OperationalError as err:
            if not is_full(err):
                raise
            # nothing is sent that the outbox cannot account for; the fault is logged once
            self._store.faults.failed(err, "recording an alert")
            log.debug("an alert due for %d subscriptions was not recorded", len(due["alert"]))
            return None
        if alert is not None:
            log.info(
                "alert %d recorded: %d drivers fired (%s), market %s in 24h, %d subscriptions",
                alert.id,
                alert.driver_count,
                ", ".join(alert.drivers),
                fmt.pct(alert.market_change_24h),
                len(due["alert"]),
            )
        if due["eased"]:
            log.info("pressure eased for %d alerted subscriptions", len(due["eased"]))
        report = await self._dispatcher.run(jobs)
        log.info(
            "fan-out: %d sent, %d failed, %d retried, %d deactivated, %d left pending",
            report.sent,
            report.failed,
            report.retried,
            report.deactivated,
            report.unfinished,
        )
        return alert

    def _record(
        self, explanation: Explanation, now: datetime, due: Mapping[Decision, list[Subscription]]
    ) -> tuple[Alert | None, list[Job]]:
        """Write the alert rows, their pending deliveries and the subscriptions' new state."""
        alert: Alert | None = None
        jobs: list[Job] = []
        with self._store.transaction():
            for kind in ("alert", "eased"):
                targets = {s.id: s for s in due[kind]}
                if not targets:
                    continue
                row = self._store.add_alert(kind, explanation, alert_key(kind, explanation), now)
                message = AlertMessage(kind=kind, alert_id=row.id, explanation=explanation)
                for delivery in self._store.add_deliveries(row.id, targets.keys(), now):
                    jobs.append(Job(delivery.id, targets[delivery.subscription_id], message))
                if kind == "alert":
                    alert = row
                    self._store.mark_alerted(
                        targets.keys(), now, len(explanation.fired), explanation.market_change_24h
                    )
            self._store.clear_alerting(s.id for s in [*due["eased"], *due["clear"]])
        return alert, jobs

    async def resume_pending(self) -> FanOutReport:
        """At start: send deliveries a crash or stop left pending, unless too old to matter."""
        now = self._clock.now()
        report = FanOutReport()
        jobs: list[Job] = []
        messages: dict[int, AlertMessage | None] = {}
        for delivery, subscription in self._store.pending_deliveries():
            age = (now - delivery.created_at).total_seconds()
            if age > self._settings.pending_max_age_s:
                self._store.mark_failed(delivery.id, delivery.attempts, "expired")
                report.expired += 1
                continue
            if not subscription.active:
                self._store.mark_failed(delivery.id, delivery.attempts, "unsubscribed")
                report.failed += 1
                continue
            if subscription.platform not in self._notifiers:
                continue  # kept pending: it may be sent by a run that has this front-end
            if delivery.alert_id not in messages:
                alert = self._store.alert(delivery.alert_id)
                messages[delivery.alert_id] = (
                    AlertMessage(kind=alert.kind, alert_id=alert.id, explanation=alert.explanation)
                    if alert is not None
                    else None
                )
            message = messages[delivery.alert_id]
            if message is not None:
                jobs.append(Job(delivery.id, subscription, message, attempts=delivery.attempts))
        if jobs or report.expired:
            log.info("resuming %d pending deliveries (%d expired)", len(jobs), report.expired)
        report.add(await self._dispatcher.run(jobs))
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
