"""Typed settings from the environment or `.env` (prefix WHYDOWN_, nested with "__").

Tokens and keys are `SecretStr`: they print as "**********" and are never logged.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.alerts import AlertSettings
from explainers.settings import SourceSettings, Thresholds
from explainers.streams import DEFAULT_COINS
from explainers.streams.binance import URL as BINANCE_WS_URL
from explainers.streams.bybit import URL as BYBIT_WS_URL
from explainers.streams.okx import URL as OKX_WS_URL


class VenueStream(BaseModel):
    """One venue's liquidation stream."""

    enabled: bool = True
    url: str

    def configured_url(self) -> bool:
        """Whether the URL was set (environment or .env) rather than left at its default."""
        return "url" in self.model_fields_set


class BybitStream(VenueStream):
    url: str = BYBIT_WS_URL


class OkxStream(VenueStream):
    url: str = OKX_WS_URL


class BinanceStream(VenueStream):
    url: str = BINANCE_WS_URL


class StreamSettings(BaseModel):
    """Liquidation streams read by `whydown run` (not by the one-shot CLI, which polls REST)."""

    enabled: bool = True
    coins: list[str] = Field(default_factory=lambda: list(DEFAULT_COINS), min_length=1)
    bybit: BybitStream = Field(default_factory=BybitStream)
    okx: OkxStream = Field(default_factory=OkxStream)
    binance: BinanceStream = Field(default_factory=BinanceStream)
    # coins asked about with /why COIN streamed besides `coins`; one more drops the one asked
    # least recently (0: stream only `coins`)
    extra_coins_max: int = Field(10, ge=0)
    # at most one immediate alert evaluation per this many seconds when streamed long
    # liquidations cross the liquidation driver's threshold
    alert_debounce_s: float = Field(60.0, ge=0)


class WebhookSettings(BaseModel):
    """Webhook alerts (`whydown webhook add URL`)."""

    # seconds one POST to an endpoint may take, connecting included; then it is retried later
    timeout_s: float = Field(10.0, gt=0)


class HealthSettings(BaseModel):
    """`/healthz` and `/metrics` of `whydown run`, on 127.0.0.1 only."""

    enabled: bool = False
    port: int = Field(9464, ge=0, le=65535)  # 0: any free port (it is logged)
    # the last refresh counts as fresh for this many refresh intervals
    stale_after_refreshes: float = Field(3.0, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WHYDOWN_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # a copied .env.example leaves unused settings empty: empty means "use the default"
        env_ignore_empty=True,
    )

    telegram_token: SecretStr | None = None
    # for a self-hosted Bot API server; the token is appended to it
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str = "https://api.telegram.org/file/bot"
    discord_token: SecretStr | None = None
    # sync slash commands to this one server (instant, for testing) instead of globally
    discord_guild_id: int | None = None

    database: Path = Path("./data/whydown.db")
    refresh_interval_s: int = Field(60, ge=10)
    liquidation_poll_s: int = Field(30, ge=5)
    prune_interval_s: int = Field(3600, ge=60)
    log_level: str = "INFO"
    # days of past answers kept for `/why <date>` (about 50 KB a day; 0 keeps every day)
    archive_days: int = Field(400, ge=0)

    sources: SourceSettings = Field(default_factory=SourceSettings)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    streams: StreamSettings = Field(default_factory=StreamSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    # `whydown run --demo` replays this recorded scenario folder (empty: the bundled sell-off)
    demo_folder: Path | None = None
