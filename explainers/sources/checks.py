"""One shape check per upstream body, for a doctor: raw body text in, drift out ([] = fine).

    CHECKS["yahoo_chart"](text)  ->  ["chart.result[0].meta.regularMarketPrice is missing ..."]

Each check names the fields its parser reads that the body lacks (or, for HTML, what the parser
could not find). A body that is not JSON (or is an HTML page where JSON or CSV was expected)
says so. The shapes live next to their parsers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from explainers.sources import (
    binance,
    blockchain_info,
    bybit,
    cnbc,
    defillama,
    farside,
    fred,
    hyperliquid,
    kalshi,
    mempool,
    okx,
    stooq,
    usdt,
    yahoo,
)
from explainers.sources.shape import Shape, check_csv_header, check_shape

Check = Callable[[str], list[str]]


def _json(text: str) -> tuple[Any, list[str]]:
    stripped = text.strip()
    if not stripped:
        return None, ["empty body"]
    if stripped[:1] == "<":
        return None, ["an HTML page instead of JSON"]
    try:
        return json.loads(stripped), []
    except ValueError:
        return None, ["malformed JSON"]


def json_check(shape: Shape | Callable[[Any], list[str]]) -> Check:
    def check(text: str) -> list[str]:
        body, problems = _json(text)
        if problems:
            return problems
        return shape(body) if callable(shape) else check_shape(body, shape)

    return check


def csv_check(columns: tuple[str, ...]) -> Check:
    def check(text: str) -> list[str]:
        if text.lstrip("\ufeff \t\r\n")[:1] == "<":
            return ["an HTML page instead of CSV"]
        return check_csv_header(text, columns)

    return check


CHECKS: dict[str, Check] = {
    "hyperliquid_meta_and_asset_ctxs": json_check(hyperliquid.check),
    "okx_open_interest": json_check(okx.OPEN_INTEREST_SHAPE),
    "bybit_tickers_linear": json_check(bybit.TICKERS_SHAPE),
    "binance_open_interest": json_check(binance.OPEN_INTEREST_SHAPE),
    "binance_premium_index": json_check(binance.PREMIUM_INDEX_SHAPE),
    "coinbase_ticker": json_check(usdt.COINBASE_TICKER_SHAPE),
    "kraken_ticker": json_check(usdt.KRAKEN_TICKER_SHAPE),
    "yahoo_chart": json_check(yahoo.CHART_SHAPE),
    "cnbc_quote": json_check(cnbc.QUOTE_SHAPE),
    "fred_sp500": csv_check(fred.series_columns("SP500")),
    "fred_nasdaqcom": csv_check(fred.series_columns("NASDAQCOM")),
    "stooq_daily": csv_check(stooq.CSV_COLUMNS),
    "kalshi_markets": json_check(kalshi.MARKETS_SHAPE),
    "kalshi_orderbook": json_check(kalshi.ORDERBOOK_SHAPE),
    "farside_page": farside.check_html,
    "mempool_hashrate": json_check(mempool.HASHRATE_SHAPE),
    "mempool_difficulty_adjustment": json_check(mempool.DIFFICULTY_SHAPE),
    "defillama_stablecoincharts": json_check(defillama.CHART_SHAPE),
    "blockchain_info_chart": json_check(blockchain_info.CHART_SHAPE),
    "fred_vixcls": csv_check(fred.series_columns("VIXCLS")),
    "fred_dtwexbgs": csv_check(fred.series_columns("DTWEXBGS")),
    "fred_dexjpus": csv_check(fred.series_columns("DEXJPUS")),
}
