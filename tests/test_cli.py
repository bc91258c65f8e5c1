"""The `whydown` command line, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings
from explainers.models import Explanation

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env from the working directory, and a private database path."""
    monkeypatch.chdir(tmp_path)
    for name in ("WHYDOWN_TELEGRAM_TOKEN", "WHYDOWN_DISCORD_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _all_upstreams_down(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, default in Settings(_env_file=None).sources.model_dump().items():
        if isinstance(default, str) and default.startswith("https://"):
            monkeypatch.setenv(f"WHYDOWN_SOURCES__{name.upper()}", UNREACHABLE)
    monkeypatch.setenv("WHYDOWN_SOURCES__RETRY_BACKOFF_S", "0")


def test_demo_prints_a_labelled_replay_with_sources_and_times(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--full"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        'REPLAY of "Yen carry-trade unwind" (5 Aug 2024): recorded responses, not live data.'
    )
    assert "5 of 6 sell-off drivers are firing." in out
    assert "[Farside, 3 Aug 00:00 UTC]" in out
    assert "Data as of 08:00 UTC, 5 Aug 2024; 20 of 20 sources answered." in out


def test_demo_is_compact_by_default_and_still_labelled_a_replay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--no-chart"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        'REPLAY of "Yen carry-trade unwind" (5 Aug 2024): recorded responses, not live data. '
        "The full answer (--full) says which figures are published."
    )
    assert "\n• ETF outflows: US spot-Bitcoin ETFs -$237.4M on the latest day\n" in out
    assert "[Farside, 3 Aug 00:00 UTC]" not in out  # the evidence is in the full answer
    assert "Data as of 08:00 UTC, 5 Aug 2024; 20 of 20 sources answered." in out


def test_demo_for_a_coin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "eth"]) == 0
    assert "Ethereum (ETH): -21.0% in 24h" in capsys.readouterr().out


def test_demo_unknown_coin_suggests_close_matches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "etherium"]) == 2
    err = capsys.readouterr().err
    assert 'I don\'t know the coin "etherium"' in err
    assert "Did you mean" in err


def test_demo_json_is_the_documented_explanation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    explanation = Explanation.model_validate(data)
    assert explanation.verdict == "down"
    assert data["replay"]["scenario_date"] == "2024-08-05"


def test_why_with_every_upstream_down_still_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _all_upstreams_down(monkeypatch)
    assert main(["why", "--full"]) == 0
    out = capsys.readouterr().out
    assert "The market's move is unknown: no price source answered this time." in out
    # Binance and Bybit open interest are on by default now (keyless), and come first by label
    assert "Not available: Binance open interest (unavailable: connection failed" in out
    assert "; CoinDesk (unavailable: connection failed (ConnectError))" in out
    assert "127.0.0.1" not in out  # no URL ever reaches the user


def test_sources_table_with_every_upstream_down(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _all_upstreams_down(monkeypatch)
    assert main(["sources", "--listen", "0"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "source",
        "status",
        "latency",
        "as",
        "of",
        "shape",
        "note",
    ]
    assert "Farside ETF flows" in out and "failed" in out
    assert "Stooq S&P 500                      disabled" in out
    assert "no API key set" in out


def test_run_without_a_token_says_what_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    out = capsys.readouterr().out
    assert "WHYDOWN_TELEGRAM_TOKEN" in out and "WHYDOWN_DISCORD_TOKEN" in out


def test_status_before_the_first_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    assert "No database at data/whydown.db yet" in capsys.readouterr().out
