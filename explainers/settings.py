"""Settings the core reads: upstream hosts and keys, timeouts, and driver thresholds.

Plain pydantic models; `bot.config` fills them from the environment (WHYDOWN_SOURCES__..., and
WHYDOWN_THRESHOLDS__...).
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field, SecretStr, field_validator


class SourceSettings(BaseModel):
    """Where each upstream lives (a paid host or a mirror can replace any of them) and its keys."""

    coingecko_url: str = "https://api.coingecko.com/api/v3"
    coingecko_api_key: SecretStr | None = None
    # the demo plan uses x-cg-demo-api-key; a paid plan (pro-api host) uses x-cg-pro-api-key
    coingecko_key_header: str = "x-cg-demo-api-key"
    okx_url: str = "https://www.okx.com"
    coinbase_url: str = "https://api.exchange.coinbase.com"
    kraken_url: str = "https://api.kraken.com"
    farside_url: str = "https://farside.co.uk"
    sosovalue_url: str = "https://openapi.sosovalue.com"
    sosovalue_api_key: SecretStr | None = None
    treasury_url: str = "https://home.treasury.gov"
    fred_url: str = "https://fred.stlouisfed.org"
    polymarket_url: str = "https://gamma-api.polymarket.com"
    polymarket_clob_url: str = "https://clob.polymarket.com"
    yahoo_url: str = "https://query1.finance.yahoo.com"
    # second Yahoo API host: the crumb is asked here when the first host fails
    yahoo_fallback_url: str = "https://query2.finance.yahoo.com"
    # a page that sets Yahoo's session cookie (any status; the crumb needs the cookie)
    yahoo_cookie_url: str = "https://fc.yahoo.com"
    # after a 429 Yahoo is not asked again for this long (a longer Retry-After wins)
    yahoo_breaker_s: float = 900.0
    # CNBC's keyless quote service: intraday index quotes when Yahoo refuses (before FRED's close)
    cnbc_url: str = "https://quote.cnbc.com"
    stooq_url: str = "https://stooq.com"
    # Stooq's CSV downloads now want a key: without one Stooq is disabled (never called)
    stooq_api_key: SecretStr | None = None
    hyperliquid_url: str = "https://api.hyperliquid.xyz"
    kalshi_url: str = "https://api.elections.kalshi.com/trade-api/v2"
    # Kalshi series of the FOMC decision markets ("above X% following the Fed's <date> meeting")
    kalshi_fed_series: str = "KXFED"
    # open interest is read per coin on every venue
    open_interest_coins: list[str] = Field(default_factory=lambda: ["BTC", "ETH", "SOL"])
    # a USDT-USD quote outside these bounds is a bad quote, not a depeg to act on
    usdt_usd_min: float = 0.9
    usdt_usd_max: float = 1.1
    feargreed_url: str = "https://api.alternative.me"
    # fundamentals (keyless): Bitcoin hash rate and difficulty, stablecoin supply, transactions
    mempool_url: str = "https://mempool.space"
    defillama_stablecoins_url: str = "https://stablecoins.llama.fi"
    blockchain_info_url: str = "https://api.blockchain.info"
    coindesk_feed: str = "https://www.coindesk.com/arc/outboundfeeds/rss/"
    cointelegraph_feed: str = "https://cointelegraph.com/rss"
    decrypt_feed: str = "https://decrypt.co/feed"
    theblock_feed: str = "https://www.theblock.co/rss.xml"
    fed_feed: str = "https://www.federalreserve.gov/feeds/press_monetary.xml"
    # Binance and Bybit open interest (keyless public endpoints); off: that venue is left out
    binance_enabled: bool = True
    binance_url: str = "https://fapi.binance.com"
    bybit_enabled: bool = True
    bybit_url: str = "https://api.bybit.com"
    liquidation_families: list[str] = Field(
        default_factory=lambda: ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    )
    timeout_s: float = 8.0
    # a response body larger than this many bytes (after decompression) is refused unread:
    # no upstream answer we read comes near 1 MB
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # RSS/Atom items read per feed, newest first (a runaway feed cannot flood the merge)
    news_max_items: int = Field(default=50, ge=1)
    # a 429's Retry-After longer than this is not waited out inside a refresh: the next cycle retries
    retry_wait_cap_s: float = 5.0
    # pause before the one retry of a timeout or 5xx
    retry_backoff_s: float = 0.5
    # a source that answered 451/403 is skipped for this long instead of being asked every cycle
    blocked_backoff_s: float = 6 * 3600


class Thresholds(BaseModel):
    """What the six driver rules and the "down" verdict compare against: a driver fires when its
    figure crosses its threshold, the market is down at or below the down levels. Every one can
    be changed (`WHYDOWN_THRESHOLDS__<NAME>`)."""

    # liquidation cascade
    liq_long_1h_usd: float = 25e6
    liq_long_24h_usd: float = 100e6
    liq_long_share: float = 0.70
    oi_drop_1h_pct: float = 4.0
    # ETF outflows, US$ millions
    etf_day_musd: float = -100.0
    etf_3day_musd: float = -250.0
    # institutional selling: Coinbase premium in percent, held over this many samples
    premium_pct: float = -0.05
    premium_samples: int = 3
    # Fed uncertainty
    cut_odds_drop_pts: float = 10.0
    two_year_rise_bp: float = 15.0
    # stocks, day change in percent
    spx_day_pct: float = -1.0
    ndx_day_pct: float = -1.5
    # fear
    # below neutral (50): the fear driver's severity divides by 50 - fear_level
    fear_level: int = Field(default=25, ge=1, le=49)
    fear_drop_7d: int = 15
    # the market is "down" when total cap or BTC is at or below these (percent)
    market_down_24h_pct: float = -3.0
    btc_down_1h_pct: float = -2.0
    # altcoins "fall harder" when their median trails BTC by this many points over 24h
    alt_gap_pts: float = 1.0

    # context, never a driver nor counted toward an alert: the fundamentals line says what
    # changed when the 7-day mean hash rate is this far below its 30-day mean (percent), or
    # the stablecoin supply shrank this much in 7 days (percent: capital leaving crypto)
    hash_rate_drop_pct: float = -10.0
    stablecoin_drop_7d_pct: float = -1.0
    # markets outside crypto are shown when VIX is at or above vix_level or rose vix_rise_pct
    # (percent) in a day, the dollar index rose dollar_rise_pct, or the yen rose yen_rise_pct
    # against the dollar (USD/JPY fell about as much)
    vix_level: float = 25.0
    vix_rise_pct: float = 20.0
    dollar_rise_pct: float = 1.0
    yen_rise_pct: float = 2.0
    # an alert this many hours before or after an FOMC decision says so
    fomc_alert_window_h: float = 48.0
    # FOMC decision days (2 pm Eastern), the Fed's published schedule: used when no prediction
    # market names the next meeting
    fomc_dates: list[str] = Field(
        default_factory=lambda: [
            "2026-01-28",
            "2026-03-18",
            "2026-04-29",
            "2026-06-17",
            "2026-07-29",
            "2026-09-16",
            "2026-10-28",
            "2026-12-09",
            "2027-01-27",
            "2027-03-17",
            "2027-04-28",
            "2027-06-09",
            "2027-07-28",
            "2027-09-15",
            "2027-10-27",
            "2027-12-08",
        ]
    )

    @field_validator("fomc_dates")
    @classmethod
    def _iso_days(cls, value: list[str]) -> list[str]:
        for day in value:
            date.fromisoformat(day)  # a day that is not YYYY-MM-DD is refused at start
        return sorted(value)
