"""The composition root: one httpx client, one explainer, (later) the store, scheduler and bots."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from bot.config import Settings
from explainers.collect import Collector, utcnow
from explainers.history import History
from explainers.models import Replay
from explainers.replay import Scenario
from explainers.service import Explainer
from explainers.sources.http import USER_AGENT


def http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one client every source shares: explicit timeouts, a descriptive User-Agent."""
    timeout = settings.sources.timeout_s
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        limits=httpx.Limits(max_connections=40, max_keepalive_connections=20),
    )


def build_explainer(
    client: httpx.AsyncClient,
    settings: Settings,
    *,
    history: History | None = None,
    clock: Callable[[], datetime] = utcnow,
    replay: Replay | None = None,
) -> Explainer:
    return Explainer(
        Collector(client, settings.sources, clock=clock),
        settings.thresholds,
        history=history,
        max_age=timedelta(seconds=settings.refresh_interval_s),
        clock=clock,
        replay=replay,
    )


def demo_client(settings: Settings, scenario: Scenario) -> httpx.AsyncClient:
    """A client that answers from the scenario's recorded responses; nothing leaves the machine."""
    return http_client(settings, transport=scenario.transport())
