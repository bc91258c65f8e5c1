"""Typed shapes that cross the core's boundaries: source results, the snapshot, the explanation.

Every series is ordered oldest first. Every figure that can be missing is ``None`` (unknown), never 0.
Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, WithJsonSchema


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- source results -------------------------------------------------------------------------


class SourceResult(Model):
    """Base of every source result: the source's id and the time its data refers to."""

    source: str
    as_of: datetime


class CoinMarket(Model):
    id: str
    symbol: str
    name: str
    rank: int | None = None
    price: float | None = None
    market_cap: float | None = None
    change_1h: float | None = None
    change_24h: float | None = None
    change_7d: float | None = None
    last_updated: datetime | None = None


class Markets(SourceResult):
    """Top coins by market cap (CoinGecko /coins/markets)."""

    coins: list[CoinMarket]


class GlobalMarket(SourceResult):
    total_market_cap_usd: float | None = None
    market_cap_change_24h_pct: float | None = None
    btc_dominance: float | None = None


class SpotPrice(SourceResult):
    """A last price, with a 24h change where the venue gives one."""

    symbol: str
    price: float
    change_24h_pct: float | None = None


class Candle(Model):
    start: datetime
    close: float


class Candles(SourceResult):
    """Closed candles of one instrument, oldest first (Coinbase and OKX 1-minute candles)."""

    symbol: str
    granularity_s: int
    candles: list[Candle]


class PricePoint(Model):
    ts: datetime
    price: float


class PriceSeries(SourceResult):
    """A coin's USD price over time, oldest first (CoinGecko market_chart, Coinbase hourly candles)."""

    symbol: str
    points: list[PricePoint]


class Liquidation(Model):
    exchange: str
    instrument: str
    position_side: Literal["long", "short"]
    price: float
    size: float  # in the exchange's unit (contracts on OKX)
    usd: float
    ts: datetime

    @property
    def key(self) -> str:
        """Identity for de-duplication across polls."""
        return f"{self.exchange}|{self.instrument}|{self.ts.isoformat()}|{self.position_side}|{self.size}|{self.price}"


class LiquidationHour(Model):
    """Long and short liquidations summed over one clock hour (UTC)."""

    hour: datetime
    long_usd: float
    short_usd: float
    instruments: list[str] = Field(default_factory=list)


class CoverageGap(Model):
    """A time a venue's stream was not read (disconnected, or whydown stopped)."""

    start: datetime
    end: datetime | None  # None: still down at the window's end


class VenueCoverage(Model):
    """How one venue's liquidations were tracked over a window."""

    exchange: str
    #: start of the unbroken tracking that reaches the window's end; None: not tracked at its end
    tracked_since: datetime | None
    #: a gap (a stream disconnect or start, a restart of polling) lies inside the window
    gap_in_window: bool
    #: "stream": read from the venue's websocket; "rest": from REST polls of its latest orders
    via: Literal["stream", "rest"] = "stream"
    #: the stream's disconnections touching the window, after the venue was first tracked
    gaps: list[CoverageGap] = Field(default_factory=list)


class LiquidationCoverage(Model):
    """Per venue, whether liquidations over ``[since, until]`` were tracked without a hole.

    Streamed venues are known from their recorded gaps (a stream records one when it starts);
    polled venues share the REST tracking (``tracked_since`` and the last poll)."""

    since: datetime
    until: datetime
    venues: list[VenueCoverage] = Field(default_factory=list)

    @property
    def tracked(self) -> list[VenueCoverage]:
        """Venues tracked at the window's end."""
        return [v for v in self.venues if v.tracked_since is not None]

    @property
    def tracked_since(self) -> datetime | None:
        """Since when every venue tracked at the window's end has been tracked; None: none is."""
        return max((v.tracked_since for v in self.tracked if v.tracked_since), default=None)

    @property
    def partial(self) -> bool:
        """Some venue was not tracked over the whole window (a gap, a late start, a venue down)."""
        return any(
            v.gap_in_window or v.tracked_since is None or v.tracked_since > self.since
            for v in self.venues
        )


class Liquidations(SourceResult):
    """The most recent liquidation orders an exchange reports (a window, not a total)."""

    events: list[Liquidation]


class OpenInterestPoint(Model):
    ts: datetime
    oi_usd: float


class OpenInterest(SourceResult):
    """Open interest in USD now, with the exchange's own recent history where it has one."""

    instrument: str
    oi_usd: float
    history: list[OpenInterestPoint] = Field(default_factory=list)


class Funding(SourceResult):
    instrument: str
    rate: float  # per funding interval, as a fraction (0.0001 = 0.01%)


class EtfDay(Model):
    day: date
    total_musd: float | None  # None: not reported yet ("-" on Farside)
    funds: dict[str, float | None] = Field(default_factory=dict)


class EtfFlows(SourceResult):
    """US spot-Bitcoin-ETF daily net flows in US$ millions."""

    days: list[EtfDay]
    url: str | None = None


class YieldDay(Model):
    day: date
    two_year: float | None = None
    ten_year: float | None = None


class Yields(SourceResult):
    days: list[YieldDay]


class OddsPoint(Model):
    ts: datetime
    probability: float


class CutOdds(SourceResult):
    """Market-implied probability (0..1) of a rate cut at the next FOMC meeting."""

    meeting: str
    meeting_date: date | None = None
    probability: float
    history: list[OddsPoint] = Field(default_factory=list)
    url: str | None = None


class IndexQuote(SourceResult):
    """A stock index's last session: close (or last) against the previous close."""

    symbol: str  # our key: "spx" or "ndx"
    name: str
    last: float
    previous_close: float
    change_pct: float
    session: date
    market_open: bool = False


class VenueOpenInterest(Model):
    """One venue's open interest in one coin, in USD, as of the venue's own time."""

    venue: str
    coin: str  # "BTC", "ETH", ...
    usd: float
    at: datetime
    instruments: list[str] = Field(default_factory=list)  # what was summed on the venue


class CoinOpenInterest(Model):
    """A coin's open interest summed over the venues that answered."""

    coin: str
    usd: float
    at: datetime  # the oldest venue time: the sum is no fresher than its stalest part
    venues: list[VenueOpenInterest]


class UsdtQuote(Model):
    """US dollars per USDT."""

    rate: float
    source: str
    at: datetime


class FedCutOdds(SourceResult):
    """Market-implied odds (percent) of a cut at the next FOMC meeting, from one Kalshi market."""

    cut_pct: float
    meeting: str  # "FOMC Apr 28, 2027"
    meeting_date: date
    event_ticker: str
    ticker: str  # the market read: "above U - 0.25%"
    title: str
    yes_price: float
    price_basis: str  # "mid" of bid/ask, or "last" trade
    current_upper_pct: float


def change_pct(now: float, before: float) -> float:
    """`now` against `before` in percent, rounded to 9 decimals so that a change exactly at a
    threshold (99 against 100: -1%) compares as that threshold, not a float's hair beside it."""
    return round((now / before - 1) * 100, 9)


class HashRate(SourceResult):
    """Bitcoin's network hash rate from daily averages (mempool.space), in hashes per second."""

    mean_7d: float
    mean_30d: float
    days: int  # daily points in the 30-day mean

    @property
    def change_pct(self) -> float:
        """The 7-day mean against the 30-day mean, in percent."""
        return change_pct(self.mean_7d, self.mean_30d)


class DifficultyAdjustment(SourceResult):
    """Bitcoin's next difficulty adjustment as mempool.space estimates it."""

    change_pct: float  # estimated change of the difficulty at the retarget
    retarget_at: datetime  # estimated time of the retarget
    remaining_blocks: int
    progress_pct: float  # of the current 2,016-block epoch


class StablecoinSupply(SourceResult):
    """Total stablecoin supply in USD (DefiLlama), now and 7 days before."""

    total_usd: float
    week_ago_usd: float | None = None  # None: no point 7 days before

    @property
    def change_7d_pct(self) -> float | None:
        if self.week_ago_usd is None:
            return None
        return change_pct(self.total_usd, self.week_ago_usd)


class Transactions(SourceResult):
    """Confirmed Bitcoin transactions per day (blockchain.info): the latest day and the mean of
    the 30 days it ends."""

    day: date
    count: float
    mean_30d: float

    @property
    def change_pct(self) -> float:
        return change_pct(self.count, self.mean_30d)


#: the daily market series read outside crypto: VIX, the broad dollar index, USD/JPY
MacroKey = Literal["vix", "dollar", "usdjpy"]


class MacroQuote(SourceResult):
    """A daily FRED series' latest observation and its change from the one before."""

    key: MacroKey
    series: str  # FRED id: "VIXCLS", "DTWEXBGS", "DEXJPUS"
    day: date
    value: float
    previous_day: date | None = None
    previous: float | None = None  # None: no observation in the days before (a blank run)

    @property
    def change_pct(self) -> float | None:
        if self.previous is None:
            return None
        return change_pct(self.value, self.previous)


class FearGreedPoint(Model):
    day: date
    value: int
    label: str


class FearGreed(SourceResult):
    points: list[FearGreedPoint]


class Headline(Model):
    title: str
    link: str
    feed: str  # label of the feed it came from
    published: datetime | None = None
    drivers: list[str] = Field(default_factory=list)


class Headlines(SourceResult):
    items: list[Headline]


# --- the snapshot ---------------------------------------------------------------------------

SourceState = Literal["ok", "stale", "failed", "blocked", "disabled"]


class SourceStatus(Model):
    source: str
    label: str
    state: SourceState
    reason: str | None = None
    as_of: datetime | None = None
    latency_ms: float | None = None


class Snapshot(Model):
    """Everything one refresh read, and how each source fared."""

    taken_at: datetime
    markets: Markets | None = None
    global_market: GlobalMarket | None = None
    btc_fallback: SpotPrice | None = None
    eth_fallback: SpotPrice | None = None
    coinbase_btc: Candles | None = None
    okx_btc: Candles | None = None
    liquidations: list[Liquidations] = Field(default_factory=list)
    open_interest: list[OpenInterest] = Field(default_factory=list)
    funding: list[Funding] = Field(default_factory=list)
    etf: EtfFlows | None = None
    yields: Yields | None = None
    cut_odds: CutOdds | None = None
    indices: dict[str, IndexQuote] = Field(default_factory=dict)
    fear_greed: FearGreed | None = None
    headlines: list[Headline] = Field(default_factory=list)
    # open interest per venue and coin (OKX, Bybit, Binance, Hyperliquid), in USD
    venue_open_interest: list[VenueOpenInterest] = Field(default_factory=list)
    usdt: UsdtQuote | None = None  # USD per USDT: cleans the Coinbase premium
    kalshi_odds: FedCutOdds | None = None  # Kalshi's cut odds, beside Polymarket's
    # context, never a driver: the network, stablecoins, markets outside crypto
    hash_rate: HashRate | None = None
    difficulty: DifficultyAdjustment | None = None
    stablecoins: StablecoinSupply | None = None
    transactions: Transactions | None = None
    macro: dict[str, MacroQuote] = Field(default_factory=dict)  # MacroKey -> quote
    statuses: dict[str, SourceStatus] = Field(default_factory=dict)


#: "all": the venue lists every liquidation; "sampled": only some (Binance and OKX streams push
#: at most one per symbol per second or so, OKX's REST lists only the latest orders per family)
LiquidationMode = Literal["all", "sampled"]


class LiquidationVenue(Model):
    """A venue a liquidation total reads, and how completely it reads it."""

    exchange: str
    mode: LiquidationMode
    via: Literal["stream", "rest"] = "stream"
    #: start of its unbroken tracking up to now; None: not read now (down)
    tracked_since: datetime | None = None
    gap_in_window: bool = False
    gaps: list[CoverageGap] = Field(default_factory=list)


class LiquidationTotals(Model):
    """Long and short liquidations accumulated over a window from tracked events."""

    window_h: int
    long_usd: float
    short_usd: float
    tracked_since: datetime | None  # None: nothing tracked yet, totals unknown
    #: venues whose liquidations were summed (empty: not known, e.g. built by hand)
    exchanges: list[str] = Field(default_factory=list)
    #: the window holds a gap: a venue started, dropped or restarted inside it
    partial: bool = False
    #: every venue seen over the window, read now or not (empty: not known, e.g. built by hand)
    venues: list[LiquidationVenue] = Field(default_factory=list)

    @property
    def total_usd(self) -> float:
        return self.long_usd + self.short_usd


class Lookback(Model):
    """Figures from history that the drivers compare against (None where history is too short)."""

    liquidations_1h: LiquidationTotals | None = None
    liquidations_24h: LiquidationTotals | None = None
    premium_samples: list[float] = Field(default_factory=list)  # stored Coinbase premium, %
    oi_1h_ago_usd: float | None = None
    # each venue's BTC open interest about 1h ago (stored at past refreshes), venue -> USD
    oi_venues_1h_ago_usd: dict[str, float] = Field(default_factory=dict)
    cut_odds_7d_ago: float | None = None
    two_year_5d_ago: float | None = None


# --- drivers and the explanation -----------------------------------------------------------

DriverState = Literal["fired", "quiet", "unknown"]
#: what part a driver plays in a sell-off: what set it off (stocks, the Fed, ETF outflows, US
#: selling), what amplified it (liquidations, open interest falling), how sentiment answered
Role = Literal["set_off", "amplifier", "sentiment"]
#: the order roles are told and listed in
ROLES: tuple[Role, ...] = ("set_off", "amplifier", "sentiment")


class Evidence(Model):
    label: str
    value: str
    source: str
    url: str | None = None
    as_of: datetime | None = None


class Figures(BaseModel):
    """What a driver's words phrase: each driver subclasses this with its own typed attributes
    (``None`` when unknown). The base only carries figures whose driver type is not at hand: a
    result read back from JSON, or built by hand; ``Driver.figures_of`` retypes those."""

    model_config = ConfigDict(frozen=True, extra="allow")


class DriverFigures(Figures):
    """Base of each driver's own figures: unknown attribute names are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


#: in JSON the figures are one object of figure name -> number or null, whichever the driver
FIGURES_SCHEMA = {
    "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "null"}]},
    "title": "Figures",
    "type": "object",
}


class DriverResult(Model):
    key: str
    name: str
    state: DriverState
    role: Role | None = None  # None: not known (a result built by hand)
    severity: float = 0.0  # how far past its threshold (1.0 = exactly at it); ranks fired drivers
    # the driver's own Figures subclass; serialised with its attributes, read back as plain Figures
    figures: Annotated[SerializeAsAny[Figures], WithJsonSchema(FIGURES_SCHEMA)] = Field(
        default_factory=Figures
    )
    threshold: str
    evidence: list[Evidence] = Field(default_factory=list)
    headlines: list[Headline] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)  # labels of sources whose data was missing
    #: a past day's answer: why this driver could not be (fully) rebuilt, said instead of `missing`
    note: str | None = None


class Move(Model):
    label: str
    change_1h: float | None
    change_24h: float | None
    price: float | None = None
    source: str
    as_of: datetime | None


class CoinLiquidations(Model):
    """The asked coin's own liquidations, from the streams that carry its perpetual
    (``/why COIN`` while whydown streams). Sums start where tracking began when that is inside
    their window; `tracked_since` None: the coin is not tracked yet (no sums, never $0)."""

    venues: list[LiquidationVenue] = Field(default_factory=list)
    tracked_since: datetime | None = None
    until: datetime | None = None
    long_1h: float | None = None
    short_1h: float | None = None
    #: None when tracking began inside the last hour (the 24h sums would repeat the 1h ones)
    long_24h: float | None = None
    short_24h: float | None = None

    @property
    def since_in_window(self) -> bool:
        """Tracking began inside the last 24 hours: the sums start there."""
        return (
            self.tracked_since is not None
            and self.until is not None
            and self.tracked_since > self.until - timedelta(hours=24)
        )


class CoinView(Model):
    """The asked coin's own move against BTC and the market (``/why COIN``)."""

    id: str
    symbol: str
    name: str
    move: Move
    vs_btc_24h: float | None
    vs_market_24h: float | None
    #: None: whydown does not stream liquidations (nothing to say about them)
    liquidations: CoinLiquidations | None = None


class AltcoinView(Model):
    median_alt_24h: float | None
    btc_24h: float | None
    alt_vs_btc_24h: float | None  # median altcoin change minus BTC's, in points
    btc_dominance: float | None
    sample: int
    falling_harder: bool | None


class Sentiment(Model):
    value: int
    label: str
    change_7d: int | None
    as_of: datetime


class WatchItem(Model):
    label: str
    value: str
    source: str
    as_of: datetime | None = None


class Fundamentals(Model):
    """Whether the network and the stablecoin float changed: context, never a driver. Every
    figure is None when its source did not answer (unknown, never 0)."""

    hash_rate_vs_30d: float | None = None  # 7-day mean hash rate against the 30-day mean, %
    stablecoin_usd: float | None = None
    stablecoin_change_7d: float | None = None  # %
    transactions_vs_30d: float | None = None  # latest day against the 30-day mean, %
    #: the hash rate fell past its threshold
    hash_rate_falling: bool = False
    #: the stablecoin supply shrank past its threshold: capital leaving crypto
    capital_leaving: bool = False
    sources: list[str] = Field(default_factory=list)
    as_of: datetime | None = None  # the oldest of the figures' times

    @property
    def changed(self) -> bool:
        return self.hash_rate_falling or self.capital_leaving

    @property
    def complete(self) -> bool:
        return None not in (
            self.hash_rate_vs_30d,
            self.stablecoin_change_7d,
            self.transactions_vs_30d,
        )


class RiskGauge(Model):
    """One market outside crypto on its latest day: VIX, the dollar index, the yen."""

    key: MacroKey
    level: float  # VIX level, dollar index level, USD/JPY
    #: the day's change in percent: VIX's and the dollar index's own, the YEN's against the
    #: dollar (USD/JPY falling = yen rising)
    change_pct: float | None
    day: date
    source: str
    notable: bool


class RiskOff(Model):
    """Markets outside crypto, shown when one is notable (VIX high or jumping, the dollar or
    the yen rising: money running to safety)."""

    gauges: list[RiskGauge]

    @property
    def notable(self) -> list[RiskGauge]:
        return [g for g in self.gauges if g.notable]


class FomcDecision(Model):
    """The next FOMC decision (2 pm Eastern on the meeting's second day), with the cut odds of
    the market that named it."""

    at: datetime
    source: str  # "Polymarket", "Kalshi" or "Fed schedule"
    cut_odds: float | None = None  # 0..1; None: no market read for this meeting
    odds_source: str | None = None


class Calendar(Model):
    """What is due: the next FOMC decision, the last one (if recent), pending ETF flows."""

    fomc: FomcDecision | None = None
    last_fomc: datetime | None = None  # the last decision of the Fed's schedule before now
    #: when today's ETF flows are due (the US close); None: not pending
    etf_due: datetime | None = None


class Onset(Model):
    """When a firing driver's current streak began, as the states stored after each refresh saw
    it: the first refresh it fired at, right after one it was quiet at."""

    key: str
    at: datetime


class Replay(Model):
    """Set when the answer was built from recorded responses, not live data."""

    scenario: str
    scenario_date: date
    provenance: str


class PastView(Model):
    """Set when the answer is for a past UTC day (``/why 2024-08-05``), as of that day's end."""

    day: date
    #: "archive": what whydown answered then; "rebuilt": from each source's history
    origin: Literal["archive", "rebuilt"]
    #: per driver or figure, what could not be rebuilt ("Fed odds: ..."), in reading order
    gaps: list[str] = Field(default_factory=list)


Verdict = Literal["down", "not_down", "unknown"]


class Explanation(Model):
    generated_at: datetime
    data_time: datetime
    verdict: Verdict
    market_change_24h: float | None  # the worse of total market cap and BTC over 24h, in %
    btc_change_1h: float | None
    moves: list[Move]
    drivers: list[DriverResult]  # ranked: fired by role then severity, then quiet, then unknown
    coin: CoinView | None = None
    altcoins: AltcoinView | None = None
    sentiment: Sentiment | None = None
    headlines: list[Headline] = Field(default_factory=list)
    watch: list[WatchItem] = Field(default_factory=list)
    sources: list[SourceStatus] = Field(default_factory=list)
    liquidations_tracked_since: datetime | None = None
    #: the venues the liquidation totals read and how (empty: none tracked, or not known)
    liquidation_venues: list[LiquidationVenue] = Field(default_factory=list)
    replay: Replay | None = None
    past: PastView | None = None
    #: firing drivers whose start whydown saw (absent: firing since before its stored states)
    onsets: list[Onset] = Field(default_factory=list)
    #: context, never a driver: the network and stablecoins, markets outside crypto, what is due
    fundamentals: Fundamentals | None = None
    risk_off: RiskOff | None = None
    calendar: Calendar | None = None

    def move(self, label: str) -> Move | None:
        return next((m for m in self.moves if m.label == label), None)

    @property
    def fired(self) -> list[DriverResult]:
        return [d for d in self.drivers if d.state == "fired"]

    def onset(self, key: str) -> datetime | None:
        return next((o.at for o in self.onsets if o.key == key), None)

    @property
    def failed_sources(self) -> list[SourceStatus]:
        return [s for s in self.sources if s.state in ("failed", "blocked")]

    @property
    def stale_sources(self) -> list[SourceStatus]:
        return [s for s in self.sources if s.state == "stale"]

    @property
    def unexplained(self) -> bool:
        return self.verdict == "down" and not self.fired
