"""Time the shopper panel's queries (current_session + shopper_history) for random
shoppers of the default demo store, on a temporary SQLite file.

python bench/bench_insights.py [--shoppers-sampled 200] [--seed 7] [--db PATH]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func
from sqlmodel import Session, select

from chatdash.db import make_engine, migrate
from chatdash.models import Shopper, StoreEvent
from chatdash.services import insights
from chatdash.services.demo_data import generate_demo_data


def _ms(values: list[float], percentile: int) -> float:
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[percentile - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shoppers-sampled", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", help="reuse (or create) this SQLite file instead of a temporary one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "bench.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        with Session(engine) as s:
            empty = not s.exec(select(Shopper.id).limit(1)).first()
        if empty:
            start = time.perf_counter()
            summary = generate_demo_data(engine, store_url="http://localhost:3000/store", seed=args.seed)
            print(f"demo data: {summary.shoppers:,} shoppers, {summary.visits:,} visits, {summary.events:,} events, "
                  f"{summary.orders:,} orders in {time.perf_counter() - start:.1f} s")

        with Session(engine) as s:
            ids = list(s.exec(select(Shopper.id)).all())
            sample = random.Random(args.seed).sample(ids, min(args.shoppers_sampled, len(ids)))
            per_shopper = dict(
                s.exec(
                    select(StoreEvent.shopper_id, func.count())
                    .where(StoreEvent.shopper_id.in_(sample))
                    .group_by(StoreEvent.shopper_id)
                ).all()
            )
            # Warm up imports, pandas and SQLite's page cache on shoppers outside the sample.
            for sid in ids[:5]:
                current = insights.current_session(s, sid)
                insights.shopper_history(s, sid, current.visit_id if current else None)

        session_t, history_t, both_t = [], [], []
        for sid in sample:
            with Session(engine) as s:  # a fresh session per panel load, as the app does
                t0 = time.perf_counter()
                current = insights.current_session(s, sid)
                t1 = time.perf_counter()
                insights.shopper_history(s, sid, current.visit_id if current else None)
                t2 = time.perf_counter()
            session_t.append(t1 - t0)
            history_t.append(t2 - t1)
            both_t.append(t2 - t0)
        engine.dispose()

    counts = sorted(per_shopper.get(sid, 0) for sid in sample)
    print(f"{len(sample)} random shoppers; events per shopper: median {statistics.median(counts):.0f}, "
          f"max {counts[-1]:,}")
    for name, values in (("current_session", session_t), ("shopper_history", history_t), ("both", both_t)):
        print(f"  {name:16} p50 {_ms(values, 50):6.2f} ms   p95 {_ms(values, 95):6.2f} ms   "
              f"max {max(values) * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
