"""The bot's SQLite store: subscriptions, the alert outbox and log, liquidation events, figures.

Only this package talks to SQLite, and rows leave it as validated pydantic models. One module per
concern: `schema` (tables, migrations), `lock` (one running bot per database), `subscriptions`,
`outbox` (alerts and deliveries), `history` (the core's History), `meta`, `faults` (a full
disk); `database.Store` opens the file and composes them.
"""

from bot.store.database import DEFAULT_DB_PATH, DatabaseFault, Store
from bot.store.faults import StorageFault, StorageFaults, StorageFull, is_full
from bot.store.history import FIGURES_KEEP, LIQUIDATIONS_KEEP, SqliteHistory
from bot.store.lock import AlreadyRunning, InstanceLock
from bot.store.meta import Meta
from bot.store.outbox import (
    OUTBOX_KEEP,
    Alert,
    AlertChart,
    AlertKind,
    AlertSummary,
    Delivery,
    DeliveryStatus,
    Outbox,
)
from bot.store.rows import Row
from bot.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from bot.store.subscriptions import (
    MIN_DRIVERS_HIGHEST,
    MIN_DRIVERS_LOWEST,
    Platform,
    Subscription,
    Subscriptions,
)

__all__ = [
    "DEFAULT_DB_PATH",
    "FIGURES_KEEP",
    "LIQUIDATIONS_KEEP",
    "MIGRATIONS",
    "MIN_DRIVERS_HIGHEST",
    "MIN_DRIVERS_LOWEST",
    "OUTBOX_KEEP",
    "SCHEMA_VERSION",
    "Alert",
    "AlertChart",
    "AlertKind",
    "AlertSummary",
    "AlreadyRunning",
    "DatabaseFault",
    "Delivery",
    "DeliveryStatus",
    "InstanceLock",
    "Meta",
    "Outbox",
    "Platform",
    "Row",
    "SqliteHistory",
    "StorageFault",
    "StorageFaults",
    "StorageFull",
    "Store",
    "Subscription",
    "Subscriptions",
    "is_full",
    "migrate",
    "schema_version",
]
