"""Charts on Discord: /chart, the Chart button and alerts carrying the chart, driven by simcord.

The answers come from the recorded 5 August 2024 sell-off (tests.replay_helpers.Upstream); the
charts are drawn for real by explainers.chart_service.ChartMaker, in its worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import discord
import httpx
import pytest
import simcord
from discord import app_commands
from pydantic import SecretStr

from bot.actions import Actions, ChartUnavailable, UnknownCoin
from bot.alerts import AlertEngine, AlertSettings
from bot.commands import Replies
from bot.config import Settings
from bot.delivery import AlertMessage, PermanentDeliveryError
from bot.discord.bot import DiscordFrontend
from bot.discord.buttons import ChartButton
from bot.store import Store
from explainers import charts
from explainers.chart_service import ChartMaker
from explainers.render import escape_markdown
from explainers.service import Explainer
from tests.alert_fakes import ManualClock
from tests.discord_helpers import (
    button_labels,
    deferrals,
    png_size,
    requests_to,
    server,
    subscription_to,
)
from tests.replay_helpers import Upstream

REPLIES = Replies("discord", "markdown")
CHART_SIZE = (charts.WIDTH_PX, charts.HEIGHT_PX)
MARKET_FILE = "whydown-market-20240805-0800.png"
SELL_OFF_CAPTION = (
    "Replay: Yen carry-trade unwind (5 Aug 2024). BTC -13.1% in 24h; "
    "5 of 6 sell-off drivers firing. Data as of 08:00 UTC, 5 Aug 2024."
)


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
async def client(upstream: Upstream, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with upstream.client(settings) as opened:
        yield opened


@pytest.fixture
def explainer(upstream: Upstream, client: httpx.AsyncClient, settings: Settings) -> Explainer:
    return upstream.explainer(client, settings)


@pytest.fixture
def maker(explainer: Explainer, settings: Settings, upstream: Upstream) -> ChartMaker:
    return ChartMaker(explainer, settings.sources, clock=upstream.clock)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "whydown.db") as opened:
        yield opened


def make_frontend(
    explainer: Explainer,
    store: Store,
    settings: Settings,
    upstream: Upstream,
    charts: ChartMaker | None,
) -> DiscordFrontend:
    actions = Actions(
        explainer,
        store,
        thresholds=settings.thresholds,
        alert_settings=AlertSettings(),
        charts=charts,
        clock=upstream.clock,
    )
    return DiscordFrontend(token=SecretStr("never-sent-offline"), actions=actions)


@pytest.fixture
def frontend(
    explainer: Explainer, store: Store, settings: Settings, upstream: Upstream, maker: ChartMaker
) -> DiscordFrontend:
    return make_frontend(explainer, store, settings, upstream, maker)


@pytest.fixture
def simcord_bot(frontend: DiscordFrontend) -> discord.Client:
    return frontend.client


def broken_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every sell-off render fail inside the worker thread, as a matplotlib bug would."""

    def draw(*args: Any) -> bytes:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(charts, "sell_off_chart", draw)


async def attached_png(message: Any) -> tuple[discord.Attachment, bytes]:
    """The one file on a message, and its bytes as uploaded."""
    [attachment] = message.attachments
    return attachment, await attachment.read()


# --- /chart ----------------------------------------------------------------------------------


async def test_chart_attaches_the_png_to_an_embed(
    simcord_env: simcord.Env, maker: ChartMaker
) -> None:
    s = server(simcord_env)

    result = await s.member.slash(s.channel, "chart")

    assert result.response is not None and not result.ephemeral
    [embed] = result.response.embeds
    attachment, png = await attached_png(result.response)
    assert attachment.filename == MARKET_FILE
    assert attachment.content_type == "image/png"
    assert png_size(png) == CHART_SIZE
    assert embed.image.url == f"attachment://{MARKET_FILE}"
    assert embed.title == "The sell-off, last 24 hours"
    assert embed.description == SELL_OFF_CAPTION
    # deferred (a render can take more than 3 s), then answered once by the follow-up
    assert len(deferrals(simcord_env)) == 1
    assert len(requests_to(simcord_env, "POST", "/webhooks/")) == 1
    assert maker.renders == 1


async def test_chart_for_a_coin_shows_the_coin(simcord_env: simcord.Env) -> None:
    s = server(simcord_env)

    result = await s.member.slash(s.channel, "chart", subject="solana")

    assert result.response is not None
    [embed] = result.response.embeds
    attachment, png = await attached_png(result.response)
    assert attachment.filename == "whydown-sol-20240805-0800.png"
    assert png_size(png) == CHART_SIZE
    assert embed.image.url == "attachment://whydown-sol-20240805-0800.png"
    assert str(embed.description).startswith(
        "Replay: Yen carry-trade unwind (5 Aug 2024). Solana (SOL) -18.2% in 24h, BTC -13.1%"
    )


async def test_chart_etf_shows_the_flows(simcord_env: simcord.Env, maker: ChartMaker) -> None:
    s = server(simcord_env)

    result = await s.member.slash(s.channel, "chart", subject="ETF")

    assert result.response is not None
    [embed] = result.response.embeds
    attachment, png = await attached_png(result.response)
    assert attachment.filename == "whydown-etf-20240805-0800.png"
    assert png_size(png) == CHART_SIZE
    assert embed.image.url == "attachment://whydown-etf-20240805-0800.png"
    assert embed.title == "Spot-Bitcoin-ETF net flows"
    expected = await maker.etf()  # the cached chart: what was sent
    assert maker.renders == 1
    assert embed.description == escape_markdown(expected.caption)
    assert str(embed.description).startswith(
        "Replay: Yen carry-trade unwind (5 Aug 2024). "
        "US spot-Bitcoin-ETF net flows, last 15 trading days; latest "
    )


async def test_subject_autocompletes_etf_and_the_coins(
    simcord_env: simcord.Env, explainer: Explainer
) -> None:
    s = server(simcord_env)
    await explainer.current()  # the scheduler's refresh, in the running bot

    nothing = await s.member.autocomplete(s.channel, "chart", "subject", "")
    typed_e = await s.member.autocomplete(s.channel, "chart", "subject", "e")
    typed_so = await s.member.autocomplete(s.channel, "chart", "subject", "so")

    etf = {"name": "Spot-Bitcoin-ETF flows (etf)", "value": "etf"}
    assert len(nothing) == 25
    assert nothing[:2] == [etf, {"name": "Bitcoin (BTC)", "value": "bitcoin"}]
    assert typed_e[0] == etf
    assert {"name": "Ethereum (ETH)", "value": "ethereum"} in typed_e
    assert etf not in typed_so
    assert {"name": "Solana (SOL)", "value": "solana"} in typed_so


async def test_chart_for_an_unknown_coin_answers_like_why(simcord_env: simcord.Env) -> None:
    s = server(simcord_env)

    charted = await s.member.slash(s.channel, "chart", subject="solan")
    why = await s.member.slash(s.channel, "why", coin="solan")

    assert charted.response is not None and why.response is not None
    assert charted.response.content == why.response.content
    assert charted.response.content.startswith('I don\'t know the coin "solan"')
    assert not charted.response.embeds and not charted.response.attachments
    errors = simcord_env.errors
    assert len(errors) == 2
    assert all(
        isinstance(e, app_commands.CommandInvokeError) and isinstance(e.original, UnknownCoin)
        for e in errors
    )


async def test_chart_for_an_unknown_coin_is_refused_only_to_the_asker(
    simcord_env: simcord.Env, explainer: Explainer, maker: ChartMaker
) -> None:
    s = server(simcord_env)
    await explainer.current()  # the scheduler's refresh, in the running bot

    result = await s.member.slash(s.channel, "chart", subject="solan")

    assert deferrals(simcord_env) == []
    assert result.ephemeral and result.response is not None and result.response.ephemeral
    assert result.response.content.startswith('I don\'t know the coin "solan"')
    assert maker.renders == 0
    [error] = simcord_env.errors
    assert isinstance(error, app_commands.CommandInvokeError)
    assert isinstance(error.original, UnknownCoin)


async def test_a_drawing_failure_is_answered_once_in_words(
    simcord_env: simcord.Env,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = server(simcord_env)
    broken_drawing(monkeypatch)

    with caplog.at_level(logging.WARNING):
        result = await s.member.slash(s.channel, "chart")

    assert result.response is not None
    assert result.response.content == (
        "I couldn't draw the chart this time (the chart could not be drawn). "
        "/why has the answer in words."
    )
    assert not result.response.embeds and not result.response.attachments
    assert "renderer exploded" not in result.response.content
    # a refusal, answered by the tree's one error handler: not logged as a failure
    [refused] = simcord_env.errors
    assert isinstance(refused, app_commands.CommandInvokeError)
    assert isinstance(refused.original, ChartUnavailable)
    assert len(deferrals(simcord_env)) == 1
    assert len(requests_to(simcord_env, "POST", "/webhooks/")) == 1
    assert any(r.getMessage().startswith("/chart (user ") for r in caplog.records)

    # /why never depends on a chart
    why = await s.member.slash(s.channel, "why")
    assert why.response is not None and why.response.embeds


async def test_without_charts_chart_says_so_only_to_the_asker(
    explainer: Explainer, store: Store, settings: Settings, upstream: Upstream
) -> None:
    frontend = make_frontend(explainer, store, settings, upstream, None)
    env = simcord.Env(frontend.client)
    await env.start()
    try:
        s = server(env)
        result = await s.member.slash(s.channel, "chart")
        why = await s.member.slash(s.channel, "why")
    finally:
        await env.shutdown()
    # nothing else raised: the one error is the refusal the tree's error handler answered
    [refused] = env.errors
    assert isinstance(refused, app_commands.CommandInvokeError)
    assert isinstance(refused.original, ChartUnavailable)

    assert result.ephemeral and result.response is not None
    assert result.response.content == REPLIES.chart_unavailable()
    assert result.response.content == (
        "I couldn't draw the chart this time. /why has the answer in words."
    )
    assert why.response is not None
    assert button_labels(why.response.components) == ["Refresh", "Details", "Drivers"]


async def test_the_chart_command_is_synced_with_an_autocompleted_subject(
    simcord_env: simcord.Env, frontend: DiscordFrontend
) -> None:
    synced = await frontend.client.tree.fetch_commands()

    [chart] = [c for c in synced if c.name == "chart"]
    [subject] = chart.options
    assert subject.name == "subject" and subject.autocomplete and not subject.required
    assert subject.description == "a coin symbol or CoinGecko id, or etf for the ETF flows"


# --- the Chart button ------------------------------------------------------------------------


async def test_chart_button_posts_the_answers_chart_at_most_once_per_channel_per_30_s(
    simcord_env: simcord.Env, upstream: Upstream, maker: ChartMaker
) -> None:
    s = server(simcord_env)
    answer = await s.member.slash(s.channel, "why", coin="solana")
    assert answer.response is not None
    assert button_labels(answer.response.components) == ["Refresh", "Details", "Drivers", "Chart"]
    assert maker.renders == 0  # /why drew nothing

    shown = await s.member.click(answer.response, label="Chart")

    assert shown.response is not None and not shown.ephemeral
    assert shown.response.id != answer.response.id  # a new message; the answer stays
    [embed] = shown.response.embeds
    attachment, png = await attached_png(shown.response)
    assert attachment.filename == "whydown-sol-20240805-0800.png"
    assert png_size(png) == CHART_SIZE
    assert embed.image.url == f"attachment://{attachment.filename}"

    upstream.advance(29)
    too_soon = await s.manager.click(answer.response, label="Chart")

    assert too_soon.ephemeral and too_soon.response is not None
    assert too_soon.response.content == REPLIES.button_throttled(1, 30)
    assert too_soon.response.content == (
        "Done a moment ago: this button works once per chat every 30 s. Try again in 1 s."
    )

    # the Refresh button has its own slot: a chart did not use it up
    refreshed = await s.manager.click(answer.response, label="Refresh")
    assert refreshed.response is not None and not refreshed.ephemeral
    assert button_labels(refreshed.response.components) == [
        "Refresh",
        "Details",
        "Drivers",
        "Chart",
    ]
    assert maker.renders == 1


async def test_chart_button_of_a_coin_no_longer_known_is_refused_only_to_the_clicker(
    simcord_env: simcord.Env, frontend: DiscordFrontend, explainer: Explainer, maker: ChartMaker
) -> None:
    s = server(simcord_env)
    await explainer.current()
    # an answer posted while "solan" was a coin of the market data, which no longer lists it
    view = discord.ui.View(timeout=None)
    view.add_item(ChartButton("solan"))
    channel = frontend.client.get_channel(s.channel.id)
    assert isinstance(channel, discord.TextChannel)
    old = await channel.send("an old answer", view=view)

    clicked = await s.member.click(old, label="Chart")

    assert deferrals(simcord_env) == []
    assert clicked.ephemeral and clicked.response is not None and clicked.response.ephemeral
    assert clicked.response.content.startswith('I don\'t know the coin "solan"')
    assert maker.renders == 0
    # the refusal did not use up the channel's Chart slot
    answer = await s.member.slash(s.channel, "why", coin="solana")
    assert answer.response is not None
    shown = await s.member.click(answer.response, label="Chart")
    assert shown.response is not None and not shown.ephemeral and shown.response.attachments


# --- alerts ----------------------------------------------------------------------------------


async def subscribed_channel(s: Any) -> Any:
    alerts = s.guild.create_text_channel("alerts")
    await s.manager.slash(s.channel, "subscribe", channel=alerts, min_drivers=3)
    return alerts


async def test_an_alert_carries_the_chart_on_its_embed(
    simcord_env: simcord.Env,
    frontend: DiscordFrontend,
    store: Store,
    explainer: Explainer,
    upstream: Upstream,
) -> None:
    s = server(simcord_env)
    alerts = await subscribed_channel(s)
    engine = AlertEngine(
        store, AlertSettings(), {"discord": frontend.notifier}, clock=ManualClock(upstream.now)
    )

    alert = await engine.evaluate(await explainer.explain())

    assert alert is not None
    message = alerts.last_message
    assert message is not None
    assert message.content == "**Crash alert**: 5 sell-off drivers firing together."
    [embed] = message.embeds
    assert embed.title is not None and embed.title.startswith("[Replay 5 Aug 2024] Crypto is down")
    attachment, png = await attached_png(message)
    assert attachment.filename == MARKET_FILE
    assert png_size(png) == CHART_SIZE
    assert embed.image.url == f"attachment://{MARKET_FILE}"
    [delivery] = store.deliveries(alert.id)
    assert delivery.status == "sent"


async def test_an_alert_whose_chart_fails_still_goes_out_with_its_embed(
    simcord_env: simcord.Env,
    frontend: DiscordFrontend,
    store: Store,
    explainer: Explainer,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = server(simcord_env)
    alerts = await subscribed_channel(s)
    engine = AlertEngine(
        store, AlertSettings(), {"discord": frontend.notifier}, clock=ManualClock(upstream.now)
    )
    broken_drawing(monkeypatch)

    with caplog.at_level(logging.WARNING, logger="whydown.discord"):
        alert = await engine.evaluate(await explainer.explain())

    assert alert is not None
    message = alerts.last_message
    assert message is not None
    assert message.content == "**Crash alert**: 5 sell-off drivers firing together."
    [embed] = message.embeds
    assert embed.title is not None and embed.title.startswith("[Replay 5 Aug 2024] Crypto is down")
    assert embed.image.url is None and message.attachments == []
    [delivery] = store.deliveries(alert.id)
    assert delivery.status == "sent"
    # the reason is logged once, by the chart service that gave up on the chart
    warnings = [
        (r.name, r.getMessage())
        for r in caplog.records
        if r.name in ("whydown.discord", "explainers.chart_service")
        and r.levelno >= logging.WARNING
    ]
    assert (
        "explainers.chart_service",
        "chart for alert of 2024-08-05 08:00:00+00:00: the chart could not be drawn",
    ) in warnings
    assert [message for name, message in warnings if name == "whydown.discord"] == []


async def test_an_alert_for_older_data_is_sent_without_a_chart_of_newer_data(
    simcord_env: simcord.Env, frontend: DiscordFrontend, explainer: Explainer, maker: ChartMaker
) -> None:
    s = server(simcord_env)
    current = await explainer.explain()
    # recorded before a restart, delivered after a later refresh
    older = current.model_copy(update={"data_time": current.data_time - timedelta(minutes=5)})

    await frontend.notifier.send(
        subscription_to(s.channel.id), AlertMessage(kind="alert", alert_id=1, explanation=older)
    )

    message = s.channel.last_message
    assert message is not None
    assert message.content == "**Crash alert**: 5 sell-off drivers firing together."
    assert len(message.embeds) == 1 and message.attachments == []
    assert maker.renders == 0


async def test_a_channel_without_attach_files_gets_the_alert_without_its_chart(
    simcord_env: simcord.Env,
    frontend: DiscordFrontend,
    store: Store,
    explainer: Explainer,
    upstream: Upstream,
) -> None:
    s = server(simcord_env)
    # subscribed before charts were configured; an admin later took Attach Files away. simcord
    # does not check that permission on a send, so Discord's answer to the upload is injected.
    no_files = s.guild.create_text_channel("no_files")
    store.subscribe("discord", str(no_files.id), None, 3, "mod")
    engine = AlertEngine(
        store, AlertSettings(), {"discord": frontend.notifier}, clock=ManualClock(upstream.now)
    )
    simcord_env.inject_error(
        "POST", "/channels/*/messages", status=403, code=50013, message="Missing Permissions"
    )

    alert = await engine.evaluate(await explainer.explain())

    assert alert is not None
    message = no_files.last_message
    assert message is not None
    assert message.content == "**Crash alert**: 5 sell-off drivers firing together."
    [embed] = message.embeds
    assert embed.title is not None and embed.title.startswith("[Replay 5 Aug 2024] Crypto is down")
    assert embed.image.url is None and message.attachments == []
    [delivery] = store.deliveries(alert.id)
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    row = store.get_subscription("discord", str(no_files.id), None)
    assert row is not None and row.active and row.consecutive_failures == 0


async def test_subscribe_asks_for_attach_files_when_alerts_carry_charts(
    simcord_env: simcord.Env,
    explainer: Explainer,
    store: Store,
    settings: Settings,
    upstream: Upstream,
) -> None:
    s = server(simcord_env)
    me = s.guild.me
    assert me is not None
    no_files = s.guild.create_text_channel(
        "no_files", overwrites={me: discord.PermissionOverwrite(attach_files=False)}
    )

    refused = await s.manager.slash(s.channel, "subscribe", channel=no_files)

    assert refused.ephemeral and refused.response is not None
    assert refused.response.content == (
        "I can't post alerts in \\#no\\_files: I need Attach Files there. "
        "Grant them, or pick another channel."
    )
    assert store.get_subscription("discord", str(no_files.id), None) is None
    assert len(simcord_env.errors) == 1


async def test_a_channel_refusing_the_embed_too_is_a_permanent_failure(
    simcord_env: simcord.Env, frontend: DiscordFrontend, explainer: Explainer
) -> None:
    s = server(simcord_env)
    simcord_env.inject_error(
        "POST",
        "/channels/*/messages",
        status=403,
        code=50013,
        message="Missing Permissions",
        times=2,
    )
    alert = AlertMessage(kind="alert", alert_id=1, explanation=await explainer.explain())

    with pytest.raises(PermanentDeliveryError) as caught:
        await frontend.notifier.send(subscription_to(s.channel.id), alert)

    assert str(caught.value) == "discord 403 (code 50013): Missing Permissions"
    assert len(requests_to(simcord_env, "POST", f"/channels/{s.channel.id}/messages")) == 2
    assert s.channel.last_message is None


async def test_missing_access_is_permanent_at_once_without_a_second_request(
    simcord_env: simcord.Env, frontend: DiscordFrontend, explainer: Explainer
) -> None:
    s = server(simcord_env)
    # the bot was removed from the channel: sending again without the chart cannot help, and each
    # 403 counts toward Discord's invalid-request limit
    simcord_env.inject_error(
        "POST", "/channels/*/messages", status=403, code=50001, message="Missing Access"
    )
    alert = AlertMessage(kind="alert", alert_id=1, explanation=await explainer.explain())

    with pytest.raises(PermanentDeliveryError) as caught:
        await frontend.notifier.send(subscription_to(s.channel.id), alert)

    assert str(caught.value) == "discord 403 (code 50001): Missing Access"
    assert len(requests_to(simcord_env, "POST", f"/channels/{s.channel.id}/messages")) == 1
    assert s.channel.last_message is None
