"""Run the real pipeline over recorded responses, with faults injected per host when asked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from bot.config import Settings
from bot.runner import build_explainer, http_client
from explainers.history import History
from explainers.replay import Scenario
from explainers.service import Explainer

Handler = Callable[[httpx.Request], httpx.Response | None]


class Upstream:
    """The demo recording behind a MockTransport that counts requests and can inject faults."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.scenario = scenario or Scenario.load()
        self.calls: Counter[str] = Counter()
        self.overrides: list[Handler] = []
        self.now = self.scenario.now

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls[f"{request.url.host}{request.url.path}"] += 1
        for override in self.overrides:
            response = override(request)
            if response is not None:
                return response
        return self.scenario.handle(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, settings: Settings) -> httpx.AsyncClient:
        return http_client(settings, transport=self.transport())

    def explainer(
        self, client: httpx.AsyncClient, settings: Settings, history: History | None = None
    ) -> Explainer:
        return build_explainer(
            client, settings, history=history, clock=self.clock, replay=self.scenario.replay
        )

    def clock(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
