"""The trained model in memory: parameters, ALS fitting, ranking and its database-backed answers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlmodel import Session, col
from threadpoolctl import threadpool_limits

from chatdash.models import Product
from chatdash.services.recommender.interactions import (
    CART_WEIGHT,
    PURCHASE_WEIGHT,
    VIEW_WEIGHT,
    Interactions,
    ProgressFn,
    ShopperHistory,
    load_history,
)
from chatdash.services.recommender.relations import RELATIONS, Related, RelatedItem, RelationTable, cooccurrence
from chatdash.services.recommender.softmax import (
    SOFTMAX_MAX_ITEMS,
    SoftmaxConfig,
    SoftmaxWeights,
    first_purchase_contexts,
    fit_softmax,
    window_cutoffs,
)

log = logging.getLogger(__name__)


class RecommenderError(RuntimeError):
    """Training or loading cannot be done; the text says why."""


@dataclass(frozen=True)
class Params:
    """Everything that shapes a trained model; chosen with bench/bench_recommender_quality.py."""

    #: The personal model: "als" (implicit ALS, factors), "ease" (EASE^R, Steck 2019: a
    #: closed-form item-item regression; up to EASE_MAX_ITEMS products, else ALS) or
    #: "softmax" (a multinomial model of first purchases, `softmax.py`; up to
    #: SOFTMAX_MAX_ITEMS products and with dated orders, else ALS), or "fused": ALS and the
    #: softmax model in one version, their rankings combined (`fusion`, `fusion_weight`),
    #: EASE^R as a third part when `fusion_ease` is set, and similar shoppers' purchases
    #: when `fusion_neighbours` is.
    model: str = "als"
    factors: int = 16
    #: Per interaction: ALS gets this times the mean number of shoppers per product, so
    #: that the shrinkage keeps its strength as the store grows (a fixed value that suits
    #: 3,000 shoppers flattens a 300-shopper store into plain popularity).
    regularization: float = 1.0
    iterations: int = 15
    #: Confidence of an interaction: 1 + alpha * log1p(weight / eps) (Hu, Koren & Volinsky).
    alpha: float = 2.0
    eps: float = 1.0
    random_state: int = 42
    #: implicit's OpenMP threads for fitting (BLAS itself runs single-threaded).
    num_threads: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    #: A pair must co-occur in at least this many baskets to be listed as related.
    min_support: int = 2
    #: Ranking: personal scores (scaled so the shopper's best is 1) plus this times the
    #: product's recent popularity (log of the shoppers who bought it for the first time
    #: in the last `trend_days` of the history, scaled to 0-1); negative values debias.
    popularity_weight: float = 0.0
    trend_days: float = 60.0
    #: Ranking: the share given to "bought also" neighbours of the shopper's products,
    #: `related_weight * 10 / (10 + products in the history)`: most for short histories.
    related_weight: float = 0.0
    #: A product bought in many orders counts as bought once (repeat purchases).
    purchase_once: bool = False
    #: Per-shopper BM25 normalisation of the weights before confidence (0: off; B, 0-1).
    bm25_b: float = 0.0
    #: Related products kept per product and table.
    keep_related: int = 20
    #: Baskets (a shopper's purchases, an order, a session) with more distinct products
    #: than this count as `heavy_basket / size` of a basket in the related tables.
    heavy_basket: int = 200
    #: Baskets with more distinct products than this (bots, wholesale) add no pairs.
    max_basket: int = 5000
    #: EASE's L2 penalty as a share of the mean diagonal of its Gram matrix (the mean
    #: product's summed squared inputs), so that one value carries across store sizes.
    #: 25 was best on both demo profiles (10-50 within 0.003 ndcg@10; Steck's 0.5 far worse).
    ease_lambda: float = 25.0
    #: EASE input: 1 for every product the shopper touched (True), or the confidence's
    #: log-scaled weight `alpha * log1p(weight / eps)` (False).
    ease_binary: bool = False
    #: EASE weights kept per product (the largest in size); 0 keeps them all.
    ease_keep: int = 200
    #: The softmax model: embedding size, L2 on the embeddings, Adam's step size (and the
    #: biases'), most epochs (early stopping on held-out shoppers decides), training windows
    #: and each one's share of the orders (10 x 10%: the whole history), and a window's
    #: weight as (its first purchases) ** target_power.
    softmax_factors: int = 32
    softmax_l2: float = 1e-4
    softmax_lr: float = 0.01
    softmax_bias_lr: float = 0.1
    softmax_epochs: int = 40
    softmax_windows: int = 10
    softmax_window_share: float = 0.1
    #: Also learn from shoppers without a history before a window (their first orders): the
    #: biases alone see those, and they are many more first purchases than the later ones.
    softmax_cold: bool = True
    softmax_target_power: float = 1.0
    #: The softmax model's input row (log-scaled weights, as EASE's) is divided by its L2
    #: norm to this power: 1 gives every shopper a unit-length row, 0 leaves it as is.
    softmax_norm: float = 1.0
    #: Leave a product out of a training window's softmax until someone has bought it (a
    #: product launched during the history is not held against in the windows before).
    softmax_launch: bool = False
    #: Fits of the softmax model (seeds random_state, +1, ...) whose logits are averaged.
    softmax_bags: int = 1
    #: The fused model (ranking only, no refit): the softmax model's share (0-1; ALS has the
    #: rest) and how the two are combined: "rank" (reciprocal-rank fusion, each product
    #: scores share / (fusion_k + its rank) in each model's ranking of the products the
    #: shopper may be shown) or "score" (each model's scores standardised over those products).
    fusion_weight: float = 0.5
    fusion: str = "rank"
    fusion_k: float = 10.0
    #: EASE^R's share of a fused model (0-1): a third part, fitted with the fused model's input
    #: weighing (`bm25_b` ...), and the softmax model and ALS share the rest as `fusion_weight`
    #: says. 0: ALS and the softmax model alone. Trying other shares needs no refit when the
    #: model has an EASE part already (tuning does), but 0 and more than 0 differ in what is fitted.
    fusion_ease: float = 0.0
    #: Similar shoppers' share of a fused model (0-1; the other parts share the rest as above):
    #: the products bought by the `neighbour_shoppers` shoppers whose histories are most like
    #: this one's, each weighed by its similarity squared (user-based neighbours). Similar by
    #: the cosine of the softmax model's shopper vectors (what it learnt a history says about
    #: the next new product), the purchases counted as EASE's input rows. Nothing to fit: the
    #: version keeps the shoppers' rows (`neighbour_rows`).
    fusion_neighbours: float = 0.0
    neighbour_shoppers: int = 50


#: Params that change only how a fitted model ranks: tuning tries them without refitting.
RANKING_FIELDS = ("popularity_weight", "trend_days", "related_weight", "fusion_weight", "fusion", "fusion_k")
#: The fused model's parts are fitted as these models, each with the fused Params otherwise
#: (EASE only when `fusion_ease` is set: `fused_parts`).
FUSED_PARTS = ("als", "softmax", "ease")


#: What the softmax model's training pairs depend on (besides the data).
CONTEXT_FIELDS = ("purchase_once", "bm25_b", "alpha", "eps", "softmax_norm", "softmax_windows",
                  "softmax_window_share", "softmax_cold", "softmax_launch")
#: What only each part's fit reads.
ALS_FIELDS = ("factors", "regularization", "iterations")
SOFTMAX_FIELDS = tuple(f for f in Params.__dataclass_fields__ if f.startswith("softmax_"))
EASE_FIELDS = ("ease_lambda", "ease_binary", "ease_keep")
_PART_FIELDS = {"als": ALS_FIELDS, "softmax": SOFTMAX_FIELDS, "ease": EASE_FIELDS}


def fused_parts(params: Params) -> tuple[str, ...]:
    """The models a fused model with these parameters is made of."""
    return FUSED_PARTS if params.fusion_ease > 0 else FUSED_PARTS[:2]


def part_params(params: Params, model: str) -> Params:
    """One part of a fused model: `params` as that model, with what the part's fit does not
    read (the ranking-only fields, the other parts') at the defaults, so that equal parts
    compare equal and a tuner can reuse one fit across fused candidates."""
    defaults = Params()
    others = [f for kind, fields in _PART_FIELDS.items() if kind != model for f in fields]
    unused = (*RANKING_FIELDS, "fusion_ease", "fusion_neighbours", "neighbour_shoppers", *others)
    return replace(params, model=model, **{k: getattr(defaults, k) for k in unused})


#: EASE inverts a products x products matrix: more products than this train ALS instead
#: (10,000 products: 400 MB of float32 and about a minute on 2 cores).
EASE_MAX_ITEMS = 10_000
#: The similar-shoppers part compares a history with this many shoppers' (those with the most
#: products): a dot product with each one's softmax vector per request (32 numbers a shopper)
#: and their rows kept with the version, so both stay bounded as the store grows.
NEIGHBOURS_MAX = 20_000


@dataclass(frozen=True)
class Recommendation:
    product_id: int
    score: float
    reason: str  # "personal", "popular in <category>" or "popular"


def confidence(weights: np.ndarray, params: Params) -> np.ndarray:
    """ALS confidence of weighted interactions: log scaling so that a hundred views
    do not outweigh a purchase by twentyfold."""
    return (1.0 + params.alpha * np.log1p(np.asarray(weights, np.float64) / params.eps)).astype(np.float32)


def model_input(weights: sp.csr_matrix, params: Params, idf: np.ndarray, mean_length: float) -> sp.csr_matrix:
    """What the personal model learns from (and serving feeds it), per shopper and product.
    ALS: the confidence of the weights, after BM25 when `bm25_b` is set. EASE: the log-scaled
    weights, 0 where nothing happened (`alpha * log1p(weight / eps)`), after BM25 when set;
    or with `ease_binary` 1 per product touched, after BM25 with k1 = 1 when set. Softmax:
    EASE's log-scaled weights, each row divided by its L2 norm ** `softmax_norm`."""
    ease = params.model == "ease"
    binary = ease and params.ease_binary
    out = weights.tocsr(copy=True)
    if binary:
        out.data = (out.data > 0).astype(np.float64)
    if params.bm25_b > 0:
        k1 = 1.0 if binary else PURCHASE_WEIGHT
        out = bm25(out, idf, mean_length, params.bm25_b, k1=k1)
    if params.model == "als":
        out.data = confidence(out.data, params)
    elif not binary:
        out.data = params.alpha * np.log1p(out.data / params.eps)
    if params.model == "softmax" and params.softmax_norm and out.nnz:
        norms = np.sqrt(np.bincount(np.repeat(np.arange(out.shape[0]), np.diff(out.indptr)),
                                    weights=out.data ** 2, minlength=out.shape[0]))
        scale = np.maximum(norms, 1e-12) ** -params.softmax_norm
        out.data = out.data * np.repeat(scale, np.diff(out.indptr))
    out.data = out.data.astype(np.float32)
    return out


def input_length(weights: sp.csr_matrix, params: Params) -> float:
    """A shopper's summed weights on average (BM25's mean length): of 1 per product with `ease_binary`."""
    binary = params.model == "ease" and params.ease_binary
    total = float(weights.nnz if binary else weights.sum())
    return total / max(weights.shape[0], 1)


def fit_ease(x: sp.csr_matrix, params: Params, num_threads: int = 1) -> tuple[sp.csr_matrix, float]:
    """EASE^R (Steck, "Embarrassingly Shallow Autoencoders", 2019) on a shoppers x products
    input: B = I - P diag(1 / diag(P)) with P = (X'X + lambda I)^-1, so that B's diagonal is 0
    and a shopper's scores are their row times B. Keeps the `ease_keep` largest weights of each
    row (what one product adds to the others). Returns B and the lambda used.

    In float32 and in place (LAPACK's Cholesky inverse), one products x products matrix at a time."""
    from scipy.linalg import lapack

    n = x.shape[1]
    x = sp.csc_matrix(x, dtype=np.float32)
    xt = x.T.tocsr()
    gram = np.empty((n, n), np.float32)
    for start in range(0, n, 1024):  # a block of columns at a time: X'X as sparse could be n^2 entries
        gram[:, start:start + 1024] = (xt @ x[:, start:start + 1024]).toarray()
    del xt
    diag = gram.diagonal().copy()
    lam = params.ease_lambda * max(float(diag.mean()), 1e-9)
    gram[np.diag_indices(n)] += lam
    with threadpool_limits(num_threads, "blas"):
        chol, info = lapack.spotrf(gram, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise RecommenderError(f"EASE: the Gram matrix is not positive definite (LAPACK info {info})")
        p, info = lapack.spotri(chol, lower=False, overwrite_c=True)
        if info != 0:
            raise RecommenderError(f"EASE: the Gram matrix cannot be inverted (LAPACK info {info})")
    del gram, chol
    # spotri fills the upper triangle: mirror it into the lower one, a row at a time (no n^2 index arrays).
    for i in range(1, n):
        p[i, :i] = p[:i, i]
    scale = -1.0 / p.diagonal()
    p *= scale[np.newaxis, :]  # B[i, j] = -P[i, j] / P[j, j]
    p[np.diag_indices(n)] = 0.0
    return _keep_largest(p, params.ease_keep), lam


def _keep_largest(b: np.ndarray, keep: int, block: int = 1024) -> sp.csr_matrix:
    """The `keep` largest-magnitude entries of every row of dense `b` (all, when keep is 0 or
    not smaller than a row), as CSR; built in blocks of rows to bound the memory used."""
    n_rows, n_cols = b.shape
    if keep <= 0 or keep >= n_cols:
        return sp.csr_matrix(b)
    parts = []
    for start in range(0, n_rows, block):
        rows = b[start:start + block]
        top = np.argpartition(-np.abs(rows), keep - 1, axis=1)[:, :keep]
        top.sort(axis=1)
        values = np.take_along_axis(rows, top, axis=1)
        indptr = np.arange(0, len(rows) * keep + 1, keep)
        part = sp.csr_matrix((values.ravel(), top.ravel(), indptr), shape=(len(rows), n_cols))
        part.eliminate_zeros()
        parts.append(part)
    return sp.vstack(parts, format="csr")


def _als(params: Params, regularization: float, num_threads: int) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares

    # Confidence is computed here (see `confidence`), so implicit's own alpha stays 1.
    with threadpool_limits(1, "blas"):  # implicit warns when BLAS is multi-threaded
        return AlternatingLeastSquares(
            factors=params.factors, regularization=regularization, alpha=1.0,
            iterations=params.iterations, num_threads=num_threads, random_state=params.random_state,
        )


class Recommender:
    """A trained model and its relation tables, held in memory and safe to share between threads."""

    def __init__(
        self,
        *,
        version: str,
        params: Params,
        regularization: float,
        product_ids: np.ndarray,
        categories: list[str],
        item_category: np.ndarray,
        popularity: np.ndarray,
        item_factors: np.ndarray,
        relations: Mapping[str, RelationTable],
        shopper_ids: np.ndarray | None = None,
        user_factors: np.ndarray | None = None,
        counts: Mapping[str, int] | None = None,
        idf: np.ndarray | None = None,
        mean_length: float = 1.0,
        trend: np.ndarray | None = None,
        ease: sp.csr_matrix | None = None,
        softmax: SoftmaxWeights | None = None,
        neighbours: sp.csr_matrix | None = None,
    ) -> None:
        self.version = version
        self.params = params
        self.regularization = regularization  # the effective value ALS (or EASE: its lambda) used
        self.product_ids = np.asarray(product_ids, np.int64)  # sorted: item index -> product id
        self.categories = categories
        self.item_category = np.asarray(item_category, np.int32)
        self.popularity = np.asarray(popularity, np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.relations = dict(relations)
        self.shopper_ids = shopper_ids
        self.user_factors = user_factors
        self.counts = dict(counts or {})
        self.idf = np.ones(len(self.product_ids), np.float32) if idf is None else np.asarray(idf, np.float32)
        self.mean_length = mean_length  # a shopper's summed weights, on average (BM25)
        # Recent first purchases per product (see fit); all-time buyers when unknown.
        self.trend = np.floor(self.popularity) if trend is None else np.asarray(trend, np.float32)
        top = np.log1p(self.trend.max()) if len(self.trend) and self.trend.max() > 0 else 1.0
        self._log_trend = (np.log1p(self.trend) / top).astype(np.float32)
        top = np.log1p(self.popularity.max()) if len(self.popularity) and self.popularity.max() > 0 else 1.0
        self._log_popularity = (np.log1p(np.maximum(self.popularity, 0)) / top).astype(np.float32)
        self._category_code = {c: i for i, c in enumerate(categories)}
        # Stable sorts: equal popularity keeps product id order, so fallbacks are deterministic.
        self._popular = np.argsort(-self.popularity, kind="stable")
        self._popular_in = [self._popular[self.item_category[self._popular] == c] for c in range(len(categories))]
        #: EASE's item-item weights (row i: what product i adds to every other's score), or None for ALS.
        self.ease = None if ease is None else sp.csr_matrix(ease, dtype=np.float32)
        #: The softmax model's bias and embeddings, or None for ALS and EASE.
        self.softmax = softmax
        #: ALS's factors and the softmax model's weights (and EASE's, with `fusion_ease`), all
        #: scoring every request.
        self.fused = softmax is not None and params.model == "fused"
        # The input rows each part reads (ALS: confidence; softmax: normalised log weights; EASE: log weights).
        self._als_params = replace(params, model="als") if self.fused else params
        self._softmax_params = replace(params, model="softmax") if self.fused else params
        self._ease_params = replace(params, model="ease") if self.fused else params
        self._neighbour_params = replace(params, model="ease", ease_binary=False)  # as `neighbour_rows` weighs them
        self.set_neighbours(neighbours)
        self._model: Any = None
        if self.fused or (self.ease is None and self.softmax is None):
            # One thread per request: a web server serves many shoppers at once.
            self._model = _als(params, regularization, num_threads=1)
            self._model.item_factors = self.item_factors
            _ = self._model.YtY  # computed once here, then only read (thread-safe)

    def set_neighbours(self, rows: sp.csr_matrix | None) -> None:
        """The shoppers the similar-shoppers part compares a history with (`neighbour_rows`), or None."""
        #: Shoppers x products, EASE's input rows; read when `fusion_neighbours` is set.
        self.neighbours = None if rows is None else sp.csr_matrix(rows, dtype=np.float32)
        #: Where similarity is measured: each row's softmax shopper vector, scaled to unit length
        #: (a fused model always has its softmax part; without one the part is not used).
        self._neighbour_space: np.ndarray | None = None
        if self.neighbours is not None and self.softmax is not None:
            space = np.asarray(self.neighbours @ self.softmax.context, np.float32)
            self._neighbour_space = space / np.maximum(np.linalg.norm(space, axis=1, keepdims=True), 1e-12)

    @property
    def n_items(self) -> int:
        return len(self.product_ids)

    def item_index(self, product_ids: Iterable[int]) -> dict[int, int]:
        """Item indices of the given products that the model knows."""
        ids = np.fromiter(product_ids, dtype=np.int64)
        if len(ids) == 0 or self.n_items == 0:
            return {}
        pos = np.minimum(np.searchsorted(self.product_ids, ids), self.n_items - 1)
        hit = self.product_ids[pos] == ids
        return dict(zip(ids[hit].tolist(), pos[hit].tolist(), strict=True))

    # ------------------------------------------------------------------ scoring

    def _shopper_row(self, weights: Mapping[int, float], params: Params | None = None) -> sp.csr_matrix | None:
        """The shopper's known products as one row of the model's input, weighed exactly as
        training weighed every shopper's (BM25, then confidence or EASE's input); None if none is known."""
        known = self.item_index(weights)
        if not known:
            return None
        idx = np.fromiter(known.values(), dtype=np.int32)
        w = np.array([weights[p] for p in known], dtype=np.float64)
        order = np.argsort(idx)
        row = sp.csr_matrix((w[order], idx[order], np.array([0, len(idx)])), shape=(1, self.n_items))
        return model_input(row, params or self.params, self.idf, self.mean_length)

    def user_factor(self, weights: Mapping[int, float]) -> np.ndarray | None:
        """ALS: the shopper's factors recalculated from their weighted interactions (None if none is known)."""
        row = self._shopper_row(weights, self._als_params) if self._model is not None else None
        return None if row is None else self._model.recalculate_user(0, row)

    def _softmax_logits(self, weights: Mapping[int, float]) -> np.ndarray | None:
        row = self._shopper_row(weights, self._softmax_params)
        return None if row is None else self.softmax.logits(row)

    def _als_scores(self, weights: Mapping[int, float]) -> np.ndarray | None:
        u = self.user_factor(weights)
        if u is None or not np.any(u):  # all zeros: the model learnt nothing about these products
            return None
        # einsum, not BLAS: a multi-threaded BLAS matvec per request gave p95 spikes of
        # 5-20 ms on a busy 2-core box; einsum's own loop stays near 0.3 ms for 50k products.
        return np.einsum("ij,j->i", self.item_factors, u)

    def _ease_scores(self, weights: Mapping[int, float]) -> np.ndarray | None:
        row = self._shopper_row(weights, self._ease_params)
        if row is None:
            return None
        scores = np.asarray((row @ self.ease).todense(), dtype=np.float32).ravel()
        return scores if np.any(scores) else None

    def _neighbour_scores(self, weights: Mapping[int, float]) -> np.ndarray | None:
        """What the `neighbour_shoppers` most similar shoppers bought, each weighed by its
        similarity squared; None without neighbours who share anything with this history."""
        row = self._shopper_row(weights, self._neighbour_params)
        if row is None or self._neighbour_space is None or not len(self._neighbour_space):
            return None
        x = np.asarray(row.data, np.float32) @ self.softmax.context[row.indices]
        # einsum, not BLAS: see `_als_scores`.
        sims = np.einsum("ij,j->i", self._neighbour_space, x) / max(float(np.linalg.norm(x)), 1e-12)
        sims[sims >= 1.0 - 1e-6] = 0.0  # the shopper's own row, when their history has not moved since training
        k = min(max(self.params.neighbour_shoppers, 1), len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        w = np.maximum(sims[top], 0.0) ** 2
        if not w.any():
            return None
        scores = np.asarray(self.neighbours[top].T @ w, dtype=np.float32).ravel()
        return scores + 1e-6 * float(scores.max()) * self._log_popularity  # ties: the more popular first

    def raw_scores(self, weights: Mapping[int, float], banned: np.ndarray | None = None) -> np.ndarray | None:
        """The model's score of every product for this history: ALS, the recalculated factors
        times every product's; EASE, the shopper's row times the item-item weights; softmax,
        each product's chance to be the next first purchase, relative to the likeliest's (so
        the best is 1); fused, its parts combined over the products not `banned` (see `fuse`).
        None when the model knows none of the products, or learnt nothing about them."""
        if self.fused:
            return self._fused_scores(weights, banned)
        if self.softmax is not None:
            logits = self._softmax_logits(weights)
            if logits is None:
                return None
            return np.exp(logits - logits.max()).astype(np.float32)
        if self.ease is not None:
            return self._ease_scores(weights)
        return self._als_scores(weights)

    def _fused_scores(self, weights: Mapping[int, float], banned: np.ndarray | None) -> np.ndarray | None:
        p = self.params
        logits, als = self._softmax_logits(weights), self._als_scores(weights)
        if logits is None:  # the model knows none of the shopper's products
            return als
        ease_share = p.fusion_ease if self.ease is not None else 0.0
        similar = self._neighbour_scores(weights) if p.fusion_neighbours and self.neighbours is not None else None
        rest = 1.0 - p.fusion_neighbours if similar is not None else 1.0  # the three parts' share
        parts = [(logits, p.fusion_weight * (1.0 - ease_share) * rest)]
        if als is not None:  # None: ALS learnt nothing about these products
            parts.append((als, (1.0 - p.fusion_weight) * (1.0 - ease_share) * rest))
        if ease_share:
            ease = self._ease_scores(weights)
            if ease is not None:
                # EASE leaves most products at exactly 0: among those the more popular ranks first.
                parts.append((ease + 1e-6 * float(np.abs(ease).max()) * self._log_popularity, ease_share * rest))
        if similar is not None:
            parts.append((similar, p.fusion_neighbours))
        if len(parts) == 1:
            return np.exp(logits - logits.max()).astype(np.float32)
        return fuse(parts, p.fusion, p.fusion_k, banned)

    def _personal_scores(self, scores: np.ndarray, weights: Mapping[int, float]) -> np.ndarray:
        """The model's scores (the best scaled to 1), blended with popularity and with the
        "bought also" neighbours of the shopper's products as the parameters say."""
        p = self.params
        if self.ease is not None and not self.fused:
            # EASE leaves most products at exactly 0 (no weight from the shopper's products):
            # among those, and any other ties, the more popular product ranks first.
            scores = scores + 1e-6 * max(float(np.abs(scores).max()), 1e-9) * self._log_popularity
        if not (p.popularity_weight or p.related_weight):
            return scores
        scores /= max(float(scores.max()), 1e-9)
        if p.popularity_weight:
            scores += p.popularity_weight * self._log_trend
        table = self.relations.get("bought_also")
        if p.related_weight and table is not None and table.pairs:
            known = self.item_index(weights)
            share = p.related_weight * 10.0 / (10.0 + len(known))
            near = np.zeros(self.n_items, np.float32)
            for product_id, i in known.items():
                idx, sims, _counts = table.row(i)
                near[idx] += sims * np.log1p(weights[product_id])
            if near.max() > 0:
                scores = (1.0 - share) * scores + share * near / near.max()
        return scores

    def rank(self, history: ShopperHistory, n: int = 10, exclude: Iterable[int] = ()) -> list[Recommendation]:
        """Up to n products for this history, best first, without a database: personal
        scores when the model knows any of the shopper's products, then popular in the
        categories they viewed, then popular overall. Carted, bought and `exclude`d
        products are left out; merely viewed ones stay eligible."""
        if n <= 0 or self.n_items == 0:
            return []
        banned = np.zeros(self.n_items, dtype=bool)
        banned[list(self.item_index([*history.carted, *history.bought, *exclude]).values())] = True
        out: list[Recommendation] = []

        raw = self.raw_scores(history.weights, banned)
        if raw is not None:
            scores = self._personal_scores(raw, history.weights)
            scores[banned] = -np.inf
            k = min(n, int((~banned).sum()))
            if k:
                top = np.argpartition(-scores, k - 1)[:k]
                top = top[np.argsort(-scores[top], kind="stable")]
                out = [Recommendation(int(self.product_ids[i]), float(scores[i]), "personal") for i in top]
                banned[top] = True

        def fill(candidates: np.ndarray, reason: str) -> None:
            free = candidates[~banned[candidates]][: n - len(out)]
            out.extend(Recommendation(int(self.product_ids[i]), float(self.popularity[i]), reason) for i in free)
            banned[free] = True

        for category in history.viewed_categories:
            if len(out) >= n:
                break
            code = self._category_code.get(category)
            if code is not None:
                fill(self._popular_in[code], f"popular in {category}")
        if len(out) < n:
            fill(self._popular, "popular")
        return out

    # ------------------------------------------------------------------ serving

    def recommend(
        self, session: Session, shopper_id: int, n: int = 10, extra_interactions: Mapping[int, float] | None = None
    ) -> list[Recommendation]:
        """Up to n products for the shopper from their full current history in the
        database (plus `extra_interactions`, product id -> weight, not stored yet).
        Only products that still exist and are in stock are returned."""
        history = load_history(session, shopper_id, purchase_once=self.params.purchase_once)
        for product_id, weight in (extra_interactions or {}).items():
            history.weights[product_id] = history.weights.get(product_id, 0.0) + weight
        exclude: set[int] = set()
        for _attempt in range(3):
            wanted = 2 * n + 10  # head room for products gone or out of stock since training
            candidates = self.rank(history, wanted, exclude)
            available = _available(session, [r.product_id for r in candidates])
            good = [r for r in candidates if r.product_id in available]
            if len(good) >= n or len(candidates) < wanted:
                return good[:n]
            exclude.update(r.product_id for r in candidates if r.product_id not in available)
        return good[:n]

    def scores_for(self, session: Session, shopper_id: int, product_ids: Iterable[int]) -> dict[int, float]:
        """How well each given product suits the shopper, higher is better (e.g. a
        tie-breaker for search results): the personal score when the model knows any
        of the shopper's products, else popularity. Products unknown to the model are left out."""
        index = self.item_index(product_ids)
        if not index:
            return {}
        idx = np.fromiter(index.values(), dtype=np.int64)
        raw = self.raw_scores(load_history(session, shopper_id, purchase_once=self.params.purchase_once).weights)
        values = raw[idx] if raw is not None else self.popularity[idx]
        return dict(zip(index, values.tolist(), strict=True))

    def related(self, product_id: int, n: int = 5, session: Session | None = None) -> Related:
        """The product's three related lists, best first; empty when it has no data.
        With a session, products gone or out of stock since training are dropped."""
        index = self.item_index([product_id])
        lists: dict[str, list[RelatedItem]] = {}
        for name in RELATIONS:
            table = self.relations.get(name)
            if not index or table is None:
                lists[name] = []
                continue
            idx, scores, counts = table.row(index[product_id])
            lists[name] = [
                RelatedItem(int(self.product_ids[i]), float(s), int(c))
                for i, s, c in zip(idx, scores, counts, strict=True)
            ]
        if session is not None:
            available = _available(session, [r.product_id for items in lists.values() for r in items])
            lists = {k: [r for r in v if r.product_id in available] for k, v in lists.items()}
        return Related(**{k: v[:n] for k, v in lists.items()})


def fuse(parts: Sequence[tuple[np.ndarray, float]], how: str = "rank", k: float = 10.0,
         banned: np.ndarray | None = None) -> np.ndarray:
    """The fused model's scores (the best is 1) from its parts' scores, each (scores of every
    product, its share of the say), over the products not `banned` (those score 0). "rank":
    reciprocal-rank fusion, sum of share / (k + rank), ranks from 0 among the allowed products
    (what each model would show this shopper); "score": the sum of each model's scores
    standardised over the allowed products, shifted so the worst is 0."""
    size = len(parts[0][0])
    allowed = np.ones(size, dtype=bool) if banned is None else ~banned
    n = int(allowed.sum())
    out = np.zeros(size, np.float32)
    if n == 0:
        return out
    parts = [(np.asarray(scores, np.float64)[allowed], share) for scores, share in parts]
    fused = np.zeros(n)
    if how == "rank":
        for scores, share in parts:
            ranks = np.empty(n)
            ranks[np.argsort(-scores, kind="stable")] = np.arange(n)
            fused += share / (k + ranks)
    elif how == "score":
        for scores, share in parts:
            fused += share * (scores - scores.mean()) / max(float(scores.std()), 1e-12)
        fused -= fused.min()
    else:
        raise RecommenderError(f"unknown fusion {how!r}: expected 'rank' or 'score'")
    out[allowed] = fused / max(float(fused.max()), 1e-12)
    return out


def _available(session: Session, product_ids: list[int]) -> set[int]:
    if not product_ids:
        return set()
    rows = session.connection().execute(
        select(Product.id).where(col(Product.id).in_(product_ids), col(Product.in_stock))
    )
    return set(rows.scalars())


def _member(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of `values` occur in `sorted_ids`."""
    if len(sorted_ids) == 0:
        return np.zeros(len(values), dtype=bool)
    return sorted_ids[np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)] == values


def weighted_interactions(
    data: Interactions, catalog: np.ndarray, params: Params | None = None
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """(shopper ids, product ids, shoppers x products matrix of summed weights) over the
    products in `catalog` (sorted ids): views count each, a cart add once, a purchase once
    per order (once per shopper with `params.purchase_once`)."""
    params = params or Params()
    vm = _member(catalog, data.view_product)
    cm = _member(catalog, data.cart_product)
    bm = _member(catalog, data.buy_product)
    buy_shopper, buy_product = data.buy_shopper[bm], data.buy_product[bm]
    if params.purchase_once and len(buy_shopper):
        pairs = np.unique(np.stack([buy_shopper, buy_product]), axis=1)
        buy_shopper, buy_product = pairs[0], pairs[1]
    shopper = np.concatenate([data.view_shopper[vm], data.cart_shopper[cm], buy_shopper])
    product = np.concatenate([data.view_product[vm], data.cart_product[cm], buy_product])
    weight = np.concatenate([VIEW_WEIGHT * data.view_count[vm], np.full(int(cm.sum()), CART_WEIGHT),
                             np.full(len(buy_shopper), PURCHASE_WEIGHT)]).astype(np.float64)
    shoppers, u = np.unique(shopper, return_inverse=True)
    products, i = np.unique(product, return_inverse=True)
    matrix = sp.csr_matrix((weight, (u, i)), shape=(len(shoppers), len(products)))
    matrix.sum_duplicates()
    return shoppers, products, matrix


def bm25(weights: sp.csr_matrix, idf: np.ndarray, mean_length: float, b: float, k1: float = PURCHASE_WEIGHT
         ) -> sp.csr_matrix:
    """Per-shopper BM25 of a shoppers x items weight matrix: a heavy shopper's weights
    saturate (k1 is one purchase) and shrink with the length of their history; rare items count more."""
    out = weights.tocsr(copy=True)
    length = np.asarray(out.sum(axis=1)).ravel()
    norm = np.repeat(k1 * (1.0 - b + b * length / max(mean_length, 1e-9)), np.diff(out.indptr))
    out.data = out.data * (k1 + 1.0) / (out.data + norm) * idf[out.indices]
    return out


def fit(
    data: Interactions, params: Params | None = None, progress: ProgressFn | None = None,
    relations: Mapping[str, RelationTable] | None = None, contexts_cache: dict[tuple, Any] | None = None,
) -> Recommender:
    """Fit the personal model (as `params.model` says), popularity and the three relation
    tables on `data` (pure, no database). `relations` reuses the tables of an earlier fit on
    the same data (tuning refits with other parameters; the tables do not depend on them), and
    `contexts_cache` the softmax model's training pairs (a dict kept across fits of the same data)."""
    params = params or Params()
    if params.model == "fused":
        als = fit(data, part_params(params, "als"), progress, relations)
        softmax = fit(data, part_params(params, "softmax"), progress, als.relations, contexts_cache)
        ease = None
        if "ease" in fused_parts(params) and softmax.softmax is not None:
            if als.n_items > EASE_MAX_ITEMS:
                log.warning("EASE handles up to %d products, the store has %d: the fused model leaves it out",
                            EASE_MAX_ITEMS, als.n_items)
            else:
                ease = fit(data, part_params(params, "ease"), progress, als.relations)
        fused = fuse_models(als, softmax, params, ease)
        if fused.fused and params.fusion_neighbours > 0:
            fused.set_neighbours(neighbour_rows(data, fused))
        return fused
    report = progress or (lambda _step, _done, _total: None)
    order = np.argsort(data.catalog_ids)
    catalog = np.asarray(data.catalog_ids, np.int64)[order]
    catalog_category = [data.catalog_categories[i] for i in order]
    shoppers, products, weights = weighted_interactions(data, catalog, params)
    if len(products) == 0:
        raise RecommenderError("no product views, cart adds or purchases to learn from yet")
    product_category = [catalog_category[i] for i in np.searchsorted(catalog, products)]
    categories = sorted(set(product_category))
    code = {c: i for i, c in enumerate(categories)}
    item_category = np.array([code[c] for c in product_category], np.int32)
    vm, bm = _member(products, data.view_product), _member(products, data.buy_product)
    vi = np.searchsorted(products, data.view_product[vm])
    bi = np.searchsorted(products, data.buy_product[bm])
    df = np.diff(weights.tocsc().indptr)
    idf = np.log1p(len(shoppers) / np.maximum(df, 1)).astype(np.float32)
    idf /= idf.mean()
    if params.model == "ease" and len(products) > EASE_MAX_ITEMS:
        log.warning("EASE handles up to %d products, the store has %d: training ALS instead",
                    EASE_MAX_ITEMS, len(products))
        params = replace(params, model="als")
    if params.model == "softmax" and len(products) > SOFTMAX_MAX_ITEMS:
        log.warning("the softmax model handles up to %d products, the store has %d: training ALS instead",
                    SOFTMAX_MAX_ITEMS, len(products))
        params = replace(params, model="als")
    mean_length = input_length(weights, params)
    contexts = None
    if params.model == "softmax":
        dated = data.buy_time is not None and data.view_time is not None and data.cart_time is not None
        cutoffs = window_cutoffs(data, params.softmax_windows, params.softmax_window_share) if dated else []
        frozen = params
        key = tuple(getattr(params, k) for k in CONTEXT_FIELDS)
        contexts = (contexts_cache or {}).get(key)
        if contexts is None:
            contexts = first_purchase_contexts(
                data, products, cutoffs, lambda d: weighted_interactions(d, products, frozen),
                lambda w: model_input(w, frozen, idf, mean_length), cold=params.softmax_cold,
                launched=params.softmax_launch,
            )
            if contexts_cache is not None:
                contexts_cache[key] = contexts
        if not np.any(np.diff(contexts.x.indptr)):  # nobody bought anything new after a history
            log.warning("the softmax model needs dated orders, and shoppers buying something new after "
                        "earlier orders: training ALS instead")
            params, contexts = replace(params, model="als"), None
    user_items = model_input(weights, params, idf, mean_length)

    ease = None
    softmax: SoftmaxWeights | None = None
    fit_counts: dict[str, int] = {}
    user_factors: np.ndarray | None = None
    if contexts is not None:
        with threadpool_limits(params.num_threads, "blas"):
            bags = [fit_softmax(contexts, len(products), replace(softmax_config(params), random_state=seed), report)
                    for seed in range(params.random_state, params.random_state + max(params.softmax_bags, 1))]
        softmax, info = bags[0] if len(bags) == 1 else (average_softmax([w for w, _i in bags]), bags[0][1])
        regularization = params.softmax_l2
        item_factors = np.zeros((len(products), 0), np.float32)
        fit_counts = {"softmax_contexts": int(info["contexts"]), "softmax_epochs": int(info["best_epoch"])}
    elif params.model == "ease":
        report("model", 0, 1)
        ease, regularization = fit_ease(user_items, params, num_threads=params.num_threads)
        item_factors = np.zeros((len(products), 0), np.float32)
        report("model", 1, 1)
    elif params.model == "als":
        # Scaled by shoppers per product: see Params.regularization.
        regularization = params.regularization * weights.nnz / len(products)
        model = _als(params, regularization, num_threads=params.num_threads)
        report("model", 0, params.iterations)
        with threadpool_limits(1, "blas"):
            model.fit(user_items, show_progress=False,
                      callback=lambda it, _s, _l: report("model", it + 1, params.iterations))
        if not np.any(model.item_factors):
            log.warning("ALS learnt nothing (all factors zero): regularization %.3g is too strong for alpha %.3g; "
                        "recommendations fall back to popularity", regularization, params.alpha)
        item_factors, user_factors = model.item_factors, model.user_factors
    else:
        raise RecommenderError(f"unknown model {params.model!r}: expected 'als', 'ease', 'softmax' or 'fused'")

    # Popularity: how many shoppers bought the product, then how many showed any interest.
    buyer_pairs = np.unique(np.searchsorted(shoppers, data.buy_shopper[bm]) * len(products) + bi)
    buyers = np.bincount(buyer_pairs % len(products), minlength=len(products))
    interested = np.diff(weights.tocsc().indptr)
    popularity = (buyers + interested / (interested.max() + 1.0)).astype(np.float32)
    trend = _recent_first_purchases(data, bm, shoppers, products, params.trend_days)

    report("relations", 0, len(RELATIONS))
    keys = {
        "bought_also": (data.buy_shopper[bm], bi),
        "same_order": (data.buy_order[bm], bi),
        "viewed_together": (data.view_session[vm], vi),
    }
    tables = dict(relations or {})
    for done, name in enumerate(RELATIONS, 1):
        if name in tables:
            continue
        baskets, items = keys[name]
        tables[name] = cooccurrence(baskets, items, len(products), min_support=params.min_support,
                                    keep=params.keep_related, heavy_basket=params.heavy_basket,
                                    max_basket=params.max_basket)
        report("relations", done, len(RELATIONS))
    report("relations", len(RELATIONS), len(RELATIONS))  # also when every table was reused (a fused fit's 2nd part)
    relations = tables

    counts = {
        "interactions": data.count,
        "shoppers": len(shoppers),
        "products": len(products),
        "nonzeros": int(weights.nnz),
        **({"ease_weights": int(ease.nnz)} if ease is not None else {}),
        **fit_counts,
        **{f"{name}_pairs": relations[name].pairs for name in RELATIONS},
    }
    return Recommender(
        version="unsaved", params=params, regularization=regularization, product_ids=products,
        categories=categories, item_category=item_category,
        popularity=popularity, item_factors=item_factors, relations=relations, shopper_ids=shoppers,
        user_factors=user_factors, counts=counts, idf=idf, mean_length=mean_length, trend=trend, ease=ease,
        softmax=softmax,
    )


def fuse_models(als: Recommender, softmax: Recommender, params: Params, ease: Recommender | None = None) -> Recommender:
    """One fused model (`params.model` "fused") from an ALS model and a softmax model (and, for
    `fusion_ease`, an EASE model) fitted on the same data with the same input weighing. When
    the softmax part could not be fitted (it trained ALS instead: no dated first purchases, too
    many products), the ALS part alone; without an EASE part, `fusion_ease` is 0."""
    if softmax.softmax is None:
        log.warning("the fused model needs the softmax model, which could not be fitted: ALS alone")
        return als
    if ease is None or ease.ease is None:
        params = replace(params, fusion_ease=0.0)
        ease = None
    for part, kind in ((als, "als"), (softmax, "softmax"), (ease, "ease")):
        if part is None:
            continue
        if part.params.model != kind or not np.array_equal(als.product_ids, part.product_ids):
            raise RecommenderError("a fused model needs an ALS, a softmax (and an EASE) model of the same products")
        for name in ("purchase_once", "bm25_b", "eps", "alpha"):  # the parts must read a history alike
            if getattr(als.params, name) != getattr(part.params, name):
                raise RecommenderError(f"the fused model's parts differ in {name}")
    counts = {**softmax.counts, **als.counts}
    if ease is not None:
        counts["ease_weights"] = ease.counts.get("ease_weights", int(ease.ease.nnz))
    return Recommender(
        version="unsaved", params=replace(params, model="fused"), regularization=als.regularization,
        product_ids=als.product_ids, categories=als.categories, item_category=als.item_category,
        popularity=als.popularity, item_factors=als.item_factors, relations=als.relations,
        shopper_ids=als.shopper_ids, user_factors=als.user_factors,
        counts=counts, idf=als.idf, mean_length=als.mean_length, trend=als.trend,
        softmax=softmax.softmax, ease=None if ease is None else ease.ease,
    )


def neighbour_rows(data: Interactions, model: Recommender) -> sp.csr_matrix:
    """The similar-shoppers part's shoppers (`Params.fusion_neighbours`): each shopper's history in
    `data` as EASE's input row over the model's products (BM25 as the model's, log-scaled
    weights), for the NEIGHBOURS_MAX shoppers with the most products."""
    params = replace(model.params, model="ease", ease_binary=False)
    _shoppers, products, weights = weighted_interactions(data, model.product_ids, params)
    cols = np.searchsorted(model.product_ids, products)
    rows = model_input(weights, params, model.idf[cols], model.mean_length).tocoo()
    out = sp.csr_matrix((rows.data, (rows.row, cols[rows.col])), shape=(weights.shape[0], model.n_items))
    if out.shape[0] > NEIGHBOURS_MAX:
        keep = np.argsort(-np.diff(out.indptr), kind="stable")[:NEIGHBOURS_MAX]
        out = out[np.sort(keep)]
    return out.astype(np.float32)


def average_softmax(fits: list[SoftmaxWeights]) -> SoftmaxWeights:
    """One model whose logits are the mean of the given models' logits: their embeddings side
    by side, the targets divided by their number (so serving and artifacts are unchanged)."""
    k = len(fits)
    return SoftmaxWeights(
        np.mean([w.bias for w in fits], axis=0).astype(np.float32),
        np.concatenate([w.context for w in fits], axis=1),
        (np.concatenate([w.target for w in fits], axis=1) / k).astype(np.float32),
    )


def softmax_config(params: Params) -> SoftmaxConfig:
    return SoftmaxConfig(
        factors=params.softmax_factors, l2=params.softmax_l2, learning_rate=params.softmax_lr,
        bias_learning_rate=params.softmax_bias_lr,
        epochs=params.softmax_epochs, windows=params.softmax_windows, window_share=params.softmax_window_share,
        target_power=params.softmax_target_power, random_state=params.random_state,
    )


def _recent_first_purchases(
    data: Interactions, bm: np.ndarray, shoppers: np.ndarray, products: np.ndarray, days: float
) -> np.ndarray | None:
    """Per product, the shoppers whose first purchase of it falls in the last `days` of
    the history: what is being discovered now (new lines, the season). None without times."""
    if data.buy_time is None or not bm.any():
        return None
    when = data.buy_time[bm]
    pair = np.searchsorted(shoppers, data.buy_shopper[bm]) * len(products) + np.searchsorted(
        products, data.buy_product[bm])
    order = np.lexsort((when, pair))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pair[order][1:] != pair[order][:-1]
    pair, when = pair[order][first], when[order][first]
    recent = when >= when.max() - days * 86400.0
    return np.bincount(pair[recent] % len(products), minlength=len(products)).astype(np.float32)
