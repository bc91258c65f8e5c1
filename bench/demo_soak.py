"""Soak: `whydown run --demo`'s refresh loop for a 10-minute equivalent at 2 s refreshes (300
refreshes back to back, so time-scaled), reporting traced Python memory every 50 refreshes.
Memory must level off: no steady growth (the replay once kept every request it served).

Run: .venv/bin/python bench/demo_soak.py [--refreshes 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings
from bot.runner import build_explainer, demo_client
from bot.store import Store
from explainers.replay import Scenario


async def run(refreshes: int) -> bool:
    settings = Settings(_env_file=None)
    scenario = Scenario.load()
    samples: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "soak.db") as store:
        async with demo_client(settings, scenario) as client:
            explainer = build_explainer(
                client,
                settings,
                history=store.history,
                clock=lambda: scenario.now,
                replay=scenario.replay,
            )
            tracemalloc.start()
            for n in range(1, refreshes + 1):
                await explainer.refresh()
                if n % 50 == 0:
                    current, _ = tracemalloc.get_traced_memory()
                    samples.append((n, current / 1e6))
                    print(
                        f"refresh {n:>4}: {current / 1e6:6.2f} MB traced, "
                        f"{len(scenario.requests)} requests kept of {scenario.served} served"
                    )
    growth = samples[-1][1] - samples[1][1]  # after warm-up
    print(f"growth from refresh {samples[1][0]} to {samples[-1][0]}: {growth:+.2f} MB")
    ok = growth < 1.0
    print("PASS" if ok else "FAIL")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=300)
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(run(args.refreshes)) else 1)


if __name__ == "__main__":
    main()
