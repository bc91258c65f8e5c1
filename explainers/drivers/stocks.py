"""Stock market weakness: the S&P 500 or the Nasdaq down on the day (or the last session)."""

from __future__ import annotations

import re

from explainers import formatting as fmt
from explainers.drivers.base import Driver, ratio, status_labels
from explainers.models import (
    DriverFigures,
    DriverResult,
    Evidence,
    IndexQuote,
    Lookback,
    Snapshot,
)
from explainers.settings import Thresholds
from explainers.sources.stocks import live_label

YAHOO_QUOTE_URL = "https://finance.yahoo.com/quote/{symbol}"
INDEX_SYMBOLS = {"spx": "%5EGSPC", "ndx": "%5EIXIC"}


class StockFigures(DriverFigures):
    spx: float | None = None  # S&P 500 change on the day or the last session, %
    ndx: float | None = None  # Nasdaq Composite, the same


def evaluate(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = f"S&P 500 ≤ {t.spx_day_pct:+g}% or Nasdaq ≤ {t.ndx_day_pct:+g}% on the day (or the last session)"
    evidence: list[Evidence] = []
    severities: list[float] = []
    for key, limit in (("spx", t.spx_day_pct), ("ndx", t.ndx_day_pct)):
        quote = s.indices.get(key)
        if quote is None:
            continue
        evidence.append(
            Evidence(
                label=f"{quote.name}, {session_label(quote)}",
                value=f"{fmt.pct(quote.change_pct, 2)} ({fmt.number(quote.last, 2)})",
                source=quote.source,
                url=YAHOO_QUOTE_URL.format(symbol=INDEX_SYMBOLS[key])
                if quote.source.startswith("Yahoo")
                else None,
                as_of=quote.as_of,
            )
        )
        severities.append(ratio(quote.change_pct, limit))
    spx, ndx = s.indices.get("spx"), s.indices.get("ndx")
    figures = StockFigures(spx=spx.change_pct if spx else None, ndx=ndx.change_pct if ndx else None)
    missing = status_labels(
        s, "yahoo_spx", "yahoo_ndx", "fred_spx", "fred_ndx", "stooq_spx", "stooq_ndx"
    )
    if not severities:
        return DRIVER.unknown(threshold, missing, figures=figures)
    return DRIVER.judged(
        threshold, max(severities), evidence=evidence, missing=missing, figures=figures
    )


def session_label(quote: IndexQuote) -> str:
    """The session a quote belongs to, in words: its source's own label ("close of 2 Aug
    2024", "regular session 5 Aug, open"), else one made from its session date."""
    label = getattr(quote, "session_label", None)
    return (
        label if isinstance(label, str) and label else live_label(quote.session, quote.market_open)
    )


def chart_figure(f: StockFigures) -> str | None:
    if f.spx is not None:
        return f"S&P {fmt.pct(f.spx)}"
    if f.ndx is not None:
        return f"Nasdaq {fmt.pct(f.ndx)}"
    return None


DRIVER = Driver(
    key="stocks",
    name="Stock market weakness",
    short_name="Stocks",
    role="set_off",
    subject="falling stocks",
    patterns=re.compile(
        r"(?i:\bS&P\b|\bNasdaq\b|\bstocks?\b|\bequities\b|\bNikkei\b|\brecession\w*)"
    ),
    figures=StockFigures,
    rule=evaluate,
    chart_figure=chart_figure,
)
