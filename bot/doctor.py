"""`whydown sources`, the doctor: every source asked once live through a transport that keeps each
body (to check its shape), then each liquidation stream listened to for a while.

It builds its own client around that capturing transport, so it is a composition root of its own,
like the runner.
"""

from __future__ import annotations

import httpx

from bot.config import Settings
from bot.runner import http_client
from explainers.collect import Collector
from explainers.doctor import (
    CaptureTransport,
    Wait,
    check_sources,
    listen,
    source_table,
    stream_table,
)


async def doctor(
    settings: Settings,
    listen_s: float,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    stream_urls: dict[str, str] | None = None,
    wait: Wait | None = None,
) -> tuple[list[str], int]:
    """The doctor's lines and exit code: 1 when no asked source answered, or a body drifted."""
    capture = CaptureTransport(transport or httpx.AsyncHTTPTransport())
    async with http_client(settings, transport=capture) as client:
        checks = await check_sources(Collector(client, settings.sources), capture)
    lines = source_table(checks)
    if listen_s > 0:
        lines += ["", *stream_table(await listen(listen_s, urls=stream_urls, wait=wait))]
    asked = [c for c in checks if c.status.state != "disabled"]
    failed = [c for c in asked if c.status.state in ("failed", "blocked")]
    drifted = [c for c in checks if c.drift]
    return lines, 1 if (asked and len(failed) == len(asked)) or drifted else 0
