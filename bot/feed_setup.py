"""How `whydown run` builds its liquidation streams from the settings: which venues (none but
configured ones in a replay), which coins make the market totals, and where an open gap's start
is kept across restarts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.config import Settings, VenueStream
from bot.live import LiquidationFeed, StreamHistory
from bot.store import Store
from explainers.streams import Venue

log = logging.getLogger("whydown.runner")


class MetaGapMemory:
    """Keeps in the store's meta the start of each venue's stream gap still open at exit."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open_gap(self, exchange: str) -> datetime | None:
        value = self.store.get_meta(f"stream_open_gap:{exchange}")
        return datetime.fromisoformat(value) if value else None

    def set_open_gap(self, exchange: str, start: datetime | None) -> None:
        self.store.set_meta(f"stream_open_gap:{exchange}", start.isoformat() if start else "")


def feed_for(
    settings: Settings, store: Store, *, demo: bool, clock: Callable[[], datetime]
) -> LiquidationFeed | None:
    """The liquidation streams of `whydown run`: every enabled venue, except in a demo replay,
    where only venues given a URL are read (a replay never reaches the real venues)."""
    streams = settings.streams
    if not streams.enabled:
        return None
    configured: dict[Venue, VenueStream] = {
        "bybit": streams.bybit,
        "okx": streams.okx,
        "binance": streams.binance,
    }
    venues: dict[Venue, str | None] = {
        venue: cfg.url
        for venue, cfg in configured.items()
        if cfg.enabled and (not demo or cfg.configured_url())
    }
    if not venues:
        return None
    history = store.history
    if not isinstance(history, StreamHistory):
        log.warning("this store cannot keep streamed liquidations: the streams stay off")
        return None
    return LiquidationFeed(
        history,
        venues=venues,
        coins=streams.coins,
        market_coins=market_coins(settings),
        thresholds=settings.thresholds,
        debounce_s=streams.alert_debounce_s,
        clock=clock,
        gap_memory=MetaGapMemory(store),
        extra_coins_max=streams.extra_coins_max,
    )


def market_coins(settings: Settings) -> list[str]:
    """The coins whose liquidations make the market totals: the streamed ones and the OKX
    families polled over REST ("BTC-USDT" is BTC); a coin streamed because a user asked about
    it is not one of them."""
    families = [family.split("-")[0] for family in settings.sources.liquidation_families]
    return list(dict.fromkeys(c.upper() for c in [*settings.streams.coins, *families]))
