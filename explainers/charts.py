"""Pictures of a sell-off and of ETF flows: data in, PNG bytes out.

Pure drawing, no I/O. It uses matplotlib's object-oriented `Figure` with the Agg canvas, never
pyplot's global state, and one lock serialises drawing because matplotlib does not promise thread
safety. Missing data is drawn as missing (a gap, a hatched span, "no data"), never as zero.

The card has its own opaque dark-slate background with light text, so it reads the same in light
and dark chat themes; fonts are large because a 1200 px image is shown about 400 px wide on a phone.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: charts never need a display

import io
import itertools
import statistics
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch
from matplotlib.ticker import FuncFormatter

from explainers import formatting as fmt
from explainers.chart_window import WINDOW
from explainers.drivers import BY_KEY, DRIVERS
from explainers.models import (
    DriverResult,
    EtfFlows,
    Explanation,
    LiquidationHour,
    PriceSeries,
    Replay,
)

WIDTH_PX, HEIGHT_PX, DPI = 1200, 900, 100
ETF_DAYS = 15

BG = "#1e2633"
PANEL = "#263041"
TEXT = "#eef2f7"
MUTED = "#a3b0c2"
GRID = "#3b475a"
BTC = "#f7a325"
COIN = "#5ec8f2"
LONG = "#ef5350"
SHORT = "#2bb39a"
INFLOW = "#2bb39a"
OUTFLOW = "#ef5350"
REPLAY = "#c9a8ff"
STATE_COLOURS = {"fired": "#c62828", "quiet": "#2e5e4e", "unknown": "#4a5364"}
STATE_WORDS = {"fired": "FIRING", "quiet": "quiet", "unknown": "unknown"}
SHORT_NAMES = {d.key: d.short_name for d in DRIVERS}

_LOCK = threading.Lock()


# --- small helpers -------------------------------------------------------------------------


def _figure() -> Figure:
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor=BG)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # no bbox_inches="tight": the image keeps its exact size
    fig.savefig(buffer, format="png", dpi=DPI, facecolor=BG, metadata={"Software": None})
    return buffer.getvalue()


def _style(ax: Axes) -> None:
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=14, length=0, pad=6)
    ax.grid(True, color=GRID, linewidth=0.8, alpha=0.9)
    ax.set_axisbelow(True)


def _no_data(ax: Axes, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        color=MUTED,
        fontsize=18,
        fontstyle="italic",
    )


def _panel_title(ax: Axes, text: str) -> None:
    ax.text(
        0.01,
        0.96,
        text,
        transform=ax.transAxes,
        ha="left",
        va="top",
        color=TEXT,
        fontsize=15,
        zorder=5,
        # its own backing, so a line running under the title cannot hide it
        bbox={"boxstyle": "round,pad=0.2", "facecolor": PANEL, "edgecolor": "none", "alpha": 0.85},
    )


replay_label = fmt.replay_label
stamp = fmt.when_full


def _header(fig: Figure, title: str, subtitle: str, replay: Replay | None) -> None:
    fig.text(0.03, 0.965, title, color=TEXT, fontsize=26, fontweight="bold", va="top")
    fig.text(0.03, 0.915, subtitle, color=MUTED, fontsize=17, va="top")
    if replay is not None:
        fig.text(
            0.97,
            0.918,
            replay_label(replay),
            color=BG,
            fontsize=15,
            fontweight="bold",
            ha="right",
            va="top",
            bbox={"boxstyle": "round,pad=0.4", "facecolor": REPLAY, "edgecolor": "none"},
        )


def _footer(fig: Figure, text: str) -> None:
    fig.text(0.03, 0.012, text, color=MUTED, fontsize=12.5, va="bottom", wrap=True)


def _series(prices: PriceSeries, start: datetime, end: datetime) -> tuple[list, list[float]]:
    """Times and prices inside the window, with a NaN wherever points are missing, so the line
    breaks instead of bridging the gap."""
    points = [p for p in prices.points if start <= p.ts <= end]
    if len(points) < 2:
        return [p.ts for p in points], [p.price for p in points]
    steps = [(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(points)]
    gap = max(3 * statistics.median(steps), 20 * 60)
    xs: list = [points[0].ts]
    ys: list[float] = [points[0].price]
    for previous, point in itertools.pairwise(points):
        if (point.ts - previous.ts).total_seconds() > gap:
            xs.append(previous.ts + (point.ts - previous.ts) / 2)
            ys.append(float("nan"))
        xs.append(point.ts)
        ys.append(point.price)
    return xs, ys


def _x(at: datetime) -> float:
    """A time as matplotlib's date number, for the calls typed to take x as a float."""
    return float(mdates.date2num(at))


def _days(span: timedelta) -> float:
    """A duration in date-number units (days), e.g. a bar's width on a time axis."""
    return span / timedelta(days=1)


def _time_axis(ax: Axes, start: datetime, end: datetime, labels: bool) -> None:
    ax.set_xlim(_x(start), _x(end))
    ax.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 4), tz=UTC))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    ax.tick_params(axis="x", labelbottom=labels)


def _usd_axis(value: float, _pos: int) -> str:
    return fmt.usd(value)


def _millions_axis(value: float, _pos: int) -> str:
    return f"${value / 1e6:,.0f}M" if value else "0"


def _musd_axis(value: float, _pos: int) -> str:
    return f"{'-' if value < 0 else ''}${abs(value):,.0f}M"


def _pct_axis(value: float, _pos: int) -> str:
    return f"{value:+.0f}%" if round(value) else "0%"


# --- the sell-off chart --------------------------------------------------------------------


def key_figure(driver: DriverResult) -> str:
    """The one figure that best says why a driver fired or not, in a few characters."""
    if driver.state == "unknown":
        return "no data"
    unit = BY_KEY.get(driver.key)
    figure = unit.key_figure(driver) if unit is not None else None
    if figure is not None:
        return figure
    return driver.evidence[0].value[:18] if driver.evidence else "-"


def _driver_strip(fig: Figure, drivers: Sequence[DriverResult]) -> None:
    ax = fig.add_axes((0.03, 0.065, 0.94, 0.115))
    ax.set_axis_off()
    ax.set_xlim(0, max(len(drivers), 1))
    ax.set_ylim(0, 1)
    if not drivers:
        _no_data(ax, "drivers: no data")
        return
    for i, d in enumerate(drivers):
        ax.add_patch(
            FancyBboxPatch(
                (i + 0.04, 0.04),
                0.92,
                0.92,
                boxstyle="round,pad=0,rounding_size=0.08",
                facecolor=STATE_COLOURS[d.state],
                edgecolor="none",
                hatch="//" if d.state == "unknown" else None,
            )
        )
        centre = i + 0.5
        name = SHORT_NAMES.get(d.key, d.name)
        ax.text(centre, 0.76, name, ha="center", va="center", color=TEXT, fontsize=14)
        ax.text(
            centre,
            0.47,
            key_figure(d),
            ha="center",
            va="center",
            color=TEXT,
            fontsize=13.5,
            fontweight="bold",
        )
        ax.text(
            centre, 0.18, STATE_WORDS[d.state], ha="center", va="center", color=TEXT, fontsize=12
        )


def _hourly_liquidations(
    hours: Sequence[LiquidationHour], tracked_since: datetime | None, end: datetime
) -> list[tuple[datetime, float | None, float | None]]:
    """(hour start, long USD, short USD) for the 24 clock hours up to `end`; None for hours
    before tracking began (unknown, not zero)."""
    last = end.replace(minute=0, second=0, microsecond=0)
    sums = {h.hour: h for h in hours}
    rows: list[tuple[datetime, float | None, float | None]] = []
    for start in (last - timedelta(hours=h) for h in range(23, -1, -1)):
        if tracked_since is None or start + timedelta(hours=1) <= tracked_since:
            rows.append((start, None, None))
            continue
        known = sums.get(start)
        rows.append((start, known.long_usd if known else 0.0, known.short_usd if known else 0.0))
    return rows


def coin_of(instrument: str) -> str:
    """The coin of a perpetual as a venue names it: OKX "BTC-USDT-SWAP", Bybit and Binance
    "BTCUSDT" (an OKX REST family "BTC-USDT" too)."""
    if "-" in instrument:
        return instrument.split("-")[0]
    return instrument.removesuffix("USDT") or instrument


def liquidation_label(venues: Sequence[str], hours: Sequence[LiquidationHour]) -> str:
    """ "Liquidations per hour, Bybit, OKX, Binance (BTC, ETH)": the venues read and the coins."""
    coins = sorted({coin_of(i) for h in hours for i in h.instruments})
    return (
        "Liquidations per hour"
        + (f", {', '.join(venues)}" if venues else "")
        + (f" ({', '.join(coins)})" if coins else "")
    )


def _liquidation_panel(
    ax: Axes,
    hours: Sequence[LiquidationHour],
    tracked_since: datetime | None,
    start: datetime,
    end: datetime,
    venues: Sequence[str] = (),
) -> None:
    _style(ax)
    label = liquidation_label(venues, hours)
    _panel_title(ax, label)
    ax.yaxis.set_major_formatter(FuncFormatter(_millions_axis))
    rows = _hourly_liquidations(hours, tracked_since, end)
    if all(long is None for _, long, _ in rows):
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        _no_data(ax, "no data: liquidations not tracked yet")
        return
    width = _days(timedelta(minutes=24))
    for hour, long, short in rows:
        if long is None or short is None:
            continue
        ax.bar(_x(hour + timedelta(minutes=6)), long, width=width, color=LONG, align="edge")
        ax.bar(_x(hour + timedelta(minutes=30)), short, width=width, color=SHORT, align="edge")
    untracked = [hour for hour, long, _ in rows if long is None]
    if untracked and tracked_since is not None:
        # hours before tracking began are unknown: hatched, labelled, never drawn as zero
        ax.axvspan(
            _x(start),
            _x(max(tracked_since, start)),
            facecolor="none",
            edgecolor=GRID,
            hatch="//",
            lw=0,
        )
        if tracked_since - start > timedelta(hours=3):
            ax.text(
                _x(start + (tracked_since - start) / 2),
                0.5,
                "not tracked yet",
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="center",
                color=MUTED,
                fontsize=15,
                fontstyle="italic",
            )
    top = max((max(long or 0.0, short or 0.0) for _, long, short in rows), default=0.0)
    ax.set_ylim(0, top * 1.25 if top > 0 else 1e6)
    ax.legend(
        handles=[
            Patch(color=LONG, label="longs"),
            Patch(color=SHORT, label="shorts"),
        ],
        loc="upper right",
        fontsize=13,
        frameon=False,
        labelcolor=TEXT,
        ncols=2,
    )


def _price_panel(
    ax: Axes, prices: PriceSeries | None, start: datetime, end: datetime, name: str
) -> None:
    _style(ax)
    ax.yaxis.set_major_formatter(FuncFormatter(_usd_axis))
    xs, ys = _series(prices, start, end) if prices is not None else ([], [])
    if not xs:
        ax.set_yticks([])
        _panel_title(ax, f"{name} price (USD)")
        _no_data(ax, f"{name} price: no data")
        return
    _panel_title(ax, f"{name} price (USD), {prices.source if prices else ''}")
    ax.plot(xs, ys, color=BTC, linewidth=3)
    known = [y for y in ys if y == y]
    low, high = min(known), max(known)
    pad = (high - low) * 0.12 or high * 0.01
    ax.set_ylim(low - pad, high + pad * 2.2)
    ax.fill_between(xs, ys, low - pad, color=BTC, alpha=0.12)
    last_x, last_y = next((x, y) for x, y in zip(reversed(xs), reversed(ys), strict=True) if y == y)
    ax.plot([last_x], [last_y], "o", color=BTC, markersize=8)
    ax.annotate(
        fmt.usd(last_y),
        (last_x, last_y),
        xytext=(-8, -22),
        textcoords="offset points",
        ha="right",
        color=TEXT,
        fontsize=15,
        fontweight="bold",
    )


def _change_panel(
    ax: Axes,
    prices: PriceSeries | None,
    coin_prices: PriceSeries | None,
    coin_label: str,
    start: datetime,
    end: datetime,
) -> None:
    """BTC and the asked coin as % change over the window, so their falls compare directly."""
    _style(ax)
    _panel_title(ax, f"{coin_label} vs BTC, % change over 24 h")
    ax.yaxis.set_major_formatter(FuncFormatter(_pct_axis))
    drawn = []
    extremes: list[float] = [0.0]
    for series, colour, label in ((prices, BTC, "BTC"), (coin_prices, COIN, coin_label)):
        xs, ys = _series(series, start, end) if series is not None else ([], [])
        base = next((y for y in ys if y == y), None)
        if not xs or not base:
            drawn.append(f"{label}: no data")
            continue
        changes = [(y / base - 1) * 100 for y in ys]
        ax.plot(xs, changes, color=colour, linewidth=2.6, label=label)
        extremes.extend(c for c in changes if c == c)
    ax.axhline(0, color=MUTED, linewidth=1)
    if len(drawn) == 2:
        ax.set_yticks([])
        _no_data(ax, "no data")
        return
    low, high = min(extremes), max(extremes)
    # headroom above the lines for the panel title
    ax.set_ylim(low - (high - low) * 0.08, high + (high - low) * 0.35 + 0.5)
    if drawn:
        ax.text(
            0.99,
            0.06,
            "; ".join(drawn),
            transform=ax.transAxes,
            ha="right",
            color=MUTED,
            fontsize=14,
        )
    ax.legend(loc="lower left", fontsize=13, frameon=False, labelcolor=TEXT, ncols=2)


def _marks(
    axes: Sequence[Axes],
    driver_marks: dict[str, datetime],
    names: dict[str, str],
    start: datetime,
    end: datetime,
) -> None:
    """A dashed line where drivers started firing; drivers starting together share one line."""
    groups: dict[datetime, list[str]] = {}
    for key, at in sorted(driver_marks.items(), key=lambda item: item[1]):
        if not start <= at <= end:
            continue
        near = next((t for t in groups if abs(t - at) <= timedelta(minutes=15)), at)
        groups.setdefault(near, []).append(names.get(key, key))
    for at, labels in groups.items():
        for ax in axes:
            ax.axvline(_x(at), color=TEXT, linestyle="--", linewidth=1.4, alpha=0.75)
        right_half = at - start > (end - start) / 2
        axes[0].text(
            _x(at),
            0.95,
            "firing from here:\n" + "\n".join(labels),
            transform=axes[0].get_xaxis_transform(),
            ha="right" if right_half else "left",
            va="top",
            color=TEXT,
            fontsize=12.5,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": BG, "edgecolor": GRID, "alpha": 0.9},
        )


def _sell_off_title(explanation: Explanation) -> tuple[str, str]:
    btc = explanation.move("BTC")
    price = f"BTC {fmt.usd(btc.price)}" if btc and btc.price is not None else "BTC"
    change = (
        f"  {fmt.pct(btc.change_24h)} in 24h"
        if btc is not None and btc.change_24h is not None
        else ""
    )
    fired = len(explanation.fired)
    known = sum(1 for d in explanation.drivers if d.state != "unknown")
    subtitle = f"{fired} of {len(explanation.drivers)} sell-off drivers firing"
    if known < len(explanation.drivers):
        subtitle += f" ({len(explanation.drivers) - known} unknown)"
    if explanation.verdict == "not_down":
        subtitle = "The market is not down. " + subtitle
    return price + change, subtitle


def _sell_off_footer(
    explanation: Explanation, prices: PriceSeries | None, coin_prices: PriceSeries | None
) -> str:
    answered = [s for s in explanation.sources if s.state != "disabled"]
    ok = sum(1 for s in answered if s.state in ("ok", "stale"))
    price_sources = sorted({p.source for p in (prices, coin_prices) if p is not None})
    tracked = explanation.liquidations_tracked_since
    parts = [
        f"Data as of {stamp(explanation.data_time)}",
        f"prices: {', '.join(price_sources) or 'no source answered'}",
        "liquidations: "
        + (fmt.liquidation_coverage(explanation.liquidation_venues) or "none read")
        + (f", tracked since {fmt.when(tracked, explanation.data_time)}" if tracked else ""),
        f"{ok} of {len(answered)} sources answered",
    ]
    return " · ".join(parts)


def sell_off_chart(
    explanation: Explanation,
    prices: PriceSeries | None,
    coin_prices: PriceSeries | None,
    liquidations: list[LiquidationHour],
    driver_marks: dict[str, datetime],
    now: datetime,
) -> bytes:
    """The sell-off chart as a 1200x900 PNG (see `sell_off_figure`)."""
    with _LOCK:
        return _png(
            sell_off_figure(explanation, prices, coin_prices, liquidations, driver_marks, now)
        )


def sell_off_figure(
    explanation: Explanation,
    prices: PriceSeries | None,
    coin_prices: PriceSeries | None,
    liquidations: list[LiquidationHour],
    driver_marks: dict[str, datetime],
    now: datetime,
) -> Figure:
    """The last 24 h: BTC (and the asked coin) with hourly liquidations beneath, marks where
    drivers started firing, and the six drivers' states. Call under the drawing lock."""
    end = now.astimezone(UTC)
    start = end - WINDOW
    fig = _figure()
    title, subtitle = _sell_off_title(explanation)
    coin = explanation.coin if explanation.coin and explanation.coin.id != "bitcoin" else None
    if coin is not None:
        title += f" · {coin.symbol.upper()} {fmt.pct(coin.move.change_24h)}"
    _header(fig, title, subtitle, explanation.replay)
    ratios = [3, 2, 2] if coin is not None else [3, 2]
    grid = fig.add_gridspec(
        len(ratios),
        1,
        height_ratios=ratios,
        left=0.11,
        right=0.97,
        top=0.86,
        bottom=0.235,
        hspace=0.12,
    )
    axes = [fig.add_subplot(grid[i, 0]) for i in range(len(ratios))]
    _price_panel(axes[0], prices, start, end, "BTC")
    if coin is not None:
        _change_panel(axes[1], prices, coin_prices, coin.symbol.upper(), start, end)
    _liquidation_panel(
        axes[-1],
        liquidations,
        explanation.liquidations_tracked_since,
        start,
        end,
        [v.exchange for v in explanation.liquidation_venues if v.tracked_since is not None],
    )
    for i, ax in enumerate(axes):
        _time_axis(ax, start, end, labels=i == len(axes) - 1)
    axes[-1].set_xlabel("UTC", color=MUTED, fontsize=13, loc="right")
    names = {d.key: SHORT_NAMES.get(d.key, d.name) for d in explanation.drivers}
    _marks(axes, driver_marks, names, start, end)
    _driver_strip(fig, explanation.drivers)
    _footer(fig, _sell_off_footer(explanation, prices, coin_prices))
    return fig


# --- the ETF chart -------------------------------------------------------------------------


def etf_chart(flows: EtfFlows, now: datetime, replay: Replay | None = None) -> bytes:
    """The ETF-flows chart as a 1200x900 PNG (see `etf_figure`)."""
    with _LOCK:
        return _png(etf_figure(flows, now, replay))


def etf_figure(flows: EtfFlows, now: datetime, replay: Replay | None = None) -> Figure:
    """US spot-Bitcoin-ETF net flows of the last 15 trading days; days not reported yet are
    shown as such, not as zero. Call under the drawing lock."""
    fig = _figure()
    days = flows.days[-ETF_DAYS:]
    reported = [d for d in days if d.total_musd is not None]
    latest = reported[-1] if reported else None
    title = "US spot-Bitcoin-ETF net flows"
    subtitle = (
        f"Latest: {fmt.musd(latest.total_musd)} on {fmt.day(latest.day)}"
        if latest is not None
        else "No day reported yet"
    )
    _header(fig, title, subtitle, replay)
    ax = fig.add_axes((0.11, 0.17, 0.86, 0.66))
    _style(ax)
    ax.grid(axis="x", visible=False)
    ax.yaxis.set_major_formatter(FuncFormatter(_musd_axis))
    if not days:
        ax.set_yticks([])
        _no_data(ax, "no data")
    positions = list(range(len(days)))
    values = [d.total_musd for d in days]
    known = [v for v in values if v is not None]
    span = max((abs(v) for v in known), default=100.0) or 100.0
    for x, day, value in zip(positions, days, values, strict=True):
        if value is None:
            ax.bar(x, span * 0.25, bottom=-span * 0.125, color="none", edgecolor=MUTED, hatch="//")
            ax.text(
                x,
                span * 0.16,
                "not\nreported\nyet",
                ha="center",
                va="bottom",
                color=MUTED,
                fontsize=11.5,
            )
            continue
        ax.bar(x, value, color=INFLOW if value >= 0 else OUTFLOW, width=0.72)
        if day is latest:
            ax.annotate(
                fmt.musd(value),
                (x, value),
                xytext=(0, 10 if value >= 0 else -12),
                textcoords="offset points",
                ha="center",
                va="bottom" if value >= 0 else "top",
                color=TEXT,
                fontsize=17,
                fontweight="bold",
            )
    ax.axhline(0, color=MUTED, linewidth=1.2)
    ax.set_ylim(-span * 1.3, span * 1.3)
    ax.set_xlim(-0.6, max(len(days), 1) - 0.4)
    ax.set_xticks(positions, [_day_tick(d.day) for d in days], rotation=0)
    ax.tick_params(axis="x", labelsize=12.5)
    ax.legend(
        handles=[
            Patch(color=INFLOW, label="inflow"),
            Patch(color=OUTFLOW, label="outflow"),
        ],
        loc="upper left",
        fontsize=14,
        frameon=False,
        labelcolor=TEXT,
        ncols=2,
    )
    _footer(
        fig,
        f"{flows.source}, US$ millions per trading day · as of {stamp(flows.as_of)}"
        f" · data read {stamp(now)}",
    )
    return fig


def _day_tick(day: date) -> str:
    return f"{day.day}\n{day:%b}"
