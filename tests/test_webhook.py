"""Webhook alerts against a local endpoint on 127.0.0.1: the signed Explanation as JSON, retries
on 5xx, 429's Retry-After honoured, 410 deactivating, no redirect followed, a timeout, a slow
endpoint never holding up a chat platform; Slack and Discord payloads; the CLI commands."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from bot import cli, runner
from bot.alerts import AlertEngine, AlertSettings
from bot.config import Settings
from bot.delivery import AlertMessage, TransientDeliveryError
from bot.store import Store, Subscription
from bot.webhook import describe_url, payload, validate_url
from bot.webhook.notifier import WebhookNotifier
from explainers.models import Explanation
from explainers.settings import Thresholds
from tests.alert_fakes import ManualClock, explanation

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # the engine's clock when the request arrived


@dataclass
class Endpoint:
    """A local webhook endpoint; `answers` scripts the status of each request in turn."""

    clock: ManualClock
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    hold: asyncio.Event | None = None  # when set, requests wait for it before answering
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    redirected_to: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(dict(request.headers), await request.read(), self.clock.mono))
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        status, headers = self.answers.pop(0) if self.answers else (204, {})
        return web.Response(status=status, headers=headers)

    async def elsewhere(self, request: web.Request) -> web.StreamResponse:
        self.redirected_to += 1
        return web.Response(status=204)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "whydown.db") as opened:
        yield opened


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    hook = Endpoint(ManualClock())
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    app.router.add_post("/elsewhere", hook.elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hook.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()


def engine_for(store: Store, clock: ManualClock, **notifiers: object) -> AlertEngine:
    settings = AlertSettings(backoff_base_s=1.0)
    webhook = WebhookNotifier(Thresholds(), timeout_s=5.0)
    return AlertEngine(store, settings, {"webhook": webhook, **notifiers}, clock)  # type: ignore[dict-item]


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What the README tells a receiver to do."""
    timestamp = headers["X-Whydown-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(headers["X-Whydown-Signature"], f"sha256={expected.hexdigest()}")


async def test_the_alert_arrives_as_the_explanation_json_signed(
    store: Store, endpoint: Endpoint
) -> None:
    store.subscribe("webhook", endpoint.url, None, 3, "cli", secret="s3cret")
    e = explanation(4)
    alert = await engine_for(store, endpoint.clock).evaluate(e)
    assert alert is not None
    [got] = endpoint.received
    assert verify("s3cret", got.headers, got.body)
    assert not verify("other", got.headers, got.body)
    assert Explanation.model_validate_json(got.body) == e  # the documented schema, as why --json
    assert json.loads(got.body) == json.loads(e.model_dump_json())
    assert got.headers["X-Whydown-Event"] == "alert"
    assert got.headers["X-Whydown-Alert-Id"] == str(alert.id)
    assert [d.status for d in store.deliveries(alert.id)] == ["sent"]


async def test_unsigned_without_a_secret(store: Store, endpoint: Endpoint) -> None:
    store.subscribe("webhook", endpoint.url, None, 3, "cli")
    await engine_for(store, endpoint.clock).evaluate(explanation(3))
    [got] = endpoint.received
    assert "X-Whydown-Signature" not in got.headers


async def test_5xx_is_retried_with_back_off_then_sent(store: Store, endpoint: Endpoint) -> None:
    store.subscribe("webhook", endpoint.url, None, 3, "cli")
    endpoint.answers = [(503, {}), (500, {})]
    alert = await engine_for(store, endpoint.clock).evaluate(explanation(3))
    assert alert is not None
    times = [r.at for r in endpoint.received]
    assert len(times) == 3
    assert times[1] - times[0] >= 1.0 - 1e-9 and times[2] - times[1] >= 2.0 - 1e-9  # 1 s, 2 s
    [delivery] = store.deliveries(alert.id)
    assert (delivery.status, delivery.attempts) == ("sent", 3)


async def test_429_retry_after_is_honoured(store: Store, endpoint: Endpoint) -> None:
    store.subscribe("webhook", endpoint.url, None, 3, "cli")
    endpoint.answers = [(429, {"Retry-After": "7"})]
    alert = await engine_for(store, endpoint.clock).evaluate(explanation(3))
    assert alert is not None
    first, second = endpoint.received
    assert second.at - first.at >= 7.0
    [delivery] = store.deliveries(alert.id)
    assert (delivery.status, delivery.attempts) == ("sent", 1)  # a wait is not a failed attempt


async def test_410_fails_at_once_and_deactivates_after_repeated_failures(
    store: Store, endpoint: Endpoint
) -> None:
    sub = store.subscribe("webhook", endpoint.url, None, 3, "cli")
    endpoint.answers = [(410, {})] * 3
    engine = engine_for(store, endpoint.clock)
    for fired in (3, 4, 5):  # escalating: due each time
        alert = await engine.evaluate(explanation(fired))
        assert alert is not None
        [delivery] = store.deliveries(alert.id)
        assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert len(endpoint.received) == 3
    after = store.subscription(sub.id)
    assert after is not None and not after.active


async def test_a_redirect_is_not_followed(store: Store, endpoint: Endpoint) -> None:
    store.subscribe("webhook", endpoint.url, None, 3, "cli")
    endpoint.answers = [(307, {"Location": endpoint.url.replace("/hook", "/elsewhere")})]
    alert = await engine_for(store, endpoint.clock).evaluate(explanation(3))
    assert alert is not None
    assert endpoint.redirected_to == 0
    [delivery] = store.deliveries(alert.id)
    assert delivery.status == "failed" and "redirect" in (delivery.last_error or "")


async def test_a_request_that_takes_too_long_times_out(endpoint: Endpoint) -> None:
    endpoint.hold = asyncio.Event()  # never answered
    notifier = WebhookNotifier(Thresholds(), timeout_s=0.2)
    sub = Subscription.model_validate(
        {
            "id": 1,
            "platform": "webhook",
            "chat_id": endpoint.url,
            "min_drivers": 3,
            "subscribed_by": "cli",
            "subscribed_at": "2024-08-05T08:00:00+00:00",
            "active": True,
            "consecutive_failures": 0,
        }
    )
    message = AlertMessage(kind="alert", alert_id=1, explanation=explanation(3))
    try:
        with pytest.raises(TransientDeliveryError, match="Timeout"):
            await notifier.send(sub, message)
    finally:
        endpoint.hold.set()
        await notifier.aclose()


async def test_a_slow_endpoint_does_not_hold_up_the_chats(store: Store, endpoint: Endpoint) -> None:
    endpoint.hold = asyncio.Event()
    chat_done = asyncio.Event()

    class Chat:
        platform = "telegram"

        async def send(self, subscription: Subscription, message: AlertMessage) -> None:
            chat_done.set()

    store.subscribe("webhook", endpoint.url, None, 3, "cli")
    store.subscribe("telegram", "42", None, 3, "x")
    engine = engine_for(store, endpoint.clock, telegram=Chat())
    fan_out = asyncio.create_task(engine.evaluate(explanation(3)))
    await endpoint.arrived.wait()
    await chat_done.wait()
    # the chat's delivery is complete and recorded while the webhook still holds its request
    [alert] = store.recent_alerts(1)
    status = {d.subscription_id: d.status for d in store.deliveries(alert.id)}
    telegram = store.get_subscription("telegram", "42", None)
    webhook = store.get_subscription("webhook", endpoint.url, None)
    assert telegram is not None and webhook is not None
    for _ in range(100):  # the mark follows the send without any await; give it a turn
        if status[telegram.id] == "sent":
            break
        await asyncio.sleep(0)
        status = {d.subscription_id: d.status for d in store.deliveries(alert.id)}
    assert status == {telegram.id: "sent", webhook.id: "pending"}
    assert not fan_out.done()
    endpoint.hold.set()
    await fan_out
    assert {d.status for d in store.deliveries(alert.id)} == {"sent"}


# --- payloads for Slack and Discord; URLs ------------------------------------------------------


def test_slack_and_discord_urls_get_their_native_payloads() -> None:
    message = AlertMessage(kind="alert", alert_id=9, explanation=explanation(3))
    slack = payload(
        message, "https://hooks.slack.com/services/T0/B0/xyz", Thresholds(), secret=None, now=1
    )
    body = json.loads(slack.body)
    assert slack.kind == "slack"
    assert body["text"].startswith("Crash alert")
    assert [b["type"] for b in body["blocks"]] == ["section", "section"]
    discord = payload(
        message, "https://discord.com/api/webhooks/1/tok", Thresholds(), secret="k", now=1
    )
    body = json.loads(discord.body)
    assert discord.kind == "discord"
    assert body["content"].startswith("**Crash alert**")
    assert body["embeds"][0]["fields"] and body["allowed_mentions"] == {"parse": []}
    assert discord.headers["X-Whydown-Signature"].startswith("sha256=")
    generic = payload(
        message, "https://example.org/discord.com/api/webhooks/", Thresholds(), secret=None, now=1
    )
    assert generic.kind == "json"


@pytest.mark.parametrize(
    "url", ["ftp://example.org/x", "file:///etc/passwd", "example.org/hook", "https://u:p@h/x"]
)
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(ValueError):
        validate_url(url)


def test_urls_are_shown_without_their_secret_path() -> None:
    assert describe_url("https://hooks.slack.com/services/T0/B0/xyz") == (
        "https://hooks.slack.com/services/…"
    )
    assert describe_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"


# --- the CLI -----------------------------------------------------------------------------------


def test_webhook_add_list_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "whydown.db"
    monkeypatch.setenv("WHYDOWN_DATABASE", str(db))
    url = "https://hooks.slack.com/services/T0/B0/secretpath"
    assert cli.main(["webhook", "add", url, "--min-drivers", "4", "--secret", "shh"]) == 0
    assert cli.main(["webhook", "add", "ftp://nope"]) == cli.EXIT_BAD_INPUT
    assert cli.main(["webhook", "list"]) == 0
    out = capsys.readouterr().out
    assert "secretpath" not in out and "shh" not in out
    assert "4+ drivers" in out and "signed" in out and "active" in out
    with Store(db) as store:
        [sub] = store.subscriptions(platform="webhook")
        assert sub.chat_id == url and sub.min_drivers == 4
        assert sub.secret is not None and sub.secret.get_secret_value() == "shh"
    assert cli.main(["webhook", "remove", url]) == 0
    assert cli.main(["webhook", "remove", str(sub.id)]) == cli.EXIT_BAD_INPUT  # already removed
    with Store(db) as store:
        assert store.subscriptions(platform="webhook") == []


async def test_run_with_only_a_webhook_needs_no_chat_token(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    db = tmp_path / "whydown.db"
    with Store(db) as store:
        store.subscribe("webhook", endpoint.url, None, 3, "cli", secret="s3cret")
    settings = Settings(_env_file=None, database=db)  # no Telegram, no Discord
    stop = asyncio.Event()
    run = asyncio.create_task(runner.run(settings, demo=True, stop=stop))
    try:
        await asyncio.wait_for(endpoint.arrived.wait(), timeout=60)  # the replay's sell-off
    finally:
        stop.set()
        assert await run == 0
    [got] = endpoint.received
    assert verify("s3cret", got.headers, got.body)
    assert got.headers["X-Whydown-Event"] == "alert"


async def test_run_without_a_chat_token_or_a_webhook_says_what_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(_env_file=None, database=tmp_path / "whydown.db")
    assert await runner.run(settings, demo=True) == runner.EXIT_CONFIG
    out = capsys.readouterr().out
    assert "No chat platform is configured, so there is nothing to run." in out
    assert "Or post alerts to a webhook only: `whydown webhook add URL`." in out
