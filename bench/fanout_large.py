"""Benchmark: one alert to 100,000 subscriptions: peak memory, the longest event-loop stall while
it is recorded and sent, and the send rate against Telegram's 30 msg/s.

The alert is recorded and sent a batch at a time (bot.alerts.BATCH). A 1 ms ticker runs on the
same event loop throughout and reports the longest gap beyond its 1 ms: the longest stall.
Time is scaled as in bench/fanout.py (`--speed`): the limiter and the notifier read the scaled
clock; real work costs real time. `--send-seconds` stops the fan-out after that many scaled
seconds (the rest stays pending, as at a shutdown) to keep a run short; 0 sends everything.

Run: .venv/bin/python bench/fanout_large.py [--subscriptions 100000] [--speed 20]
     [--send-seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fanout import LIMIT_PER_S, LimitedNotifier, ScaledClock, alert_explanation
from bot.alerts import AlertEngine, AlertSettings
from bot.pacing import SAFETY_MARGIN
from bot.store import Store
from bot.store.rows import stamp


def high_water_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Ticker:
    """Ticks every 1 ms and keeps the longest lateness, per phase (and, when tracing, every
    stall beyond `trace_s` with its start and end)."""

    def __init__(self, trace_s: float | None = None) -> None:
        self.phase = "idle"
        self.worst: dict[str, float] = {}
        self.trace_s = trace_s
        self.stalls: list[tuple[float, float, str]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            end = time.perf_counter()
            late = end - start - 0.001
            self.worst[self.phase] = max(self.worst.get(self.phase, 0.0), late)
            if self.trace_s is not None and late > self.trace_s:
                self.stalls.append((start + 0.001, end, self.phase))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Tracer:
    """Records what ran, and when, to explain stalls: garbage collections (gc.callbacks) and the
    store calls of the send phase that took longer than 1 ms."""

    def __init__(self) -> None:
        self.events: list[tuple[float, float, str]] = []
        self._gc_start = 0.0

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            end = time.perf_counter()
            if end - self._gc_start > 0.001:
                label = f"gc gen {info['generation']} ({info['collected']} collected)"
                self.events.append((self._gc_start, end, label))

    def install(self, store: Store) -> None:
        gc.callbacks.append(self._gc)
        for name in ("pending_batch", "mark_sent", "last_delivery_id"):
            setattr(store, name, self._timed(name, getattr(store, name)))

    def _timed(self, name, method):  # type: ignore[no-untyped-def]
        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                end = time.perf_counter()
                if end - start > 0.001:
                    self.events.append((start, end, name))

        return timed

    def report(self, stalls: list[tuple[float, float, str]]) -> None:
        print(f"stalls traced            {len(stalls)}")
        for start, end, phase in stalls:
            during = [
                f"{label} {1000 * (e - s):.1f} ms"
                for s, e, label in self.events
                if s < end and e > start - 0.001
            ]
            print(f"  {phase} {1000 * (end - start):6.1f} ms: {'; '.join(during) or '?'}")
        slow: dict[str, list[float]] = {}
        for s, e, label in self.events:
            slow.setdefault(label.split(" (")[0], []).append(e - s)
        for label, spans in sorted(slow.items()):
            print(
                f"  {label}: {len(spans)} over 1 ms, longest {1000 * max(spans):.1f} ms, "
                f"total {sum(spans):.2f} s"
            )


def seed(store: Store, subscriptions: int) -> None:
    now = stamp(store_now())
    with store.transaction():
        store.db.conn.executemany(
            "INSERT INTO subscriptions (platform, chat_id, min_drivers, subscribed_by, "
            "subscribed_at) VALUES ('telegram', ?, 3, 'bench', ?)",
            [(str(10_000_000 + i), now) for i in range(subscriptions)],
        )


def store_now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


class PhasedNotifier(LimitedNotifier):
    """Marks the ticker's phase "send" at the first send."""

    def __init__(self, clock: ScaledClock, latency_s: float, ticker: Ticker) -> None:
        super().__init__(clock, latency_s)
        self.ticker = ticker

    async def send(self, subscription, message) -> None:  # type: ignore[no-untyped-def]
        self.ticker.phase = "send"
        await super().send(subscription, message)


async def run(
    subscriptions: int,
    speed: float,
    latency_s: float,
    send_seconds: float,
    trace_ms: float | None = None,
) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        clock = ScaledClock(speed)
        ticker = Ticker(None if trace_ms is None else trace_ms / 1000)
        tracer = Tracer()
        notifier = PhasedNotifier(clock, latency_s, ticker)
        with Store(Path(folder) / "bench.db") as store:
            seed(store, subscriptions)
            base_mb = high_water_mb()
            gc.collect()
            gc.freeze()  # as `whydown run` does once started (bot/runner.py)
            store.checkpoint_off_the_loop()  # as `whydown run` does
            engine = AlertEngine(store, AlertSettings(), {"telegram": notifier}, clock)
            if trace_ms is not None:
                tracer.install(store)
            ticker.start()
            await asyncio.sleep(0.01)
            ticker.phase = "record"
            real_start = time.perf_counter()
            evaluation = asyncio.create_task(engine.evaluate(alert_explanation(clock.now())))
            if send_seconds:
                while clock.monotonic() < send_seconds * 1.0 and not evaluation.done():
                    if notifier.stamps and notifier.stamps[-1] - notifier.stamps[0] >= send_seconds:
                        break
                    await asyncio.sleep(0.05)
                await engine.aclose()
            alert = await evaluation
            real_s = time.perf_counter() - real_start
            await ticker.stop()
            pending = store.pending_count()
        stamps = notifier.stamps
        span = stamps[-1] - stamps[0] + 1.0 / LIMIT_PER_S if stamps else float("nan")
        rate = len(stamps) / span
        percent = 100.0 * rate / LIMIT_PER_S
        ceiling = 100.0 / (1 + SAFETY_MARGIN)  # the pacer's margin on every window
        peak = high_water_mb()
        print(f"subscriptions            {subscriptions}")
        print(f"alert recorded           {alert is not None}")
        print(f"sent / left pending      {len(stamps)} / {pending}")
        print(f"time scale               {speed:g}x (latency {latency_s:g} s scaled)")
        print(f"real time                {real_s:.1f} s")
        print(f"longest stall, record    {1000 * ticker.worst.get('record', 0):.1f} ms")
        print(f"longest stall, send      {1000 * ticker.worst.get('send', 0):.1f} ms")
        print(
            f"achieved rate            {rate:.2f} msg/s = {percent:.1f}% of {LIMIT_PER_S}/s "
            f"({100 * percent / ceiling:.1f}% of the limiter's ceiling of {ceiling:.1f}%)"
        )
        print(f"limit violations         {notifier.violations}")
        print(f"peak RSS                 {peak:.0f} MB (after seeding: {base_mb:.0f} MB)")
        if trace_ms is not None:
            tracer.report(ticker.stalls)
        stall = max(ticker.worst.values(), default=0.0)
        ok = peak <= 200 and stall <= 0.050 and notifier.violations == 0 and percent >= 95.0
        print("PASS (memory, stalls, limits, rate)" if ok else "FAIL")
        return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--send-seconds", type=float, default=600.0)
    parser.add_argument(
        "--trace-stalls",
        type=float,
        metavar="MS",
        help="list every stall longer than MS with the collections and store calls it overlaps",
    )
    args = parser.parse_args()
    ok = asyncio.run(
        run(args.subscriptions, args.speed, args.latency, args.send_seconds, args.trace_stalls)
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
