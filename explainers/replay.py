"""Serve recorded upstream responses through `httpx.MockTransport`.

A scenario is a folder holding `scenario.json` and the recorded bodies, in each API's real format:

    {
      "name": "...", "date": "2024-08-05", "now": "2024-08-05T08:00:00Z", "provenance": "...",
      "responses": [
        {"url": "https://api.coingecko.com/api/v3/coins/markets", "params": {"vs_currency": "usd"},
         "file": "coingecko_markets.json", "status": 200, "headers": {"Retry-After": "30"}},
        {"url": "https://stooq.com/q/l/", "fault": "timeout"}
      ]
    }

Recordings may also be split over `*.responses.json` files in the folder (each a JSON list of
entries as above), so each group of sources keeps its own file.

A request matches an entry when scheme, host and path are equal and the entry's params are a
subset of the request's query; the entry naming the most params wins. A request nothing matches
gets a 404, so a missing recording shows up as a failed source, never as invented data.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx

from explainers.models import Replay

DEMO_FOLDER = Path(__file__).parent / "demo" / "aug-2024"
#: the requests a scenario keeps for inspection: a few refreshes' worth
REQUESTS_KEPT = 1000

#: sources the recordings hold no responses for: a replay does not ask them (their status says
#: why) rather than show them as failed
NOT_RECORDED_REASON = "not in the recording"
NOT_RECORDED: tuple[str, ...] = (
    "usdt_coinbase",
    "usdt_kraken",
    "oi_okx",
    "oi_bybit",
    "oi_binance",
    "oi_hyperliquid",
    "kalshi",
    "cnbc_spx",
    "cnbc_ndx",
    "fred_spx",
    "fred_ndx",
    "mempool_hashrate",
    "mempool_difficulty",
    "defillama_stablecoins",
    "blockchain_transactions",
    "fred_vix",
    "fred_dollar",
    "fred_usdjpy",
)


def not_recorded() -> dict[str, str]:
    """Source key -> the reason a replay gives for not asking it."""
    return dict.fromkeys(NOT_RECORDED, NOT_RECORDED_REASON)


_FAULTS: dict[str, type[httpx.TransportError]] = {
    "timeout": httpx.ReadTimeout,
    "connect": httpx.ConnectError,
}


@dataclass(frozen=True)
class Recorded:
    url: httpx.URL
    params: dict[str, str]
    file: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    body: str | None = None

    def matches(self, request: httpx.URL) -> bool:
        if (request.scheme, request.host, request.path) != (
            self.url.scheme,
            self.url.host,
            self.url.path,
        ):
            return False
        return all(request.params.get(k) == v for k, v in self.params.items())


@dataclass
class Scenario:
    folder: Path
    name: str
    day: date
    now: datetime
    provenance: str
    responses: list[Recorded]
    #: the last requests served, in order, for tests and benchmarks that look at upstream
    #: calls; bounded, because `whydown run --demo` serves one refresh after another for as long
    #: as it runs (`served` counts them all)
    requests: deque[httpx.Request] = field(default_factory=lambda: deque(maxlen=REQUESTS_KEPT))
    served: int = 0

    @classmethod
    def load(cls, folder: Path = DEMO_FOLDER) -> Scenario:
        spec: dict[str, Any] = json.loads((folder / "scenario.json").read_text())
        entries: list[dict[str, Any]] = list(spec.get("responses", []))
        for extra in sorted(folder.glob("*.responses.json")):
            entries.extend(json.loads(extra.read_text()))
        return cls(
            folder=folder,
            name=spec["name"],
            day=date.fromisoformat(spec["date"]),
            now=datetime.fromisoformat(spec["now"].replace("Z", "+00:00")),
            provenance=spec["provenance"],
            responses=[
                Recorded(
                    url=httpx.URL(item["url"]),
                    params={k: str(v) for k, v in item.get("params", {}).items()},
                    file=item.get("file"),
                    status=item.get("status", 200),
                    headers=item.get("headers", {}),
                    fault=item.get("fault"),
                    body=item.get("body"),
                )
                for item in entries
            ],
        )

    @property
    def replay(self) -> Replay:
        return Replay(scenario=self.name, scenario_date=self.day, provenance=self.provenance)

    def find(self, url: httpx.URL) -> Recorded | None:
        candidates = [r for r in self.responses if r.matches(url)]
        return max(candidates, key=lambda r: len(r.params), default=None)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.served += 1
        recorded = self.find(request.url)
        if recorded is None:
            return httpx.Response(404, text="no recorded response for this request")
        if recorded.fault:
            raise _FAULTS[recorded.fault]("recorded fault", request=request)
        if recorded.file is not None:
            content = (self.folder / recorded.file).read_bytes()
        else:
            content = (recorded.body or "").encode()
        return httpx.Response(recorded.status, headers=recorded.headers, content=content)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)
