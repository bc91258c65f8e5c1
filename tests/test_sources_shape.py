"""Shape checks: every recorded body still fits its parser; drift is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from explainers.sources.checks import CHECKS
from explainers.sources.shape import check_csv_header, check_shape

API = Path(__file__).parent / "fixtures" / "api"

RECORDED = {
    "hyperliquid_meta_and_asset_ctxs": "hyperliquid_meta_and_asset_ctxs.json",
    "okx_open_interest": "okx_open_interest_btcusd_swap.json",
    "bybit_tickers_linear": "bybit_tickers_linear.json",
    "binance_open_interest": "binance_open_interest.json",
    "binance_premium_index": "binance_premium_index.json",
    "coinbase_ticker": "coinbase_exchange_ticker.json",
    "kraken_ticker": "kraken_ticker_usdtusd.json",
    "yahoo_chart": "yahoo_chart_gspc.json",
    "fred_sp500": "fred_sp500_fredgraph.csv",
    "fred_nasdaqcom": "fred_nasdaqcom_fredgraph.csv",
    "stooq_daily": "stooq_spx.csv",
    "kalshi_markets": "kalshi_markets_kxfed.json",
    "kalshi_orderbook": "kalshi_orderbook_kxfed.json",
    "farside_page": "farside_btc.html",
    "mempool_hashrate": "mempool_hashrate_3d.json",
    "mempool_difficulty_adjustment": "mempool_difficulty_adjustment.json",
    "blockchain_info_chart": "blockchain_info_charts_n_transactions.json",
    "fred_vixcls": "fred_vixcls_fredgraph.csv",
    "fred_dtwexbgs": "fred_dtwexbgs_fredgraph.csv",
    "fred_dexjpus": "fred_dexjpus_fredgraph.csv",
}

#: checks with no recorded body anywhere: a body written after the provider's documented shape
#: (DefiLlama `/stablecoincharts/all`: daily points, `date` a string of epoch seconds) or after
#: the format public code parses (CNBC's restQuote: `FormattedQuoteResult.FormattedQuote[]`
#: with string numbers)
DOCUMENTED = {
    "defillama_stablecoincharts": (
        '[{"date": "1763596800", "totalCirculating": {"peggedUSD": 3.0e11}, '
        '"totalCirculatingUSD": {"peggedUSD": 3.0e11, "peggedEUR": 5.1e8}}]'
    ),
    "cnbc_quote": (
        '{"FormattedQuoteResult": {"FormattedQuote": [{"symbol": ".SPX", "code": 0, '
        '"last": "5,346.56", "previous_day_closing": "5,446.68", "change_pct": "-1.84%", '
        '"last_time": "2026-09-11T11:17:11.000-0400", "curmktstatus": "REG_MKT"}]}}'
    ),
}


def test_every_check_has_a_recorded_body() -> None:
    assert set(RECORDED) | set(DOCUMENTED) == set(CHECKS)
    assert not set(RECORDED) & set(DOCUMENTED)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_documented_bodies_fit(name: str) -> None:
    assert CHECKS[name](DOCUMENTED[name]) == []


def test_a_stablecoin_point_without_its_usd_total_is_drift() -> None:
    drift = CHECKS["defillama_stablecoincharts"]('[{"date": "1763596800"}]')
    assert drift == ["[0].totalCirculatingUSD is missing"]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_bodies_fit(name: str) -> None:
    assert CHECKS[name]((API / RECORDED[name]).read_text()) == []


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("yahoo_chart", "", "empty body"),
        ("yahoo_chart", "<!DOCTYPE html><html></html>", "an HTML page instead of JSON"),
        ("kalshi_markets", '{"markets": [', "malformed JSON"),
        ("fred_sp500", "<html><body>Error</body></html>", "an HTML page instead of CSV"),
        ("fred_sp500", "observation_date,SP_500\n", "column SP500 is missing (has: SP_500)"),
        (
            "yahoo_chart",
            (API / "yahoo_chart_error_404.json").read_text(),
            "chart.result is not a list",
        ),
        ("okx_open_interest", '{"code": "0", "data": []}', "data is empty"),
    ],
)
def test_drift_is_named(name: str, text: str, problem: str) -> None:
    assert CHECKS[name](text)[0] == problem


def test_paths() -> None:
    body = {"a": [{"b": 1}, {"c": 2}], "d": None}
    assert check_shape(body, ("a[].b",)) == ["a[1].b is missing"]
    assert check_shape(body, ("a[0].b", "d", "x|d")) == []
    assert check_shape(body, ("a[5].b",)) == ["a[5] is missing"]
    assert check_shape(body, ("d.e",)) == ["d is not an object"]
    assert check_shape([body], ("[0].a[]",)) == []
    assert check_csv_header("DATE,X\n", ("observation_date|DATE", "X")) == []
