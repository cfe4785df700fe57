"""Recommender speed: one shopper's recommendations (with live recalculation), the
related popup (three lists) and training, at the demo size and at a synthetic
1,000,000 interactions / 50,000 products / 100,000 shoppers.

The demo store goes through the database like the app does (SQLite file). The
synthetic store is generated directly as arrays and fed to `fit`: its timings
cover the model, the relation tables and the in-memory ranking, not the reads.

python bench/bench_recommender_speed.py [--interactions 1000000] [--products 50000] [--shoppers 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CHATDASH_SECRET_KEY", "bench")
os.environ.setdefault("CHATDASH_STORE_SECRET", "bench")

from sqlmodel import Session

from chatdash.db import make_engine, migrate
from chatdash.services import recommender as rec
from chatdash.services.demo_data import generate_demo_data

SAMPLES = 200


def percentiles(fn: Callable[[int], object], args: list[int]) -> tuple[float, float]:
    """p50 and p95 wall time of fn(arg) in milliseconds (after one warm-up call)."""
    fn(args[0])
    times = []
    for a in args:
        start = time.perf_counter()
        fn(a)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


class StepTimer:
    """A progress callback that notes when each training step finishes."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.last = self.start
        self.steps: dict[str, float] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        if done == total:
            now = time.perf_counter()
            self.steps[step] = self.steps.get(step, 0.0) + now - self.last
            self.last = now

    def line(self) -> str:
        return ", ".join(f"{k} {v:.2f} s" for k, v in self.steps.items())


def row(label: str, p50: float, p95: float) -> None:
    print(f"  {label:<44} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms")


def bench_demo() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(engine)
        summary = generate_demo_data(engine, store_url="http://localhost:3000/store")
        timer = StepTimer()
        info = rec.train(engine, Path(tmp) / "models", progress=timer)
        start = time.perf_counter()
        model = rec.load_latest(Path(tmp) / "models")
        load_seconds = time.perf_counter() - start
        assert model is not None
        print(f"\nDemo store through SQLite: {summary.shoppers:,} shoppers, {summary.products:,} products, "
              f"{info.interactions:,} interactions ({summary.events:,} events, {summary.order_lines:,} order lines)")
        print(f"  training (train(): read DB, fit, relations, write) {info.seconds:6.2f} s   [{timer.line()}]")
        print(f"  load_latest                                 {load_seconds * 1000:8.1f} ms")

        rng = random.Random(1)
        shoppers = rng.sample(range(1, summary.shoppers + 1), SAMPLES)
        products = [int(p) for p in rng.sample(model.product_ids.tolist(), SAMPLES)]
        with Session(engine) as session:
            row("recommend(session, shopper, 10), all in", *percentiles(lambda s: model.recommend(session, s, 10),
                                                                        shoppers))
            row("  of which load_history (DB reads)", *percentiles(lambda s: rec.load_history(session, s), shoppers))
            histories = {s: rec.load_history(session, s) for s in shoppers}
            row("  of which rank (recalculate_user + top n)", *percentiles(lambda s: model.rank(histories[s], 10),
                                                                           shoppers))
            row("related popup, 3 lists x 5 (in memory)", *percentiles(lambda p: model.related(p, 5), products))
            row("related popup, + stock check (1 query)", *percentiles(lambda p: model.related(p, 5, session),
                                                                       products))
        engine.dispose()


def synthetic(n_interactions: int, n_products: int, n_shoppers: int, seed: int = 1) -> rec.Interactions:
    """A store shaped like the demo one: 100 categories, shoppers with 1-3 favourite
    categories, Zipf popularity within a category, a long tail of shopper activity.
    75% views (sessions of ~6), 10% cart adds, 15% order lines (orders of ~3)."""
    rng = np.random.default_rng(seed)
    n_categories = 100
    per_category = n_products // n_categories
    zipf = 1.0 / np.arange(1, per_category + 1) ** 1.1
    activity = rng.lognormal(0.0, 1.0, n_shoppers)
    shopper = np.sort(rng.choice(n_shoppers, size=n_interactions, p=activity / activity.sum()))
    favourites = rng.integers(0, n_categories, size=(n_shoppers, 3))
    favourite = favourites[shopper, rng.choice(3, size=n_interactions, p=[0.6, 0.28, 0.12])]
    category = np.where(rng.random(n_interactions) < 0.85, favourite, rng.integers(0, n_categories, n_interactions))
    product = category * per_category + rng.choice(per_category, size=n_interactions, p=zipf / zipf.sum()) + 1
    kind = rng.choice(3, size=n_interactions, p=[0.75, 0.10, 0.15])
    position = np.arange(n_interactions) - np.searchsorted(shopper, shopper)  # index within the shopper's rows
    views, carts, buys = kind == 0, kind == 1, kind == 2
    shopper_id = shopper + 1
    return rec.Interactions(
        view_shopper=shopper_id[views], view_product=product[views],
        view_session=shopper_id[views] * 10_000 + position[views] // 8,
        view_count=np.ones(int(views.sum()), np.int64),
        cart_shopper=shopper_id[carts], cart_product=product[carts],
        buy_shopper=shopper_id[buys], buy_product=product[buys],
        buy_order=shopper_id[buys] * 10_000 + position[buys] // 20,
        catalog_ids=np.arange(1, n_products + 1, dtype=np.int64),
        catalog_categories=[f"Category {i // per_category}" for i in range(n_products)],
    )


def histories_from(
    data: rec.Interactions, model: rec.Recommender, shoppers: list[int]
) -> dict[int, rec.ShopperHistory]:
    """What load_history would read for these shoppers, built from the arrays."""
    wanted = set(shoppers)
    out = {s: rec.ShopperHistory() for s in shoppers}
    weights: dict[int, Counter[int]] = defaultdict(Counter)
    for arrays, w in (((data.view_shopper, data.view_product), rec.VIEW_WEIGHT),
                      ((data.cart_shopper, data.cart_product), rec.CART_WEIGHT),
                      ((data.buy_shopper, data.buy_product), rec.PURCHASE_WEIGHT)):
        mask = np.isin(arrays[0], shoppers)
        for s, p in zip(arrays[0][mask].tolist(), arrays[1][mask].tolist(), strict=True):
            weights[s][p] += w
            if w == rec.PURCHASE_WEIGHT:
                out[s].bought.add(p)
    for s in wanted:
        out[s].weights = dict(weights[s])
        cats = Counter(model.categories[model.item_category[i]] for i in model.item_index(weights[s]).values())
        out[s].viewed_categories = [c for c, _n in cats.most_common()]
    return out


def bench_synthetic(n_interactions: int, n_products: int, n_shoppers: int) -> None:
    start = time.perf_counter()
    data = synthetic(n_interactions, n_products, n_shoppers)
    gen_seconds = time.perf_counter() - start
    print(f"\nSynthetic store, generated as arrays (no database; {gen_seconds:.1f} s to generate): "
          f"{data.count:,} interactions, {n_products:,} products, {n_shoppers:,} shoppers")
    for threads in sorted({1, rec.Params().num_threads}):
        timer = StepTimer()
        model = rec.fit(data, rec.Params(num_threads=threads), progress=timer)
        total = time.perf_counter() - timer.start
        print(f"  fit, {threads} thread(s): {total:6.2f} s   [{timer.line()}]")
    c = model.counts
    print(f"  model: {c['shoppers']:,} shoppers x {c['products']:,} products, {c['nonzeros']:,} non-zeros; "
          f"pairs kept: bought_also {c['bought_also_pairs']:,}, same_order {c['same_order_pairs']:,}, "
          f"viewed_together {c['viewed_together_pairs']:,}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        info = rec.save(model, Path(tmp))
        save_seconds = time.perf_counter() - start
        size_mb = sum(f.stat().st_size for f in info.path.iterdir()) / 1e6
        start = time.perf_counter()
        rec.load_latest(Path(tmp))
        load_seconds = time.perf_counter() - start
    print(f"  save {save_seconds:.2f} s ({size_mb:.0f} MB on disk), load_latest {load_seconds:.2f} s")

    rng = random.Random(1)
    shoppers = rng.sample(model.shopper_ids.tolist(), SAMPLES)
    products = rng.sample(model.product_ids.tolist(), SAMPLES)
    hist = histories_from(data, model, shoppers)
    sizes = [len(h.weights) for h in hist.values()]
    row(f"rank (recalculate_user + top 10 of {n_products:,})", *percentiles(lambda s: model.rank(hist[s], 10),
                                                                             shoppers))
    print(f"    (sampled shoppers have {np.median(sizes):.0f} products in their history, median; max {max(sizes)})")
    row("related popup, 3 lists x 5 (in memory)", *percentiles(lambda p: model.related(p, 5), products))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--shoppers", type=int, default=100_000)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; params {rec.Params()}")
    if not args.skip_demo:
        bench_demo()
    bench_synthetic(args.interactions, args.products, args.shoppers)


if __name__ == "__main__":
    main()
