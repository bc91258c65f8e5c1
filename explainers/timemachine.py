"""Answers about a past UTC day: `/why 2024-08-05`, and the backtest of the alert rule.

`fetch_history` reads each source's history over a range of days once (`sources.past`);
`past_snapshot` slices it into a normal `Snapshot` and `Lookback` as of the end of one day, so
the usual drivers, explanation and templates give an answer of the same shape as today's.
Liquidations and headlines have no upstream history: only whydown's own archive has them, so
a rebuilt day says "not tracked then" for them, never zero. The Fed driver's cut odds come from
the Polymarket market that covered the day, while Polymarket still serves its price history.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import httpx

from explainers import drivers, explain
from explainers.errors import SourceError
from explainers.models import (
    CoinMarket,
    CutOdds,
    DriverResult,
    EtfFlows,
    Explanation,
    FearGreed,
    IndexQuote,
    Lookback,
    Markets,
    PastView,
    PriceSeries,
    Snapshot,
    SourceStatus,
    YieldDay,
    Yields,
)
from explainers.settings import SourceSettings, Thresholds
from explainers.sources import fred, past, polymarket, yahoo

T = TypeVar("T")

#: Coinbase's BTC-USD candles begin here: no source has the move before it
EARLIEST_DAY = date(2015, 7, 20)
#: days before the asked one that the lookbacks need (7-day Fear & Greed, 5 yield sessions)
LEAD_DAYS = 10
#: keyless CoinGecko serves this many past days; older ranges go to Coinbase candles
COINGECKO_DAYS = 365
#: a day this recent may still change upstream (ETF flows land after the US close): not cached
SETTLED_AFTER = timedelta(days=2)

NOT_TRACKED = "not tracked then: whydown's archive has no record of that day"
FED_ODDS_GAP = (
    "Fed odds: Polymarket does not serve a resolved market's history (judged on the 2-year yield)"
)
FED_NO_MARKET_GAP = (
    "Fed odds: no Polymarket Fed decision market found for that day (judged on the 2-year yield)"
)
FED_NOT_REBUILT = "cut odds not rebuilt (no history served)"
#: a day's odds are the last point of its meeting's history within this of the day's end
ODDS_TOLERANCE = timedelta(days=1)
HEADLINES_GAP = "Headlines: only in whydown's archive, none for that day"

#: symbols of the coins most asked about; any other query is taken as a CoinGecko id
COIN_IDS = {
    "btc": ("bitcoin", "Bitcoin"),
    "eth": ("ethereum", "Ethereum"),
    "sol": ("solana", "Solana"),
    "xrp": ("ripple", "XRP"),
    "bnb": ("binancecoin", "BNB"),
    "doge": ("dogecoin", "Dogecoin"),
    "ada": ("cardano", "Cardano"),
    "avax": ("avalanche-2", "Avalanche"),
    "link": ("chainlink", "Chainlink"),
    "dot": ("polkadot", "Polkadot"),
    "ltc": ("litecoin", "Litecoin"),
    "trx": ("tron", "TRON"),
}

_AGO = re.compile(r"^(\d{1,4})\s*d(?:ays?)?(?:\s+ago)?$")


class BadDate(ValueError):
    """A date the time machine cannot answer for; `reason` is said to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_day(text: str, today: date) -> date:
    """ "2024-08-05", "yesterday", "today", "3d" (three days ago) -> a UTC day; BadDate for a
    date that cannot be read, lies in the future, or before any source's history."""
    raw = text.strip().lower()
    if raw in ("today", "now"):
        day = today
    elif raw == "yesterday":
        day = today - timedelta(days=1)
    elif match := _AGO.match(raw):
        day = today - timedelta(days=int(match.group(1)))
    else:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise BadDate(
                f'"{text.strip()[:40]}" is not a date: use YYYY-MM-DD (2024-08-05), '
                '"yesterday" or "3d" for three days ago'
            ) from None
    if day > today:
        raise BadDate(f"{day.isoformat()} is in the future: ask about a day that has begun")
    if day < EARLIEST_DAY:
        raise BadDate(
            f"{day.isoformat()} is before any source's history (the earliest is "
            f"{EARLIEST_DAY.isoformat()})"
        )
    return day


def is_day(text: str) -> bool:
    """Whether a command argument reads as a date rather than a coin."""
    raw = text.strip().lower()
    return (
        raw in ("today", "now", "yesterday")
        or bool(_AGO.match(raw))
        or bool(re.match(r"^\d{4}-\d{1,2}-\d{1,2}$", raw))
    )


@dataclass
class SourceHistory:
    """What one source's history read gave: the data, or why not."""

    key: str
    label: str
    value: Any = None
    reason: str | None = None


@dataclass
class History:
    """Every source's history over [first, last], read once, for slicing per day."""

    first: date
    last: date
    fetched_at: datetime
    prices: dict[str, SourceHistory] = field(default_factory=dict)  # coin id -> PriceSeries
    fear: SourceHistory | None = None
    etf: SourceHistory | None = None
    yields: SourceHistory | None = None
    indices: dict[str, SourceHistory] = field(default_factory=dict)
    coinbase_hours: SourceHistory | None = None
    okx_hours: SourceHistory | None = None
    odds: SourceHistory | None = None  # list[past.MeetingOdds]
    #: upstream requests this read made
    requests: int = 0


async def _try(key: str, label: str, call: Awaitable[T]) -> SourceHistory:
    try:
        return SourceHistory(key, label, await call)
    except SourceError as err:
        return SourceHistory(key, label, reason=str(err.detail))
    except (httpx.HTTPError, ValueError) as err:
        return SourceHistory(key, label, reason=type(err).__name__)


async def _first_of(*attempts: tuple[str, str, Awaitable[Any]]) -> SourceHistory:
    """The first attempt that delivers; else the last failure. Later attempts are awaitables
    created up front but only awaited when needed (they are coroutines: not started before)."""
    result: SourceHistory | None = None
    pending = list(attempts)
    while pending:
        key, label, call = pending.pop(0)
        result = await _try(key, label, call)
        if result.value is not None:
            for _, _, rest in pending:
                _close(rest)
            return result
    assert result is not None
    return result


def _close(call: Awaitable[Any]) -> None:
    close = getattr(call, "close", None)
    if close is not None:
        close()


async def fetch_history(
    client: httpx.AsyncClient,
    cfg: SourceSettings,
    first: date,
    last: date,
    *,
    coins: Iterable[str] = (),
    today: date | None = None,
    yahoo_session: yahoo.YahooSession | None = None,
) -> History:
    """Read each source's history once over [first - LEAD_DAYS, last], concurrently."""
    today = today or datetime.now(UTC).date()
    session = yahoo_session or yahoo.YahooSession.from_settings(cfg)
    start_day = first - timedelta(days=LEAD_DAYS)
    start = datetime.combine(start_day, datetime.min.time(), UTC)
    end = past.day_end(last)
    counter = _Counter(client)
    out = History(first=first, last=last, fetched_at=datetime.now(UTC))

    def price(coin_id: str, product: str | None) -> Awaitable[SourceHistory]:
        attempts: list[tuple[str, str, Awaitable[Any]]] = []
        # keyless CoinGecko refuses a `from` older than 365 days: the lead days are clipped
        cg_start = max(
            start,
            datetime.combine(today, datetime.min.time(), UTC) - timedelta(days=COINGECKO_DAYS - 1),
        )
        if cg_start < end - timedelta(days=1):
            attempts.append(
                (
                    "coingecko",
                    "CoinGecko price history",
                    past.coingecko_range(client, cfg, coin_id, cg_start, end),
                )
            )
        if product is not None:
            attempts.append(
                (
                    "coinbase_daily",
                    "Coinbase daily candles",
                    past.coinbase_daily(client, cfg, product, start, end),
                )
            )
        if not attempts:
            return _none("coingecko", "CoinGecko price history", "older than its 365 days")
        return _first_of(*attempts)

    ids = ["bitcoin", "ethereum", *(c for c in coins if c not in ("bitcoin", "ethereum"))]
    products = {"bitcoin": "BTC-USD", "ethereum": "ETH-USD"}
    hour_start = datetime.combine(first, datetime.min.time(), UTC)
    results = await asyncio.gather(
        *(price(i, products.get(i)) for i in ids),
        _try("feargreed", "Fear & Greed history", past.fear_greed_all(client, cfg)),
        _try("farside", "Farside ETF flows (all data)", past.etf_all(client, cfg)),
        _first_of(
            (
                "treasury",
                "US Treasury yields",
                past.treasury_years(client, cfg, start_day - timedelta(days=7), last),
            ),
            ("fred", "FRED yields", past.fred_yields(client, cfg, start_day, last)),
        ),
        *(
            _first_of(
                (
                    f"fred_{key}",
                    f"FRED {name}",
                    past.fred_index(client, cfg, key, start_day, last),
                ),
                (
                    f"yahoo_{key}",
                    f"Yahoo Finance {name} (daily chart)",
                    past.yahoo_index(client, cfg, key, start_day, last, session),
                ),
            )
            for key, name in INDEX_NAMES
        ),
        _try(
            "coinbase",
            "Coinbase BTC-USD hourly candles",
            past.coinbase_candles(client, cfg, "BTC-USD", hour_start, end, past.HOUR_S),
        ),
        _try(
            "okx_candles",
            "OKX BTC-USDT hourly candles",
            past.okx_hourly(client, cfg, "BTC-USDT", hour_start, end),
        ),
        _try(
            "polymarket",
            "Polymarket cut odds history",
            past.polymarket_odds(client, cfg, first, last),
        ),
    )
    for coin_id, result in zip(ids, results[: len(ids)], strict=True):
        out.prices[coin_id] = result
    rest = results[len(ids) :]
    out.fear, out.etf, out.yields = rest[0], rest[1], rest[2]
    out.indices = {"spx": rest[3], "ndx": rest[4]}
    out.coinbase_hours, out.okx_hours = rest[5], rest[6]
    out.odds = rest[7]
    out.requests = counter.count
    counter.detach()
    return out


#: the stock indices a past day reads: our key, the name in a source's label
INDEX_NAMES: tuple[tuple[fred.IndexKey, str], ...] = (("spx", "S&P 500"), ("ndx", "Nasdaq"))


async def _none(key: str, label: str, reason: str) -> SourceHistory:
    return SourceHistory(key, label, reason=reason)


class _Counter:
    """Counts the requests a client sends while attached (for the backtest's figures)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.count = 0
        client.event_hooks.setdefault("request", []).append(self._hook)

    async def _hook(self, request: httpx.Request) -> None:
        self.count += 1

    def detach(self) -> None:
        hooks = self.client.event_hooks.get("request", [])
        if self._hook in hooks:
            hooks.remove(self._hook)
            self.client.event_hooks["request"] = hooks


# --- slicing one day --------------------------------------------------------------------------


def _status(
    h: SourceHistory | None, as_of: datetime | None, reason: str | None = None
) -> SourceStatus | None:
    if h is None:
        return None
    if h.value is not None and reason is None:
        return SourceStatus(source=h.key, label=h.label, state="ok", as_of=as_of)
    return SourceStatus(source=h.key, label=h.label, state="failed", reason=reason or h.reason)


def _nearest(series: PriceSeries, target: datetime, tolerance: timedelta) -> float | None:
    best = min(series.points, key=lambda p: abs(p.ts - target), default=None)
    if best is None or abs(best.ts - target) > tolerance:
        return None
    return best.price


def _change(now: float | None, then: float | None) -> float | None:
    return (now - then) / then * 100 if now is not None and then else None


def _coin(
    coin_id: str, name: str, symbol: str, series: PriceSeries, end: datetime, rank: int
) -> CoinMarket | None:
    close = _nearest(series, end, timedelta(hours=2))
    if close is None:
        return None
    return CoinMarket(
        id=coin_id,
        symbol=symbol,
        name=name,
        rank=rank,
        price=close,
        # hourly points only when the range was short enough for CoinGecko to give them
        change_1h=_change(close, _nearest(series, end - timedelta(hours=1), timedelta(minutes=20))),
        change_24h=_change(close, _nearest(series, end - timedelta(days=1), timedelta(hours=2))),
        change_7d=_change(close, _nearest(series, end - timedelta(days=7), timedelta(hours=2))),
        last_updated=end,
    )


def coin_names(query: str) -> tuple[str, str, str]:
    """(CoinGecko id, name, symbol) for a coin query."""
    q = query.strip().lower()
    if q in COIN_IDS:
        coin_id, name = COIN_IDS[q]
        return coin_id, name, q
    for symbol, (coin_id, name) in COIN_IDS.items():
        if q in (coin_id, name.lower()):
            return coin_id, name, symbol
    return q, q.title(), q


def _etf(h: SourceHistory | None, day: date) -> tuple[EtfFlows | None, str | None]:
    if h is None or not isinstance(h.value, EtfFlows):
        return None, None
    days = [d for d in h.value.days if d.day <= day][-10:]
    if not [d for d in days if d.total_musd is not None]:
        return None, "no ETF flows reported by then"
    return (
        h.value.model_copy(update={"days": days, "as_of": past.day_end(days[-1].day)}),
        None,
    )


def _yields(h: SourceHistory | None, day: date) -> tuple[Yields | None, str | None]:
    if h is None or not isinstance(h.value, list):
        return None, None
    rows: list[YieldDay] = [d for d in h.value if d.day <= day and d.two_year is not None][-10:]
    if not rows:
        return None, "no yields by then"
    source = "US Treasury" if h.key == "treasury" else "FRED"
    return Yields(source=source, as_of=past.day_end(rows[-1].day), days=rows), None


def _index(key: str, h: SourceHistory | None, day: date) -> tuple[IndexQuote | None, str | None]:
    if h is None or not isinstance(h.value, list):
        return None, None
    rows = [(d, v) for d, v in h.value if d <= day][-2:]
    if len(rows) < 2:
        return None, "no session by then"
    (_, previous), (session, last) = rows
    name = "S&P 500" if key == "spx" else "Nasdaq Composite"
    return (
        IndexQuote(
            source="FRED" if h.key.startswith("fred") else yahoo.SOURCE,
            as_of=past.day_end(session),
            symbol=key,
            name=name,
            last=last,
            previous_close=previous,
            change_pct=(last - previous) / previous * 100,
            session=session,
            market_open=False,
        ),
        None,
    )


def _fear(h: SourceHistory | None, day: date) -> tuple[FearGreed | None, str | None]:
    if h is None or not isinstance(h.value, FearGreed):
        return None, None
    points = [p for p in h.value.points if day - timedelta(days=7) <= p.day <= day]
    if not points or points[-1].day != day:
        return None, "no index value for that day"
    return FearGreed(source=h.value.source, as_of=past.day_end(day), points=points), None


def _odds(h: SourceHistory | None, day: date) -> tuple[CutOdds | None, float | None, str | None]:
    """The cut odds at the meeting next after the day's end, their value 7 days before (same
    meeting's markets, as the live lookback reads them) and, when not rebuilt, the gap to say."""
    if h is None:
        return None, None, FED_ODDS_GAP
    if not isinstance(h.value, list):
        no_market = bool(h.reason and "no Fed decision market" in h.reason)
        return None, None, FED_NO_MARKET_GAP if no_market else FED_ODDS_GAP
    end = past.day_end(day)
    covering = [m for m in h.value if isinstance(m, past.MeetingOdds) and m.meeting.end > end]
    if not covering:
        return None, None, FED_NO_MARKET_GAP
    odds = min(covering, key=lambda m: m.meeting.end)
    points = [p for p in odds.history if end - ODDS_TOLERANCE <= p.ts <= end]
    if not points:
        return None, None, FED_ODDS_GAP
    latest = points[-1]
    week_ago = end - timedelta(days=7)
    before = min(odds.history, key=lambda p: abs(p.ts - week_ago))
    then = before.probability if abs(before.ts - week_ago) <= ODDS_TOLERANCE else None
    meeting = odds.meeting
    return (
        CutOdds(
            source=polymarket.SOURCE,
            as_of=latest.ts,
            meeting=meeting.title,
            meeting_date=meeting.end.date(),
            probability=latest.probability,
            history=[p for p in odds.history if week_ago - ODDS_TOLERANCE <= p.ts <= end],
            url=f"{polymarket.EVENT_URL}{meeting.slug}" if meeting.slug else None,
        ),
        then,
        None,
    )


def worst_premium(
    coinbase: dict[datetime, float], okx: dict[datetime, float], day: date, hours: int
) -> list[float]:
    """The day's Coinbase premium (%, hourly closes) over its worst `hours` consecutive hours:
    the window whose highest premium is lowest. [] when the day has no such window."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    series: list[float | None] = []
    for i in range(24):
        hour = start + timedelta(hours=i)
        cb, ox = coinbase.get(hour), okx.get(hour)
        series.append((cb - ox) / ox * 100 if cb is not None and ox else None)
    windows = [
        [v for v in series[i : i + hours] if v is not None] for i in range(0, 24 - hours + 1)
    ]
    full = [w for w in windows if len(w) == hours]
    return min(full, key=max, default=[])


@dataclass(frozen=True)
class PastDay:
    """One day sliced from the history: what the drivers read, and what could not be rebuilt."""

    snapshot: Snapshot
    lookback: Lookback
    gaps: list[str]


def past_snapshot(h: History, day: date, t: Thresholds, coin: str | None = None) -> PastDay:
    end = past.day_end(day)
    statuses: dict[str, SourceStatus] = {}
    gaps: list[str] = []

    def note(status: SourceStatus | None) -> None:
        if status is not None:
            statuses[status.source] = status

    coins: list[CoinMarket] = []
    price_source = "CoinGecko"
    wanted = [("bitcoin", "Bitcoin", "btc"), ("ethereum", "Ethereum", "eth")]
    if coin:
        coin_id, name, symbol = coin_names(coin)
        if coin_id not in ("bitcoin", "ethereum"):
            wanted.append((coin_id, name, symbol))
    for rank, (coin_id, name, symbol) in enumerate(wanted, start=1):
        hist = h.prices.get(coin_id)
        market = (
            _coin(coin_id, name, symbol, hist.value, end, rank)
            if hist is not None and isinstance(hist.value, PriceSeries)
            else None
        )
        if hist is not None:
            if coin_id == "bitcoin":
                price_source = (
                    hist.value.source if isinstance(hist.value, PriceSeries) else price_source
                )
            note(_status(hist, end, None if market or hist.value is None else "no price that day"))
        if market is not None:
            coins.append(market)
    markets = Markets(source=price_source, as_of=end, coins=coins) if coins else None

    etf, why = _etf(h.etf, day)
    note(_status(h.etf, etf.as_of if etf else None, why))
    yields, why = _yields(h.yields, day)
    note(_status(h.yields, yields.as_of if yields else None, why))
    fear, why = _fear(h.fear, day)
    note(_status(h.fear, end, why))
    indices: dict[str, IndexQuote] = {}
    for key, hist in h.indices.items():
        quote, why = _index(key, hist, day)
        note(_status(hist, quote.as_of if quote else None, why))
        if quote is not None:
            indices[key] = quote

    samples: list[float] = []
    if (
        h.coinbase_hours is not None
        and h.okx_hours is not None
        and isinstance(h.coinbase_hours.value, dict)
        and isinstance(h.okx_hours.value, dict)
    ):
        samples = worst_premium(h.coinbase_hours.value, h.okx_hours.value, day, t.premium_samples)
    for hist in (h.coinbase_hours, h.okx_hours):
        note(
            _status(
                hist,
                end,
                None if samples or hist is None or hist.value is None else "no candles that day",
            )
        )

    cut_odds, odds_7d_ago, gap = _odds(h.odds, day)
    if cut_odds is not None:
        note(_status(h.odds, cut_odds.as_of))
    if gap is not None:
        gaps.append(gap)
    snapshot = Snapshot(
        taken_at=end,
        markets=markets,
        etf=etf,
        yields=yields,
        indices=indices,
        fear_greed=fear,
        cut_odds=cut_odds,
        statuses=statuses,
    )
    two_5d = None
    if yields is not None:
        reported = [d.two_year for d in yields.days if d.two_year is not None]
        two_5d = reported[-6] if len(reported) >= 6 else None
    lookback = Lookback(
        premium_samples=samples, two_year_5d_ago=two_5d, cut_odds_7d_ago=odds_7d_ago
    )
    return PastDay(snapshot, lookback, gaps)


def _with_notes(results: list[DriverResult], end: datetime) -> list[DriverResult]:
    noted: list[DriverResult] = []
    for d in results:
        # figures rebuilt from history are as of the day's end where the source gave no time
        d = d.model_copy(
            update={
                "evidence": [ev.model_copy(update={"as_of": ev.as_of or end}) for ev in d.evidence]
            }
        )
        if d.key == "liquidations" and d.state == "unknown":
            d = d.model_copy(update={"note": NOT_TRACKED})
        elif d.key == "fed" and getattr(d.figures, "cut_odds", None) is None:
            d = d.model_copy(update={"note": FED_NOT_REBUILT})
        elif d.state == "unknown" and not d.missing:
            d = d.model_copy(update={"note": "no history for that day"})
        noted.append(d)
    return noted


def explain_day(
    h: History,
    day: date,
    t: Thresholds,
    *,
    now: datetime,
    coin: str | None = None,
) -> Explanation:
    """The answer as of the end of `day`, rebuilt from the sources' history."""
    sliced = past_snapshot(h, day, t, coin)
    results = _with_notes(
        drivers.evaluate(sliced.snapshot, sliced.lookback, t), sliced.snapshot.taken_at
    )
    coin_query = coin_names(coin)[2] if coin else None
    e = explain.explain(sliced.snapshot, results, sliced.lookback, t, now=now, coin=coin_query)
    gaps = [*sliced.gaps, HEADLINES_GAP]
    return e.model_copy(
        update={
            "altcoins": None,
            "watch": [],
            "calendar": None,
            "headlines": [],
            "liquidations_tracked_since": None,
            "past": PastView(day=day, origin="rebuilt", gaps=gaps),
        }
    )


def from_archive(e: Explanation, day: date) -> Explanation:
    """An answer whydown gave that day, labelled as of that day."""
    return e.model_copy(update={"past": PastView(day=day, origin="archive", gaps=[])})


def settled(day: date, now: datetime) -> bool:
    """Whether a rebuilt day can be cached: every source has published it by now."""
    return past.day_end(day) + SETTLED_AFTER <= now
