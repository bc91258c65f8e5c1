"""The alert outbox and log: alerts as recorded, and one delivery per alert and subscription.

An alert is recorded before it is sent, with one pending delivery per subscription, so a restart
neither loses it nor sends it twice: whatever is still pending is resumed (at most one repeat for
a message that was in flight at the crash).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import sqlite_utils
from pydantic import BeforeValidator
from sqlite_utils.db import NotFoundError

from bot.store.rows import Row, StoredList, StoredTime, stamp
from bot.store.subscriptions import Subscription, Subscriptions
from explainers.models import Explanation

AlertKind = Literal["alert", "eased"]
DeliveryStatus = Literal["pending", "sent", "failed"]

#: sent and failed deliveries, and alerts left without any, are kept this long
OUTBOX_KEEP = timedelta(days=30)


def _explanation(value: Any) -> Any:
    return Explanation.model_validate_json(value) if isinstance(value, str) else value


class AlertSummary(Row):
    """What `/history` shows of one alert: when, which drivers, the move."""

    id: int
    kind: AlertKind
    created_at: StoredTime
    drivers: StoredList  # names of the fired drivers, strongest first
    driver_count: int
    market_change_24h: float | None
    btc_change_1h: float | None


class Alert(AlertSummary):
    """An alert as recorded, with the explanation every delivery renders."""

    key: str
    explanation: Annotated[Explanation, BeforeValidator(_explanation)]


class AlertChart(Row):
    """The chart an alert was sent with, kept with the alert row: a delivery resumed after a
    restart carries the very picture the others got, though newer data has come in since."""

    png: bytes
    caption: str
    filename: str


class Delivery(Row):
    """One alert to one subscription: the outbox row."""

    id: int
    alert_id: int
    subscription_id: int
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: StoredTime
    sent_at: StoredTime | None


class Outbox:
    """The ``alerts`` and ``deliveries`` tables."""

    def __init__(self, db: sqlite_utils.Database, subscriptions: Subscriptions) -> None:
        self.db = db
        self.subscriptions = subscriptions
        self.alerts = db.table("alerts")
        self.deliveries = db.table("deliveries")

    # alerts

    def add_alert(self, kind: AlertKind, explanation: Explanation, key: str, at: datetime) -> Alert:
        """Record an alert, or return the one already recorded under `key`."""
        fired = explanation.fired
        self.alerts.insert(
            {
                "created_at": stamp(at),
                "key": key,
                "kind": kind,
                "drivers": json.dumps([d.name for d in fired]),
                "driver_count": len(fired),
                "market_change_24h": explanation.market_change_24h,
                "btc_change_1h": explanation.btc_change_1h,
                "explanation": explanation.model_dump_json(),
            },
            ignore=True,
        )
        [row] = self.alerts.rows_where("key = ?", (key,))
        return Alert.model_validate(row)

    def alert(self, alert_id: int) -> Alert | None:
        """One alert with its explanation."""
        try:
            return Alert.model_validate(self.alerts.get(alert_id))
        except NotFoundError:
            return None

    def set_chart(self, alert_id: int, chart: AlertChart) -> None:
        """Keep an alert's chart with the alert."""
        self.db.execute(
            "UPDATE alerts SET chart_png = ?, chart_caption = ?, chart_filename = ? WHERE id = ?",
            (chart.png, chart.caption, chart.filename, alert_id),
        )

    def chart(self, alert_id: int) -> AlertChart | None:
        """The chart kept with an alert, or None."""
        row = self.db.execute(
            "SELECT chart_png, chart_caption, chart_filename FROM alerts WHERE id = ?", (alert_id,)
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return AlertChart(png=row[0], caption=row[1] or "", filename=row[2] or "whydown-chart.png")

    def recent_alerts(self, limit: int = 10) -> list[AlertSummary]:
        """The last alerts (not the eased follow-ups), newest first: the data for /history."""
        rows = self.alerts.rows_where(
            "kind = 'alert'",
            select="id, kind, created_at, drivers, driver_count, market_change_24h, btc_change_1h",
            order_by="created_at DESC, id DESC",
            limit=limit,
        )
        return [AlertSummary.model_validate(row) for row in rows]

    # deliveries

    def add_deliveries(
        self, alert_id: int, subscription_ids: Iterable[int], at: datetime
    ) -> list[Delivery]:
        """Queue the alert for each subscription; return only the deliveries that are new."""
        created = stamp(at)
        new: list[Delivery] = []
        with self.db.atomic():
            for subscription_id in subscription_ids:
                # SQL here: the row count tells a new delivery from one queued already
                cursor = self.db.execute(
                    "INSERT OR IGNORE INTO deliveries (alert_id, subscription_id, created_at) "
                    "VALUES (?, ?, ?)",
                    (alert_id, subscription_id, created),
                )
                if not cursor.rowcount:
                    continue
                row = {"id": cursor.lastrowid, "alert_id": alert_id, "created_at": created}
                pending = {"status": "pending", "attempts": 0, "last_error": None, "sent_at": None}
                new.append(
                    Delivery.model_validate(row | pending | {"subscription_id": subscription_id})
                )
        return new

    def queue(self, alert_id: int, subscription_ids: Iterable[int], at: datetime) -> None:
        """Queue the alert for each subscription (one already queued is left as it is): the
        fast path of `add_deliveries` for large audiences, returning nothing."""
        created = stamp(at)
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO deliveries (alert_id, subscription_id, created_at) "
            "VALUES (?, ?, ?)",
            [(alert_id, sid, created) for sid in subscription_ids],
        )

    def pending(self) -> list[tuple[Delivery, Subscription]]:
        """Deliveries not yet sent or given up, oldest first, with their subscriptions."""
        with self.db.atomic():
            rows = list(self.deliveries.rows_where("status = 'pending'", order_by="id"))
            targets = self.subscriptions.by_id_where(
                "id IN (SELECT subscription_id FROM deliveries WHERE status = 'pending')"
            )
        return [(Delivery.model_validate(row), targets[row["subscription_id"]]) for row in rows]

    def pending_batch(
        self,
        after_id: int,
        limit: int,
        *,
        upto_id: int | None = None,
        alert_ids: Iterable[int] = (),
        platform: str | None = None,
    ) -> list[tuple[Delivery, Subscription]]:
        """Up to `limit` pending deliveries with ids above `after_id` (at most `upto_id`; of
        `alert_ids` and to `platform` when given), oldest first, with their subscriptions."""
        rows, _ = self.pending_page(
            after_id, limit, upto_id=upto_id, alert_ids=alert_ids, platform=platform
        )
        return rows

    def pending_page(
        self,
        after_id: int,
        limit: int,
        *,
        upto_id: int | None = None,
        alert_ids: Iterable[int] = (),
        platform: str | None = None,
        scan: int | None = None,
    ) -> tuple[list[tuple[Delivery, Subscription]], int | None]:
        """`pending_batch`, looking at no more than `scan` pending deliveries (all when None):
        one read stays short however few of them go to `platform`. Returns the deliveries and
        the id to read on after, or None when no pending delivery is left in the range."""
        where = "status = 'pending' AND id > ?"
        args: list[Any] = [after_id]
        if upto_id is not None:
            where += " AND id <= ?"
            args.append(upto_id)
        alerts = list(alert_ids)
        if alerts:
            where += f" AND alert_id IN ({', '.join('?' * len(alerts))})"
            args.extend(alerts)
        # the pending index walks the deliveries in id order; each one's subscription is looked
        # up by its key (an IN over the platform's subscriptions would list them all, each read)
        scanned = f"SELECT * FROM deliveries WHERE {where} ORDER BY id LIMIT ?"
        select = f"SELECT d.* FROM ({scanned}) AS d"
        select_args = [*args, -1 if scan is None else scan]
        if platform is not None:
            select += (
                " WHERE EXISTS (SELECT 1 FROM subscriptions s"
                " WHERE s.id = d.subscription_id AND s.platform = ?)"
            )
            select_args.append(platform)
        select += " ORDER BY d.id LIMIT ?"
        select_args.append(limit)
        with self.db.atomic():
            cursor = self.db.execute(select, select_args)
            columns = [c[0] for c in cursor.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            if len(rows) >= limit:
                next_after: int | None = rows[-1]["id"]
            elif scan is None:
                next_after = None
            else:
                last = self.db.execute(
                    f"SELECT max(id) FROM (SELECT id FROM deliveries WHERE {where} "
                    "ORDER BY id LIMIT ?)",
                    [*args, scan],
                ).fetchone()[0]
                next_after = None if last is None else int(last)
            ids = sorted({row["subscription_id"] for row in rows})
            targets = (
                self.subscriptions.by_id_where(f"id IN ({', '.join('?' * len(ids))})", ids)
                if ids
                else {}
            )
        found = [(Delivery.model_validate(row), targets[row["subscription_id"]]) for row in rows]
        return found, next_after

    def fail_pending(
        self,
        error: str,
        *,
        upto_id: int,
        created_before: datetime | None = None,
        inactive: bool = False,
    ) -> int:
        """Give up on pending deliveries up to `upto_id` created before a time, or whose
        subscription is no longer active; return how many."""
        where = "status = 'pending' AND id <= ?"
        args: list[Any] = [upto_id]
        if created_before is not None:
            where += " AND created_at < ?"
            args.append(stamp(created_before))
        if inactive:
            where += " AND subscription_id IN (SELECT id FROM subscriptions WHERE active = 0)"
        cursor = self.db.execute(
            f"UPDATE deliveries SET status = 'failed', last_error = ? WHERE {where}", [error, *args]
        )
        return cursor.rowcount

    def pending_counts(self, upto_id: int | None = None) -> dict[str, int]:
        """Pending deliveries per platform (up to `upto_id`)."""
        rows = self.db.execute(
            "SELECT s.platform, count(*) FROM deliveries d JOIN subscriptions s "
            "ON s.id = d.subscription_id WHERE d.status = 'pending' AND (? IS NULL OR d.id <= ?) "
            "GROUP BY s.platform",
            (upto_id, upto_id),
        )
        return dict(rows.fetchall())

    def last_delivery_id(self) -> int:
        """The highest delivery id so far (0 when none)."""
        row = self.db.execute("SELECT max(id) FROM deliveries").fetchone()
        return int(row[0] or 0)

    def pending_count(self) -> int:
        """Deliveries still pending."""
        row = self.db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()
        return int(row[0])

    def of_alert(self, alert_id: int) -> list[Delivery]:
        """Every delivery of one alert."""
        rows = self.deliveries.rows_where("alert_id = ?", (alert_id,), order_by="id")
        return [Delivery.model_validate(row) for row in rows]

    def mark_sent(
        self, delivery_id: int, subscription_id: int, attempts: int, at: datetime
    ) -> None:
        """Record a successful send; the target is evidently alive again."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE deliveries SET status = 'sent', attempts = ?, sent_at = ? WHERE id = ?",
                (attempts, stamp(at), delivery_id),
            )
            self.subscriptions.note_success(subscription_id)

    def note_attempt(self, delivery_id: int, attempts: int, error: str) -> None:
        """Record a failed attempt that will be retried."""
        self.db.execute(
            "UPDATE deliveries SET attempts = ?, last_error = ? WHERE id = ?",
            (attempts, error, delivery_id),
        )

    def mark_failed(self, delivery_id: int, attempts: int, error: str) -> None:
        """Give up on one delivery."""
        self.db.execute(
            "UPDATE deliveries SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?",
            (attempts, error, delivery_id),
        )

    def prune(self, now: datetime) -> dict[str, int]:
        """Delete finished deliveries, then alerts left without any, older than OUTBOX_KEEP.

        Pending deliveries are never pruned (a restart still owes them), nor their alerts.
        """
        cutoff = stamp(now - OUTBOX_KEEP)
        with self.db.atomic():
            deliveries = self.db.execute(
                "DELETE FROM deliveries WHERE status != 'pending' AND created_at < ?", (cutoff,)
            ).rowcount
            alerts = self.db.execute(
                "DELETE FROM alerts WHERE created_at < ? AND NOT EXISTS "
                "(SELECT 1 FROM deliveries WHERE deliveries.alert_id = alerts.id)",
                (cutoff,),
            ).rowcount
        return {"deliveries": deliveries, "alerts": alerts}
