"""The Discord front-end: the real discord.py client and command tree, driven by simcord.

Every test answers from the recorded 5 August 2024 sell-off (tests.replay_helpers.Upstream), in
which five drivers fire while the market is down.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import discord
import httpx
import pytest
import simcord
from discord import app_commands
from pydantic import SecretStr

from bot.actions import Actions, UnknownCoin
from bot.alerts import AlertEngine, AlertSettings
from bot.commands import Replies, commands_for
from bot.config import Settings
from bot.delivery import (
    AlertMessage,
    PermanentDeliveryError,
    RetryAfter,
    TransientDeliveryError,
)
from bot.discord.bot import DiscordFrontend, intents
from bot.store import MIN_DRIVERS_HIGHEST, MIN_DRIVERS_LOWEST, Store
from explainers import errors as core
from explainers import render
from explainers.service import Explainer
from tests.alert_fakes import ManualClock
from tests.discord_helpers import (
    button_labels,
    deferrals,
    requests_to,
    server,
    subscription_to,
)
from tests.replay_helpers import Upstream

REPLAY_TITLE = (
    "[Replay 5 Aug 2024] Crypto is down: total market cap -13.9% in 24h, BTC -13.1% (-2.4% in 1h)."
)
# by role (set-off, amplifier, sentiment), then by severity within a role
FIRED_FIELDS = [
    "1. ETF outflows",
    "2. Institutional selling",
    "3. Stock market weakness",
    "4. Liquidation cascade",
    "5. Fear spreading",
]
CONTEXT_FIELDS = ["Altcoins vs BTC", "Sentiment", "What to watch", "Headlines"]
FIRING = [name.split(". ", 1)[1] for name in FIRED_FIELDS]
SUMMARY_START = "The drop came with US spot-Bitcoin ETF outflows, US selling on Coinbase and"


def compact_drivers(embed: discord.Embed) -> list[str]:
    """The firing drivers a compact answer lists, one line each ("• name: key figure")."""
    lines = str(embed.description).split("\n")
    return [line[2:].split(":", 1)[0] for line in lines if line.startswith("• ")]


REPLIES = Replies("discord", "markdown")


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
def alert_settings() -> AlertSettings:
    return AlertSettings()


@pytest.fixture
def frontend(
    explainer: Explainer,
    store: Store,
    settings: Settings,
    upstream: Upstream,
    alert_settings: AlertSettings,
) -> DiscordFrontend:
    actions = Actions(
        explainer,
        store,
        thresholds=settings.thresholds,
        alert_settings=alert_settings,
        clock=upstream.clock,
    )
    return DiscordFrontend(token=SecretStr("never-sent-offline"), actions=actions)


@pytest.fixture
def simcord_bot(frontend: DiscordFrontend) -> discord.Client:
    return frontend.client


def field_names(embed: discord.Embed) -> list[str]:
    return [str(f.name) for f in embed.fields]


def assert_within_limits(embed: discord.Embed) -> None:
    data = embed.to_dict()
    assert len(data["title"]) <= 256
    assert len(data["description"]) <= 4096
    assert len(data["fields"]) <= 25
    assert all(len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in data["fields"])
    assert render.embed_length(data) <= 6000


# --- /why ------------------------------------------------------------------------------------


async def test_why_in_a_channel_answers_with_the_replayed_sell_off(
    simcord_env: simcord.Env,
) -> None:
    s = server(simcord_env)

    result = await s.member.slash(s.channel, "why")

    assert result.response is not None and not result.ephemeral
    [embed] = result.response.embeds
    assert embed.title == REPLAY_TITLE
    # compact: the summary and a line per firing driver; the evidence is behind Details
    assert SUMMARY_START in str(embed.description)
    assert compact_drivers(embed) == FIRING
    assert field_names(embed) == []
    assert "Information only, not financial advice." in str(embed.footer.text)
    assert_within_limits(embed)
    assert button_labels(result.response.components) == ["Refresh", "Details", "Drivers"]
    # deferred first (a cold cache means a full refresh), then answered once by the follow-up
    assert len(deferrals(simcord_env)) == 1
    [followup] = requests_to(simcord_env, "POST", "/webhooks/")
    assert followup.json["allowed_mentions"] == {"parse": []}


async def test_why_works_in_a_direct_message(simcord_env: simcord.Env) -> None:
    dana = simcord_env.create_user("dana")

    result = await dana.slash("why")

    assert result.response is not None
    assert result.response.channel_id == dana.dm_channel.id
    [embed] = result.response.embeds
    assert embed.title == REPLAY_TITLE
    assert compact_drivers(embed) == FIRING
    assert_within_limits(embed)


async def test_details_shows_the_full_answer_only_to_the_clicker(
    simcord_env: simcord.Env, upstream: Upstream
) -> None:
    s = server(simcord_env)
    answer = await s.member.slash(s.channel, "why")
    assert answer.response is not None
    calls = sum(upstream.calls.values())

    details = await s.member.click(answer.response, label="Details")

    assert details.ephemeral and details.response is not None
    assert details.response.id != answer.response.id  # the channel keeps the compact answer
    [embed] = details.response.embeds
    assert embed.title == REPLAY_TITLE
    assert SUMMARY_START in str(embed.description)
    assert field_names(embed) == FIRED_FIELDS + CONTEXT_FIELDS
    assert "- US spot-BTC ETF net flow, 2 Aug 2024: -$237.4M" in embed.fields[0].value
    assert_within_limits(embed)
    assert sum(upstream.calls.values()) == calls  # the answer on screen: no new refresh


async def test_a_channel_that_chose_full_answers_gets_them(simcord_env: simcord.Env) -> None:
    s = server(simcord_env)

    refused = await s.member.slash(s.channel, "settings", full="on")
    chosen = await s.manager.slash(s.channel, "settings", full="on")
    shown = await s.manager.slash(s.channel, "settings")
    answer = await s.member.slash(s.channel, "why")

    assert refused.response is not None
    assert refused.response.content == REPLIES.admins_only()
    assert len(simcord_env.errors) == 1  # the refusal went through the tree's error handler
    assert chosen.response is not None and chosen.response.content == (
        "/why now gives the full answer in this channel: every figure with its source and "
        "time. /settings full:off goes back to the compact one."
    )
    assert shown.response is not None and str(shown.response.content).endswith(
        "**Answers**: full, every figure with its source and time. "
        "/settings full:off gives the compact one."
    )
    assert answer.response is not None
    [embed] = answer.response.embeds
    assert field_names(embed) == FIRED_FIELDS + CONTEXT_FIELDS
    assert button_labels(answer.response.components) == ["Refresh", "Drivers"]


async def test_coin_option_autocompletes_from_the_coins_the_core_knows(
    simcord_env: simcord.Env, explainer: Explainer
) -> None:
    s = server(simcord_env)
    await explainer.current()  # the scheduler's refresh, in the running bot

    typed_so = await s.member.autocomplete(s.channel, "why", "coin", "so")
    typed_nothing = await s.member.autocomplete(s.channel, "why", "coin", "")

    assert {"name": "Solana (SOL)", "value": "solana"} in typed_so
    coins = {c.id: c for c in explainer.coins()}
    for choice in typed_so:
        coin = coins[choice["value"]]
        assert any(text.lower().startswith("so") for text in (coin.symbol, coin.id, coin.name))
    assert len(typed_nothing) == 25
    assert typed_nothing[0] == {"name": "Bitcoin (BTC)", "value": "bitcoin"}

    answer = await s.member.slash(s.channel, "why", coin="solana")

    assert answer.response is not None
    [embed] = answer.response.embeds
    assert "Solana (SOL): -18.2% in 24h" in str(embed.description)


async def test_why_for_an_unknown_coin_offers_close_matches(simcord_env: simcord.Env) -> None:
    s = server(simcord_env)

    result = await s.member.slash(s.channel, "why", coin="solan")

    assert result.response is not None
    assert result.response.content == (
        'I don\'t know the coin "solan" (I look among the top 100 by market cap, by symbol or '
        "CoinGecko id). Did you mean solana, SOL, SAND?"
    )
    assert not result.response.embeds
    # the tree's one error handler translated the action's refusal into that reply
    [error] = simcord_env.errors
    assert isinstance(error, app_commands.CommandInvokeError)
    assert isinstance(error.original, UnknownCoin)
    assert isinstance(error.original.__cause__, core.UnknownCoin)  # the core's, chained


async def test_an_unknown_coin_is_refused_only_to_the_asker_before_any_thinking(
    simcord_env: simcord.Env, explainer: Explainer
) -> None:
    s = server(simcord_env)
    await explainer.current()  # the scheduler's refresh, in the running bot

    result = await s.member.slash(s.channel, "why", coin="solan")

    # a public "thinking…" would have made the refusal public: the first follow-up replaces it
    assert deferrals(simcord_env) == []
    assert result.ephemeral and result.response is not None and result.response.ephemeral
    assert result.response.content == (
        'I don\'t know the coin "solan" (I look among the top 100 by market cap, by symbol or '
        "CoinGecko id). Did you mean solana, SOL, SAND?"
    )
    [error] = simcord_env.errors
    assert isinstance(error, app_commands.CommandInvokeError)
    assert isinstance(error.original, UnknownCoin)


async def test_drivers_answers_only_the_asker(simcord_env: simcord.Env) -> None:
    s = server(simcord_env)

    result = await s.member.slash(s.channel, "drivers")

    [deferral] = deferrals(simcord_env)
    assert deferral.json["data"]["flags"] == 64  # "thinking…" shown to the asker alone
    assert result.ephemeral and result.response is not None and result.response.ephemeral
    assert result.response.content.startswith("**Sell-off drivers** (data as of 08:00 UTC")


async def test_refresh_button_edits_the_answer_at_most_once_per_channel_per_30_s(
    simcord_env: simcord.Env, upstream: Upstream
) -> None:
    s = server(simcord_env)
    answer = await s.member.slash(s.channel, "why")
    assert answer.response is not None
    # a minute later Fear & Greed is down: the refreshed answer must show it
    upstream.advance(61)
    upstream.overrides.append(
        lambda request: httpx.Response(503) if request.url.host == "api.alternative.me" else None
    )

    refreshed = await s.member.click(answer.response, label="Refresh")

    assert refreshed.response is not None and refreshed.response.id == answer.response.id
    [embed] = refreshed.response.embeds
    assert "Not available: Fear & Greed." in str(embed.footer.text)
    assert compact_drivers(embed) == FIRING[:4]
    assert "Unknown: Fear spreading (Fear & Greed did not answer)." in str(embed.description)
    assert button_labels(refreshed.response.components) == ["Refresh", "Details", "Drivers"]

    calls = sum(upstream.calls.values())
    upstream.advance(29)
    too_soon = await s.manager.click(answer.response, label="Refresh")

    assert too_soon.ephemeral and too_soon.response is not None
    assert too_soon.response.content == REPLIES.refresh_throttled(1, 30)
    assert too_soon.response.content.startswith(
        "This channel refreshed an answer moments ago: one refresh per channel every 30 s."
    )
    assert sum(upstream.calls.values()) == calls

    upstream.advance(1)
    again = await s.manager.click(answer.response, label="Refresh")
    assert not again.ephemeral and again.response is not None
    assert again.response.id == answer.response.id


async def test_drivers_button_lists_every_driver_only_to_the_clicker(
    simcord_env: simcord.Env,
) -> None:
    s = server(simcord_env)
    answer = await s.member.slash(s.channel, "why")
    assert answer.response is not None

    shown = await s.manager.click(answer.response, label="Drivers")

    assert shown.ephemeral and shown.response is not None
    text = shown.response.content
    assert text.startswith("**Sell-off drivers** (data as of 08:00 UTC, 5 Aug 2024)")
    assert "**Fed uncertainty**: quiet" in text
    assert text.count("FIRING") == 5


# --- subscriptions ---------------------------------------------------------------------------


async def test_subscribe_needs_manage_channels(
    simcord_env: simcord.Env, frontend: DiscordFrontend, store: Store
) -> None:
    s = server(simcord_env)
    # declared as the command's default permission: Discord does not offer it to plain members
    assert "subscribe" not in s.member.available_commands(s.channel)
    assert "subscribe" in s.manager.available_commands(s.channel)
    # a server may still grant it to anyone; the bot then enforces Manage Channels itself
    [command] = [c for c in await frontend.client.tree.fetch_commands() if c.name == "subscribe"]
    s.guild.set_command_permissions(command, {s.member: True})

    refused = await s.member.slash(s.channel, "subscribe")

    assert refused.ephemeral and refused.response is not None
    assert refused.response.content == REPLIES.admins_only()
    assert refused.response.content.startswith("Only members with the Manage Channels permission")
    assert store.get_subscription("discord", str(s.channel.id), None) is None
    assert len(simcord_env.errors) == 1  # the refusal went through the tree's error handler

    accepted = await s.manager.slash(s.channel, "subscribe", min_drivers=4)

    assert accepted.response is not None and not accepted.ephemeral
    assert accepted.response.content.startswith(
        "Subscribed this channel to crash alerts: one alert when the market is down"
    )
    assert "at least 4 drivers fire together" in accepted.response.content
    row = store.get_subscription("discord", str(s.channel.id), None)
    assert row is not None and row.active
    assert (row.min_drivers, row.subscribed_by) == (4, "mod")

    settings = await s.member.slash(s.channel, "settings")
    assert settings.response is not None
    assert settings.response.content.startswith(
        "**Crash alerts** for this channel: at least 4 drivers"
    )


async def test_the_admins_only_refusal_names_the_channel_that_was_named(
    simcord_env: simcord.Env, frontend: DiscordFrontend
) -> None:
    s = server(simcord_env)
    alerts = s.guild.create_text_channel("alerts")
    [command] = [c for c in await frontend.client.tree.fetch_commands() if c.name == "subscribe"]
    s.guild.set_command_permissions(command, {s.member: True})

    refused = await s.member.slash(s.channel, "subscribe", channel=alerts)

    assert refused.ephemeral and refused.response is not None
    assert refused.response.content == (
        "Only members with the Manage Channels permission can change the alert subscription "
        "of \\#alerts."
    )
    assert len(simcord_env.errors) == 1


async def test_subscribe_refuses_a_channel_the_bot_cannot_post_embeds_in(
    simcord_env: simcord.Env, store: Store
) -> None:
    s = server(simcord_env)
    me = s.guild.me
    assert me is not None
    quiet = s.guild.create_text_channel(
        "quiet_room", overwrites={me: discord.PermissionOverwrite(embed_links=False)}
    )

    refused = await s.manager.slash(s.channel, "subscribe", channel=quiet)

    assert refused.ephemeral and refused.response is not None
    assert refused.response.content == (
        "I can't post alerts in \\#quiet\\_room: I need Embed Links there. "
        "Grant them, or pick another channel."
    )
    assert store.get_subscription("discord", str(quiet.id), None) is None
    assert len(simcord_env.errors) == 1


async def test_subscribe_checks_what_discord_says_the_bot_may_do_in_this_channel(
    simcord_env: simcord.Env, store: Store
) -> None:
    s = server(simcord_env)
    backend = simcord_env.backend
    guild = backend.get_guild(s.guild.id)
    [bot_role] = [r for r in guild.roles.values() if r.managed]
    # an admin takes the bot's role away and leaves everyone only View Channel: without the
    # members intent the bot's cache never hears of its own role change, the interaction does
    only_view = discord.Permissions(view_channel=True, use_application_commands=True)
    backend.edit_role(s.guild.id, s.guild.id, {"permissions": only_view.value})
    backend.remove_member_role(s.guild.id, backend.bot_user.id, bot_role.id)

    refused = await s.manager.slash(s.channel, "subscribe")

    assert refused.ephemeral and refused.response is not None
    assert refused.response.content == (
        "I can't post alerts in this channel: I need Embed Links, Send Messages there. "
        "Grant them, or pick another channel."
    )
    assert store.get_subscription("discord", str(s.channel.id), None) is None
    assert len(simcord_env.errors) == 1  # the refusal, answered by the tree's error handler


async def test_subscribe_refuses_a_channel_of_another_type_plainly(
    simcord_env: simcord.Env, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    s = server(simcord_env)
    voice = s.guild.create_voice_channel("lounge")
    category = s.guild.create_category("Info")
    # the option asks for text channels, but a registration from before it did (global commands
    # keep theirs until the next sync) lets Discord pass any channel
    registered = simcord_env.backend.find_command("subscribe", s.guild.id)
    assert registered is not None
    for option in registered["options"]:
        option.pop("channel_types", None)

    with caplog.at_level(logging.INFO, logger="whydown.discord"):
        lounge = await s.manager.slash(s.channel, "subscribe", channel=voice)
        info = await s.manager.slash(s.channel, "subscribe", channel=category)

    assert lounge.ephemeral and lounge.response is not None
    assert lounge.response.content == (
        "\\#lounge can't receive alerts: pick a text channel or a thread."
    )
    assert info.ephemeral and info.response is not None
    assert info.response.content == "\\#Info can't receive alerts: pick a text channel or a thread."
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert store.subscriptions(active_only=False) == []
    assert len(simcord_env.errors) == 2


async def test_subscription_commands_need_a_server(
    simcord_env: simcord.Env, frontend: DiscordFrontend
) -> None:
    dana = simcord_env.create_user("dana")
    server_only = {"subscribe", "unsubscribe", "settings"}
    payloads = {
        c.name: c.to_dict(frontend.client.tree) for c in frontend.client.tree.get_commands()
    }

    # registered for servers only: Discord does not offer them in direct messages at all
    for name in server_only:
        assert payloads[name]["dm_permission"] is False
        assert payloads[name]["contexts"] == [0]  # guild
    assert payloads["why"]["dm_permission"] is True
    offered = set(dana.available_commands())
    assert offered.isdisjoint(server_only)
    assert {"why", "help", "chart", "drivers", "history", "status"} <= offered


async def test_unsubscribe_stops_alerts_for_the_named_channel(
    simcord_env: simcord.Env, store: Store
) -> None:
    s = server(simcord_env)
    alerts = s.guild.create_text_channel("alerts")
    await s.manager.slash(s.channel, "subscribe", channel=alerts)

    stopped = await s.manager.slash(s.channel, "unsubscribe", channel=alerts)
    again = await s.manager.slash(s.channel, "unsubscribe", channel=alerts)

    assert stopped.response is not None and again.response is not None
    assert stopped.response.content == "Unsubscribed \\#alerts: no more crash alerts here."
    assert again.response.content == "\\#alerts was not subscribed."
    row = store.get_subscription("discord", str(alerts.id), None)
    assert row is not None and not row.active


# --- alerts ----------------------------------------------------------------------------------


async def test_an_alert_is_posted_to_a_subscribed_channel_when_the_rule_is_crossed(
    simcord_env: simcord.Env,
    frontend: DiscordFrontend,
    store: Store,
    explainer: Explainer,
    upstream: Upstream,
) -> None:
    s = server(simcord_env)
    alerts = s.guild.create_text_channel("alerts")
    await s.manager.slash(s.channel, "subscribe", channel=alerts, min_drivers=3)
    engine = AlertEngine(
        store, AlertSettings(), {"discord": frontend.notifier}, clock=ManualClock(upstream.now)
    )

    alert = await engine.evaluate(await explainer.explain())

    assert alert is not None and alert.driver_count == 5
    message = alerts.last_message
    assert message is not None
    assert message.content == "**Crash alert**: 5 sell-off drivers firing together."
    [embed] = message.embeds
    assert embed.title == REPLAY_TITLE
    # alerts stay compact (their chart follows)
    assert compact_drivers(embed) == FIRING
    assert_within_limits(embed)
    [delivery] = store.deliveries(alert.id)
    assert delivery.status == "sent"


async def test_the_alert_log_line_rounds_the_market_change(
    simcord_env: simcord.Env,
    frontend: DiscordFrontend,
    store: Store,
    explainer: Explainer,
    upstream: Upstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = server(simcord_env)
    store.subscribe("discord", str(s.channel.id), None, 3, "mod")
    engine = AlertEngine(
        store, AlertSettings(), {"discord": frontend.notifier}, clock=ManualClock(upstream.now)
    )
    explanation = await explainer.explain()
    assert explanation.market_change_24h is not None
    assert round(explanation.market_change_24h, 1) != explanation.market_change_24h

    with caplog.at_level(logging.INFO, logger="whydown.alerts"):
        alert = await engine.evaluate(explanation)

    assert alert is not None
    [line] = [r.getMessage() for r in caplog.records if " recorded: " in r.getMessage()]
    assert line == (
        f"alert {alert.id} recorded: 5 drivers fired ({', '.join(alert.drivers)}), "
        "market -13.9% in 24h, 1 subscriptions"
    )


async def test_a_deleted_channel_deactivates_its_subscription(
    simcord_env: simcord.Env,
    frontend: DiscordFrontend,
    store: Store,
    explainer: Explainer,
    upstream: Upstream,
) -> None:
    s = server(simcord_env)
    alerts = s.guild.create_text_channel("alerts")
    await s.manager.slash(s.channel, "subscribe", channel=alerts)
    # an admin deletes the channel in the Discord client (simcord 3.2.1 has no builder for it)
    simcord_env.backend.delete_channel(alerts.id)
    settings = AlertSettings(deactivate_after=2)
    clock = ManualClock(upstream.now)
    engine = AlertEngine(store, settings, {"discord": frontend.notifier}, clock=clock)
    explanation = await explainer.explain()

    first = await engine.evaluate(explanation)

    assert first is not None
    [delivery] = store.deliveries(first.id)
    assert delivery.status == "failed"
    assert delivery.last_error == "discord 404 (code 10003): Unknown Channel"
    row = store.get_subscription("discord", str(alerts.id), None)
    assert row is not None and row.active and row.consecutive_failures == 1

    # the next alert, after the cooldown, fails the same way: that is deactivate_after failures
    clock.advance(settings.cooldown_s)
    later = explanation.model_copy(
        update={"data_time": explanation.data_time + timedelta(seconds=settings.cooldown_s)}
    )
    second = await engine.evaluate(later)

    assert second is not None
    row = store.get_subscription("discord", str(alerts.id), None)
    assert row is not None and not row.active
    assert store.subscriptions(active_only=True) == []


async def test_notifier_sends_the_eased_note_and_translates_discord_errors(
    simcord_env: simcord.Env, frontend: DiscordFrontend, explainer: Explainer
) -> None:
    s = server(simcord_env)
    explanation = await explainer.explain()
    target = subscription_to(s.channel.id)
    eased = AlertMessage(kind="eased", alert_id=1, explanation=explanation)

    await frontend.notifier.send(target, eased)

    message = s.channel.last_message
    assert message is not None
    assert message.content == REPLIES.eased(explanation)
    assert message.content.startswith("**Pressure has eased**: ")
    assert message.content.startswith("**Pressure has eased**: Crypto is down")

    cases: list[tuple[int, type[Exception]]] = [
        (500, TransientDeliveryError),
        (503, TransientDeliveryError),
        (429, RetryAfter),
        (403, PermanentDeliveryError),
        (404, PermanentDeliveryError),
    ]
    for status, expected in cases:
        simcord_env.inject_error("POST", "/channels/*/messages", status=status)
        with pytest.raises(expected) as caught:
            await frontend.notifier.send(target, eased)
        assert isinstance(caught.value.__cause__, discord.HTTPException)
        assert "https://" not in str(caught.value)


# --- the other commands and the error handler ------------------------------------------------


async def test_help_lists_exactly_the_registry_commands(
    simcord_env: simcord.Env, frontend: DiscordFrontend
) -> None:
    s = server(simcord_env)
    registry = commands_for("discord")

    result = await s.member.slash(s.channel, "help")

    assert result.ephemeral and result.response is not None
    listed = [line for line in result.response.content.split("\n") if line.startswith("/")]
    assert listed == [
        f"{render.escape_markdown(c.usage('discord'))}: {c.summary}" for c in registry
    ]
    synced = await frontend.client.tree.fetch_commands()
    assert sorted(c.name for c in synced) == sorted(c.name for c in registry)
    assert sorted(s.manager.available_commands(s.channel)) == sorted(c.name for c in registry)
    # option descriptions come from the registry too
    subscribe = next(c for c in synced if c.name == "subscribe")
    assert {o.name: o.description for o in subscribe.options} == {
        "channel": "the channel (default: this one)",
        "min_drivers": "drivers that must fire together, 2 to 6",
    }
    min_drivers = next(o for o in subscribe.options if o.name == "min_drivers")
    assert (min_drivers.min_value, min_drivers.max_value) == (2, 6)
    # the bounds the store enforces, from one place
    assert (min_drivers.min_value, min_drivers.max_value) == (
        MIN_DRIVERS_LOWEST,
        MIN_DRIVERS_HIGHEST,
    )


async def test_drivers_status_and_history(simcord_env: simcord.Env) -> None:
    s = server(simcord_env)

    drivers = await s.member.slash(s.channel, "drivers")
    status = await s.member.slash(s.channel, "status")
    history = await s.member.slash(s.channel, "history")

    assert drivers.response is not None and drivers.response.content.count("FIRING") == 5
    assert status.response is not None and status.ephemeral
    assert "20 of 20 sources answered" in status.response.content
    assert status.response.content.endswith("Subscriptions: none.")
    assert history.response is not None
    assert history.response.content.startswith("No alerts yet")


async def test_a_failure_is_logged_and_answered_briefly_without_its_text(
    simcord_env: simcord.Env,
    explainer: Explainer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = server(simcord_env)

    async def broken(coin: str | None = None) -> None:
        raise RuntimeError("boom at https://api.example/?key=SECRET")

    monkeypatch.setattr(explainer, "explain", broken)

    with caplog.at_level(logging.ERROR, logger="whydown.discord"):
        result = await s.member.slash(s.channel, "why")

    assert result.response is not None
    assert result.response.content == REPLIES.failed()
    assert result.response.content.startswith("Something went wrong while answering.")
    assert "SECRET" not in result.response.content
    [record] = caplog.records
    assert record.getMessage().startswith(f"/why (user {s.member.id}, guild {s.guild.id}")
    [error] = simcord_env.errors
    assert isinstance(error, app_commands.CommandInvokeError)


def test_the_bot_asks_for_no_privileged_intent() -> None:
    wanted = intents()
    assert not (wanted.members or wanted.presences or wanted.message_content)
    assert wanted.guilds


async def test_commands_sync_to_one_guild_when_a_guild_id_is_set(
    explainer: Explainer, store: Store, settings: Settings, upstream: Upstream
) -> None:
    guild_id = 1456074443980800555
    actions = Actions(
        explainer,
        store,
        thresholds=settings.thresholds,
        alert_settings=AlertSettings(),
        clock=upstream.clock,
    )
    frontend = DiscordFrontend(
        token=SecretStr("never-sent-offline"), actions=actions, guild_id=guild_id
    )
    env = simcord.Env(frontend.client)
    guild = env.create_guild("Testing", id=guild_id)  # exists before the bot logs in and syncs
    await env.start()
    try:
        synced_here = await frontend.client.tree.fetch_commands(guild=discord.Object(guild_id))
        synced_globally = await frontend.client.tree.fetch_commands()
        channel = guild.create_text_channel("bots")
        member = guild.add_member(env.create_user("tester"))
        answer = await member.slash(channel, "help")
    finally:
        await env.shutdown()
    env.raise_errors()

    assert sorted(c.name for c in synced_here) == sorted(c.name for c in commands_for("discord"))
    assert synced_globally == []
    assert answer.response is not None
    assert answer.response.content.startswith("**whydown: why is crypto down?**")
