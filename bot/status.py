"""`whydown status`: what the database says about the running bot, read without the instance lock
and never written; and the record of each stream's state that the running bot leaves for it."""

from __future__ import annotations

import json
import sqlite3

from bot.config import Settings
from bot.store import SCHEMA_VERSION, DatabaseFault, Store
from explainers.streams import StreamStatus


def stream_status_json(status: StreamStatus) -> dict[str, object]:
    """A stream's state as the refresh records it for `whydown status`."""
    return {
        "venue": status.venue,
        "coverage": status.coverage,
        "state": status.state,
        "reason": status.reason,
        "connected_since": status.connected_since.isoformat() if status.connected_since else None,
        "last_event_at": status.last_event_at.isoformat() if status.last_event_at else None,
        "events_total": status.events_total,
        "coins": list(status.coins),
        "skipped": list(status.skipped),
    }


def status_report(settings: Settings) -> str:
    """`whydown status`: read the database without the instance lock, and never write to it.
    Raises DatabaseFault for a database that cannot be read."""
    if not settings.database.exists():
        return f"No database at {settings.database} yet: `whydown run` creates it."
    try:
        return _status_of(settings)
    except sqlite3.DatabaseError as err:  # damage found past the file's first pages
        raise DatabaseFault(settings.database, err) from err


def _status_of(settings: Settings) -> str:
    with Store(settings.database, read_only=True) as store:
        version = store.schema_version
        if version != SCHEMA_VERSION:
            # its tables are not the ones this code reads; migrating is `whydown run`'s job
            return _schema_mismatch(settings, version)
        counts = store.subscription_counts()
        last_refresh = store.get_meta("last_refresh")
        sources = json.loads(store.get_meta("sources") or "[]")
        streams = json.loads(store.get_meta("streams") or "[]")
        alerts = store.recent_alerts(1)
    lines = [
        "Subscriptions: "
        + (", ".join(f"{platform} {n}" for platform, n in counts.items()) or "none"),
        f"Last refresh: {last_refresh or 'never'}",
    ]
    if sources:
        lines.append("Sources at the last refresh:")
        for s in sources:
            if s["state"] == "disabled":
                continue
            note = f" ({s['reason']})" if s.get("reason") else ""
            lines.append(f"  {s['label']:<28} {s['state']}{note}")
    if streams:
        lines.append("Liquidation streams at the last refresh:")
        for st in streams:
            note = f" ({st['reason']})" if st.get("reason") else ""
            lines.append(
                f"  {st['venue']:<10} {st['state']}{note}, {st['coverage']}, "
                f"{st['events_total']} events, last {st['last_event_at'] or 'none yet'}"
            )
            if st.get("skipped"):
                lines.append(f"  {'':<10} not streamed: {'; '.join(st['skipped'])}")
    if alerts:
        a = alerts[0]
        lines.append(
            f"Last alert: {a.created_at:%Y-%m-%d %H:%M} UTC, {a.driver_count} drivers "
            f"({', '.join(a.drivers)}), market {a.market_change_24h:+.1f}% in 24h"
            if a.market_change_24h is not None
            else f"Last alert: {a.created_at:%Y-%m-%d %H:%M} UTC, {a.driver_count} drivers"
        )
    else:
        lines.append("Last alert: none")
    return "\n".join(lines)


def _schema_mismatch(settings: Settings, version: int) -> str:
    """What status says about a database whose schema this whydown does not read."""
    where = f"The database {settings.database} is at schema v{version}"
    if version > SCHEMA_VERSION:
        return (
            f"{where}, newer than this whydown (v{SCHEMA_VERSION}): "
            "upgrade whydown to read its status."
        )
    return (
        f"{where}, older than this whydown (v{SCHEMA_VERSION}): "
        "`whydown run` migrates it; status leaves it as it is."
    )
