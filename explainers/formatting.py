"""Small pure helpers that turn figures into short strings; missing figures read "unknown"."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from explainers.models import LiquidationVenue, Replay

UNKNOWN = "unknown"


def usd(value: float | None) -> str:
    """$48.1M, $1.79T, $52,800."""
    if value is None:
        return UNKNOWN
    sign = "-" if value < 0 else ""
    v = abs(value)
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if v >= size:
            return (
                f"{sign}${v / size:,.2f}{suffix}"
                if v < 10 * size
                else f"{sign}${v / size:,.1f}{suffix}"
            )
    if v >= 1000:
        return f"{sign}${v:,.0f}"
    if v >= 1:
        return f"{sign}${v:,.2f}"
    return f"{sign}${v:.4g}"


def musd(value: float | None) -> str:
    """ETF flows are published in US$ millions: -$237.4M."""
    if value is None:
        return UNKNOWN
    return f"{'-' if value < 0 else '+'}${abs(value):,.1f}M"


def pct(value: float | None, digits: int = 1, signed: bool = True) -> str:
    if value is None:
        return UNKNOWN
    return f"{value:+.{digits}f}%" if signed else f"{value:.{digits}f}%"


def pts(value: float | None, digits: int = 1) -> str:
    if value is None:
        return UNKNOWN
    return f"{value:+.{digits}f} pts"


def bp(value: float | None) -> str:
    if value is None:
        return UNKNOWN
    return f"{value:+.0f} bp"


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return UNKNOWN
    return f"{value:,.{digits}f}"


def _utc(value: datetime) -> datetime:
    """A naive time is taken as UTC (astimezone would take it as the machine's local time)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def when(value: datetime | None, now: datetime | None = None) -> str:
    """ "07:59 UTC" for today, "2 Aug 20:00 UTC" otherwise."""
    if value is None:
        return UNKNOWN
    value = _utc(value)
    if now is not None and value.date() == _utc(now).date():
        return value.strftime("%H:%M UTC")
    return f"{value.day} {value.strftime('%b %H:%M UTC')}"


def day(value: date | None) -> str:
    if value is None:
        return UNKNOWN
    return f"{value.day} {value.strftime('%b %Y')}"


def when_full(value: datetime | None) -> str:
    """08:00 UTC, 5 Aug 2024."""
    if value is None:
        return UNKNOWN
    value = _utc(value)
    return f"{value:%H:%M} UTC, {day(value.date())}"


def replay_label(replay: Replay) -> str:
    """Replay: Yen carry-trade unwind (5 Aug 2024)."""
    return f"Replay: {replay.scenario} ({day(replay.scenario_date)})"


def liquidation_coverage(venues: Sequence[LiquidationVenue]) -> str:
    """The venues read now, grouped by how completely: "Bybit all; OKX, Binance sampled"; a
    polled venue "OKX sampled (REST)" (its latest orders per instrument family)."""
    groups: dict[tuple[bool, bool], list[str]] = {}
    for v in venues:
        if v.tracked_since is not None:
            groups.setdefault((v.mode != "all", v.via == "rest"), []).append(v.exchange)
    return "; ".join(
        f"{', '.join(names)} {'sampled' if sampled else 'all'}" + (" (REST)" if rest else "")
        for (sampled, rest), names in sorted(groups.items(), key=lambda item: item[0])
    )


def until(at: datetime, now: datetime) -> str:
    """How far ahead: "in 2 days" (from 48 h), "in 5 h", "in 40 min"."""
    seconds = (at - now).total_seconds()
    hours = seconds / 3600
    if hours >= 48:
        return f"in {int(hours // 24)} days"
    if hours >= 1:
        return f"in {int(hours)} h"
    return f"in {max(1, int(seconds // 60))} min"


def since(at: datetime, now: datetime) -> str:
    """How far back: "2 days ago" (from 48 h), "5 h ago", "40 min ago"."""
    seconds = (now - at).total_seconds()
    hours = seconds / 3600
    if hours >= 48:
        return f"{int(hours // 24)} days ago"
    if hours >= 1:
        return f"{int(hours)} h ago"
    return f"{max(1, int(seconds // 60))} min ago"


def day_time(value: datetime) -> str:
    """ "10 Dec, 19:00 UTC"."""
    value = _utc(value)
    return f"{value.day} {value:%b, %H:%M} UTC"
