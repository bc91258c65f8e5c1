"""Farside behind Cloudflare: a bot challenge is a block, not a parse failure."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from explainers.errors import BadResponse, SourceBlocked
from explainers.sources import farside
from explainers.sources.http import bot_challenge

API = Path(__file__).parent / "fixtures" / "api"
BASE = "https://farside.co.uk"
# the markers of Cloudflare's interstitial (synthetic page: no challenge body is recorded)
CHALLENGE = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head>'
    "<body><noscript>Enable JavaScript and cookies to continue</noscript>"
    '<script src="/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1"></script>'
    "</body></html>"
)


def serving(reply: httpx.Response) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda request: reply))


@pytest.mark.parametrize("status", [200, 403, 503])
async def test_challenge_page_is_blocked_with_the_reason(status: int) -> None:
    async with serving(httpx.Response(status, text=CHALLENGE)) as client:
        with pytest.raises(SourceBlocked) as caught:
            await farside.fetch_flows(client, BASE)
    assert caught.value.source == "Farside"
    assert "bot challenge" in caught.value.detail


async def test_cf_mitigated_header_alone_marks_a_challenge() -> None:
    reply = httpx.Response(403, headers={"cf-mitigated": "challenge"}, text="<html></html>")
    assert bot_challenge(reply)
    async with serving(reply) as client:
        with pytest.raises(SourceBlocked, match="bot challenge"):
            await farside.fetch_flows(client, BASE)


async def test_a_plain_403_stays_a_location_block() -> None:
    async with serving(httpx.Response(403, text="Forbidden")) as client:
        with pytest.raises(SourceBlocked, match="refused from this location"):
            await farside.fetch_flows(client, BASE)


async def test_other_html_is_still_a_bad_response() -> None:
    page = "<!DOCTYPE html><html><body><p>Down for maintenance</p></body></html>"
    async with serving(httpx.Response(200, text=page)) as client:
        with pytest.raises(BadResponse, match="HTML page instead of JSON"):
            await farside.fetch_flows(client, BASE)


async def test_the_flow_page_still_parses_through_fetch_flows() -> None:
    html = (API / "farside_btc_built_from_text_extract.html").read_text()
    page = [{"slug": "btc", "content": {"rendered": html}}]
    async with serving(httpx.Response(200, text=json.dumps(page))) as client:
        flows = await farside.fetch_flows(client, BASE)
    assert flows.days[-1].total_musd == 146.0


def test_check_html_names_the_drift() -> None:
    assert farside.check_html((API / "farside_btc.html").read_text()) == []
    assert farside.check_html(CHALLENGE) == ["no ETF flow table in the page"]


def test_json_bodies_are_never_challenges() -> None:
    assert not bot_challenge(httpx.Response(200, json={"title": "Just a moment"}))
