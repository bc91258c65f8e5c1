"""Open interest per coin across venues, in USD, and their sum with each venue kept as evidence.

Each venue's fetcher (`okx.fetch_venue_open_interest`, `bybit...`, `binance...`,
`hyperliquid...`) answers one `VenueOpenInterest` per coin; `sum_by_coin` adds them up.
"""

from __future__ import annotations

from collections.abc import Iterable

from explainers.models import CoinOpenInterest, VenueOpenInterest

__all__ = ["CoinOpenInterest", "VenueOpenInterest", "sum_by_coin"]


def sum_by_coin(items: Iterable[VenueOpenInterest]) -> dict[str, CoinOpenInterest]:
    """Sum venues per coin; a venue that answered twice for a coin counts once (its latest)."""
    latest: dict[tuple[str, str], VenueOpenInterest] = {}
    for item in items:
        key = (item.coin.upper(), item.venue)
        if key not in latest or item.at > latest[key].at:
            latest[key] = item
    by_coin: dict[str, list[VenueOpenInterest]] = {}
    for (coin, _), item in sorted(latest.items()):
        by_coin.setdefault(coin, []).append(item)
    return {
        coin: CoinOpenInterest(
            coin=coin,
            usd=sum(v.usd for v in venues),
            at=min(v.at for v in venues),
            venues=sorted(venues, key=lambda v: v.usd, reverse=True),
        )
        for coin, venues in by_coin.items()
    }
