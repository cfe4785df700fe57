"""A diagnostic ceiling for the grocery profile: how well could anything rank first purchases?

Ranks each test shopper's not-yet-bought products by the generator's own preference for
that shopper (`demo_grocery._shopper`: log popularity + taste . theme loadings + personal
noise), which no recommender can see, and scores it exactly like bench_recommender_quality.py
beside popularity and the default ALS. It says whether a goal is reachable on this profile;
it must never be used to choose parameters (that would tune to the generator).

The preference is read by replaying the first draws `_shopper` makes from a copy of the
generator's random state, so this script follows `_shopper`'s code: if that changes, the
replay must too (the figures for popularity and ALS then no longer match the quality bench,
which shows it). It always generates a fresh store.

python bench/bench_recommender_ceiling.py [--shoppers 800] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_recommender_quality as quality
from bench_recommender_quality import als_ranker, evaluate, histories, popularity_ranker, rec, store_split

from chatdash.services import demo_grocery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shoppers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    preference: dict[int, np.ndarray] = {}
    taste_only: dict[int, np.ndarray] = {}  # without the personal noise: what a model of tastes could know
    generate_shopper = demo_grocery._shopper

    def replaying(rng, catalog, sid, counts, orders, lines):  # the generator's own signature
        r = np.random.default_rng()
        r.bit_generator.state = rng.bit_generator.state  # a copy: the generator's own draws are untouched
        share = np.array([x[0] for x in demo_grocery.RHYTHMS])
        r.choice(len(demo_grocery.RHYTHMS), p=share / share.sum())
        r.uniform(0.7, 1.4)
        r.lognormal(0.0, 0.3)
        taste = np.zeros(len(demo_grocery.THEMES))
        k = r.choice((1, 2, 3), p=(0.3, 0.45, 0.25))
        taste[r.choice(len(demo_grocery.THEMES), size=k, replace=False)] = r.uniform(0.8, 1.6, k)
        taste_only[sid] = catalog.log_pop + catalog.loadings @ taste
        preference[sid] = taste_only[sid] + r.normal(0.0, 0.5, len(catalog.aisle))
        return generate_shopper(rng, catalog, sid, counts, orders, lines)

    demo_grocery._shopper = replaying
    quality.generate_grocery_data = demo_grocery.generate_grocery_data
    with tempfile.TemporaryDirectory() as tmp:
        about, _cutoff, truth, data = store_split("grocery", args.seed, args.shoppers, 0.2, Path(tmp) / "g.db")
    print(about)
    model = rec.fit(data, rec.Params())
    softmax = rec.fit(data, rec.Params(model="softmax"), relations=model.relations)
    hist = histories(data)

    def by(scores: dict[int, np.ndarray]):
        def rank(shopper: int, h: rec.ShopperHistory) -> list[int]:
            best = np.argsort(-scores[shopper]) + 1  # product ids are catalog positions + 1
            return [p for p in best[: 10 + len(h.bought)].tolist() if p not in h.bought][:10]

        return rank

    pop = evaluate(popularity_ranker(model), truth, hist)["ndcg@10 all"]
    for name, rank in (("popularity", popularity_ranker(model)), ("ALS, default parameters", als_ranker(model)),
                       ("softmax, default parameters", als_ranker(softmax)),
                       ("the generator's own preference", by(preference)),
                       ("the same without personal noise", by(taste_only))):
        m = evaluate(rank, truth, hist)
        print(f"{name:<32} p@10 {m['p@10 all']:.4f}  ndcg@10 {m['ndcg@10 all']:.4f}  {m['ndcg@10 all'] / pop:.2f}x")
    print("load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
