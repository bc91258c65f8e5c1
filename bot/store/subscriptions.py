"""Subscriptions: the chats, channels and forum topics that receive alerts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import sqlite_utils
from pydantic import Field, SecretStr

from bot.store.rows import Row, StoredTime, stamp

MIN_DRIVERS_LOWEST = 2
MIN_DRIVERS_HIGHEST = 6

#: "webhook": an HTTP(S) endpoint; its URL is the chat id, and it may have a signing secret
Platform = Literal["telegram", "discord", "webhook"]

#: one target: a topic of None is the chat itself (``topic_id IS ?`` matches NULL too)
_TARGET = "platform = ? AND chat_id = ? AND topic_id IS ?"


class Subscription(Row):
    """One chat, channel or forum topic that receives alerts."""

    id: int
    platform: Platform
    chat_id: str
    topic_id: int | None = None  # Telegram forum topic (message_thread_id)
    min_drivers: int = Field(ge=MIN_DRIVERS_LOWEST, le=MIN_DRIVERS_HIGHEST)
    cooldown_s: int | None = None  # None: the engine's default
    subscribed_by: str
    subscribed_at: StoredTime
    active: bool
    consecutive_failures: int
    last_alert_at: StoredTime | None = None
    last_alert_drivers: int | None = None
    last_alert_drop: float | None = None
    alerting: bool = False  # alerted, and the condition has not clearly eased since
    secret: SecretStr | None = None  # a webhook's signing secret; prints as "**********"


class Subscriptions:
    """The ``subscriptions`` table."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.table = db.table("subscriptions")

    def subscribe(
        self,
        platform: Platform,
        chat_id: str,
        topic_id: int | None,
        min_drivers: int,
        subscribed_by: str,
        cooldown_s: int | None = None,
        *,
        at: datetime | None = None,
        secret: str | None = None,
    ) -> Subscription:
        """Subscribe a target, or update and reactivate its existing subscription (a webhook's
        `secret` is replaced by the one given, None included)."""
        if not MIN_DRIVERS_LOWEST <= min_drivers <= MIN_DRIVERS_HIGHEST:
            raise ValueError(
                f"min_drivers must be {MIN_DRIVERS_LOWEST} to {MIN_DRIVERS_HIGHEST}, "
                f"not {min_drivers}"
            )
        now = stamp(at or datetime.now(UTC))
        settings: dict[str, Any] = {"min_drivers": min_drivers, "cooldown_s": cooldown_s}
        if platform == "webhook":
            settings["secret"] = secret
        with self.db.atomic():
            existing = self.get(platform, chat_id, topic_id)
            if existing is None:
                target = {"platform": platform, "chat_id": chat_id, "topic_id": topic_id}
                fresh = {"subscribed_by": subscribed_by, "subscribed_at": now}
                self.table.insert(target | settings | fresh)
            elif existing.active:
                self.table.update(existing.id, settings)
            else:
                # a chat that comes back starts afresh: new subscriber, no failure history
                afresh = {"subscribed_by": subscribed_by, "subscribed_at": now, "active": 1}
                self.table.update(existing.id, settings | afresh | {"consecutive_failures": 0})
            subscription = self.get(platform, chat_id, topic_id)
        assert subscription is not None
        return subscription

    def deactivate(self, subscription_id: int) -> bool:
        """Deactivate a subscription by id; False when there was no active one."""
        cursor = self.db.execute(
            "UPDATE subscriptions SET active = 0 WHERE id = ? AND active = 1", (subscription_id,)
        )
        return cursor.rowcount > 0

    def unsubscribe(self, platform: Platform, chat_id: str, topic_id: int | None) -> bool:
        """Deactivate a subscription; False when there was no active one."""
        cursor = self.db.execute(
            f"UPDATE subscriptions SET active = 0 WHERE {_TARGET} AND active = 1",
            (platform, chat_id, topic_id),
        )
        return cursor.rowcount > 0

    def get(self, platform: Platform, chat_id: str, topic_id: int | None) -> Subscription | None:
        """The subscription of one target, active or not."""
        rows = self.table.rows_where(_TARGET, (platform, chat_id, topic_id), limit=1)
        return next((Subscription.model_validate(row) for row in rows), None)

    def by_id(self, subscription_id: int) -> Subscription | None:
        """A subscription by id."""
        rows = self.table.rows_where("id = ?", (subscription_id,))
        return next((Subscription.model_validate(row) for row in rows), None)

    def by_id_where(self, where: str, where_args: Sequence[Any] = ()) -> dict[int, Subscription]:
        """The subscriptions matching an SQL condition, by id."""
        rows = self.table.rows_where(where, where_args)
        return {row["id"]: Subscription.model_validate(row) for row in rows}

    def batch(self, after_id: int, limit: int, active_only: bool = True) -> list[Subscription]:
        """Up to `limit` subscriptions with ids above `after_id`, in id order: a large audience
        is read a batch at a time."""
        rows = self.table.rows_where(
            "id > ? AND (? = 0 OR active = 1)",
            (after_id, int(active_only)),
            order_by="id",
            limit=limit,
        )
        return [Subscription.model_validate(row) for row in rows]

    def find(
        self, active_only: bool = True, platform: Platform | None = None
    ) -> list[Subscription]:
        """Subscriptions in id order."""
        rows = self.table.rows_where(
            "(? = 0 OR active = 1) AND (? IS NULL OR platform = ?)",
            (int(active_only), platform, platform),
            order_by="id",
        )
        return [Subscription.model_validate(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Active subscriptions per platform."""
        rows = self.db.execute(
            "SELECT platform, count(*) FROM subscriptions WHERE active = 1 GROUP BY platform"
        )
        return dict(rows.fetchall())

    def migrate_chat(self, platform: Platform, old_chat_id: str, new_chat_id: str) -> int:
        """Move a chat's subscriptions to its new id (Telegram group -> supergroup); return how many."""
        moved = 0
        with self.db.atomic():
            old = self.table.rows_where("platform = ? AND chat_id = ?", (platform, old_chat_id))
            for row in list(old):
                if self.get(platform, new_chat_id, row["topic_id"]) is not None:
                    # the new chat subscribed on its own already; that row wins
                    self.table.update(row["id"], {"active": 0})
                    continue
                self.table.update(row["id"], {"chat_id": new_chat_id})
                moved += 1
        return moved

    def mark_alerted(
        self, subscription_ids: Iterable[int], at: datetime, drivers: int, drop: float | None
    ) -> None:
        """Remember each subscription's latest alert, for its cooldown and escalation."""
        with self.db.atomic():
            self.db.conn.executemany(
                "UPDATE subscriptions SET last_alert_at = ?, last_alert_drivers = ?, "
                "last_alert_drop = ?, alerting = 1 WHERE id = ?",
                [(stamp(at), drivers, drop, sid) for sid in subscription_ids],
            )

    def clear_alerting(self, subscription_ids: Iterable[int]) -> None:
        """Note that these subscriptions' alert condition has eased."""
        with self.db.atomic():
            self.db.conn.executemany(
                "UPDATE subscriptions SET alerting = 0 WHERE id = ?",
                [(sid,) for sid in subscription_ids],
            )

    def note_success(self, subscription_id: int) -> None:
        """A send reached the target: it is evidently alive again."""
        self.db.execute(
            "UPDATE subscriptions SET consecutive_failures = 0 "
            "WHERE id = ? AND consecutive_failures != 0",
            (subscription_id,),
        )

    def note_permanent_failure(self, subscription_id: int, deactivate_after: int) -> bool:
        """Count a permanent failure; deactivate at `deactivate_after` in a row. True if deactivated."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1 "
                "WHERE id = ?",
                (subscription_id,),
            )
            cursor = self.db.execute(
                "UPDATE subscriptions SET active = 0 "
                "WHERE id = ? AND active = 1 AND consecutive_failures >= ?",
                (subscription_id, deactivate_after),
            )
        return cursor.rowcount > 0
