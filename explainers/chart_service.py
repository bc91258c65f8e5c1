"""Charts for the front-ends: data from the explainer's refresh and history, prices through the
sources, drawing in a worker thread, one render per refresh and chart.

A chart is cached under (data time, kind, coin id) and drawn from that very refresh: resending it
costs nothing until the next refresh.
Concurrent requests for the same chart share one render (single flight). Prices are fetched through
the collector's `SourceRunner`, so they get the same timeout, retry, Retry-After cap and back-off
from sources that refuse us. Price sources that fail leave the price panel empty ("no data"), they
never fail the chart; a drawing failure raises `ChartUnavailable`, and the front-end still sends
the text answer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from explainers import formatting as fmt
from explainers.chart_window import WINDOW
from explainers.errors import ChartUnavailable
from explainers.explain import coin_by_query
from explainers.history import History
from explainers.models import Explanation, PriceSeries
from explainers.service import Explainer, Refreshed
from explainers.settings import SourceSettings
from explainers.source_runner import Clock, SourceCall, utcnow
from explainers.sources import coinbase, coingecko

log = logging.getLogger(__name__)

#: coins Coinbase can stand in for when CoinGecko's price history fails
COINBASE_PRODUCTS = {"bitcoin": "BTC-USD", "ethereum": "ETH-USD"}


@dataclass(frozen=True)
class Chart:
    """A rendered chart: PNG bytes, a short plain-text caption, and the data time it shows."""

    png: bytes
    caption: str
    data_time: datetime
    filename: str = "whydown-chart.png"


CacheKey = tuple[datetime, str, str]
MakeChart = Callable[[], Coroutine[Any, Any, Chart]]


def driver_marks(
    history: History, keys: list[str], now: datetime, window: timedelta = WINDOW
) -> dict[str, datetime]:
    """For each driver in `keys`, when its current firing streak began within the window (from
    the states stored after each refresh); drivers with no stored streak are left out."""
    marks: dict[str, datetime] = {}
    for key in keys:
        series = history.figures(f"driver_{key}", now - window)
        start: datetime | None = None
        for at, value in series:
            start = (start or at) if value >= 1.0 else None
        if start is not None:
            marks[key] = start
    return marks


class ChartMaker:
    """Makes the /chart pictures from the explainer's current refresh."""

    def __init__(
        self,
        explainer: Explainer,
        cfg: SourceSettings,
        clock: Clock = utcnow,
    ) -> None:
        self.explainer = explainer
        self.cfg = cfg
        self.clock = clock
        #: renders actually drawn (not served from the cache), for tests and benchmarks
        self.renders = 0
        self._cache: dict[CacheKey, Chart] = {}
        self._inflight: dict[CacheKey, asyncio.Task[Chart]] = {}
        #: BTC's price series of one data time: every sell-off chart of a refresh shows it
        self._btc: dict[datetime, asyncio.Task[PriceSeries | None]] = {}
        #: the collector's client and runner: prices come over the one HTTP client, and a source
        #: that refused the refresh is left alone here too
        self.client = explainer.collector.client
        self.runner = explainer.collector.runner

    async def sell_off(self, coin: str | None = None) -> Chart:
        """The sell-off chart of the current refresh, for /why or /why COIN.

        Raises UnknownCoin or CoinDataUnavailable for a coin /why would refuse too, and
        ChartUnavailable when the chart cannot be drawn.
        """
        refreshed = await self.explainer.current()
        # keyed on the coin itself, so "sol", "SOL" and "solana" share one render
        coin_id = coin_by_query(refreshed.snapshot, coin).id if coin else ""
        key = (refreshed.explanation.data_time, "sell_off", coin_id)
        return await self._single_flight(key, lambda: self._make_sell_off(refreshed, coin_id))

    async def etf(self) -> Chart:
        """The ETF-flows chart of the current refresh; ChartUnavailable when no flows were read."""
        refreshed = await self.explainer.current()
        key = (refreshed.explanation.data_time, "etf", "")
        return await self._single_flight(key, lambda: self._make_etf(refreshed))

    async def for_alert(self, explanation: Explanation, timeout_s: float = 20.0) -> Chart | None:
        """The market sell-off chart of the data an alert was built from, or None: when newer
        data has replaced it (a chart of other figures would contradict the text), when it
        cannot be drawn, or when drawing takes longer than `timeout_s`. Never refreshes."""
        latest = self.explainer.latest
        data_time = explanation.data_time
        if latest is None or latest.explanation.data_time != data_time:
            log.info("chart for alert: the data of %s is no longer the latest", data_time)
            return None
        key = (data_time, "sell_off", "")
        try:
            async with asyncio.timeout(timeout_s):
                chart = await self._single_flight(key, lambda: self._make_sell_off(latest, ""))
        except ChartUnavailable as err:
            log.warning("chart for alert of %s: %s", data_time, err)
            return None
        except TimeoutError:
            # the render goes on (shielded) and is cached for the next request
            log.warning("chart for alert of %s: not drawn within %g s", data_time, timeout_s)
            return None
        return chart if chart.data_time == data_time else None

    async def _single_flight(self, key: CacheKey, make: MakeChart) -> Chart:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        task = self._inflight.get(key)
        if task is None or task.done():
            task = asyncio.create_task(make())
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._settle, key))
        # shield: one waiter giving up must not cancel the render the others wait for
        return await asyncio.shield(task)

    def _settle(self, key: CacheKey, task: asyncio.Task[Chart]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if task.cancelled() or task.exception() is not None:
            return  # a failure is not cached: the next request tries again
        # one refresh's charts at a time: a newer data time makes the older ones worthless
        for old in [k for k in self._cache if k[0] != key[0]]:
            del self._cache[old]
        self._cache[key] = task.result()

    async def _make_sell_off(self, refreshed: Refreshed, coin_id: str) -> Chart:
        """Draw from the refresh the chart is cached under, never from a newer one."""
        explanation = self.explainer.explain_from(refreshed, coin_id)
        now = explanation.data_time
        coin = explanation.coin.id if explanation.coin is not None else None
        btc_task = self._btc_prices(now)
        if coin is not None and coin != "bitcoin":
            prices, coin_prices = await asyncio.gather(btc_task, self._prices(coin, now))
        else:
            prices, coin_prices = await btc_task, None
        history = self.explainer.history
        liquidations = history.liquidation_hours(now - WINDOW)
        marks = driver_marks(history, [d.key for d in explanation.fired], now)
        png = await self._render(
            "sell-off",
            "sell_off_chart",
            explanation,
            prices,
            coin_prices,
            liquidations,
            marks,
            now,
        )
        name = explanation.coin.symbol.lower() if explanation.coin else "market"
        return Chart(
            png=png,
            caption=sell_off_caption(explanation),
            data_time=now,
            filename=f"whydown-{name}-{now:%Y%m%d-%H%M}.png",
        )

    async def _make_etf(self, refreshed: Refreshed) -> Chart:
        flows = refreshed.snapshot.etf
        now = refreshed.explanation.data_time
        if flows is None or not flows.days:
            log.warning("chart etf: no ETF flows were read this refresh")
            raise ChartUnavailable("no ETF flow data was read this time")
        png = await self._render("etf", "etf_chart", flows, now, self.explainer.replay)
        latest = next((d for d in reversed(flows.days) if d.total_musd is not None), None)
        caption = "US spot-Bitcoin-ETF net flows, last 15 trading days"
        if latest is not None:
            caption += f"; latest {fmt.musd(latest.total_musd)} on {fmt.day(latest.day)}"
        caption += f" ({flows.source})."
        return Chart(
            png=png,
            caption=_replay_prefix(refreshed.explanation) + caption,
            data_time=now,
            filename=f"whydown-etf-{now:%Y%m%d-%H%M}.png",
        )

    async def _render(self, kind: str, draw: str, *args: object) -> bytes:
        """Draw in a worker thread so the event loop keeps serving; any failure is logged and
        becomes ChartUnavailable."""
        try:
            png = await asyncio.to_thread(_draw, draw, *args)
        except Exception as err:
            log.exception("chart %s could not be drawn", kind)
            raise ChartUnavailable("the chart could not be drawn") from err
        self.renders += 1
        return png

    async def _btc_prices(self, now: datetime) -> PriceSeries | None:
        """BTC's last 24 h, fetched once per data time and shared by every chart of it; a fetch
        that found no source is not kept, so the next chart asks again."""
        task = self._btc.get(now)
        if task is None or (task.done() and (task.cancelled() or task.result() is None)):
            task = asyncio.create_task(self._prices("bitcoin", now))
            self._btc = {now: task}  # an older data time's series is of no further use
        # shield: one chart giving up must not cancel the fetch the others share
        return await asyncio.shield(task)

    async def _prices(self, coin_id: str, now: datetime) -> PriceSeries | None:
        """The coin's last 24 h: CoinGecko, else Coinbase hourly candles for BTC and ETH, else
        None (the chart shows "no data")."""
        client, cfg = self.client, self.cfg
        chain: list[SourceCall[PriceSeries]] = [
            SourceCall(
                "coingecko_market_chart",
                "CoinGecko price history",
                lambda: coingecko.fetch_market_chart(client, cfg, coin_id),
            )
        ]
        product = COINBASE_PRODUCTS.get(coin_id)
        if product is not None:
            chain.append(
                SourceCall(
                    "coinbase_hourly",
                    "Coinbase hourly candles",
                    lambda: coinbase.fetch_hourly(client, cfg, product, now=now),
                )
            )
        prices, statuses = await self.runner.first(chain, self.clock())
        if prices is None:
            log.warning(
                "chart prices %s: no source answered (%s)",
                coin_id,
                "; ".join(f"{s.label}: {s.reason}" for s in statuses),
            )
        return prices


def _replay_prefix(explanation: Explanation) -> str:
    replay = explanation.replay
    return f"{fmt.replay_label(replay)}. " if replay is not None else ""


def sell_off_caption(explanation: Explanation) -> str:
    """One or two plain sentences: the move, how many drivers fire, the data time."""
    btc = explanation.move("BTC")
    parts = []
    if explanation.coin is not None:
        c = explanation.coin
        parts.append(f"{c.name} ({c.symbol.upper()}) {fmt.pct(c.move.change_24h)} in 24h")
    if btc is not None and btc.change_24h is not None:
        parts.append(f"BTC {fmt.pct(btc.change_24h)} in 24h")
    move = ", ".join(parts) or "The market's move is unknown"
    fired = len(explanation.fired)
    return (
        f"{_replay_prefix(explanation)}{move}; {fired} of {len(explanation.drivers)} "
        f"sell-off drivers firing. Data as of {fmt.when_full(explanation.data_time)}."
    )


def _draw(name: str, *args: object) -> bytes:
    """Call one of explainers.charts' drawing functions. matplotlib is imported here, on first
    use: a bot that never draws a chart never loads it (about 36 MB with numpy)."""
    from explainers import charts

    draw: Callable[..., bytes] = getattr(charts, name)
    return draw(*args)
