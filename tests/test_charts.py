"""Charts: price history from the sources, driver states over time, the drawn images, the chart
service's cache and failures, and the command line.

`coingecko_market_chart_btc_live.json` is a real CoinGecko market_chart body (BTC, 8 Aug 2022,
hourly points) as recorded in a public project's HTTP test; `coinbase_exchange_candles.json` is
a real Coinbase Exchange candles body (ccxt's static responses).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import struct
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from pydantic import SecretStr

from bot.cli import main
from bot.config import Settings
from explainers import charts
from explainers.chart_service import ChartMaker, driver_marks
from explainers.errors import BadResponse, ChartUnavailable, RateLimited, UnknownCoin
from explainers.history import MemoryHistory
from explainers.models import EtfDay, EtfFlows, LiquidationHour, Replay
from explainers.replay import Scenario
from explainers.service import Refreshed
from explainers.settings import SourceSettings
from explainers.sources import coinbase, coingecko
from tests.replay_helpers import Upstream

FIXTURES = Path(__file__).parent / "fixtures" / "api"
CFG = SourceSettings()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which always comes first."""
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def assert_drawn(png: bytes) -> None:
    """The expected size, and a real picture: many distinct colours, not one flat fill."""
    from PIL import Image

    assert png_size(png) == (charts.WIDTH_PX, charts.HEIGHT_PX)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50
    # no single colour covers nearly everything (a blank card would)
    assert max(count for count, _ in colours) < 0.8 * image.width * image.height


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def server_error_for(path_end: str) -> Any:
    def override(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(500) if request.url.path.endswith(path_end) else None

    return override


# --- price history through the sources ------------------------------------------------------


def test_market_chart_real_body_gives_points_oldest_first() -> None:
    series = coingecko.parse_market_chart(
        fixture("coingecko_market_chart_btc_live.json"), "bitcoin"
    )
    assert series.source == "CoinGecko" and series.symbol == "bitcoin"
    assert len(series.points) == 6
    assert series.points[0].ts == datetime(2022, 8, 8, 16, 0, 6, 971000, tzinfo=UTC)
    assert series.points[0].price == pytest.approx(23988.969591535944)
    assert series.points[-1].price == pytest.approx(24077.6213212528)
    assert series.as_of == series.points[-1].ts
    assert [p.ts for p in series.points] == sorted(p.ts for p in series.points)


def test_market_chart_null_price_is_a_gap_not_zero() -> None:
    body = {"prices": [[1722844200000, 53000.5], [1722843900000, None], [1722843600000, 53500]]}
    series = coingecko.parse_market_chart(body, "bitcoin")
    assert [p.price for p in series.points] == [53500, 53000.5]
    assert all(p.price > 0 for p in series.points)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"market_caps": []},
        {"prices": []},
        {"prices": [[1722844200000, None]]},
        {"prices": [[1722844200000]]},
        {"prices": [["not a time", 1.0]]},
    ],
)
def test_market_chart_unusable_bodies_are_bad_responses(body: Any) -> None:
    with pytest.raises(BadResponse):
        coingecko.parse_market_chart(body, "bitcoin")


def test_market_chart_429_body_is_rate_limited() -> None:
    with pytest.raises(RateLimited):
        coingecko.parse_market_chart(fixture("coingecko_error_429.json"), "bitcoin")


async def test_fetch_market_chart_asks_for_one_day_in_usd_with_the_key_header() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, content=(FIXTURES / "coingecko_market_chart_btc_live.json").read_bytes()
        )

    cfg = SourceSettings(coingecko_api_key=SecretStr("demo-key"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        series = await coingecko.fetch_market_chart(client, cfg, "bitcoin")
    assert len(series.points) == 6
    [request] = seen
    assert request.url.path == "/api/v3/coins/bitcoin/market_chart"
    assert dict(request.url.params) == {"vs_currency": "usd", "days": "1"}
    assert request.headers["x-cg-demo-api-key"] == "demo-key"


async def test_fetch_market_chart_refuses_an_id_that_is_not_one() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500))) as c:
        with pytest.raises(ValueError):
            await coingecko.fetch_market_chart(c, CFG, "../global")


def test_coinbase_hourly_real_body() -> None:
    now = datetime(2024, 3, 13, 11, 40, tzinfo=UTC)
    series = coinbase.parse_hourly(fixture("coinbase_exchange_candles.json"), "BTC-USD", now)
    # the 11:00 hour is still in progress at 11:40: its close is the latest price, stamped now
    assert [(p.ts, p.price) for p in series.points] == [(now, 73370.65)]
    assert series.source == "Coinbase" and series.as_of == now


def test_coinbase_hourly_keeps_the_last_day_oldest_first() -> None:
    now = datetime(2024, 8, 5, 8, 0, tzinfo=UTC)
    start = int(now.timestamp())
    rows = [[start - 3600 * h, 1, 2, 3, 50000 + h, 9] for h in range(1, 30)]  # newest first
    series = coinbase.parse_hourly(rows, "BTC-USD", now)
    assert len(series.points) == 24
    assert series.points[-1].ts == now and series.points[-1].price == 50001
    assert series.points[0].ts == now - timedelta(hours=23)
    with pytest.raises(BadResponse):
        coinbase.parse_hourly([[start, 1, 2]], "BTC-USD", now)
    with pytest.raises(BadResponse):
        coinbase.parse_hourly([], "BTC-USD", now)


async def test_fetch_hourly_asks_for_hourly_candles() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, content=(FIXTURES / "coinbase_exchange_candles.json").read_bytes()
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        await coinbase.fetch_hourly(
            client, CFG, "ETH-USD", now=datetime(2024, 3, 13, 12, tzinfo=UTC)
        )
    assert seen[0].url.path == "/products/ETH-USD/candles"
    assert seen[0].url.params["granularity"] == "3600"


async def test_demo_recording_has_the_day_of_the_sell_off() -> None:
    scenario = Scenario.load()
    async with httpx.AsyncClient(transport=scenario.transport()) as client:
        btc = await coingecko.fetch_market_chart(client, CFG, "bitcoin")
        sol = await coingecko.fetch_market_chart(client, CFG, "solana")
    assert btc.points[-1].price == 52800 and sol.points[-1].price == 122.4
    assert btc.points[-1].ts <= scenario.now
    assert scenario.now - btc.points[0].ts <= timedelta(hours=24)
    assert 60500 < btc.points[0].price < 61000
    assert 149 < sol.points[0].price < 151
    hourly = [p.price for p in btc.points[::12]]
    drops = [a - b for a, b in itertools.pairwise(hourly)]
    assert max(drops) == max(drops[-4:])  # the steepest fall comes in the last hours


# --- driver state over time -----------------------------------------------------------------


async def test_each_refresh_stores_the_state_of_every_known_driver() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    history = MemoryHistory()
    async with upstream.client(settings) as client:
        await upstream.explainer(client, settings, history).refresh()
    since = upstream.now - timedelta(minutes=1)
    assert history.figures("driver_etf", since) == [(upstream.now, 1.0)]
    assert history.figures("driver_fed", since) == [(upstream.now, 0.0)]


def test_driver_marks_are_where_the_current_streak_began() -> None:
    now = datetime(2024, 8, 5, 8, tzinfo=UTC)
    history = MemoryHistory()
    states = {"etf": [0, 0, 1, 1], "fear": [1, 0, 1, 1], "stocks": [1, 1, 0, 0], "fed": []}
    for key, values in states.items():
        for i, value in enumerate(values):
            history.add_figures(now - timedelta(hours=3 - i), {f"driver_{key}": float(value)})
    marks = driver_marks(history, ["etf", "fear", "stocks", "fed"], now)
    assert marks == {"etf": now - timedelta(hours=1), "fear": now - timedelta(hours=1)}


# --- the pictures ---------------------------------------------------------------------------


async def demo_maker(
    upstream: Upstream, client: httpx.AsyncClient, settings: Settings
) -> ChartMaker:
    return ChartMaker(upstream.explainer(client, settings), settings.sources, clock=upstream.clock)


async def test_demo_sell_off_chart() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        chart = await maker.sell_off()
        refreshed = await maker.explainer.current()
    assert_drawn(chart.png)
    assert chart.data_time == upstream.now
    assert chart.caption == (
        "Replay: Yen carry-trade unwind (5 Aug 2024). BTC -13.1% in 24h; "
        "5 of 6 sell-off drivers firing. Data as of 08:00 UTC, 5 Aug 2024."
    )
    history = maker.explainer.history
    fig = charts.sell_off_figure(
        refreshed.explanation,
        None,
        None,
        history.liquidation_hours(upstream.now - timedelta(hours=24)),
        driver_marks(history, [d.key for d in refreshed.explanation.fired], upstream.now),
        upstream.now,
    )
    words = texts(fig)
    assert "Replay: Yen carry-trade unwind (5 Aug 2024)" in words
    assert "BTC $52,800  -13.1% in 24h" in words
    assert "5 of 6 sell-off drivers firing" in words
    assert "firing from here:\nETF outflows\nInst. selling\nStocks\nLiquidations\nFear" in words
    assert words.count("FIRING") == 5 and "quiet" in words
    assert "$45.9M longs 1h" in words and "-$237.4M day" in words
    # liquidations were tracked only from 07:00: the hours before are unknown, not zero
    assert "not tracked yet" in words
    # the venue read is named, and how: the replay polls OKX's REST list
    assert any(w.startswith("Liquidations per hour, OKX (") for w in words)
    assert any("liquidations: OKX sampled (REST), tracked since 07:01 UTC" in w for w in words)
    assert any(w.startswith("Data as of 08:00 UTC, 5 Aug 2024") for w in words)


async def test_coin_chart_compares_the_coin_with_btc() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        chart = await maker.sell_off("sol")
        explanation = await maker.explainer.explain("sol")
    assert_drawn(chart.png)
    assert chart.caption.startswith(
        "Replay: Yen carry-trade unwind (5 Aug 2024). Solana (SOL) -18.2% in 24h, BTC -13.1%"
    )
    assert chart.filename == "whydown-sol-20240805-0800.png"
    assert upstream.calls["api.coingecko.com/api/v3/coins/solana/market_chart"] == 1
    fig = charts.sell_off_figure(explanation, None, None, [], {}, upstream.now)
    words = texts(fig)
    assert "BTC $52,800  -13.1% in 24h · SOL -18.2%" in words
    assert "SOL vs BTC, % change over 24 h" in words


def no_backoff() -> Settings:
    """Settings whose one retry of a failed source follows at once."""
    return Settings(_env_file=None, sources=SourceSettings(retry_backoff_s=0.0))


async def test_prices_failing_still_draw_a_chart_that_says_no_data() -> None:
    settings = no_backoff()
    upstream = Upstream()
    upstream.overrides.append(server_error_for("/market_chart"))
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        chart = await maker.sell_off("sol")
        explanation = await maker.explainer.explain("sol")
    assert_drawn(chart.png)
    # BTC fell back to Coinbase hourly candles (not recorded: 404); SOL has no fallback
    assert upstream.calls["api.exchange.coinbase.com/products/BTC-USD/candles"] >= 1
    words = texts(charts.sell_off_figure(explanation, None, None, [], {}, upstream.now))
    assert "BTC price: no data" in words
    assert "no data" in words
    assert any("prices: no source answered" in w for w in words)
    assert "not tracked yet" in words


def test_a_gap_in_prices_breaks_the_line() -> None:
    now = datetime(2024, 8, 5, 8, tzinfo=UTC)
    points = [now - timedelta(hours=h) for h in (20, 19, 18, 6, 5, 4)]
    from explainers.models import PricePoint, PriceSeries

    series = PriceSeries(
        source="test",
        as_of=now,
        symbol="bitcoin",
        points=[PricePoint(ts=t, price=50000.0) for t in points],
    )
    xs, ys = charts._series(series, now - timedelta(hours=24), now)
    assert len(xs) == 7
    assert ys[3] != ys[3]  # NaN between 18:00 and 02:00: nothing is invented in the gap


def etf_flows() -> EtfFlows:
    start = date(2024, 7, 10)
    days = [
        EtfDay(day=start + timedelta(days=i), total_musd=value)
        for i, value in enumerate([120.5, -45.0, 80.0, 10.0, -237.4] * 3 + [50.0])
    ]
    days.append(EtfDay(day=days[-1].day + timedelta(days=1), total_musd=None))
    return EtfFlows(source="Farside", as_of=datetime(2024, 8, 3, tzinfo=UTC), days=days)


def test_etf_chart_shows_fifteen_days_the_latest_labelled_and_pending_as_such() -> None:
    flows = etf_flows()
    now = datetime(2024, 8, 5, 8, tzinfo=UTC)
    assert_drawn(charts.etf_chart(flows, now))
    fig = charts.etf_figure(flows, now)
    words = texts(fig)
    assert "Latest: +$50.0M on 25 Jul 2024" in words
    assert "+$50.0M" in words  # the bar of the latest reported day carries its value
    assert words.count("not\nreported\nyet") == 1
    ax = fig.axes[0]
    assert len(ax.get_xticks()) == 15
    bars = [p for p in ax.patches if p.get_height() != 0 and p.get_facecolor()[3] > 0]
    assert len(bars) == 14
    colours = {p.get_facecolor() for p in bars}
    assert len(colours) == 2  # inflows and outflows apart


def test_etf_chart_of_a_replay_says_so() -> None:
    replay = Replay(
        scenario="Yen carry-trade unwind", scenario_date=date(2024, 8, 5), provenance="x"
    )
    fig = charts.etf_figure(etf_flows(), datetime(2024, 8, 5, 8, tzinfo=UTC), replay)
    assert "Replay: Yen carry-trade unwind (5 Aug 2024)" in texts(fig)


async def test_demo_etf_chart() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        chart = await (await demo_maker(upstream, client, settings)).etf()
    assert_drawn(chart.png)
    assert "latest -$237.4M on 2 Aug 2024 (Farside)" in chart.caption


# --- the service: cache, single flight, failures ---------------------------------------------


async def test_a_cached_chart_is_not_drawn_again_until_the_next_refresh() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        first = await maker.sell_off()
        again = await maker.sell_off()
        together = await asyncio.gather(*(maker.sell_off("SOL") for _ in range(5)))
        assert maker.renders == 2
        assert again is first and again.png == first.png
        assert all(c is together[0] for c in together)
        assert upstream.calls["api.coingecko.com/api/v3/coins/solana/market_chart"] == 1
        upstream.advance(settings.refresh_interval_s + 1)
        newer = await maker.sell_off()
    assert maker.renders == 3
    assert newer.data_time > first.data_time


async def test_a_chart_is_drawn_from_the_refresh_it_is_cached_under(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        first = await maker.explainer.refresh()
        current = maker.explainer.current

        async def current_then_expire() -> Refreshed:
            refreshed = await current()
            upstream.advance(settings.refresh_interval_s + 1)  # the cache expires right after
            return refreshed

        monkeypatch.setattr(maker.explainer, "current", current_then_expire)
        chart = await maker.sell_off("sol")
        assert maker.explainer.latest is first  # drawing did not start another refresh
    assert chart.data_time == first.explanation.data_time


async def test_one_render_per_coin_however_it_is_named() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        charts_ = [await maker.sell_off(name) for name in ("sol", "solana", "SOL", "Solana")]
    assert maker.renders == 1
    assert all(c is charts_[0] for c in charts_)


async def test_btc_prices_are_fetched_once_for_every_chart_of_a_refresh() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    btc = "api.coingecko.com/api/v3/coins/bitcoin/market_chart"
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        await asyncio.gather(maker.sell_off(), maker.sell_off("sol"), maker.sell_off("eth"))
        assert (maker.renders, upstream.calls[btc]) == (3, 1)
        upstream.advance(settings.refresh_interval_s + 1)
        await maker.sell_off("sol")
    assert upstream.calls[btc] == 2  # a new refresh, a new series


async def test_btc_prices_that_failed_are_asked_again_by_the_next_chart() -> None:
    settings = no_backoff()
    upstream = Upstream()
    failing = [server_error_for("/market_chart")]
    upstream.overrides.append(lambda r: failing[0](r) if failing else None)
    btc = "api.coingecko.com/api/v3/coins/bitcoin/market_chart"
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        await maker.sell_off()
        assert upstream.calls[btc] == 2  # a 500 is retried once, as in a refresh
        failing.clear()
        await maker.sell_off("sol")
    assert upstream.calls[btc] == 3


async def test_chart_prices_from_a_refusing_source_are_not_asked_again_every_chart() -> None:
    settings = no_backoff()
    upstream = Upstream()
    upstream.overrides.append(
        lambda r: (
            httpx.Response(451, json={"code": 0, "msg": "restricted location"})
            if r.url.path.endswith("/market_chart")
            else None
        )
    )
    btc = "api.coingecko.com/api/v3/coins/bitcoin/market_chart"
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        await maker.sell_off()
        assert upstream.calls[btc] == 1  # refused: not retried
        upstream.advance(settings.refresh_interval_s + 1)
        await maker.sell_off()
    assert upstream.calls[btc] == 1  # left alone for the back-off, as the collector does


async def test_chart_prices_do_not_wait_out_a_long_retry_after() -> None:
    settings = no_backoff()
    upstream = Upstream()
    upstream.overrides.append(
        lambda r: (
            httpx.Response(429, headers={"Retry-After": "600"})
            if r.url.path.endswith("/market_chart")
            else None
        )
    )
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        chart = await maker.sell_off("sol")
    assert_drawn(chart.png)
    assert upstream.calls["api.coingecko.com/api/v3/coins/solana/market_chart"] == 1
    assert upstream.calls["api.coingecko.com/api/v3/coins/bitcoin/market_chart"] == 1


async def test_an_alert_gets_the_market_chart_of_its_own_data() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        alerted = (await maker.explainer.refresh()).explanation
        chart = await maker.for_alert(alerted)
        assert chart is not None and chart.data_time == alerted.data_time
        assert await maker.sell_off() is chart  # the /chart answer reuses the same render
    assert maker.renders == 1
    assert_drawn(chart.png)


async def test_an_alert_whose_data_was_replaced_gets_no_chart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="explainers.chart_service")
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        alerted = (await maker.explainer.refresh()).explanation
        upstream.advance(settings.refresh_interval_s + 1)
        await maker.explainer.refresh()
        assert await maker.for_alert(alerted) is None
    assert maker.renders == 0
    assert "is no longer the latest" in caplog.text


async def test_an_alert_chart_that_fails_or_is_late_is_none(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: Any) -> bytes:
        raise RuntimeError("renderer exploded")

    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        alerted = (await maker.explainer.refresh()).explanation
        with monkeypatch.context() as patch:
            patch.setattr(charts, "sell_off_chart", broken)
            assert await maker.for_alert(alerted) is None
        assert "chart for alert" in caplog.text and "could not be drawn" in caplog.text
        assert await maker.for_alert(alerted, timeout_s=0) is None
        assert "not drawn within 0 s" in caplog.text
        late = await maker.sell_off()  # the late render was not abandoned: this joins it
    assert maker.renders == 1 and late.data_time == alerted.data_time


async def test_drawing_runs_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    draw = charts.sell_off_chart

    def spy(*args: Any) -> bytes:
        threads.append(threading.get_ident())
        return draw(*args)

    monkeypatch.setattr(charts, "sell_off_chart", spy)
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        await (await demo_maker(upstream, client, settings)).sell_off()
    assert threads and threads[0] != threading.get_ident()


async def test_a_drawing_failure_is_chart_unavailable_and_not_cached(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: Any) -> bytes:
        raise RuntimeError("renderer exploded")

    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        with monkeypatch.context() as patch:
            patch.setattr(charts, "sell_off_chart", broken)
            with pytest.raises(ChartUnavailable) as raised:
                await maker.sell_off()
        assert str(raised.value) == "the chart could not be drawn"
        assert "chart sell-off could not be drawn" in caplog.text
        assert_drawn((await maker.sell_off()).png)  # the next request tries again
    assert maker.renders == 1


async def test_no_etf_flows_is_chart_unavailable() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    upstream.overrides.append(
        lambda r: httpx.Response(500) if r.url.host == "farside.co.uk" else None
    )
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        with pytest.raises(ChartUnavailable):
            await maker.etf()
    assert maker.renders == 0


async def test_unknown_coin_is_refused_as_in_why() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        maker = await demo_maker(upstream, client, settings)
        with pytest.raises(UnknownCoin):
            await maker.sell_off("etherium")


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_chart_writes_the_png(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = in_tmp / "out" / "btc.png"
    target.parent.mkdir()
    assert main(["chart", "--demo", "-o", str(target)]) == 0
    assert capsys.readouterr().out == f"Chart: {target.resolve()}\n"
    assert_drawn(target.read_bytes())
    assert main(["chart", "etf", "--demo", "-o", "etf.png"]) == 0
    assert_drawn((in_tmp / "etf.png").read_bytes())


def test_cli_demo_writes_its_chart_after_the_answer(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    path = in_tmp / "whydown-demo-chart.png"
    assert out.endswith(f"Information only, not financial advice.\nChart: {path.resolve()}\n")
    assert_drawn(path.read_bytes())
    assert main(["demo", "--no-chart", "--chart", "other.png"]) == 0
    assert not (in_tmp / "other.png").exists()
    capsys.readouterr()
    assert main(["demo", "--json"]) == 0
    json.loads(capsys.readouterr().out)  # JSON output carries no chart line


def test_cli_chart_of_an_unknown_coin(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chart", "etherium", "--demo"]) == 2
    assert "Did you mean" in capsys.readouterr().err
    assert not (in_tmp / "whydown-chart.png").exists()


def test_the_liquidation_title_names_the_venues_read_and_their_coins() -> None:
    hour = LiquidationHour(
        hour=datetime(2026, 11, 20, 13, tzinfo=UTC),
        long_usd=1.0,
        short_usd=0.0,
        instruments=["BTC-USDT-SWAP", "BTCUSDT", "ETHUSDT", "SOL-USDT"],
    )
    assert charts.liquidation_label(["Bybit", "OKX", "Binance"], [hour]) == (
        "Liquidations per hour, Bybit, OKX, Binance (BTC, ETH, SOL)"
    )
    assert charts.liquidation_label([], []) == "Liquidations per hour"
