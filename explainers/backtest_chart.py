"""The backtest's chart: BTC over the period, a mark where an alert would have gone out, and a
strip of which drivers fired each day. Pure drawing (matplotlib's Agg canvas), no I/O."""

from __future__ import annotations

import io
import threading

import matplotlib

matplotlib.use("Agg")

from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from explainers.backtest import Backtest
from explainers.drivers import DRIVERS

#: matplotlib's text layout is not thread-safe
_LOCK = threading.Lock()
FIRED, QUIET, UNKNOWN = "#e74c3c", "#2ecc71", "#d0d3d4"


def backtest_png(bt: Backtest) -> bytes:
    with _LOCK:
        fig = Figure(figsize=(10, 5.6), dpi=100, facecolor="white")
        FigureCanvasAgg(fig)
        price, strip = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4], "hspace": 0.08}
        )
        days = [d.day for d in bt.days]
        prices = [d.btc_price for d in bt.days]
        known = [(d, p) for d, p in zip(days, prices, strict=True) if p is not None]
        if known:
            price.plot([d for d, _ in known], [p for _, p in known], color="#f7931a", lw=1.6)
        alerts = [(d.day, d.btc_price) for d in bt.days if d.alerts(bt.min_drivers)]
        marked = [(d, p) for d, p in alerts if p is not None]
        if marked:
            price.scatter(
                [d for d, _ in marked],
                [p for _, p in marked],
                marker="v",
                s=70,
                color="#c0392b",
                zorder=3,
                label=f"alert (≥ {bt.min_drivers} drivers, market down)",
            )
            price.legend(loc="upper left", frameon=False, fontsize=8)
        price.set_title(
            f"BTC and the alert rule, {bt.first:%d %b %Y} to {bt.last:%d %b %Y}: "
            f"{len(alerts)} alert day{'s' if len(alerts) != 1 else ''}",
            fontsize=11,
            loc="left",
        )
        price.set_ylabel("BTC (USD)")
        price.grid(alpha=0.25)
        for row, driver in enumerate(DRIVERS):
            colours = [
                FIRED if driver.key in d.fired else QUIET if driver.key in d.judged else UNKNOWN
                for d in bt.days
            ]
            strip.scatter(days, [row] * len(days), c=colours, marker="s", s=28)
        strip.set_yticks(range(len(DRIVERS)), [d.short_name for d in DRIVERS], fontsize=8)
        strip.set_ylim(len(DRIVERS) - 0.5, -0.5)
        strip.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
        fig.text(
            0.01,
            0.01,
            "Strip: red fired, green quiet, grey unknown (not rebuilt or not tracked then). "
            "Information only.",
            fontsize=7,
            color="#555555",
        )
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()
