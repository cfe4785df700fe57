"""Variants of the recommender, each fitted and scored on the same time split of a demo profile.

Every variant is `recommender.Params` with one thing changed from the defaults (or a
few, as labelled); scored like bench_recommender_quality.py (ndcg@10 and precision@10
on each shopper's first purchases of a product after the cutoff). Prints one row per
variant with its ratio to popularity.

python bench/bench_recommender_variants.py --profile grocery [--shoppers 1000] [--db /tmp/g.db]
    [--only name,name]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_recommender_quality import (
    als_ranker,
    cosine_ranker,
    evaluate,
    histories,
    popularity_ranker,
    rec,
    store_split,
)
from threadpoolctl import threadpool_limits

from chatdash.services.recommender import model as rec_model

BASE = rec.Params()
EASE25 = replace(BASE, model="ease", ease_lambda=25.0)
SOFTMAX = replace(BASE, model="softmax")
FUSED = replace(BASE, model="fused")
VARIANTS: dict[str, rec.Params] = {
    "defaults": BASE,
    "repeat purchases count once": replace(BASE, purchase_once=True),
    "BM25 per shopper (B 0.75)": replace(BASE, bm25_b=0.75),
    "BM25 per shopper (B 0.3)": replace(BASE, bm25_b=0.3),
    "blend item-item (0.3)": replace(BASE, related_weight=0.3),
    "blend item-item (0.6)": replace(BASE, related_weight=0.6),
    "popularity debiasing (-0.1)": replace(BASE, popularity_weight=-0.1),
    "popularity boost (+0.2)": replace(BASE, popularity_weight=0.2),
    "factors 64, regularization 0.25": replace(BASE, factors=64, regularization=0.25),
    "factors 32, regularization 0.5": replace(BASE, factors=32, regularization=0.5),
    "regularization 3": replace(BASE, regularization=3.0),
    "alpha 5": replace(BASE, alpha=5.0),
    "alpha 1": replace(BASE, alpha=1.0),
    "BM25 + once": replace(BASE, bm25_b=0.75, purchase_once=True),
    "BM25 + once, regularization 3": replace(BASE, bm25_b=0.75, purchase_once=True, regularization=3.0),
    "BM25 + once, 32 factors, reg 2": replace(BASE, bm25_b=0.75, purchase_once=True, factors=32, regularization=2.0),
    "BM25 + once, alpha 5": replace(BASE, bm25_b=0.75, purchase_once=True, alpha=5.0),
    "BM25 + once + item-item 0.3": replace(BASE, bm25_b=0.75, purchase_once=True, related_weight=0.3),
    "BM25 B 1.0 + once": replace(BASE, bm25_b=1.0, purchase_once=True),
    "BM25 B 1.0 + once, alpha 1": replace(BASE, bm25_b=1.0, purchase_once=True, alpha=1.0),
    "BM25 B 1.0 + once, reg 0.5": replace(BASE, bm25_b=1.0, purchase_once=True, regularization=0.5),
    "BM25 B 1.0 + once, reg 1.5": replace(BASE, bm25_b=1.0, purchase_once=True, regularization=1.5),
    "BM25 B 1.0 + once, 32 factors": replace(BASE, bm25_b=1.0, purchase_once=True, factors=32),
    "BM25 B 1.0 + once, 8 factors": replace(BASE, bm25_b=1.0, purchase_once=True, factors=8),
    "BM25 B 1.0 + once, pop +0.3": replace(BASE, bm25_b=1.0, purchase_once=True, popularity_weight=0.3),
    "trend +0.2 (first purchases, 60 days)": replace(BASE, popularity_weight=0.2),
    "trend +0.5 (first purchases, 60 days)": replace(BASE, popularity_weight=0.5),
    "trend +0.5 (first purchases, 21 days)": replace(BASE, popularity_weight=0.5, trend_days=21),
    "BM25 B 1.0 + once, trend +0.3": replace(BASE, bm25_b=1.0, purchase_once=True, popularity_weight=0.3),
    "BM25 B 1.0 + once, trend +0.6": replace(BASE, bm25_b=1.0, purchase_once=True, popularity_weight=0.6),
    "BM25 B 1.0 + once, trend +1.0": replace(BASE, bm25_b=1.0, purchase_once=True, popularity_weight=1.0),
    # EASE^R (issue 13): lambda as a share of the mean Gram diagonal; log-scaled weights unless binary.
    **{f"EASE lambda {lam}": replace(BASE, model="ease", ease_lambda=lam)
       for lam in (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0)},
    **{f"EASE binary lambda {lam}": replace(BASE, model="ease", ease_binary=True, ease_lambda=lam)
       for lam in (0.1, 0.25, 0.5, 1.0, 5.0, 25.0)},
    "EASE 25 once": replace(EASE25, purchase_once=True),
    "EASE 25 BM25 B 1.0 + once": replace(EASE25, bm25_b=1.0, purchase_once=True),
    "EASE 25 BM25 B 0.5": replace(EASE25, bm25_b=0.5),
    "EASE 25 binary BM25 B 0.75": replace(EASE25, ease_binary=True, bm25_b=0.75),
    "EASE 25 alpha 1": replace(EASE25, alpha=1.0),
    "EASE 25 alpha 5": replace(EASE25, alpha=5.0),
    **{f"EASE 25 keep {k}": replace(EASE25, ease_keep=k) for k in (0, 50, 500)},
    "EASE 25 + item-item 0.3": replace(EASE25, related_weight=0.3),
    "EASE 25 + trend +0.2": replace(EASE25, popularity_weight=0.2),
    "EASE 25 + trend -0.1": replace(EASE25, popularity_weight=-0.1),
    **{f"all-time first purchases +{w}": replace(BASE, popularity_weight=w, trend_days=10_000.0)
       for w in (0.3, 0.6, 1.0)},
    **{f"EASE 25 + all-time first purchases +{w}": replace(EASE25, popularity_weight=w, trend_days=10_000.0)
       for w in (0.3, 1.0)},
    # The softmax model of first purchases (issue 13, softmax.py); figures for the options
    # measured and removed (tied embeddings, category or ALS features, dropout, ...) in BENCHMARKS.md.
    "softmax": SOFTMAX,
    **{f"softmax l2 {v:g}": replace(SOFTMAX, softmax_l2=v) for v in (3e-5, 3e-4)},
    **{f"softmax {v} factors": replace(SOFTMAX, softmax_factors=v) for v in (16, 64)},
    "softmax lr 0.003": replace(SOFTMAX, softmax_lr=0.003),
    "softmax once": replace(SOFTMAX, purchase_once=True),
    "softmax target power 0.5": replace(SOFTMAX, softmax_target_power=0.5),
    "softmax 5 windows, no cold shoppers": replace(SOFTMAX, softmax_windows=5, softmax_cold=False),
    "softmax no cold shoppers": replace(SOFTMAX, softmax_cold=False),
    "softmax 20 windows of 5%": replace(SOFTMAX, softmax_windows=20, softmax_window_share=0.05),
    "softmax + item-item 0.3": replace(SOFTMAX, related_weight=0.3),
    "softmax + trend -0.1": replace(SOFTMAX, popularity_weight=-0.1),
    # The fused model (issue 13): ALS and softmax in one version, their rankings combined
    # (ranking-only knobs: one fit serves every weight and both fusions).
    **{f"fused rank {w:g}": replace(FUSED, fusion_weight=w) for w in (0.0, 0.3, 0.4, 0.5, 0.6, 0.67, 0.75, 1.0)},
    **{f"fused rank {w:g} k {k:g}": replace(FUSED, fusion_weight=w, fusion_k=k) for w in (0.5, 0.67)
       for k in (3.0, 30.0, 60.0)},
    **{f"fused score {w:g}": replace(FUSED, fusion="score", fusion_weight=w) for w in (0.3, 0.5, 0.67, 0.8)},
    "fused rank 0.5 + item-item 0.3": replace(FUSED, related_weight=0.3),
    "fused rank 0.5 + trend +0.2": replace(FUSED, popularity_weight=0.2),
    "fused rank 0.5 + trend -0.1": replace(FUSED, popularity_weight=-0.1),
    "fused rank 0.5, softmax l2 5e-5": replace(FUSED, softmax_l2=5e-5),
    "softmax launch mask": replace(SOFTMAX, softmax_launch=True),
    "fused rank 0.5, softmax launch mask": replace(FUSED, softmax_launch=True),
    "softmax 3 bags": replace(SOFTMAX, softmax_bags=3),
    "fused rank 0.5, BM25 B 0.3": replace(FUSED, bm25_b=0.3),
    "fused rank 0.5, BM25 B 1.0": replace(FUSED, bm25_b=1.0),
    "fused rank 0.5, ALS 32 factors": replace(FUSED, factors=32),
    "fused rank 0.5, ALS 8 factors": replace(FUSED, factors=8),
    "fused rank 0.5, ALS alpha 1": replace(FUSED, alpha=1.0),
    "fused rank 0.5, ALS regularization 0.5": replace(FUSED, regularization=0.5),
    "fused rank 0.5, softmax 16 factors": replace(FUSED, softmax_factors=16),
    "fused rank 0.5, softmax 64 factors": replace(FUSED, softmax_factors=64),
    "fused rank 0.5, softmax l2 2e-4": replace(FUSED, softmax_l2=2e-4),
    "fused rank 0.5, softmax 3 bags": replace(FUSED, softmax_bags=3),
}

#: Two fitted variants whose top-100 lists are fused by reciprocal rank, 1 / (10 + rank), the
#: second weighted as given.
BLENDS: dict[str, tuple[str, str, float]] = {
    "blend EASE + ALS ranks (1:1)": ("EASE lambda 25.0", "defaults", 1.0),
    "blend EASE + ALS ranks (1:2)": ("EASE lambda 25.0", "defaults", 2.0),
    "blend softmax + ALS ranks (1:1)": ("softmax", "defaults", 1.0),
    "blend softmax + ALS ranks (2:1)": ("softmax", "defaults", 0.5),
}


def fused_ranker(a: rec.Recommender, b: rec.Recommender, weight: float, depth: int = 100, k: float = 10.0):
    """Reciprocal-rank fusion of two models' rankings (each as serving ranks, `Recommender.rank`)."""

    def rank(_shopper: int, h: rec.ShopperHistory) -> list[int]:
        fused: dict[int, float] = {}
        for model, w in ((a, 1.0), (b, weight)):
            for r, item in enumerate(model.rank(h, depth)):
                fused[item.product_id] = fused.get(item.product_id, 0.0) + w / (k + r)
        return sorted(fused, key=lambda p: -fused[p])[:10]

    return rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=("demo", "grocery"), default="grocery")
    parser.add_argument("--shoppers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    args = parser.parse_args()

    about, cutoff, truth, data = store_split(args.profile, args.seed, args.shoppers, 0.2, args.db)
    print(about)
    print(f"cutoff {cutoff:%Y-%m-%d %H:%M} UTC; {data.count:,} interactions before it")
    wanted = [v for v in VARIANTS if not args.only or any(o.strip() in v for o in args.only.split(","))]
    baseline_model = rec.fit(data, BASE)
    base_hist = histories(data, BASE)
    with threadpool_limits(1, "blas"):
        pop = evaluate(popularity_ranker(baseline_model), truth, base_hist)
        cosine = evaluate(cosine_ranker(baseline_model, data), truth, base_hist)
    print(f"\n{'variant':<36} {'p@10':>7} {'ndcg@10':>8} {'vs pop':>7}  fit s")
    print(f"{'popularity':<36} {pop['p@10 all']:>7.4f} {pop['ndcg@10 all']:>8.4f} {1:>6.2f}x")
    print(
        f"{'item-item cosine (K=50)':<36} {cosine['p@10 all']:>7.4f} {cosine['ndcg@10 all']:>8.4f} "
        f"{cosine['ndcg@10 all'] / pop['ndcg@10 all']:>6.2f}x"
    )
    fitted: dict[str, rec.Recommender] = {"defaults": baseline_model}
    by_fit: dict[rec.Params, rec.Recommender] = {}  # variants differing in ranking only share a fit
    for name in wanted:
        params = VARIANTS[name]
        start = time.perf_counter()
        key = replace(params, **{k: getattr(BASE, k) for k in rec_model.RANKING_FIELDS})
        if key in by_fit:
            model = copy.copy(by_fit[key])
            model.params = params
        else:
            # The relation tables do not depend on the variants: built once, like tuning does.
            model = rec.fit(data, params, relations=baseline_model.relations)
            by_fit[key] = model
        fitted[name] = model
        seconds = time.perf_counter() - start
        with threadpool_limits(1, "blas"):
            m = evaluate(als_ranker(model), truth, histories(data, params))
        print(
            f"{name:<36} {m['p@10 all']:>7.4f} {m['ndcg@10 all']:>8.4f} "
            f"{m['ndcg@10 all'] / pop['ndcg@10 all']:>6.2f}x  {seconds:.1f}",
            flush=True,
        )
    for name, (first, second, weight) in BLENDS.items():
        if args.only and not any(o.strip() in name for o in args.only.split(",")):
            continue
        for needed in (first, second):
            if needed not in fitted:
                fitted[needed] = rec.fit(data, VARIANTS[needed], relations=baseline_model.relations)
        a, b = fitted[first], fitted[second]
        if a.params.purchase_once != b.params.purchase_once:
            raise SystemExit(f"{name}: both models must weigh histories alike")
        with threadpool_limits(1, "blas"):
            m = evaluate(fused_ranker(a, b, weight), truth, histories(data, a.params))
        print(f"{name:<36} {m['p@10 all']:>7.4f} {m['ndcg@10 all']:>8.4f} "
              f"{m['ndcg@10 all'] / pop['ndcg@10 all']:>6.2f}x", flush=True)

    print("load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
