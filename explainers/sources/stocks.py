"""The stocks result every index source answers (Yahoo intraday, FRED end of day, Stooq keyed).

`StockQuote` is an `IndexQuote` that names its session in words, so an answer can say which
close or session a move belongs to ("regular session 30 Apr, open", "close of 6 Apr 2021").
"""

from __future__ import annotations

from datetime import date

from explainers.models import IndexQuote


class StockQuote(IndexQuote):
    """An index's last session against the previous close, with the session named."""

    session_label: str


def _day(day: date, with_year: bool) -> str:
    return f"{day.day} {day:%b %Y}" if with_year else f"{day.day} {day:%b}"


def live_label(day: date, market_open: bool) -> str:
    """An intraday source's session: "regular session 30 Apr, open" (or ", closed")."""
    return f"regular session {_day(day, False)}, {'open' if market_open else 'closed'}"


def close_label(day: date) -> str:
    """An end-of-day source's session: "close of 6 Apr 2021"."""
    return f"close of {_day(day, True)}"
