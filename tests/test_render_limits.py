"""Renderers escape untrusted text and stay within each platform's limits, however long the input."""

from __future__ import annotations

import time
from datetime import datetime
from html.parser import HTMLParser

import pytest

from explainers import formatting, render
from explainers.models import DriverResult, Evidence, Explanation, Headline, Move
from tests.factories import NOW

EVIL = '<b>pwn</b> & "quotes" *bold* _it_ [link](https://evil.example) @everyone'


def _explanation(
    title: str = EVIL, n_headlines: int = 5, evidence_value: str = "$1M"
) -> Explanation:
    headlines = [
        Headline(
            title=f"{title} {i}",
            link=f"https://news.example/{i}?a=1&b=2",
            feed="Feed",
            published=NOW,
            drivers=["etf"],
        )
        for i in range(n_headlines)
    ]
    drivers = [
        DriverResult(
            key=key,
            name=name,
            state="fired",
            severity=2.0 - i / 10,
            threshold="t",
            figures={"latest": -200.0, "sum3": -400.0} if key == "etf" else {},
            evidence=[
                Evidence(
                    label=title,
                    value=evidence_value,
                    source="Src",
                    url="javascript:alert(1)",
                    as_of=NOW,
                )
            ]
            * 3,
            headlines=headlines[:2],
        )
        for i, (key, name) in enumerate(
            [
                ("etf", "ETF outflows"),
                ("stocks", "Stock market weakness"),
                ("fear", "Fear spreading"),
                ("liquidations", "Liquidation cascade"),
                ("institutional", "Institutional selling"),
                ("fed", "Fed uncertainty"),
            ]
        )
    ]
    return Explanation(
        generated_at=NOW,
        data_time=NOW,
        verdict="down",
        market_change_24h=-8.0,
        btc_change_1h=-2.5,
        moves=[
            Move(
                label="Total market cap",
                change_1h=None,
                change_24h=-8.0,
                source="CoinGecko",
                as_of=NOW,
            ),
            Move(
                label="BTC",
                change_1h=-2.5,
                change_24h=-7.0,
                price=80000.0,
                source="CoinGecko",
                as_of=NOW,
            ),
        ],
        drivers=drivers,
        headlines=headlines,
    )


class _TagBalance(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)
        self.tags.add(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def test_telegram_html_escapes_upstream_text_and_keeps_tags_balanced() -> None:
    html = render.telegram_html(_explanation())
    assert "<b>pwn</b>" not in html
    assert "&lt;b&gt;pwn&lt;/b&gt; &amp; &#34;quotes&#34;" in html
    assert "javascript:" not in html
    parser = _TagBalance()
    parser.feed(html)
    assert parser.stack == []
    assert parser.tags <= {"b", "i", "a"}  # only tags Telegram's HTML mode accepts


def test_telegram_html_shortens_gracefully_within_4096() -> None:
    long = _explanation(title="x" * 600, n_headlines=5, evidence_value="y" * 300)
    full = render.telegram_html(long, limit=100_000)
    assert len(full) > 4096
    short = render.telegram_html(long)
    assert len(short) <= 4096
    assert short.startswith("<b>Crypto is down")
    assert "Information only, not financial advice.</i>" in short
    parser = _TagBalance()
    parser.feed(short)
    assert parser.stack == []


@pytest.mark.parametrize("limit", [900, 1200, 1600, 2500])
def test_telegram_html_fits_small_limits(limit: int) -> None:
    long = _explanation(title="x" * 300, n_headlines=5, evidence_value="y" * 200)
    html = render.telegram_html(long, limit=limit)
    assert len(html) <= limit
    assert html.endswith("Information only, not financial advice.</i>\n")
    parser = _TagBalance()
    parser.feed(html)
    assert parser.stack == []


def test_dropping_lines_fits_every_limit_exactly() -> None:
    body = "\n".join(f"line {i}" for i in range(40))
    footer = "<i>Data as of 08:00 UTC.</i>"
    for limit in range(len(footer) + 3, len(body) + len(footer) + 10):
        fitted = render._fit_lines(body, footer, limit)
        assert len(fitted) <= limit, limit
        assert fitted.endswith("…\n\n" + footer)
        kept = fitted.count("line ")
        if kept < 40:  # the next line would not have fitted
            assert len(fitted) + len(f"line {kept}\n") > limit


def test_discord_embed_respects_every_limit() -> None:
    embed = render.discord_embed(_explanation(title="z" * 1500, evidence_value="w" * 900))
    assert len(embed["title"]) <= 256
    assert len(embed["description"]) <= 4096
    assert len(embed["fields"]) <= 25
    assert all(len(f["name"]) <= 256 and 0 < len(f["value"]) <= 1024 for f in embed["fields"])
    assert len(embed["footer"]["text"]) <= 2048
    assert render.embed_length(embed) <= 6000


def test_discord_embed_escapes_markdown_but_keeps_its_own_links() -> None:
    embed = render.discord_embed(_explanation())
    values = "\n".join(f["value"] for f in embed["fields"])
    assert r"\*bold\*" in values and r"\_it\_" in values and r"\[link\]" in values
    assert "](https://news.example/0?a=1&b=2)" in values  # our link markup intact
    assert "javascript:" not in values


def test_plain_text_has_no_markup() -> None:
    text = render.text(_explanation(title="Plain"))
    assert text.startswith(
        "Crypto is down: total market cap -8.0% in 24h, BTC -7.0% (-2.5% in 1h)."
    )
    assert "6 of 6 sell-off drivers are firing." in text
    assert "<" not in text.replace("<b>pwn", "")


@pytest.mark.parametrize("flavour", ["text", "html", "markdown"])
@pytest.mark.parametrize("name", ["unknown_coin", "coin_data_unavailable"])
def test_a_long_coin_query_is_cut_short_in_the_reply(flavour: render.Flavour, name: str) -> None:
    values = {"suggestions": ["SOL"]} if name == "unknown_coin" else {}
    reply = render.message(name, flavour, query="q" * 4000, **values)
    assert len(reply) < 300  # far below Discord's 2,000 and Telegram's 4,096
    assert f'"{"q" * 39}…"' in reply
    assert render.message(name, flavour, query="solanaa", **values).count("solanaa") == 1


def test_a_naive_time_is_shown_as_utc_not_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        naive = datetime(2024, 8, 5, 23, 30)
        assert formatting.when(naive) == "5 Aug 23:30 UTC"
        assert formatting.when(naive, now=datetime(2024, 8, 5, 10, 0)) == "23:30 UTC"
        assert formatting.when_full(naive) == "23:30 UTC, 5 Aug 2024"
        assert formatting.when_full(NOW) == "14:00 UTC, 20 Nov 2026"
    finally:
        monkeypatch.undo()
        time.tzset()
