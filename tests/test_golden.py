"""The rendered answer, word for word, for the demo sell-off, a calm market and an unexplained drop.

Regenerate after an intended wording change with `WHYDOWN_UPDATE_GOLDEN=1 pytest tests/test_golden.py`
and read the diff before committing it.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.config import Settings
from explainers import drivers, render
from explainers.explain import explain
from explainers.models import Explanation, Headline
from explainers.settings import Thresholds
from tests import factories as f
from tests.replay_helpers import Upstream

GOLDEN = Path(__file__).parent / "golden"
T = Thresholds()


def check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("WHYDOWN_UPDATE_GOLDEN"):
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} changed; see the module docstring"


async def demo() -> Explanation:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    async with upstream.client(settings) as client:
        return await upstream.explainer(client, settings).explain()


def calm() -> Explanation:
    """Market up a little, stocks fine, greed: nothing to explain."""
    s = f.snapshot(
        markets=f.markets(btc_24h=1.2, btc_1h=0.1, alts=[0.5, 2.0, -0.4]),
        global_market=f.global_market(0.8),
        etf=f.etf(120.0, 85.5, 40.2),
        indices={"spx": f.index("spx", 0.4), "ndx": f.index("ndx", 0.7)},
        fear_greed=f.fear_greed(61, 60, 63, 65, 66, 64, 67, 68),
        cut_odds=f.cut_odds(0.62, meeting_date=date(2026, 12, 9)),
        # the network unchanged; nothing notable outside crypto
        hash_rate=f.hash_rate(0.4),
        stablecoins=f.stablecoins(205.3e9, 205.5e9),
        transactions=f.transactions(412_000, 400_000),
        macro={"vix": f.macro("vix", 16.2, 15.8), "dollar": f.macro("dollar", 120.1, 120.0)},
    )
    lb = f.lookback(
        cut_odds_7d_ago=0.58,
        premium_samples=[0.02, 0.03, 0.01],
        **f.liquidation_totals(2e6, 3e6, 40e6, 35e6),
    )
    return explain(s, drivers.evaluate(s, lb, T), lb, T, now=f.NOW)


def unexplained() -> Explanation:
    """Down 5% with every driver quiet: say so, and show the headlines."""
    headline = Headline(
        title="Exchange halts withdrawals after wallet exploit",
        link="https://news.example/exploit",
        feed="CoinDesk",
        published=f.NOW,
    )
    s = f.snapshot(
        markets=f.markets(btc_24h=-5.2, btc_1h=-0.8, alts=[-6.0, -7.5, -4.9]),
        global_market=f.global_market(-5.6),
        etf=f.etf(30.0, -20.0, -60.0),
        indices={"spx": f.index("spx", 0.2), "ndx": f.index("ndx", -0.3)},
        fear_greed=f.fear_greed(48, 47, 45, 44, 42, 40, 39, 38),
        cut_odds=f.cut_odds(0.55),
        headlines=[headline],
        # context, not drivers: stablecoins shrinking, VIX jumping, the yen rising
        hash_rate=f.hash_rate(-1.2),
        stablecoins=f.stablecoins(201.2e9, 204.0e9),
        transactions=f.transactions(430_000, 400_000),
        macro={"vix": f.macro("vix", 31.5, 22.0), "usdjpy": f.macro("usdjpy", 143.2, 147.9)},
    )
    lb = f.lookback(
        cut_odds_7d_ago=0.57,
        premium_samples=[-0.01, -0.02, -0.01],
        **f.liquidation_totals(9e6, 2e6, 60e6, 20e6),
    )
    return explain(s, drivers.evaluate(s, lb, T), lb, T, now=f.NOW)


async def test_demo_text() -> None:
    check("demo.txt", render.text(await demo()))


async def test_demo_telegram_html() -> None:
    html = render.telegram_html(await demo())
    assert len(html) <= render.TELEGRAM_LIMIT
    check("demo.telegram.html", html)


async def test_demo_discord_embed() -> None:
    embed = render.discord_embed(await demo())
    assert render.embed_length(embed) <= render.DISCORD_TOTAL
    check("demo.discord.json", json.dumps(embed, indent=2, ensure_ascii=False) + "\n")


def test_calm_market_says_it_is_not_down() -> None:
    e = calm()
    assert e.verdict == "not_down" and not e.fired
    text = render.text(e)
    assert text.startswith("Crypto is not down right now")
    check("calm.txt", text)


@pytest.mark.parametrize("flavour", ["txt", "telegram.html"])
def test_unexplained_drop_says_so_with_headlines(flavour: str) -> None:
    e = unexplained()
    assert e.unexplained
    out = render.text(e) if flavour == "txt" else render.telegram_html(e)
    assert "Not explained by the data we read" in out
    assert "Exchange halts withdrawals after wallet exploit" in out
    check(f"unexplained.{flavour}", out)


def test_stale_data_is_marked_in_every_footer() -> None:
    s = f.snapshot(
        markets=f.markets(btc_24h=1.2, btc_1h=0.1),
        etf=f.etf(120.0, 85.5, 40.2),
        statuses=f.stale("farside", "Farside ETF flows", "4 days")
        | f.failed("feargreed", "Fear & Greed"),
    )
    lb = f.lookback()
    e = explain(s, drivers.evaluate(s, lb, T), lb, T, now=f.NOW)
    assert [status.label for status in e.stale_sources] == ["Farside ETF flows"]
    stale = "Stale: Farside ETF flows (data older than 4 days)."
    text = render.text(e)
    assert stale in text and "Not available: Fear & Greed" in text
    html = render.telegram_html(e)
    assert stale in html.split("<i>Data as of")[1]
    footer = render.discord_embed(e)["footer"]["text"]
    assert stale in footer and "Not available: Fear & Greed." in footer


def test_headlines_older_than_48_hours_are_left_out() -> None:
    def headline(title: str, hours_ago: float | None) -> Headline:
        return Headline(
            title=title,
            link=f"https://news.example/{title.replace(' ', '-')}",
            feed="CoinDesk",
            published=None if hours_ago is None else f.NOW - timedelta(hours=hours_ago),
            drivers=["etf"],
        )

    s = f.snapshot(
        markets=f.markets(),
        etf=f.etf(-50.0, -100.0, -150.0),
        headlines=[
            headline("Last year's ETF outflows", 24 * 400),
            headline("ETF outflows three days ago", 72),
            headline("ETF outflows today", 2),
            headline("Undated ETF item", None),
            headline("ETF outflows two days ago", 48),
        ],
    )
    lb = f.lookback()
    e = explain(s, drivers.evaluate(s, lb, T), lb, T, now=f.NOW)
    recent = ["ETF outflows today", "Undated ETF item", "ETF outflows two days ago"]
    assert [h.title for h in e.headlines] == recent
    etf = next(d for d in e.drivers if d.key == "etf")
    assert [h.title for h in etf.headlines] == recent[:2]
    text = render.text(e)
    assert "three days ago" not in text and "Last year" not in text


# --- the compact answer: what chats get by default (the full one is a Details press away) -------

#: the Telegram compact answer of the demo stays short enough to read at a glance
TELEGRAM_COMPACT_LIMIT = 1200


async def test_demo_compact_text() -> None:
    check("demo.compact.txt", render.text(await demo(), full=False))


async def test_demo_compact_telegram_html() -> None:
    html = render.telegram_html(await demo(), full=False)
    assert len(html) <= TELEGRAM_COMPACT_LIMIT
    assert "Fear &amp; Greed 26 (-48 in 7 days)" in html  # an entity is not a phrase break
    check("demo.compact.telegram.html", html)


async def test_demo_compact_discord_embed() -> None:
    embed = render.discord_embed(await demo(), full=False)
    assert embed["fields"] == []
    check("demo.compact.discord.json", json.dumps(embed, indent=2, ensure_ascii=False) + "\n")


def test_calm_market_compact() -> None:
    text = render.text(calm(), full=False)
    assert "A calm market: no sell-off to explain, and none of the 6 drivers is firing." in text
    check("calm.compact.txt", text)
    check("calm.compact.telegram.html", render.telegram_html(calm(), full=False))


def test_unexplained_drop_compact() -> None:
    text = render.text(unexplained(), full=False)
    assert "Not explained by the data we read: none of the 6 drivers is firing" in text
    check("unexplained.compact.txt", text)
    check("unexplained.compact.telegram.html", render.telegram_html(unexplained(), full=False))
    check(
        "unexplained.compact.discord.json",
        json.dumps(render.discord_embed(unexplained(), full=False), indent=2, ensure_ascii=False)
        + "\n",
    )


def test_calm_and_unexplained_discord_embeds() -> None:
    for name, e in (("calm", calm()), ("unexplained", unexplained())):
        embed = render.discord_embed(e)
        check(f"{name}.discord.json", json.dumps(embed, indent=2, ensure_ascii=False) + "\n")
    check("calm.telegram.html", render.telegram_html(calm()))
