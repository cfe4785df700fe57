"""Parameters chosen per store: a time split of the store's own history, a few candidates, the best kept.

The split holds out the latest orders (20% by default) and scores each candidate
on what every shopper bought there **for the first time** (ndcg@10 and precision@10,
binary relevance), ranking from the history before the cutoff exactly as serving
ranks (`Recommender.rank`). Popularity is scored on the same split, as the yardstick.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from chatdash.services.recommender.interactions import Interactions, ProgressFn, ShopperHistory, interactions_before
from chatdash.services.recommender.model import (
    EASE_MAX_ITEMS,
    FUSED_PARTS,
    Params,
    Recommender,
    fit,
    fuse_models,
    fused_parts,
    neighbour_rows,
    part_params,
    weighted_interactions,
)
from chatdash.services.recommender.softmax import SOFTMAX_MAX_ITEMS

log = logging.getLogger(__name__)

K = 10
Ranking = Callable[[ShopperHistory], list[int]]

#: Changes from the starting parameters, tried in this order (most promising first,
#: from bench/bench_recommender_variants.py) while the time budget lasts. Each needs a fit.
FIT_CANDIDATES: tuple[dict[str, Any], ...] = (
    # The softmax model of first purchases (softmax.py): fitted on the store's own later first
    # purchases given the history before them, with a bias per product.
    {"model": "softmax"},
    # ALS and the softmax model fused: built from the two fits above (no fit of its own).
    {"model": "fused"},
    # The three models fused, each on BM25-normalised histories (EASE gains from them most):
    # on the grocery profile 0.1287 ndcg@10 against 0.1239 for the two (bench, 2026-12-03).
    {"model": "fused", "fusion_ease": 0.4, "fusion_weight": 0.67, "bm25_b": 0.5},
    {"purchase_once": True, "bm25_b": 1.0},
    {"purchase_once": True},
    # EASE^R instead of ALS: on par with ALS on both demo profiles, far ahead where products
    # come in pairs (tests/test_recommender_ease.py); cheap up to a few thousand products.
    {"model": "ease", "bm25_b": 0.5},
)
#: Then the best so far with its regularization scaled by these (BM25 shrinks the
#: weights, so the regularization that suits them moves). Each needs a fit.
REGULARIZATION_STEPS: tuple[float, ...] = (0.5, 2.0)
#: Changes to the ranking alone, tried on the best fitted model (no refit: cheap).
RANK_CANDIDATES: tuple[dict[str, Any], ...] = (
    {"related_weight": 0.3},
    {"popularity_weight": 0.2},
    {"popularity_weight": -0.1},
)
#: When the best model is fused, the softmax model's share of it tried first (ranking only),
#: and with an EASE part, EASE's share.
FUSION_WEIGHTS: tuple[float, ...] = (0.67, 0.35)
EASE_SHARES: tuple[float, ...] = (0.25, 0.55)
#: And similar shoppers' share (`Params.fusion_neighbours`; nothing to fit, tried first): on the
#: grocery profile 0.1332 ndcg@10 against 0.1291 without (bench, 2026-12-03).
NEIGHBOUR_SHARES: tuple[float, ...] = (0.25,)


@dataclass(frozen=True)
class Split:
    """Interactions before the cutoff, and each shopper's first purchases of a product after it."""

    cutoff: datetime
    train: Interactions
    truth: dict[int, set[int]]
    orders: int  # orders in the store, before and after


@dataclass(frozen=True)
class Quality:
    ndcg: float
    precision: float
    shoppers: int  # shoppers scored


@dataclass
class Tuning:
    """What the tuning tried and chose, as stored with the model version."""

    params: Params
    model: Quality
    popularity: Quality
    cutoff: datetime
    train_interactions: int
    seconds: float
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "params": asdict(self.params),
            "holdout": {
                "cutoff": self.cutoff.isoformat(),
                "train_interactions": self.train_interactions,
                "shoppers": self.model.shoppers,
                "model": {"ndcg@10": round(self.model.ndcg, 5), "precision@10": round(self.model.precision, 5)},
                "popularity": {
                    "ndcg@10": round(self.popularity.ndcg, 5),
                    "precision@10": round(self.popularity.precision, 5),
                },
            },
            "candidates": self.candidates,
            "seconds": round(self.seconds, 2),
        }


def time_split(data: Interactions, test_share: float = 0.2, min_orders: int = 20) -> Split | None:
    """Hold out the latest `test_share` of the orders; None when the history is too short
    (fewer than `min_orders` orders, or no timestamps) or nobody bought anything new after it."""
    if data.buy_time is None or data.view_time is None or data.cart_time is None:
        return None
    orders, first = np.unique(data.buy_order, return_index=True)
    if len(orders) < min_orders:
        return None
    times = np.sort(data.buy_time[first])
    cutoff = float(times[int(len(times) * (1 - test_share))])
    before_buy = data.buy_time < cutoff
    train = interactions_before(data, cutoff)
    bought_before = set(zip(train.buy_shopper.tolist(), train.buy_product.tolist(), strict=True))
    truth: dict[int, set[int]] = defaultdict(set)
    for shopper, product in zip(
        data.buy_shopper[~before_buy].tolist(), data.buy_product[~before_buy].tolist(), strict=True
    ):
        if (shopper, product) not in bought_before:
            truth[shopper].add(product)
    if not truth:
        return None
    return Split(datetime.fromtimestamp(cutoff, UTC), train, dict(truth), len(orders))


def histories(data: Interactions, params: Params, shoppers: set[int] | None = None) -> dict[int, ShopperHistory]:
    """Each shopper's history in `data`, weighted as training weighs it (and serving reads it)."""
    shopper_ids, products, weights = weighted_interactions(data, np.sort(data.catalog_ids), params)
    out: dict[int, ShopperHistory] = {}
    for row, shopper in enumerate(shopper_ids.tolist()):
        if shoppers is not None and shopper not in shoppers:
            continue
        a, b = weights.indptr[row], weights.indptr[row + 1]
        items = products[weights.indices[a:b]].tolist()
        out[shopper] = ShopperHistory(weights=dict(zip(items, weights.data[a:b].tolist(), strict=True)))
    for shopper, product in zip(data.buy_shopper.tolist(), data.buy_product.tolist(), strict=True):
        if shopper in out:
            out[shopper].bought.add(product)
    category = dict(zip(data.catalog_ids.tolist(), data.catalog_categories, strict=True))
    views: dict[int, Counter[str]] = defaultdict(Counter)
    for shopper, product, n in zip(
        data.view_shopper.tolist(), data.view_product.tolist(), data.view_count.tolist(), strict=True
    ):
        if shopper in out:
            views[shopper][category[product]] += n
    for shopper, counts in views.items():
        out[shopper].viewed_categories = [c for c, _n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return out


def score(rank: Ranking, truth: dict[int, set[int]], hist: dict[int, ShopperHistory]) -> Quality:
    """Mean ndcg@10 and precision@10 over the shoppers who bought something new."""
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    ndcg, precision = [], []
    for shopper, bought in truth.items():
        h = hist.get(shopper, ShopperHistory())
        relevant = bought - h.bought
        if not relevant:
            continue
        hits = np.array([p in relevant for p in rank(h)[:K]] + [False] * K)[:K]
        ndcg.append(float(hits @ discounts / discounts[: min(len(relevant), K)].sum()))
        precision.append(hits.sum() / K)
    if not ndcg:
        return Quality(0.0, 0.0, 0)
    return Quality(float(np.mean(ndcg)), float(np.mean(precision)), len(ndcg))


def model_ranking(model: Recommender) -> Ranking:
    return lambda h: [r.product_id for r in model.rank(h, K)]


def popularity_ranking(model: Recommender) -> Ranking:
    order = model.product_ids[np.argsort(-model.popularity, kind="stable")][: 10 * K].tolist()
    return lambda h: [p for p in order if p not in h.bought][:K]


def tune(
    data: Interactions,
    start: Params | None = None,
    *,
    budget: float = 120.0,
    test_share: float = 0.2,
    progress: ProgressFn | None = None,
) -> Tuning | None:
    """Score the starting parameters and, while `budget` seconds last, the candidate
    changes on a time split of `data`; returns the best (None when the history is too
    short to split). `progress("tune", done, total)` follows the candidates."""
    report = progress or (lambda _step, _done, _total: None)
    began = time.perf_counter()
    split = time_split(data, test_share)
    if split is None:
        return None
    start = start or Params()
    total = 1 + len(FIT_CANDIDATES) + len(REGULARIZATION_STEPS) + len(RANK_CANDIDATES)
    report("tune", 0, total)
    hist_cache: dict[bool, dict[int, ShopperHistory]] = {}

    def history_for(params: Params) -> dict[int, ShopperHistory]:
        # Only purchase_once changes how a history is weighed among the candidates.
        key = params.purchase_once
        if key not in hist_cache:
            hist_cache[key] = histories(split.train, params, set(split.truth))
        return hist_cache[key]

    def evaluate(model: Recommender) -> Quality:
        with threadpool_limits(1, "blas"):
            return score(model_ranking(model), split.truth, history_for(model.params))

    candidates: list[dict[str, Any]] = []

    def record(changes: dict[str, Any], quality: Quality, seconds: float) -> None:
        candidates.append(
            {
                "changes": changes,
                "ndcg@10": round(quality.ndcg, 5),
                "precision@10": round(quality.precision, 5),
                "seconds": round(seconds, 2),
            }
        )

    # Fitted ALS, softmax and EASE models by their part's parameters (`part_params`): a fused
    # candidate is built from them, fitting only a part not fitted yet, and a candidate that
    # is such a part already (EASE on BM25 rows after the three-part candidate) is not refitted.
    parts: dict[Params, Recommender] = {}
    contexts: dict[tuple, Any] = {}  # the softmax model's training pairs, shared by its fits

    def keep_part(model: Recommender) -> None:
        if model.params.model in FUSED_PARTS:
            parts.setdefault(part_params(model.params, model.params.model), model)

    def fit_candidate(params: Params, relations: Any) -> Recommender:
        if params.model != "fused":
            key = part_params(params, params.model)
            if key in parts:  # fitted already as a fused candidate's part (e.g. EASE on BM25 rows)
                model = copy.copy(parts[key])  # the same fit; what differs is read only when ranking
                model.params = params
                return model
            model = fit(split.train, params, relations=relations, contexts_cache=contexts)
            keep_part(model)
            return model
        fitted = []
        for kind in fused_parts(params):
            key = part_params(params, kind)
            if key not in parts:
                keep_part(fit(split.train, key, relations=relations, contexts_cache=contexts))
            fitted.append(parts.get(key) or parts[part_params(params, "als")])  # softmax fell back: ALS
        return fuse_models(*fitted[:2], params, *fitted[2:])

    def fits_needed(params: Params) -> int:
        """How many fits the candidate costs: a fused one only its parts not fitted yet."""
        if params.model != "fused":
            return int(part_params(params, params.model) not in parts)
        return sum(part_params(params, kind) not in parts for kind in fused_parts(params))

    def timed_evaluate(model: Recommender) -> tuple[Quality, float]:
        t = time.perf_counter()
        return evaluate(model), time.perf_counter() - t

    # What the next candidate is expected to cost: a fit as long as the last one (the first one
    # also builds the relation tables and the held-out histories, so it overestimates) for each
    # fit it needs, and the last scoring.
    t = time.perf_counter()
    best_model = fit(split.train, start)
    keep_part(best_model)
    fit_seconds = time.perf_counter() - t
    best, eval_seconds = timed_evaluate(best_model)
    best_eval = eval_seconds
    popularity = score(popularity_ranking(best_model), split.truth, history_for(start))
    record({}, best, time.perf_counter() - t)
    done = 1
    report("tune", done, total)
    fits = [lambda changes=changes: replace(start, **changes) for changes in FIT_CANDIDATES]
    fits += [lambda step=step: _regularized(best_model.params, step) for step in REGULARIZATION_STEPS]
    tried = {start}
    for candidate in fits:
        done += 1
        params = candidate()
        too_big = ((params.model == "ease" or params.fusion_ease > 0) and best_model.n_items > EASE_MAX_ITEMS) or (
            params.model in ("softmax", "fused") and best_model.n_items > SOFTMAX_MAX_ITEMS)  # fit would train ALS
        refits = fits_needed(params)  # a fused model from parts fitted already costs only its scoring
        expected = refits * fit_seconds + eval_seconds
        if params in tried or too_big or time.perf_counter() - began + expected > budget:
            report("tune", done, total)
            continue
        tried.add(params)
        t = time.perf_counter()
        model = fit_candidate(params, best_model.relations)  # same data: same tables
        if refits:
            fit_seconds = (time.perf_counter() - t) / refits
        if model.params != params:  # fit fell back (e.g. softmax without dated first purchases: ALS)
            if model.params in tried:
                report("tune", done, total)
                continue
            params = model.params
            tried.add(params)
        quality, eval_seconds = timed_evaluate(model)
        record(_changes(start, params), quality, time.perf_counter() - t)
        if quality.ndcg > best.ndcg:
            best, best_model, best_eval = quality, model, eval_seconds
        report("tune", done, total)
    ranking = list(RANK_CANDIDATES)
    if best_model.fused:
        ranking = [{"fusion_weight": w} for w in FUSION_WEIGHTS if w != best_model.params.fusion_weight] + ranking
        if best_model.ease is not None:
            ranking = [{"fusion_ease": w} for w in EASE_SHARES if w != best_model.params.fusion_ease] + ranking
        if best_model.neighbours is None:  # the shoppers' rows: no fit, they only rank with a share set
            best_model = copy.copy(best_model)
            best_model.set_neighbours(neighbour_rows(split.train, best_model))
        ranking = [{"fusion_neighbours": w} for w in NEIGHBOUR_SHARES
                   if w != best_model.params.fusion_neighbours] + ranking
    total += len(ranking) - len(RANK_CANDIDATES)
    for changes in ranking:
        done += 1
        if time.perf_counter() - began + best_eval > budget:
            report("tune", done, total)
            continue
        model = copy.copy(best_model)  # shares the factors; only the ranking parameters differ
        model.params = replace(best_model.params, **changes)
        quality, seconds = timed_evaluate(model)
        record({**_changes(start, best_model.params), **changes}, quality, seconds)
        if quality.ndcg > best.ndcg:
            best, best_model = quality, model
        report("tune", done, total)
    chosen = best_model.params
    log.info("tuned: ndcg@10 %.4f (popularity %.4f) with %s", best.ndcg, popularity.ndcg, _changes(start, chosen))
    return Tuning(chosen, best, popularity, split.cutoff, split.train.count, time.perf_counter() - began, candidates)


def _regularized(params: Params, step: float) -> Params:
    """`params` with its model's regularization scaled by `step` (ALS's, or EASE's lambda)."""
    if params.model == "ease":
        return replace(params, ease_lambda=params.ease_lambda * step)
    if params.model in ("softmax", "fused"):  # fused: the softmax part refitted, ALS's reused
        return replace(params, softmax_l2=params.softmax_l2 * step)
    return replace(params, regularization=params.regularization * step)


def _changes(start: Params, params: Params) -> dict[str, Any]:
    a, b = asdict(start), asdict(params)
    return {k: v for k, v in b.items() if a[k] != v}
