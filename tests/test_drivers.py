"""Each driver at, just past and just short of its default thresholds, and unknown without data."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import UndefinedError
from pydantic import ValidationError

from explainers import drivers, render
from explainers.drivers import Driver
from explainers.explain import explain
from explainers.models import (
    DriverFigures,
    DriverResult,
    Explanation,
    Funding,
    VenueOpenInterest,
)
from explainers.settings import Thresholds
from explainers.sources import news
from tests import factories as f

T = Thresholds()


@pytest.mark.parametrize(
    ("long_1h", "short_1h", "state"),
    [
        (25e6, 0.0, "fired"),  # exactly the 1h threshold, all longs
        (24.9e6, 0.0, "quiet"),
        (25e6, 10.8e6, "quiet"),  # longs 69.8% of the total: below the 70% share
        (25e6, 10.7e6, "fired"),  # longs 70.03%
    ],
)
def test_liquidations_1h(long_1h: float, short_1h: float, state: str) -> None:
    result = drivers.liquidations.evaluate(
        f.snapshot(), f.lookback(**f.liquidation_totals(long_1h, short_1h)), T
    )
    assert result.state == state
    assert result.evidence[0].label == "Long liquidations, 1h"


@pytest.mark.parametrize(("long_24h", "state"), [(100e6, "fired"), (99.9e6, "quiet")])
def test_liquidations_24h(long_24h: float, state: str) -> None:
    lb = f.lookback(**f.liquidation_totals(0.0, 0.0, long_24h, 1e6))
    assert drivers.liquidations.evaluate(f.snapshot(), lb, T).state == state


@pytest.mark.parametrize(("now", "state"), [(96e9, "fired"), (96.1e9, "quiet")])
def test_open_interest_drop(now: float, state: str) -> None:
    result = drivers.liquidations.evaluate(
        f.snapshot(open_interest=[f.open_interest(now)]), f.lookback(oi_1h_ago_usd=100e9), T
    )
    assert result.state == state
    assert result.figures.oi_change_1h == pytest.approx((now - 100e9) / 100e9 * 100)


def _venue_oi(venue: str, usd: float) -> VenueOpenInterest:
    return VenueOpenInterest(venue=venue, coin="BTC", usd=usd, at=f.NOW, instruments=["BTC"])


def test_open_interest_is_judged_across_venues_with_each_venue_shown() -> None:
    venues = [_venue_oi("OKX", 3.0e9), _venue_oi("Binance", 8.1e9), _venue_oi("Bybit", 5.52e9)]
    venues.append(_venue_oi("Hyperliquid", 2.38e9))
    # 1h ago the four venues held $20.0B; now $19.0B: -5%, past the 4% threshold
    ago = {"OKX": 3.2e9, "Binance": 8.5e9, "Bybit": 5.8e9, "Hyperliquid": 2.5e9}
    lb = f.lookback(oi_1h_ago_usd=3.0e9, oi_venues_1h_ago_usd=ago)
    s = f.snapshot(open_interest=[f.open_interest(3.0e9)], venue_open_interest=venues)
    result = drivers.liquidations.evaluate(s, lb, T)
    assert result.state == "fired"
    assert result.figures.oi_change_1h == pytest.approx(-5.0)
    lines = [(e.label, e.value, e.source) for e in result.evidence]
    assert (
        "BTC open interest, 1h, 4 venues",
        "$19.0B (-5.0%)",
        "Binance, Bybit, OKX, Hyperliquid",
    ) in lines
    assert ("BTC open interest, Binance", "$8.10B", "Binance") in lines
    assert ("BTC open interest, Hyperliquid", "$2.38B", "Hyperliquid") in lines
    text = render.text(explain(s, [result], lb, T, now=f.NOW))
    assert "BTC open interest -5.0% in 1h across 4 venues" in text
    assert "   - BTC open interest, Bybit: $5.52B [Bybit, 20 Nov 14:00 UTC]\n" in text


def test_open_interest_compares_only_venues_that_answered_then_and_now() -> None:
    """A venue that did not answer an hour ago is shown but left out of the change: a sum over
    more venues now than then is not a rise."""
    venues = [_venue_oi("OKX", 3.0e9), _venue_oi("Binance", 8.1e9)]
    lb = f.lookback(oi_venues_1h_ago_usd={"OKX": 3.0e9})
    result = drivers.liquidations.evaluate(f.snapshot(venue_open_interest=venues), lb, T)
    assert result.figures.oi_change_1h == pytest.approx(0.0)
    assert result.figures.oi_venues == 1
    assert ("BTC open interest, Binance", "$8.10B") in [(e.label, e.value) for e in result.evidence]


def test_open_interest_falls_back_to_okx_history_in_the_first_hour() -> None:
    venues = [_venue_oi("OKX", 90e9), _venue_oi("Bybit", 5.52e9)]
    lb = f.lookback(oi_1h_ago_usd=100e9)  # nothing stored across venues yet
    s = f.snapshot(open_interest=[f.open_interest(90e9)], venue_open_interest=venues)
    result = drivers.liquidations.evaluate(s, lb, T)
    lines = [(e.label, e.value, e.source) for e in result.evidence]
    assert ("BTC open interest, 1h", "$90.0B (-10.0%)", "OKX") in lines
    assert ("BTC open interest, Bybit", "$5.52B", "Bybit") in lines
    assert result.figures.oi_venues is None
    text = render.text(explain(s, [result], lb, T, now=f.NOW))
    assert "BTC open interest -10.0% in 1h;" in text or "BTC open interest -10.0% in 1h\n" in text


def test_funding_is_per_funding_period_not_per_8h() -> None:
    funding = Funding(source="OKX", as_of=f.NOW, instrument="BTC-USDT-SWAP", rate=-0.000051)
    result = drivers.liquidations.evaluate(f.snapshot(funding=[funding]), f.lookback(), T)
    line = next(e for e in result.evidence if e.label == "BTC funding rate")
    assert line.value == "-0.0051% per funding period"


def test_liquidations_unknown_names_the_failed_source() -> None:
    s = f.snapshot(statuses=f.failed("okx_liquidations_btc", "OKX liquidations (BTC)"))
    result = drivers.liquidations.evaluate(s, f.lookback(), T)
    assert result.state == "unknown"
    assert result.missing == ["OKX liquidations (BTC)"]


@pytest.mark.parametrize(
    ("totals", "state"),
    [
        ((10.0, 10.0, -100.0), "fired"),  # latest day at the threshold
        ((10.0, 10.0, -99.9), "quiet"),
        ((-100.0, -50.0, -99.9), "quiet"),  # 3-day sum -249.9
        ((-100.1, -50.0, -99.9), "fired"),  # 3-day sum -250.0
    ],
)
def test_etf(totals: tuple[float, ...], state: str) -> None:
    assert drivers.etf.evaluate(f.snapshot(etf=f.etf(*totals)), f.lookback(), T).state == state


def test_etf_not_reported_day_is_not_zero() -> None:
    # "-" on Farside: the newest day is pending, so the latest reported day (-150) decides
    result = drivers.etf.evaluate(f.snapshot(etf=f.etf(5.0, -150.0, None)), f.lookback(), T)
    assert result.state == "fired"
    # only two reported days: no 3-day sum
    assert result.figures == drivers.etf.EtfFigures(latest=-150.0, sum3=None)


def test_etf_unknown() -> None:
    s = f.snapshot(statuses=f.failed("farside", "Farside ETF flows"))
    result = drivers.etf.evaluate(s, f.lookback(), T)
    assert (result.state, result.missing) == ("unknown", ["Farside ETF flows"])


@pytest.mark.parametrize(
    ("samples", "state"),
    [
        ([-0.05, -0.06, -0.05], "fired"),
        ([-0.05, -0.049, -0.2], "quiet"),  # not held over all three
        ([-0.2, -0.2], "unknown"),  # too few samples to judge "held"
        ([], "unknown"),
    ],
)
def test_institutional(samples: list[float], state: str) -> None:
    assert (
        drivers.institutional.evaluate(f.snapshot(), f.lookback(premium_samples=samples), T).state
        == state
    )


@pytest.mark.parametrize(
    ("odds_now", "week_ago", "state"),
    [(0.40, 0.50, "fired"), (0.41, 0.50, "quiet"), (0.60, 0.50, "quiet")],
)
def test_fed_cut_odds(odds_now: float, week_ago: float, state: str) -> None:
    s = f.snapshot(cut_odds=f.cut_odds(odds_now))
    assert drivers.fed.evaluate(s, f.lookback(cut_odds_7d_ago=week_ago), T).state == state


@pytest.mark.parametrize(("latest", "state"), [(4.15, "fired"), (4.14, "quiet")])
def test_fed_two_year(latest: float, state: str) -> None:
    s = f.snapshot(yields=f.yields(4.00, 4.02, 4.05, 4.10, 4.12, latest))
    result = drivers.fed.evaluate(s, f.lookback(two_year_5d_ago=4.00), T)
    assert result.state == state


def test_fed_unknown_without_odds_or_yields() -> None:
    assert drivers.fed.evaluate(f.snapshot(), f.lookback(), T).state == "unknown"


@pytest.mark.parametrize(
    ("spx", "ndx", "state"),
    [(-1.0, 0.0, "fired"), (-0.99, -1.49, "quiet"), (0.5, -1.5, "fired")],
)
def test_stocks(spx: float, ndx: float, state: str) -> None:
    s = f.snapshot(indices={"spx": f.index("spx", spx), "ndx": f.index("ndx", ndx)})
    assert drivers.stocks.evaluate(s, f.lookback(), T).state == state


def test_stocks_one_index_missing_decides_on_the_other() -> None:
    s = f.snapshot(
        indices={"ndx": f.index("ndx", -2.0)},
        statuses=f.failed("yahoo_spx", "Yahoo Finance S&P 500"),
    )
    result = drivers.stocks.evaluate(s, f.lookback(), T)
    assert result.state == "fired"
    assert result.missing == ["Yahoo Finance S&P 500"]
    assert result.figures.spx is None


def test_a_driver_decided_on_partial_data_says_what_did_not_answer() -> None:
    s = f.snapshot(
        markets=f.markets(),
        indices={"ndx": f.index("ndx", -2.0)},
        cut_odds=f.cut_odds(0.6),
        statuses=f.failed("yahoo_spx", "Yahoo Finance S&P 500")
        | f.failed("stooq_spx", "Stooq S&P 500")
        | f.failed("treasury", "US Treasury yields"),
    )
    lb = f.lookback(cut_odds_7d_ago=0.5)
    e = explain(s, drivers.evaluate(s, lb, T), lb, T, now=f.NOW)
    text = render.text(e)
    assert (
        "1. Stock market weakness: Nasdaq -2.00% (regular session 19 Nov, closed); "
        "Yahoo Finance S&P 500, Stooq S&P 500 did not answer\n" in text
    )
    assert (
        "- Fed uncertainty: cut odds 60% (+10 pts in 7 days); US Treasury yields did not answer\n"
        in text
    )
    field = render.discord_embed(e)["fields"][0]["value"]
    assert field.startswith(
        "Nasdaq -2.00% (regular session 19 Nov, closed); Yahoo Finance S&P 500, Stooq S&P 500 did not answer"
    )


@pytest.mark.parametrize(
    ("values", "state"),
    [
        ((40, 40, 40, 40, 40, 40, 40, 25), "fired"),  # level at threshold
        ((40, 40, 40, 40, 40, 40, 40, 26), "quiet"),  # down 14
        ((41, 40, 40, 40, 40, 40, 40, 26), "fired"),  # down 15 in 7 days
        ((26,), "quiet"),  # no week-old value: judged on the level only
    ],
)
def test_fear(values: tuple[int, ...], state: str) -> None:
    assert (
        drivers.fear.evaluate(f.snapshot(fear_greed=f.fear_greed(*values)), f.lookback(), T).state
        == state
    )


@pytest.mark.parametrize("driver", drivers.DRIVERS, ids=lambda d: d.key)
def test_unknown_without_a_failed_source_blames_no_source(driver: Driver[Any]) -> None:
    result = driver.evaluate(f.snapshot(), f.lookback(), T)
    assert (result.state, result.missing) == ("unknown", [])


def test_unknown_line_says_failed_source_or_not_enough_data_yet() -> None:
    s = f.snapshot(
        markets=f.markets(),
        cut_odds=f.cut_odds(0.4),
        statuses=f.failed("feargreed", "Fear & Greed"),
    )
    lb = f.lookback(premium_samples=[-0.2, -0.2])
    e = explain(s, drivers.evaluate(s, lb, T), lb, T, now=f.NOW)
    text = render.text(e)
    assert "- Liquidation cascade: not enough data yet\n" in text
    assert (
        "- Institutional selling: Coinbase premium -0.200%; 2 of 3 samples so far; "
        "not enough data yet\n" in text
    )
    assert "- Fed uncertainty: cut odds 40%; not enough data yet\n" in text
    assert "- Fear spreading: Fear & Greed did not answer\n" in text
    assert text.count("did not answer") == 1
    assert (
        "Unknown: Liquidation cascade (not enough data yet)"
        in (render.discord_embed(e)["description"])
    )


def test_ranking_puts_fired_first_by_severity() -> None:
    s = f.snapshot(
        indices={"spx": f.index("spx", -3.0), "ndx": f.index("ndx", -2.0)},
        fear_greed=f.fear_greed(20),
        etf=f.etf(-10.0, -10.0, -150.0),
    )
    ranked = drivers.evaluate(s, f.lookback(), T)
    assert [d.key for d in ranked if d.state == "fired"] == ["stocks", "etf", "fear"]
    assert [d.state for d in ranked][-3:] == ["unknown", "unknown", "unknown"]


def test_thresholds_are_settings() -> None:
    strict = Thresholds(spx_day_pct=-0.5)
    s = f.snapshot(indices={"spx": f.index("spx", -0.6)})
    assert drivers.stocks.evaluate(s, f.lookback(), strict).state == "fired"
    assert drivers.stocks.evaluate(s, f.lookback(), T).state == "quiet"


@pytest.mark.parametrize("level", [0, 50, 60])
def test_fear_level_outside_1_to_49_is_refused(level: int) -> None:
    with pytest.raises(ValidationError, match="fear_level"):
        Thresholds(fear_level=level)


@pytest.mark.parametrize("level", [1, 49])
def test_fear_level_at_either_bound_judges_fear(level: int) -> None:
    t = Thresholds(fear_level=level)
    s = f.snapshot(fear_greed=f.fear_greed(level))
    result = drivers.fear.evaluate(s, f.lookback(), t)
    assert result.state == "fired" and result.severity == pytest.approx(1.0)


# --- each driver is one unit ------------------------------------------------------------------


def test_the_registry_lists_each_driver_once_with_its_words() -> None:
    keys = [d.key for d in drivers.DRIVERS]
    assert keys == ["liquidations", "etf", "institutional", "fed", "stocks", "fear"]
    assert set(drivers.HEADLINE_PATTERNS) == set(keys) == set(drivers.BY_KEY)
    templates = render._TEXT.loader
    assert templates is not None
    for driver in drivers.DRIVERS:
        assert driver.name and driver.short_name
        assert driver.template in templates.list_templates()


@pytest.mark.parametrize("driver", drivers.DRIVERS, ids=lambda d: d.key)
def test_every_figure_attribute_a_template_reads_exists(driver: Driver[Any]) -> None:
    # every figure known (1) and none known: a misspelt attribute in the driver's template fails
    # here (StrictUndefined) instead of silently saying "figures unknown"
    full = driver.figures.model_validate(dict.fromkeys(driver.figures.model_fields, 1))
    for figures in (full, driver.figures()):
        for state in ("fired", "quiet", "unknown"):
            result = DriverResult(
                key=driver.key, name=driver.name, state=state, threshold="t", figures=figures
            )
            e = explain(f.snapshot(), [result], f.lookback(), T, now=f.NOW)
            assert driver.name in render.text(e)
            if figures is full and state != "unknown":
                assert "figures unknown" not in render.message("drivers", e=e)
                assert driver.key_figure(result) is not None


def test_a_misspelt_figure_attribute_fails_loudly() -> None:
    template = render._TEXT.from_string("{{ f.lates }}")
    with pytest.raises(UndefinedError):
        template.render(f=drivers.etf.EtfFigures(latest=-1.0))
    with pytest.raises(ValidationError):
        drivers.etf.EtfFigures(lates=-1.0)  # type: ignore[call-arg]


def test_figures_read_back_from_json_are_retyped_and_say_the_same() -> None:
    s = f.snapshot(
        etf=f.etf(-10.0, -20.0, -150.0),
        indices={"spx": f.index("spx", -2.0)},
        fear_greed=f.fear_greed(40, 40, 40, 40, 40, 40, 40, 20),
        cut_odds=f.cut_odds(0.4),
    )
    lb = f.lookback(
        cut_odds_7d_ago=0.5, premium_samples=[-0.1, -0.1], **f.liquidation_totals(30e6, 1e6)
    )
    e = explain(s, drivers.evaluate(s, lb, T), lb, T, now=f.NOW)
    back = Explanation.model_validate_json(e.model_dump_json())
    assert not isinstance(back.drivers[0].figures, DriverFigures)  # plain Figures when read back
    for before, after in zip(e.drivers, back.drivers, strict=True):
        assert drivers.figures_of(after) == before.figures
    assert render.text(back) == render.text(e)
    assert render.discord_embed(back) == render.discord_embed(e)


def test_headlines_are_tagged_by_the_drivers_own_patterns() -> None:
    assert news.tag(
        "Bitcoin ETF outflows deepen as Powell speaks", "", drivers.HEADLINE_PATTERNS
    ) == [
        "etf",
        "fed",
    ]
    assert news.tag("Bitcoin ETF outflows", "", {}) == []
