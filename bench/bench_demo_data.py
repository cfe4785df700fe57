"""Time the demo data generator at its default sizes on a temporary SQLite file.

python bench/bench_demo_data.py [--seed 7] [--products 1200] [--shoppers 3000] [--orders 9000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatdash.db import make_engine, migrate
from chatdash.services.demo_data import generate_demo_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--products", type=int, default=1200)
    parser.add_argument("--shoppers", type=int, default=3000)
    parser.add_argument("--orders", type=int, default=9000)
    parser.add_argument("--store-url", default="http://localhost:3000/store")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        steps: dict[str, float] = {}
        start = time.perf_counter()

        def progress(step: str, done: int, total: int) -> None:
            steps[step] = time.perf_counter() - start

        summary = generate_demo_data(
            engine,
            store_url=args.store_url,
            seed=args.seed,
            products=args.products,
            shoppers=args.shoppers,
            orders=args.orders,
            progress=progress,
        )
        elapsed = time.perf_counter() - start
        engine.dispose()
        size_mb = sum(p.stat().st_size for p in Path(tmp).glob("bench.db*")) / 1e6

    print(f"generate_demo_data: {elapsed:.2f} s  (database {size_mb:.1f} MB)")
    for field, value in vars(summary).items():
        print(f"  {field:12} {value:>9,}")
    print(f"  events/s     {summary.events / elapsed:>9,.0f}")
    print("  last progress call per step (s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))


if __name__ == "__main__":
    main()
