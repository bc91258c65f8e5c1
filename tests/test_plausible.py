"""Only plausible figures: every parser, fed its real recorded body with one field replaced by
garbage (NaN, infinities, negatives, huge values, wrong types, far times), answers plausible
figures or a `SourceError`, never NaN or an out-of-range number."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from explainers.errors import SourceError
from explainers.sources import (
    binance,
    blockchain_info,
    bounds,
    bybit,
    cnbc,
    coinbase,
    coingecko,
    defillama,
    farside,
    feargreed,
    fred,
    hyperliquid,
    kalshi,
    kraken,
    mempool,
    okx,
    polymarket,
    sosovalue,
    stooq,
    treasury,
    usdt,
    yahoo,
)
from explainers.streams.base import LiquidationStream
from explainers.streams.binance import BinanceLiquidations
from explainers.streams.bybit import BybitLiquidations
from explainers.streams.okx import OkxLiquidations
from tests.ws_venue import RecordingSink

API = Path(__file__).parent / "fixtures" / "api"
DEMO = Path(__file__).parent.parent / "explainers" / "demo" / "aug-2024"
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: what a fuzzed field may become
BAD_VALUES: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    "NaN",
    "Infinity",
    "-inf",
    -1,
    -1e9,
    0,
    1e30,
    "1e32",
    1e308,
    "abc",
    True,
    [],
    {},
    None,
    "",
    4102444800000,  # 2100 in ms
    253402300799,  # 9999 in s
    1e18,
    -86400,
]
#: the text forms of bad values, for CSV cells and HTML table cells
BAD_TEXT = ["nan", "inf", "-inf", "-1", "1e30", "1e308", "abc", "99999999", "-99999999", ""]


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def leaves(body: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every scalar in a JSON body."""
    if isinstance(body, dict):
        for key, value in body.items():
            yield from leaves(value, (*path, key))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            yield from leaves(value, (*path, index))
    else:
        yield path


def replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def mutations(body: Any) -> st.SearchStrategy[Any]:
    paths = list(leaves(body))
    return st.builds(
        lambda path, value: replaced(body, path, value),
        st.sampled_from(paths),
        st.sampled_from(BAD_VALUES),
    )


# --- what a plausible result is ---------------------------------------------------------------

#: fields that are plausibly in the future: a market's close, a meeting's date
FUTURE_OK = {"meeting_date", "close_time", "end"}


def assert_plausible(result: Any, name: str = "result") -> None:
    """Every number finite and below 1e15 in size; every time between EARLIEST and now."""
    if isinstance(result, BaseModel):
        for field, value in result:
            if field not in FUTURE_OK:
                assert_plausible(value, f"{name}.{field}")
    elif isinstance(result, dict):
        for key, value in result.items():
            assert_plausible(value, f"{name}[{key!r}]")
    elif isinstance(result, list | tuple):
        for index, value in enumerate(result):
            assert_plausible(value, f"{name}[{index}]")
    elif isinstance(result, bool):
        return
    elif isinstance(result, float | int):
        assert math.isfinite(result), name
        assert abs(result) < 1e15 or name.endswith(("hour]", "ts")), (name, result)
    elif isinstance(result, datetime):
        assert bounds.EARLIEST <= result <= datetime.now(UTC) + bounds.MAX_CLOCK_SKEW, (
            name,
            result,
        )
    elif isinstance(result, date):
        assert bounds.EARLIEST.date() <= result <= date.today() + timedelta(days=2), (name, result)


def outcome(parse: Callable[[], Any], check: Callable[[Any], None] | None = None) -> None:
    """The parse either fails as a SourceError or gives plausible figures."""
    try:
        result = parse()
    except SourceError:
        return
    assert_plausible(result)
    if check is not None:
        check(result)


# --- JSON parsers -----------------------------------------------------------------------------

COINGECKO_MARKETS = load(API / "coingecko_coins_markets_live.json")


def _markets_check(markets: Any) -> None:
    for coin in markets.coins:
        if coin.change_24h is not None:
            assert -100 <= coin.change_24h <= bounds.MAX_PCT_CHANGE
        if coin.price is not None:
            assert 0 < coin.price <= bounds.MAX_PRICE_USD


@FUZZ
@given(mutations(COINGECKO_MARKETS))
def test_coingecko_markets(body: Any) -> None:
    outcome(lambda: coingecko.parse_markets(body), _markets_check)


COINGECKO_GLOBAL = load(API / "coingecko_global_live.json")


def _global_check(result: Any) -> None:
    if result.btc_dominance is not None:
        assert 0 < result.btc_dominance <= 100
    if result.market_cap_change_24h_pct is not None:
        assert abs(result.market_cap_change_24h_pct) <= bounds.MAX_MARKET_MOVE_PCT


@FUZZ
@given(mutations(COINGECKO_GLOBAL))
def test_coingecko_global(body: Any) -> None:
    outcome(lambda: coingecko.parse_global(body), _global_check)


CHART = load(API / "coingecko_market_chart_btc_live.json")


@FUZZ
@given(mutations(CHART))
def test_coingecko_market_chart(body: Any) -> None:
    outcome(lambda: coingecko.parse_market_chart(body, "bitcoin"))


FNG = load(API / "alternative_fng_live.json")


def _fng_check(result: Any) -> None:
    assert all(0 <= p.value <= 100 for p in result.points)


@FUZZ
@given(mutations(FNG))
def test_fear_greed(body: Any) -> None:
    outcome(lambda: feargreed.parse_fng(body), _fng_check)


OKX_LIQUIDATIONS = load(API / "okx_liquidation_orders.json")


@FUZZ
@given(mutations(OKX_LIQUIDATIONS))
def test_okx_liquidations(body: Any) -> None:
    values = dict.fromkeys(okx.liquidation_instruments(OKX_LIQUIDATIONS), 0.01)

    def check(result: Any) -> None:
        assert all(0 < e.usd <= bounds.MAX_LIQUIDATION_USD for e in result.events)

    outcome(lambda: okx.parse_liquidations(body, values), check)


@FUZZ
@given(
    mutations(load(API / "okx_open_interest.json")),
    mutations(load(DEMO / "okx_open_interest_history_btc_usdt_swap.json")),
)
def test_okx_open_interest(body: Any, history: Any) -> None:
    outcome(lambda: okx.parse_open_interest(body, okx.parse_open_interest_history(history)))
    outcome(lambda: okx.parse_venue_open_interest(body, ["BTC", "ETH"]))


@FUZZ
@given(mutations(load(API / "okx_funding_rate.json")))
def test_okx_funding(body: Any) -> None:
    def check(result: Any) -> None:
        assert abs(result.rate) <= bounds.MAX_FUNDING_RATE

    outcome(lambda: okx.parse_funding(body), check)


@FUZZ
@given(mutations(load(DEMO / "okx_candles_btc_usdt_1m.json")))
def test_okx_candles(body: Any) -> None:
    outcome(lambda: okx.parse_candles(body, "BTC-USDT"))


@FUZZ
@given(
    mutations(load(API / "binance_open_interest.json")),
    mutations(load(API / "binance_premium_index.json")),
)
def test_binance_open_interest(oi: Any, premium: Any) -> None:
    outcome(lambda: binance.parse_open_interest(oi, premium, "BTCUSDT"))
    outcome(lambda: binance.parse_venue_open_interest([oi], premium))


@FUZZ
@given(mutations(load(API / "bybit_tickers_linear.json")))
def test_bybit_open_interest(body: Any) -> None:
    outcome(lambda: bybit.parse_venue_open_interest(body, ["BTC", "ETH"]))
    outcome(lambda: bybit.parse_open_interest(body, "BTCUSDT"))


@FUZZ
@given(
    mutations(load(API / "coinbase_exchange_candles.json")),
    mutations(load(DEMO / "coinbase_stats_btc_usd.json")),
)
def test_coinbase(candles: Any, stats: Any) -> None:
    outcome(lambda: coinbase.parse_candles(candles, "BTC-USD"))
    outcome(lambda: coinbase.parse_hourly(candles, "BTC-USD"))

    def check(result: Any) -> None:
        assert result.change_24h_pct is None or result.change_24h_pct >= -100

    outcome(lambda: coinbase.parse_stats(stats, "BTC-USD"), check)


@FUZZ
@given(
    mutations(load(API / "kraken_ticker.json")),
    mutations(load(API / "kraken_ticker_usdtusd.json")),
    mutations(load(API / "coinbase_exchange_ticker.json")),
)
def test_kraken_and_usdt(ticker: Any, usdt_kraken: Any, usdt_coinbase: Any) -> None:
    outcome(lambda: kraken.parse_ticker(ticker, "XBTUSD"))
    outcome(lambda: usdt.parse_kraken_ticker(usdt_kraken))
    outcome(lambda: usdt.parse_coinbase_ticker(usdt_coinbase))


@FUZZ
@given(mutations(load(API / "hyperliquid_meta_and_asset_ctxs.json")))
def test_hyperliquid(body: Any) -> None:
    outcome(lambda: hyperliquid.parse_open_interest(body, ["BTC", "ETH"]))


@FUZZ
@given(mutations(load(API / "sosovalue_etf_summary_history.json")))
def test_sosovalue(body: Any) -> None:
    def check(days: Any) -> None:
        assert all(
            d.total_musd is None or abs(d.total_musd) <= bounds.MAX_ETF_FLOW_MUSD for d in days
        )

    outcome(lambda: sosovalue.parse_summary_history(body), check)


@FUZZ
@given(mutations(load(API / "yahoo_chart_gspc.json")), mutations(load(API / "yahoo_chart.json")))
def test_yahoo(gspc: Any, chart: Any) -> None:
    def check(quote: Any) -> None:
        assert abs(quote.change_pct) <= bounds.MAX_MARKET_MOVE_PCT

    outcome(lambda: yahoo.parse_quote(gspc, "spx"), check)
    outcome(lambda: yahoo.parse_quote(chart, "spx"), check)


KALSHI_NOW = datetime(2026, 7, 18, 12, 0, tzinfo=UTC)


@FUZZ
@given(
    mutations(load(API / "kalshi_markets_kxfed.json")),
    mutations(load(API / "kalshi_orderbook_kxfed.json")),
)
def test_kalshi(markets: Any, book: Any) -> None:
    def check(odds: Any) -> None:
        assert 0 <= odds.cut_pct <= 100

    outcome(lambda: kalshi.cut_odds(kalshi.markets_of(markets)[0], 4.50, KALSHI_NOW), check)

    def book_check(best: Any) -> None:
        assert all(p is None or 0 <= p <= 1 for p in best)

    outcome(lambda: kalshi.parse_orderbook(book), book_check)


@FUZZ
@given(
    mutations(load(API / "polymarket_event_fed.json")),
    mutations(load(DEMO / "polymarket_prices_history_sept_25bps.json")),
)
def test_polymarket(event: Any, history: Any) -> None:
    def check(meeting: Any) -> None:
        assert 0 <= meeting.probability <= 1

    outcome(
        lambda: polymarket.parse_next_meeting([event], datetime(2026, 9, 15, 12, tzinfo=UTC)),
        check,
    )
    outcome(lambda: polymarket.parse_price_history(history))


# --- CSV and HTML parsers: one cell replaced --------------------------------------------------


def csv_mutations(text: str) -> st.SearchStrategy[str]:
    rows = list(csv.reader(io.StringIO(text)))
    cells = [(r, c) for r in range(1, len(rows)) for c in range(len(rows[r]))]

    def build(cell: tuple[int, int], value: str) -> str:
        out = [list(row) for row in rows]
        out[cell[0]][cell[1]] = value
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(out)
        return buffer.getvalue()

    dates = ["1970-01-01", "2999-01-01", "01/01/1970", "01/01/2999"]
    return st.builds(build, st.sampled_from(cells), st.sampled_from(BAD_TEXT + dates))


@FUZZ
@given(csv_mutations((API / "fred_dgs10_fredgraph.csv").read_text()))
def test_fred_yields(text: str) -> None:
    def check(days: Any) -> None:
        for d in days:
            for value in (d.two_year, d.ten_year):
                assert value is None or bounds.MIN_RATE_PCT <= value <= bounds.MAX_RATE_PCT

    outcome(lambda: fred.parse_fredgraph_csv(text), check)


@FUZZ
@given(csv_mutations((API / "fred_sp500_fredgraph.csv").read_text()))
def test_fred_index(text: str) -> None:
    outcome(lambda: fred.index_close_from_series(text, "spx"))


@FUZZ
@given(csv_mutations((API / "treasury_yield.csv").read_text()))
def test_treasury(text: str) -> None:
    outcome(lambda: treasury.parse_treasury_csv(text))


@FUZZ
@given(csv_mutations((API / "stooq_spx.csv").read_text()))
def test_stooq(text: str) -> None:
    outcome(lambda: stooq.quote_from_bars(stooq.parse_stooq_csv(text), "spx"))


FARSIDE = (API / "farside_btc.html").read_text()
FLOW_CELLS = [m.span(1) for m in re.finditer(r">\s*(\(?[\d,]+\.\d\)?)\s*<", FARSIDE)]


@FUZZ
@given(st.sampled_from(FLOW_CELLS), st.sampled_from([*BAD_TEXT, "(1e30)", "1e400"]))
def test_farside(span: tuple[int, int], value: str) -> None:
    html = FARSIDE[: span[0]] + value + FARSIDE[span[1] :]

    def check(days: Any) -> None:
        for d in days:
            flows = [d.total_musd, *d.funds.values()]
            assert all(f is None or abs(f) <= bounds.MAX_ETF_FLOW_MUSD for f in flows)

    outcome(lambda: farside.parse_farside_html(html), check)


# --- stream frames: a bad record is dropped, never an event ----------------------------------

STREAMS: list[tuple[type[LiquidationStream], str]] = [
    (BinanceLiquidations, "binance_force_order_ws_live.json"),
    (BybitLiquidations, "bybit_all_liquidation_ws_live.json"),
    (OkxLiquidations, "okx_liquidation_orders_ws_live.json"),
]


@pytest.mark.parametrize(("cls", "name"), STREAMS)
def test_stream_frames(cls: type[LiquidationStream], name: str) -> None:
    frame = load(API / name)
    stream = cls(RecordingSink(), url="ws://unused.invalid")

    @FUZZ
    @given(mutations(frame))
    def fuzz(mutated: Any) -> None:
        parsed = stream.parse(json.dumps(mutated))
        for event in parsed.events:
            assert 0 < event.usd <= bounds.MAX_LIQUIDATION_USD
            assert 0 < event.price <= bounds.MAX_PRICE_USD
            assert_plausible(event)

    fuzz()


# --- parsers added since: CNBC's quote, mempool.space, blockchain.info, DefiLlama --------------

#: CNBC's restQuote format as public scrapers parse it (no recorded body exists)
CNBC_QUOTE = {
    "FormattedQuoteResult": {
        "FormattedQuote": [
            {
                "symbol": ".SPX",
                "code": 0,
                "last": "5,346.56",
                "previous_day_closing": "5,446.68",
                "change_pct": "-1.84%",
                "last_time": "2026-09-11T11:17:11.000-0400",
                "curmktstatus": "REG_MKT",
            }
        ]
    }
}


@FUZZ
@given(mutations(CNBC_QUOTE))
def test_cnbc_quote(body: Any) -> None:
    def check(q: Any) -> None:
        assert q.last > 0 and q.previous_close > 0
        assert abs(q.change_pct) <= bounds.MAX_MARKET_MOVE_PCT

    outcome(lambda: cnbc.parse_quote(body, "spx"), check)


MEMPOOL_DIFFICULTY = load(API / "mempool_difficulty_adjustment.json")


@FUZZ
@given(mutations(MEMPOOL_DIFFICULTY))
def test_mempool_difficulty(body: Any) -> None:
    outcome(lambda: mempool.parse_difficulty(body, datetime.now(UTC)))


MEMPOOL_HASHRATE = load(API / "mempool_hashrate_3d.json")


@FUZZ
@given(mutations(MEMPOOL_HASHRATE))
def test_mempool_hash_rate_points(body: Any) -> None:
    def check(points: Any) -> None:
        assert all(rate > 0 for _, rate in points)

    # hash rates are H/s beyond 1e15: checked in EH/s, where the size bound applies
    outcome(lambda: [(t, rate / 1e18) for t, rate in mempool.hash_rate_points(body)], check)


BLOCKCHAIN_CHART = load(API / "blockchain_info_charts_n_transactions.json")


@FUZZ
@given(mutations(BLOCKCHAIN_CHART))
def test_blockchain_info_chart(body: Any) -> None:
    def check(points: Any) -> None:
        assert all(count >= 0 for count in points.values())

    outcome(lambda: blockchain_info.chart_points(body), check)


#: DefiLlama's documented `/stablecoincharts/all` shape (no recorded body exists)
DEFILLAMA_CHART = [
    {"date": str(1763596800 + day * 86400), "totalCirculatingUSD": {"peggedUSD": 3.0e11 + day}}
    for day in range(9)
]


@FUZZ
@given(mutations(DEFILLAMA_CHART))
def test_defillama_chart(body: Any) -> None:
    outcome(lambda: defillama.parse_chart(body))
