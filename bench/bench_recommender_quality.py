"""Recommendation quality on a demo store profile, with a time-based split of the orders.

Train on every interaction (views, cart adds, orders) before a cutoff; test on
the products each shopper bought after it (minus those bought before, which the
recommender leaves out by design). Recommendations use only pre-cutoff history.
Prints precision@10 and ndcg@10 of the ALS recommender, EASE^R with its default
lambda, what `train`'s tuning chooses, a popularity baseline, popularity within the
shopper's categories and item-item cosine.

Profiles: "demo" (the default demo store: views, carts and orders of a gear shop)
and "grocery" (`demo_grocery`: a year of basket orders, only order lines).

python bench/bench_recommender_quality.py [--profile demo|grocery] [--shoppers N] [--seed 7]
    [--test-share 0.2] [--tune] [--db /tmp/store.db (kept and reused)]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CHATDASH_SECRET_KEY", "bench")
os.environ.setdefault("CHATDASH_STORE_SECRET", "bench")

from sqlalchemy import select
from threadpoolctl import threadpool_limits

from chatdash.db import make_engine, migrate
from chatdash.models import Order, OrderLine
from chatdash.services import recommender as rec
from chatdash.services.demo_data import DemoSummary, generate_demo_data
from chatdash.services.demo_grocery import generate_grocery_data
from chatdash.services.recommender import model as rec_model
from chatdash.services.recommender import tuning as rec_tuning

K = 10
#: The three-part fused model as tuning first tries it (tuning.FIT_CANDIDATES).
FUSED_WITH_EASE = {"fusion_ease": 0.4, "fusion_weight": 0.67, "bm25_b": 0.5}
Ranker = Callable[[int, rec.ShopperHistory], list[int]]


def cutoff_and_truth(engine, test_share: float) -> tuple[datetime, dict[int, set[int]]]:
    """The cutoff (the order time leaving `test_share` of orders after it) and each
    shopper's products bought after it."""
    with engine.connect() as conn:
        times = sorted(conn.execute(select(Order.ordered_at)).scalars())
        cutoff = times[int(len(times) * (1 - test_share))]
        rows = conn.execute(
            select(Order.shopper_id, OrderLine.product_id)
            .join(Order, Order.id == OrderLine.order_id)
            .where(Order.ordered_at >= cutoff)
        ).all()
    truth: dict[int, set[int]] = defaultdict(set)
    for shopper, product in rows:
        truth[shopper].add(product)
    return cutoff, truth


def histories(data: rec.Interactions, params: rec.Params | None = None) -> dict[int, rec.ShopperHistory]:
    """Each shopper's history at the cutoff, weighted exactly as training and serving weigh it."""
    return rec_tuning.histories(data, params or rec.Params())


def evaluate(rank: Ranker, truth: dict[int, set[int]], hist: dict[int, rec.ShopperHistory]) -> dict[str, float]:
    """Mean precision@K and ndcg@K over all test shoppers and over those with history ("warm")."""
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    scores: dict[str, list[tuple[float, float]]] = {"all": [], "warm": []}
    for shopper, bought in truth.items():
        h = hist.get(shopper, rec.ShopperHistory())
        relevant = bought - h.bought
        if not relevant:
            continue
        hits = np.array([p in relevant for p in rank(shopper, h)[:K]] + [False] * K)[:K]
        ndcg = float(hits @ discounts / discounts[: min(len(relevant), K)].sum())
        pair = (hits.sum() / K, ndcg)
        scores["all"].append(pair)
        if h.weights:
            scores["warm"].append(pair)
    out = {}
    for part, pairs in scores.items():
        arr = np.array(pairs)
        out[f"p@{K} {part}"], out[f"ndcg@{K} {part}"] = arr.mean(axis=0)
        out[f"n {part}"] = len(pairs)
    return out


def popularity_ranker(model: rec.Recommender) -> Ranker:
    order = model.product_ids[np.argsort(-model.popularity, kind="stable")].tolist()

    def rank(_shopper: int, h: rec.ShopperHistory) -> list[int]:
        return [p for p in order if p not in h.bought][:K]

    return rank


def category_popularity_ranker(model: rec.Recommender) -> Ranker:
    """The recommender's own fallback alone: popular in the viewed categories, then popular."""

    def rank(_shopper: int, h: rec.ShopperHistory) -> list[int]:
        return [r.product_id for r in model.rank(replace(h, weights={}), K)]

    return rank


def cosine_ranker(model: rec.Recommender, data: rec.Interactions, neighbours: int = 50) -> Ranker:
    """implicit's item-item cosine on the same confidence matrix; popularity fills short lists."""
    from implicit.nearest_neighbours import CosineRecommender

    # CosineRecommender normalises into COO itself, then complains that it is not CSR.
    warnings.filterwarnings("ignore", message="Method expects CSR input")

    shoppers, products, weights = rec.weighted_interactions(data, np.sort(data.catalog_ids))
    user_items = weights.copy()
    user_items.data = rec.confidence(weights.data, model.params)
    user_items = user_items.tocsr().astype(np.float32)
    cosine = CosineRecommender(K=neighbours, num_threads=1)
    cosine.fit(user_items, show_progress=False)
    row_of = {s: i for i, s in enumerate(shoppers.tolist())}
    popular = popularity_ranker(model)

    def rank(shopper: int, h: rec.ShopperHistory) -> list[int]:
        out: list[int] = []
        if shopper in row_of:
            row = row_of[shopper]
            bought = np.searchsorted(products, sorted(h.bought)) if h.bought else None
            ids, scores = cosine.recommend(row, user_items[row], N=K, filter_items=bought)
            out = [int(products[i]) for i, s in zip(ids, scores, strict=True) if s > 0]
        return (out + [p for p in popular(shopper, h) if p not in out])[:K]

    return rank


def als_ranker(model: rec.Recommender) -> Ranker:
    return lambda _shopper, h: [r.product_id for r in model.rank(h, K)]


def tune(data: rec.Interactions, truth, hist) -> rec.Params:
    """A coarse grid over the ALS parameters; prints every point, returns the best by ndcg."""
    grid = {
        "factors": (8, 16, 32, 64),
        "regularization": (0.05, 0.25, 0.5, 1.0, 2.0),
        "alpha": (1.0, 2.0, 5.0, 10.0),
        "iterations": (15,),
    }
    best: tuple[float, rec.Params] | None = None
    print(f"{'factors':>7} {'reg':>6} {'alpha':>6} {'iter':>4}  {'p@10':>7} {'ndcg@10':>7}  fit s")
    for values in itertools.product(*grid.values()):
        params = replace(rec.Params(), **dict(zip(grid, values, strict=True)))
        start = time.perf_counter()
        model = rec.fit(data, params)
        seconds = time.perf_counter() - start
        m = evaluate(als_ranker(model), truth, hist)
        print(f"{params.factors:>7} {params.regularization:>6} {params.alpha:>6} {params.iterations:>4}  "
              f"{m['p@10 all']:.4f}  {m['ndcg@10 all']:.4f}  {seconds:.1f}")
        if best is None or m["ndcg@10 all"] > best[0]:
            best = (m["ndcg@10 all"], params)
    assert best is not None
    print(f"best: {best[1]}")
    return best[1]


def store_split(
    profile: str, seed: int, shoppers: int | None, test_share: float, db: Path | None
) -> tuple[str, datetime, dict[int, set[int]], rec.Interactions]:
    """Generate (or reuse, with `db`) the profile's store and split it by time: a
    description, the cutoff, the truth after it and the interactions before it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = db or Path(tmp) / "bench.db"
        fresh = not path.exists()
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        if fresh:
            sizes = {"shoppers": shoppers} if shoppers else {}
            generate = generate_grocery_data if profile == "grocery" else generate_demo_data
            generate(engine, store_url="http://localhost:3000/store", seed=seed, **sizes)
        summary = store_summary(engine)
        cutoff, truth = cutoff_and_truth(engine, test_share)
        data = rec.load_interactions(engine, until=cutoff)
        engine.dispose()
    about = (f"{profile} store (seed {seed}): {summary.shoppers:,} shoppers, {summary.products:,} products, "
             f"{summary.orders:,} orders, {summary.order_lines:,} order lines, {summary.events:,} events")
    return about, cutoff, truth, data


def store_summary(engine) -> DemoSummary:
    from sqlalchemy import func

    from chatdash.models import Product, Shopper, StoreEvent

    with engine.connect() as conn:
        def count(table) -> int:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()

        return DemoSummary(products=count(Product), categories=0, shoppers=count(Shopper), visits=0,
                           events=count(StoreEvent), orders=count(Order), order_lines=count(OrderLine), carts=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=("demo", "grocery"), default="demo")
    parser.add_argument("--shoppers", type=int, default=None, help="store size (default: the profile's)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--test-share", type=float, default=0.2, help="share of orders after the cutoff")
    parser.add_argument("--tune", action="store_true", help="grid-search the ALS parameters first")
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to keep the store in and reuse")
    parser.add_argument("--budget", type=float, default=rec.TUNE_BUDGET, help="seconds for train's own tuning")
    args = parser.parse_args()

    about, cutoff, truth, data = store_split(args.profile, args.seed, args.shoppers, args.test_share, args.db)
    hist = histories(data)
    print(about)
    print(f"cutoff {cutoff:%Y-%m-%d %H:%M} UTC: train on {data.count:,} interactions before it; "
          f"test on {sum(1 for s, b in truth.items() if b - hist.get(s, rec.ShopperHistory()).bought):,} "
          f"shoppers' later purchases")

    params = tune(data, truth, hist) if args.tune else rec.Params()
    start = time.perf_counter()
    model = rec.fit(data, params)
    fit_seconds = time.perf_counter() - start
    # What `train` does by default: tune on a time split of the history it has (the
    # pre-cutoff data, split again), then fit on all of it with the chosen parameters.
    start = time.perf_counter()
    tuning = rec.tune(data, params, budget=args.budget)
    tuned_params = tuning.params if tuning is not None else params
    tuned = rec.fit(data, tuned_params)
    tune_seconds = time.perf_counter() - start
    ease = rec.fit(data, replace(params, model="ease"), relations=model.relations)
    start = time.perf_counter()
    softmax = rec.fit(data, replace(params, model="softmax"), relations=model.relations)
    softmax_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fused = rec.fit(data, replace(params, model="fused"), relations=model.relations)
    fused_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fused3 = rec.fit(data, replace(params, model="fused", **FUSED_WITH_EASE), relations=model.relations)
    fused3_seconds = time.perf_counter() - start
    # The similar-shoppers part needs no fit: the same version with the shoppers' rows and a share.
    fused4 = copy.copy(fused3)
    fused4.params = replace(fused3.params, fusion_neighbours=0.25)
    fused4.set_neighbours(rec_model.neighbour_rows(data, fused3))
    with threadpool_limits(1, "blas"):
        rankers = {
            "popularity (baseline)": popularity_ranker(model),
            "popular in viewed categories": category_popularity_ranker(model),
            "item-item cosine (K=50)": cosine_ranker(model, data),
            "ALS recommender": als_ranker(model),
            "EASE^R (defaults)": als_ranker(ease),
            "softmax (defaults)": als_ranker(softmax),
            "fused ALS + softmax": als_ranker(fused),
            "fused with EASE^R": als_ranker(fused3),
            "... and similar shoppers 0.25": als_ranker(fused4),
        }
        results = {name: evaluate(rank, truth, hist) for name, rank in rankers.items()}
        results["tuned recommender (train)"] = evaluate(als_ranker(tuned), truth, histories(data, tuned_params))

    p = params
    print(f"ALS: factors={p.factors} regularization={p.regularization} alpha={p.alpha} eps={p.eps} "
          f"iterations={p.iterations}; fit {fit_seconds:.1f} s; softmax fit {softmax_seconds:.1f} s "
          f"({softmax.counts.get('softmax_contexts', 0):,} contexts, best epoch "
          f"{softmax.counts.get('softmax_epochs', 0)}); fused fit {fused_seconds:.1f} s; "
          f"fused with EASE^R ({FUSED_WITH_EASE}) {fused3_seconds:.1f} s")
    n_all, n_warm = results["ALS recommender"]["n all"], results["ALS recommender"]["n warm"]
    print(f"\n{'method':<30} {'p@10':>7} {'ndcg@10':>8}   {'p@10':>7} {'ndcg@10':>8}")
    print(f"{'':<30} {f'all {n_all} shoppers':>17}   {f'with history {n_warm}':>17}")
    for name, m in results.items():
        print(f"{name:<30} {m['p@10 all']:>7.4f} {m['ndcg@10 all']:>8.4f}   "
              f"{m['p@10 warm']:>7.4f} {m['ndcg@10 warm']:>8.4f}")
    changes = {k: v for k, v in vars(tuned_params).items() if getattr(params, k) != v and k != "num_threads"}
    print(f"tuning: {tune_seconds:.0f} s with the final fit, {len(tuning.candidates) if tuning else 0} "
          f"candidates, chose {changes or 'the defaults'}")
    for candidate in tuning.candidates if tuning else []:
        print(f"  candidate {candidate['changes'] or 'start'}: ndcg@10 {candidate['ndcg@10']:.4f} "
              f"({candidate['seconds']:.1f} s)")
    print("load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    pop = results["popularity (baseline)"]
    for name in ("ALS recommender", "EASE^R (defaults)", "softmax (defaults)", "fused ALS + softmax",
                 "fused with EASE^R", "... and similar shoppers 0.25", "tuned recommender (train)"):
        print(f"{name} vs popularity, ndcg@10: {results[name]['ndcg@10 all'] / pop['ndcg@10 all']:.2f}x")
    als = results["ALS recommender"]
    for metric in ("p@10 all", "ndcg@10 all"):
        print(f"ALS vs popularity, {metric}: {als[metric] / pop[metric]:.2f}x "
              f"({als[metric] - pop[metric]:+.4f})")


if __name__ == "__main__":
    main()
