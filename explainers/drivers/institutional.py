"""Institutional selling: Coinbase (US buyers) below OKX, held over several samples.

OKX quotes BTC in USDT: its price is converted to USD with the USDT-USD quote (Coinbase, else
Kraken) before the comparison. Without a quote the premium is computed as before, with USDT taken
as a dollar, and the evidence says it is unadjusted: a stablecoin discount of a few hundredths of
a percent is small next to the threshold, so the driver still decides rather than going unknown.
"""

from __future__ import annotations

import re

from explainers import formatting as fmt
from explainers.drivers.base import Driver, ratio, status_labels
from explainers.models import DriverFigures, DriverResult, Evidence, Lookback, Snapshot
from explainers.settings import Thresholds


class InstitutionalFigures(DriverFigures):
    premium: float | None = None  # latest Coinbase premium, %
    samples: int | None = None  # premium samples stored so far (up to the number judged)


def evaluate(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = (
        f"Coinbase premium ≤ {t.premium_pct:+.2f}% over the last {t.premium_samples} samples"
    )
    samples = lb.premium_samples
    missing = status_labels(s, "coinbase", "okx_candles", "usdt_coinbase", "usdt_kraken")
    if not samples:
        return DRIVER.unknown(threshold, missing)
    as_of = s.coinbase_btc.as_of if s.coinbase_btc else None
    usdt = s.usdt
    evidence = [
        Evidence(
            label="Coinbase premium (BTC-USD vs OKX BTC-USDT in USD)"
            if usdt is not None
            else "Coinbase premium (BTC-USD vs OKX BTC-USDT, unadjusted: no USDT-USD quote)",
            value=", ".join(f"{v:+.3f}%" for v in samples),
            source="Coinbase, OKX",
            as_of=as_of,
        )
    ]
    if usdt is not None:
        evidence.append(
            Evidence(
                label="USDT-USD rate used",
                value=f"{usdt.rate:.4f} USD per USDT",
                source=usdt.source,
                as_of=usdt.at,
            )
        )
    figures = InstitutionalFigures(premium=samples[-1], samples=len(samples))
    if len(samples) < t.premium_samples:
        # "held over 3 samples" cannot be judged on fewer: say so rather than guess
        return DRIVER.unknown(threshold, missing, evidence=evidence, figures=figures)
    held = all(v <= t.premium_pct for v in samples)
    return DRIVER.judged(
        threshold,
        ratio(max(samples), t.premium_pct) if held else 0.0,
        evidence=evidence,
        missing=missing,
        figures=figures,
        fired=held,
    )


def chart_figure(f: InstitutionalFigures) -> str | None:
    return f"premium {fmt.pct(f.premium, 2)}" if f.premium is not None else None


DRIVER = Driver(
    key="institutional",
    name="Institutional selling",
    short_name="Inst. selling",
    role="set_off",
    subject="US selling on Coinbase",
    patterns=re.compile(r"(?i:\bCoinbase premium\b|\bwhales?\b|\binstitution\w*)"),
    figures=InstitutionalFigures,
    rule=evaluate,
    chart_figure=chart_figure,
)
