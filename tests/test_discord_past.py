"""Past days on Discord: /why date:, /preview and the preview after /subscribe, through the real
command tree driven by simcord, over each source's recorded history around 5 August 2024 (the time
machine's clock is the recording's: 12 August 2024, 12:00 UTC)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import discord
import pytest
import simcord
from pydantic import SecretStr

from bot import cli
from bot.actions import Actions, BadArgument
from bot.alerts import AlertSettings
from bot.config import Settings
from bot.discord.bot import DiscordFrontend
from bot.store import Store
from explainers.backtest import TimeMachine
from explainers.models import Explanation
from explainers.replay import Scenario
from explainers.service import Explainer
from tests.discord_helpers import deferrals, png_size, server
from tests.replay_helpers import Upstream

GOLDEN = Path(__file__).parent / "golden"
WEEKS_2 = (
    "With 3 drivers, this chat would have been alerted on 3 days in the last 14: "
    "2 Aug, 4 Aug, 5 Aug; with 2, on 3.\n"
    "It could judge 5 of the 6 drivers on most of those days (liquidations only from "
    "whydown's archive: 0 of 14 days)."
)
DAYS_90_MIN_2 = (
    "With 2 drivers, this chat would have been alerted on 3 days in the last 90: "
    "2 Aug, 4 Aug, 5 Aug; with 1, on 4.\n"
    "It could judge 0 of the 6 drivers on most of those days (liquidations only from "
    "whydown's archive: 0 of 90 days)."
)
USAGE = "Usage: /why \\[coin\\] \\[date\\]"


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
async def explainer(upstream: Upstream, settings: Settings) -> AsyncIterator[Explainer]:
    async with upstream.client(settings) as client:
        yield upstream.explainer(client, settings)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "whydown.db") as opened:
        yield opened


@pytest.fixture
def recorded() -> Upstream:
    return Upstream(Scenario.load(cli.HISTORY_DEMO))


@pytest.fixture
async def machine(
    recorded: Upstream, settings: Settings, store: Store
) -> AsyncIterator[TimeMachine]:
    async with recorded.client(settings) as client:
        yield TimeMachine(
            client,
            settings.sources,
            settings.thresholds,
            archive=store.archive,
            clock=recorded.clock,
        )


@pytest.fixture
def frontend(
    explainer: Explainer,
    store: Store,
    settings: Settings,
    upstream: Upstream,
    machine: TimeMachine,
) -> DiscordFrontend:
    actions = Actions(
        explainer,
        store,
        thresholds=settings.thresholds,
        alert_settings=AlertSettings(),
        clock=upstream.clock,
        timemachine=machine,
    )
    return DiscordFrontend(token=SecretStr("never-sent-offline"), actions=actions)


@pytest.fixture
def simcord_bot(frontend: DiscordFrontend) -> discord.Client:
    return frontend.client


def golden_embed() -> dict[str, object]:
    data = json.loads((GOLDEN / "why_2024-08-05.discord.json").read_text())
    return discord.Embed.from_dict(data).to_dict()


async def preview_png(message: simcord.ResponseMessage) -> bytes:
    [attachment] = message.attachments
    return await attachment.read()


# --- /why date: --------------------------------------------------------------------------------


async def test_why_with_a_date_answers_the_golden_embed_without_buttons(
    simcord_env: simcord.Env,
) -> None:
    s = server(simcord_env)

    result = await s.member.slash(s.channel, "why", date="2024-08-05")

    assert result.response is not None and not result.ephemeral
    [embed] = result.response.embeds
    assert embed.to_dict() == golden_embed()
    assert str(embed.description).startswith(
        "*As of the end of 5 Aug 2024 (UTC), rebuilt from each source's history.*"
    )
    assert result.response.components == []  # Refresh and Drivers would answer about now
    assert len(deferrals(simcord_env)) == 1


async def test_why_with_a_coin_and_a_date(simcord_env: simcord.Env) -> None:
    s = server(simcord_env)

    result = await s.member.slash(s.channel, "why", coin="sol", date="2024-08-05")

    assert result.response is not None
    [embed] = result.response.embeds
    assert "Solana (SOL): -8.9% in 24h" in str(embed.description)


@pytest.mark.parametrize(
    ("typed", "reply"),
    [
        (
            "2099-01-01",
            "No answer for that date: 2099-01-01 is in the future: ask about a day that has "
            f"begun. {USAGE}",
        ),
        (
            "2014-12-31",
            "No answer for that date: 2014-12-31 is before any source's history (the earliest "
            f"is 2015-07-20). {USAGE}",
        ),
        (
            "5 August",
            'No answer for that date: "5 August" is not a date: use YYYY-MM-DD (2024-08-05), '
            f'"yesterday" or "3d" for three days ago. {USAGE}',
        ),
    ],
)
async def test_a_date_that_cannot_be_answered_is_refused_to_the_asker_before_thinking(
    simcord_env: simcord.Env, typed: str, reply: str
) -> None:
    s = server(simcord_env)

    result = await s.member.slash(s.channel, "why", date=typed)

    assert result.ephemeral and result.response is not None
    assert result.response.content == reply
    assert deferrals(simcord_env) == []
    [error] = simcord_env.errors
    assert isinstance(error, discord.app_commands.CommandInvokeError)
    assert isinstance(error.original, BadArgument)


# --- /preview ----------------------------------------------------------------------------------


async def test_preview_shows_the_picture_and_the_sentence(
    simcord_env: simcord.Env, recorded: Upstream
) -> None:
    s = server(simcord_env)

    result = await s.member.slash(s.channel, "preview", min_drivers=3, days=14)

    assert result.response is not None and not result.ephemeral
    [embed] = result.response.embeds
    assert embed.title == "Alert preview, 29 Jul 2024 to 11 Aug 2024 (UTC days)"
    assert embed.description == WEEKS_2
    assert embed.image.url == "attachment://whydown-preview.png"
    assert png_size(await preview_png(result.response)) == (1000, 560)
    cold = sum(recorded.calls.values())

    again = await s.manager.slash(s.channel, "preview", min_drivers=3, days=14)

    assert again.response is not None
    assert again.response.embeds[0].description == WEEKS_2
    assert cold == 19 and sum(recorded.calls.values()) == cold  # the second read the cache


@pytest.mark.parametrize(("option", "value"), [("min_drivers", 7), ("days", 366), ("days", 0)])
async def test_preview_options_are_bounded(
    simcord_env: simcord.Env, option: str, value: int
) -> None:
    s = server(simcord_env)

    with pytest.raises(simcord.OptionError):
        await s.member.slash(s.channel, "preview", **{option: value})


# --- after /subscribe --------------------------------------------------------------------------


async def test_subscribe_is_followed_by_the_preview(
    simcord_env: simcord.Env, store: Store, recorded: Upstream
) -> None:
    s = server(simcord_env)

    result = await s.manager.slash(s.channel, "subscribe", min_drivers=2)

    assert result.response is not None
    assert str(result.response.content).startswith("Subscribed this channel to crash alerts")
    [preview] = result.followups
    [embed] = preview.embeds
    assert embed.description == DAYS_90_MIN_2
    assert embed.title == "Alert preview, 14 May 2024 to 11 Aug 2024 (UTC days)"
    assert png_size(await preview_png(preview)) == (1000, 560)
    cold = sum(recorded.calls.values())

    # the channel's own min_drivers is /preview's default
    again = await s.member.slash(s.channel, "preview")

    assert again.response is not None and again.response.embeds[0].description == DAYS_90_MIN_2
    assert sum(recorded.calls.values()) == cold


async def test_a_slow_preview_never_delays_the_confirmation(
    simcord_env: simcord.Env, machine: TimeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = server(simcord_env)
    release = asyncio.Event()
    rebuild = machine.days
    confirmed: list[str] = []

    async def slow(first: date, last: date) -> dict[date, Explanation]:
        # the confirmation was sent before the reconstruction began
        confirmed.extend(
            str(r.json.get("data", {}).get("content", ""))
            for r in simcord_env.http_requests
            if r.method == "POST" and "/callback" in r.path and isinstance(r.json, dict)
        )
        release.set()
        return await rebuild(first, last)

    monkeypatch.setattr(machine, "days", slow)

    result = await s.manager.slash(s.channel, "subscribe", min_drivers=2)

    assert release.is_set()
    [confirmation] = confirmed
    assert confirmation.startswith("Subscribed this channel to crash alerts")
    assert [p.embeds[0].description for p in result.followups] == [DAYS_90_MIN_2]


async def test_a_failed_preview_leaves_the_subscription_standing(
    simcord_env: simcord.Env,
    machine: TimeMachine,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = server(simcord_env)

    async def full(first: date, last: date) -> dict[date, Explanation]:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(machine, "days", full)

    result = await s.manager.slash(s.channel, "subscribe", min_drivers=4)

    assert result.response is not None
    assert str(result.response.content).startswith("Subscribed this channel to crash alerts")
    [unavailable] = result.followups
    assert unavailable.content == (
        "The preview of past alerts is unavailable right now; the subscription stands. "
        "Try /preview later."
    )
    row = store.get_subscription("discord", str(s.channel.id), None)
    assert row is not None and row.active and row.min_drivers == 4
    assert simcord_env.errors == []
