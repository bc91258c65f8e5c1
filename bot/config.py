"""Typed settings from the environment or `.env` (prefix WHYDOWN_, nested with "__").

Tokens and keys are `SecretStr`: they print as "**********" and are never logged.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.alerts import AlertSettings
from explainers.settings import SourceSettings, Thresholds


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

    sources: SourceSettings = Field(default_factory=SourceSettings)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
