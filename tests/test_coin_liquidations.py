"""/why COIN shows the coin's own streamed liquidations when whydown tracks them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from bot.store import Store
from explainers import render
from explainers.history import History, MemoryHistory
from explainers.models import Liquidation, LiquidationVenue, Snapshot
from explainers.service import Explainer
from explainers.settings import Thresholds
from tests import factories as f

NOW = f.NOW  # 14:00 UTC


class _Collector:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    async def collect(self) -> Snapshot:
        return self.snapshot


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "whydown.db") as opened:
        yield opened


@pytest.fixture(params=["memory", "sqlite"])
def history(request: pytest.FixtureRequest, store: Store) -> History:
    return MemoryHistory() if request.param == "memory" else store.history


def event(minutes_ago: float, usd: float, side: str, exchange: str, instrument: str) -> Liquidation:
    return Liquidation(
        exchange=exchange,
        instrument=instrument,
        position_side=side,
        price=150.0,
        size=usd / 150.0,
        usd=usd,
        ts=NOW - timedelta(minutes=minutes_ago),
    )


def stream_sol(history: History) -> None:
    """SOL streamed on request (kept aside from the market sums), and another coin."""
    history.add_streamed_liquidations(
        [
            event(10, 4.2e6, "long", "Bybit", "SOLUSDT"),
            event(20, 0.3e6, "short", "OKX", "SOL-USDT-SWAP"),
            event(180, 5e6, "long", "Binance", "SOLUSDT"),
            event(5, 7e6, "long", "Bybit", "DOGEUSDT"),
        ],
        market=False,
    )


def venues(since: Sequence[object]) -> list[LiquidationVenue]:
    return [
        LiquidationVenue(exchange="Bybit", mode="all", tracked_since=since[0]),  # type: ignore[arg-type]
        LiquidationVenue(exchange="OKX", mode="sampled", tracked_since=since[1]),  # type: ignore[arg-type]
        LiquidationVenue(exchange="Binance", mode="sampled", tracked_since=since[2]),  # type: ignore[arg-type]
    ]


def explainer(history: History, coin_venues: object = None) -> Explainer:
    return Explainer(
        _Collector(f.snapshot(markets=f.markets())),  # type: ignore[arg-type]
        Thresholds(),
        history=history,
        clock=lambda: NOW,
        coin_venues=coin_venues,  # type: ignore[arg-type]
    )


async def test_a_coin_tracked_inside_the_hour_shows_its_1h_sums_and_since_when(
    history: History,
) -> None:
    stream_sol(history)
    began = NOW - timedelta(minutes=58)
    e = explainer(history, lambda coin: venues([began] * 3) if coin == "SOL" else None)
    answer = e.explain_from(await e.refresh(), "sol")
    line = (
        "SOL liquidations, 1h: $4.20M longs, $300,000 shorts "
        "(Bybit all; OKX, Binance sampled; streamed since 13:02 UTC)."
    )
    assert line in render.text(answer)
    assert line in render.text(answer, full=False)
    assert line in render.telegram_html(answer)


async def test_a_coin_tracked_for_days_shows_1h_and_24h(history: History) -> None:
    stream_sol(history)
    # OKX is down now: it is not named, and the earliest venue's start makes the window
    e = explainer(
        history,
        lambda coin: venues([NOW - timedelta(days=2), None, NOW - timedelta(hours=30)]),
    )
    answer = render.text(e.explain_from(await e.refresh(), "SOL"))
    assert (
        "SOL liquidations, 1h: $4.20M longs, $300,000 shorts; "
        "24h: $9.20M longs, $300,000 shorts (Bybit all; Binance sampled)."
    ) in answer


async def test_a_coin_tracked_since_yesterday_names_the_day(history: History) -> None:
    stream_sol(history)
    e = explainer(history, lambda coin: venues([NOW - timedelta(hours=16)] * 3))
    answer = render.text(e.explain_from(await e.refresh(), "SOL"))
    assert (
        "SOL liquidations, 1h: $4.20M longs, $300,000 shorts; 24h: $9.20M longs, "
        "$300,000 shorts (Bybit all; OKX, Binance sampled; streamed since 19 Nov 22:00 UTC)."
    ) in answer


@pytest.mark.parametrize("tracked", [[], venues([None, None, None])])
async def test_a_coin_not_tracked_yet_says_so_and_shows_no_zero(
    history: History, tracked: list[LiquidationVenue]
) -> None:
    stream_sol(history)  # stored events from an earlier tracking do not count
    e = explainer(history, lambda coin: tracked)
    answer = e.explain_from(await e.refresh(), "SOL")
    text = render.text(answer)
    assert "SOL liquidations: not tracked yet." in text
    assert "SOL liquidations, 1h" not in text and "$0 longs" not in text
    assert answer.coin is not None and answer.coin.liquidations is not None
    assert answer.coin.liquidations.long_1h is None


async def test_without_streams_a_coin_says_nothing_of_its_liquidations(history: History) -> None:
    stream_sol(history)
    for e in (explainer(history), explainer(history, lambda coin: None)):
        answer = e.explain_from(await e.refresh(), "SOL")
        assert answer.coin is not None and answer.coin.liquidations is None
        assert "SOL liquidations" not in render.text(answer)


async def test_the_market_answer_is_unchanged(history: History) -> None:
    stream_sol(history)
    plain = explainer(MemoryHistory())
    streamed = explainer(history, lambda coin: venues([NOW - timedelta(days=2)] * 3))
    before = plain.explain_from(await plain.refresh(), None)
    refreshed = await streamed.refresh()
    after = streamed.explain_from(refreshed, None)
    assert after is refreshed.explanation
    assert render.text(after) == render.text(before)
    assert "liquidations, 1h" not in render.text(after)
