"""What a plausible figure is, in one place: every parser reads its numbers and times through here.

A value that is not a finite number, or lies outside the bounds of what it measures, is a bad
response of the source that sent it (`BadResponse` naming the field), never a figure: the driver
that needed it goes unknown and the answer names the source. The bounds are deliberately wide
(far beyond anything on record) so they only ever catch garbage, never a real extreme market.

Readers take the raw JSON/CSV value (number or numeric string) and answer a float; the
`optional_*` forms answer None for an absent value (null or ""), which is unknown, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from explainers.errors import BadResponse

# --- bounds, each with why that value ---------------------------------------------------------

#: a coin's USD price: above 0, below $10M, about 80x BTC's record (~$126k, Oct 2025);
#: no coin we list (top 100 by market cap, wrapped BTC included) trades near it
MAX_PRICE_USD = 1e7
#: a stock index level: above 0, below 1,000,000 (the Nasdaq Composite, the highest we read,
#: is near 23,000)
MAX_INDEX_LEVEL = 1e6
#: a coin's own change in percent: it cannot lose more than everything (-100%); +10,000% (100x)
#: in a day or a week is beyond any top-100 coin on record
MIN_PCT_CHANGE = -100.0
MAX_PCT_CHANGE = 10_000.0
#: a whole market's change in percent (total crypto cap, a stock index): at most 75 points
#: either way, about twice the worst days on record (total crypto cap ~-40% on 12 Mar 2020,
#: S&P 500 -20.5% on 19 Oct 1987)
MAX_MARKET_MOVE_PCT = 75.0
#: indices on a 0..100 scale (Fear & Greed) and shares in percent (BTC dominance)
INDEX_MIN, INDEX_MAX = 0.0, 100.0
#: a market capitalisation in USD: the whole crypto market peaked near $4.3T (2025); $100T is
#: more than 20x that
MAX_MARKET_CAP_USD = 1e14
#: one liquidation order in USD: the largest single orders on record are about $100M-$200M;
#: $10B is 50x that
MAX_LIQUIDATION_USD = 1e10
#: open interest in USD, per instrument, venue or coin: all crypto derivatives together peaked
#: near $220B (2025); $1T is more than 4x that
MAX_OPEN_INTEREST_USD = 1e12
#: a contract's size in coins, or a quantity in contracts/coins: finite and below 1e12
MAX_QUANTITY = 1e12
#: a day's ETF net flow in US$ millions, per fund or in total: the record days are about
#: +$1.4B and -$1.1B; 50,000 (= $50B) is over 30x that and a third of all spot-BTC ETF assets
MAX_ETF_FLOW_MUSD = 50_000.0
#: a perpetual's funding rate per interval, as a fraction: the venues clamp it to a few percent
#: at most (BTC swaps to well under 1%); 0.05 = 5% per interval
MAX_FUNDING_RATE = 0.05
#: a US Treasury yield or policy rate in percent: never below -2 (US bills touched -0.1% in
#: 2020) nor above 25 (the 2-year peaked near 17% in 1981)
MIN_RATE_PCT, MAX_RATE_PCT = -2.0, 25.0
#: a probability (prediction-market prices are dollars on a $1 contract)
PROB_MIN, PROB_MAX = 0.0, 1.0
#: a market-cap rank
MAX_RANK = 1_000_000
#: Bitcoin's network hash rate in H/s: near 1e21 (1 ZH/s) in 2025; 1e24 is 1,000x that. The
#: values are floats beyond 2^53, so they are read as floats, never compared for equality
MAX_HASH_RATE = 1e24
#: a difficulty adjustment in percent: Bitcoin clamps a retarget to 4x either way (-75%..+300%)
MIN_DIFFICULTY_CHANGE_PCT, MAX_DIFFICULTY_CHANGE_PCT = -75.0, 300.0
#: confirmed Bitcoin transactions in a day: the record is under 1 million; 100 million is 100x
MAX_TX_PER_DAY = 1e8
#: a daily market level outside crypto (VIX ~10-90, dollar index ~100-130, USD/JPY ~75-360
#: since 1971): above 0 and below 10,000
MAX_MACRO_LEVEL = 1e4
#: a data time may be ahead of our clock by this much (the venues' clocks and ours drift by
#: seconds; five minutes leaves room without accepting a time that has not happened)
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: no figure we read is older than Bitcoin's genesis block (3 Jan 2009): an earlier time is an
#: epoch-zero placeholder or a unit mix-up (seconds read as milliseconds)
EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)


def _utc_now() -> datetime:
    return datetime.now(UTC)


#: the clock data times are checked against (tests may replace it)
clock: Callable[[], datetime] = _utc_now


# --- numbers ----------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def number(value: Any, source: str, field: str) -> float:
    """A required finite number (JSON number or numeric string); BadResponse when missing,
    null, not a number (a bool is not one), NaN or infinite."""
    if value is None or value == "":
        raise BadResponse(source, f"{field} is missing")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadResponse(source, f"{field} is not a number")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise BadResponse(source, f"{field} is not a number") from err
    if not math.isfinite(result):
        raise BadResponse(source, f"{field} is not a finite number")
    return result


def within(
    value: float, low: float, high: float, source: str, field: str, *, above: bool = False
) -> float:
    """`value` if low <= value <= high (low < value with `above`), else BadResponse."""
    if not math.isfinite(value):
        raise BadResponse(source, f"{field} is not a finite number")
    if value > high or value < low or (above and value <= low):
        raise BadResponse(source, f"{field} {_fmt(value)} is implausible")
    return value


def bounded(low: float, high: float, *, above: bool = False) -> Callable[[Any, str, str], float]:
    """A reader for numbers within [low, high] (or (low, high] with `above`)."""

    def read(value: Any, source: str, field: str) -> float:
        return within(number(value, source, field), low, high, source, field, above=above)

    return read


#: a USD price > 0
price = bounded(0.0, MAX_PRICE_USD, above=True)
#: a stock index level > 0
index_level = bounded(0.0, MAX_INDEX_LEVEL, above=True)
#: a coin's change in percent
pct_change = bounded(MIN_PCT_CHANGE, MAX_PCT_CHANGE)
#: a whole market's change in percent
market_change = bounded(-MAX_MARKET_MOVE_PCT, MAX_MARKET_MOVE_PCT)
#: a 0..100 index (Fear & Greed)
index_0_100 = bounded(INDEX_MIN, INDEX_MAX)
#: a share in percent (dominance): above 0, at most 100
share_pct = bounded(INDEX_MIN, INDEX_MAX, above=True)
#: a market cap in USD (0 allowed: CoinGecko's "supply unknown")
market_cap = bounded(0.0, MAX_MARKET_CAP_USD)
#: a whole market's cap in USD, > 0
total_market_cap = bounded(0.0, MAX_MARKET_CAP_USD, above=True)
#: one liquidation's USD value, > 0
liquidation_usd = bounded(0.0, MAX_LIQUIDATION_USD, above=True)
#: open interest in USD (0 for an idle market)
open_interest_usd = bounded(0.0, MAX_OPEN_INTEREST_USD)
#: a size or quantity > 0 (contracts, coins, a contract's value in coins)
quantity = bounded(0.0, MAX_QUANTITY, above=True)
#: an amount of contracts or coins that may be 0 (open interest in coins)
holding = bounded(0.0, MAX_QUANTITY)
#: a day's ETF net flow in US$ millions
etf_flow_musd = bounded(-MAX_ETF_FLOW_MUSD, MAX_ETF_FLOW_MUSD)
#: a funding rate per interval, as a fraction
funding_rate = bounded(-MAX_FUNDING_RATE, MAX_FUNDING_RATE)
#: a yield or policy rate in percent
rate_pct = bounded(MIN_RATE_PCT, MAX_RATE_PCT)
#: a probability 0..1
probability = bounded(PROB_MIN, PROB_MAX)
#: a hash rate in H/s > 0
hash_rate = bounded(0.0, MAX_HASH_RATE, above=True)
#: a difficulty adjustment in percent
difficulty_change = bounded(MIN_DIFFICULTY_CHANGE_PCT, MAX_DIFFICULTY_CHANGE_PCT)
#: a share of a whole in percent, 0..100 (an epoch's progress)
progress_pct = bounded(INDEX_MIN, INDEX_MAX)
#: transactions in a day > 0
tx_per_day = bounded(0.0, MAX_TX_PER_DAY, above=True)
#: a daily market level outside crypto > 0
macro_level = bounded(0.0, MAX_MACRO_LEVEL, above=True)


def rank(value: Any, source: str, field: str) -> int:
    """A rank: a whole number from 1 to MAX_RANK."""
    result = within(number(value, source, field), 1, MAX_RANK, source, field)
    if result != int(result):
        raise BadResponse(source, f"{field} is not a whole number")
    return int(result)


def optional(read: Callable[[Any, str, str], Any], value: Any, source: str, field: str) -> Any:
    """`read(value)`, or None when the value is absent (null or ""): unknown, never 0."""
    if value is None or value == "":
        return None
    return read(value, source, field)


def check(read: Callable[[Any, str, str], float], value: float, source: str, field: str) -> float:
    """A figure computed from others (a change from two prices, coins x price) checked as `read`."""
    return read(value, source, field)


# --- times ------------------------------------------------------------------------------------


def moment(value: datetime, source: str, field: str, *, future_ok: bool = False) -> datetime:
    """An aware time not before EARLIEST nor (unless `future_ok`: a market's close time) more
    than MAX_CLOCK_SKEW ahead of the clock."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value < EARLIEST:
        raise BadResponse(source, f"{field} {value:%Y-%m-%d} is implausibly old")
    if not future_ok and value > clock() + MAX_CLOCK_SKEW:
        raise BadResponse(source, f"{field} {value:%Y-%m-%d %H:%M} is in the future")
    return value


def from_epoch(
    value: Any, source: str, field: str, *, scale: float = 1.0, future_ok: bool = False
) -> datetime:
    """A UTC time from epoch seconds (`scale` 1000 for milliseconds), checked as `moment`."""
    seconds = number(value, source, field) / scale
    if not EARLIEST.timestamp() <= seconds <= (clock() + timedelta(days=3660)).timestamp():
        raise BadResponse(source, f"{field} is not a plausible time")
    return moment(datetime.fromtimestamp(seconds, UTC), source, field, future_ok=future_ok)


def from_s(value: Any, source: str, field: str) -> datetime:
    return from_epoch(value, source, field)


def from_ms(value: Any, source: str, field: str) -> datetime:
    return from_epoch(value, source, field, scale=1000.0)


def day(value: date, source: str, field: str) -> date:
    """A calendar day (a session, a flow day) not before EARLIEST nor after tomorrow (UTC): a
    US session's date is at most a day ahead of UTC's."""
    if value < EARLIEST.date():
        raise BadResponse(source, f"{field} {value.isoformat()} is implausibly old")
    if value > (clock() + MAX_CLOCK_SKEW).date() + timedelta(days=1):
        raise BadResponse(source, f"{field} {value.isoformat()} is in the future")
    return value


def iso_time(value: Any, source: str, field: str, *, future_ok: bool = False) -> datetime:
    """An ISO 8601 time (a naive one is UTC), checked as `moment`."""
    if not isinstance(value, str) or not value:
        raise BadResponse(source, f"{field} is missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise BadResponse(source, f"{field} is not an ISO time") from err
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return moment(parsed.astimezone(UTC), source, field, future_ok=future_ok)
