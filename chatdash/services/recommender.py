"""Personalised recommendations and related products. No Reflex imports.

Training (`train`) reads every shopper's interactions from the database —
product views, cart adds, purchases — fits an `implicit` ALS model on them and
three co-occurrence tables ("bought also", "same order", "viewed together"),
and writes a versioned artifact directory, switching `latest.json` atomically.

Serving (`RecommenderStore.get()` -> `Recommender`) keeps the artifacts in
memory and picks up a newer training without a restart. `Recommender.recommend`
reads the shopper's full current history with a few indexed queries and
recalculates the shopper's factors from it, so views made a second ago count
without retraining. `Recommender.related` is a pure in-memory lookup.
`recommend_for` / `related_for` are the entry points for the UI: they use the
process-wide store and still answer before the first training.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from sqlalchemy import and_, case, func, select, true
from sqlalchemy.engine import Engine
from sqlmodel import Session, col
from threadpoolctl import threadpool_limits

from chatdash.models import Cart, CartLine, EventKind, Order, OrderLine, Product, StoreEvent
from chatdash.settings import DATA_DIR, get_settings

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]

#: Weight of one interaction. A view counts each time; a cart add once per
#: product; a purchase once per order.
VIEW_WEIGHT = 1.0
CART_WEIGHT = 3.0
PURCHASE_WEIGHT = 5.0

#: Product views without a visit id are grouped into sessions by this gap.
SESSION_GAP = timedelta(minutes=30)

RELATIONS = ("bought_also", "same_order", "viewed_together")
ARTIFACT_FORMAT = 1
LATEST = "latest.json"


def default_model_dir() -> Path:
    """Where trained artifacts live: data/models unless settings say otherwise."""
    configured = getattr(get_settings(), "model_dir", None)
    return Path(configured) if configured else DATA_DIR / "models"


class RecommenderError(RuntimeError):
    """Training or loading cannot be done; the text says why."""


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Params:
    """Everything that shapes a trained model; chosen with bench/bench_recommender_quality.py."""

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
    #: Related products kept per product and table.
    keep_related: int = 20
    #: Baskets with more distinct products than this (bots, wholesale) add no pairs.
    max_basket: int = 200


# --------------------------------------------------------------------------- data


@dataclass
class Interactions:
    """The training input: parallel arrays of database ids.

    `views` are aggregated per (shopper, session, product) with a count;
    `carts` are distinct (shopper, product) pairs; `purchases` distinct
    (shopper, order, product) triples. The catalog gives each product's category.
    """

    view_shopper: np.ndarray
    view_product: np.ndarray
    view_session: np.ndarray
    view_count: np.ndarray
    cart_shopper: np.ndarray
    cart_product: np.ndarray
    buy_shopper: np.ndarray
    buy_product: np.ndarray
    buy_order: np.ndarray
    catalog_ids: np.ndarray
    catalog_categories: list[str]

    @property
    def count(self) -> int:
        """Interactions as the store saw them: every view, cart pair and order line."""
        return int(self.view_count.sum()) + len(self.cart_shopper) + len(self.buy_shopper)


def _ints(values: Iterable[Any]) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64)


def sessionize(shopper: np.ndarray, seconds: np.ndarray, gap: float = SESSION_GAP.total_seconds()) -> np.ndarray:
    """Session numbers 0, 1, ... for events sorted by (shopper, time): a new session
    starts with each shopper and after every pause longer than `gap` seconds."""
    if len(shopper) == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.ones(len(shopper), dtype=bool)
    new[1:] = (shopper[1:] != shopper[:-1]) | (np.diff(seconds) > gap)
    return np.cumsum(new) - 1


def _json_object(payload: str | None) -> dict[str, Any]:
    try:
        data = json.loads(payload or "{}")
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _item_skus(data: dict[str, Any]) -> list[str]:
    items = data.get("items")
    if not isinstance(items, list):
        return []
    return [i["sku"] for i in items if isinstance(i, dict) and isinstance(i.get("sku"), str)]


def _cart_payload(payload: str | None) -> tuple[list[str], str | None]:
    """The skus a cart event lists (the whole cart, as stores report it) and the sku it added."""
    data = _json_object(payload)
    added = data.get("sku")
    return _item_skus(data), added if isinstance(added, str) else None


def _order_payload(payload: str | None) -> tuple[str | None, list[str]]:
    """The order id and skus of an order event."""
    data = _json_object(payload)
    order_id = data.get("order_id")
    return (order_id if isinstance(order_id, str) else None), _item_skus(data)


def _cart_products(product_id: int | None, payload: str | None, sku_to_id: Mapping[str, int]) -> set[int]:
    """Products of one cart event: its product and every sku its payload names."""
    skus, added = _cart_payload(payload)
    found = {sku_to_id[s] for s in [*skus, added] if s in sku_to_id}
    if product_id is not None:
        found.add(product_id)
    return found


def load_interactions(
    engine: Engine, until: datetime | None = None, progress: ProgressFn | None = None
) -> Interactions:
    """Read views, cart adds and purchases (those before `until`, when given) from the database.
    `progress("load", done, 5)` follows the five reads."""
    report = progress or (lambda _step, _done, _total: None)
    ev = StoreEvent.__table__.c
    report("load", 0, 5)
    with engine.connect() as conn:
        catalog = conn.execute(select(Product.id, Product.sku, Product.category).order_by(Product.id)).all()
        sku_to_id = {sku: pid for pid, sku, _cat in catalog}
        report("load", 1, 5)

        def before(column: Any) -> Any:
            return column < until if until is not None else true()

        is_view = and_(ev.kind == EventKind.PRODUCT_VIEW.value, ev.product_id.is_not(None), before(ev.occurred_at))
        grouped = conn.execute(
            select(ev.shopper_id, ev.product_id, ev.visit_id, func.count())
            .where(is_view, ev.visit_id.is_not(None))
            .group_by(ev.shopper_id, ev.visit_id, ev.product_id)
        ).all()
        loose = conn.execute(
            select(ev.shopper_id, ev.product_id, ev.occurred_at)
            .where(is_view, ev.visit_id.is_(None))
            .order_by(ev.shopper_id, ev.occurred_at)
        ).all()
        report("load", 2, 5)
        # Sessions without a visit get negative keys, so they never meet a visit id.
        loose_session = -1 - sessionize(_ints(r[0] for r in loose), np.array([r[2].timestamp() for r in loose]))

        carts: set[tuple[int, int]] = set()
        for shopper_id, product_id, payload in conn.execute(
            select(ev.shopper_id, ev.product_id, ev.payload).where(
                ev.kind == EventKind.CART.value, before(ev.occurred_at)
            )
        ):
            carts.update((shopper_id, p) for p in _cart_products(product_id, payload, sku_to_id))
        report("load", 3, 5)
        lines = conn.execute(
            select(Cart.shopper_id, CartLine.product_id)
            .join(Cart, col(Cart.id) == CartLine.cart_id)
            .where(before(Cart.updated_at))
        )
        carts.update((shopper_id, product_id) for shopper_id, product_id in lines)
        report("load", 4, 5)
        buys = conn.execute(
            select(Order.shopper_id, OrderLine.product_id, OrderLine.order_id)
            .join(Order, col(Order.id) == OrderLine.order_id)
            .where(before(Order.ordered_at))
        ).all()
    report("load", 5, 5)
    return Interactions(
        view_shopper=np.concatenate([_ints(r[0] for r in grouped), _ints(r[0] for r in loose)]),
        view_product=np.concatenate([_ints(r[1] for r in grouped), _ints(r[1] for r in loose)]),
        view_session=np.concatenate([_ints(r[2] for r in grouped), loose_session]),
        view_count=np.concatenate([_ints(r[3] for r in grouped), np.ones(len(loose), dtype=np.int64)]),
        cart_shopper=_ints(s for s, _p in carts),
        cart_product=_ints(p for _s, p in carts),
        buy_shopper=_ints(r[0] for r in buys),
        buy_product=_ints(r[1] for r in buys),
        buy_order=_ints(r[2] for r in buys),
        catalog_ids=_ints(r[0] for r in catalog),
        catalog_categories=[r[2] for r in catalog],
    )


# --------------------------------------------------------------------------- relations


class RelatedItem(NamedTuple):
    product_id: int
    score: float  # Jaccard: baskets with both / baskets with either
    co_count: int  # baskets with both


@dataclass(frozen=True)
class Related:
    bought_also: list[RelatedItem]
    same_order: list[RelatedItem]
    viewed_together: list[RelatedItem]

    @property
    def empty(self) -> bool:
        return not (self.bought_also or self.same_order or self.viewed_together)


@dataclass(frozen=True)
class RelationTable:
    """Each item's related items, best first, in CSR layout (row = item index)."""

    indptr: np.ndarray
    indices: np.ndarray
    scores: np.ndarray
    counts: np.ndarray

    def row(self, item: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b = self.indptr[item], self.indptr[item + 1]
        return self.indices[a:b], self.scores[a:b], self.counts[a:b]

    @property
    def pairs(self) -> int:
        return len(self.indices)


def cooccurrence(
    baskets: np.ndarray, items: np.ndarray, n_items: int, *, min_support: int = 2, keep: int = 20,
    max_basket: int = 200,
) -> RelationTable:
    """Jaccard co-occurrence of items over baskets, computed as the sparse product BᵀB.

    `baskets` and `items` are parallel arrays (any integer basket keys, item
    indices < n_items); repeats count once. A pair is kept when it shares at
    least `min_support` baskets; each item keeps its `keep` best partners.
    Jaccard (both / either) lets a popular partner score high only when it
    mostly comes with this item, so bestsellers do not fill every list.
    """
    empty = RelationTable(np.zeros(n_items + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32),
                          np.zeros(0, np.int32))
    if len(items) == 0:
        return empty
    basket_codes, basket = np.unique(np.asarray(baskets, np.int64), return_inverse=True)
    pairs = np.unique(basket.astype(np.int64) * n_items + np.asarray(items, np.int64))  # repeats count once
    basket, item = pairs // n_items, pairs % n_items
    sizes = np.bincount(basket, minlength=len(basket_codes))
    ok = sizes[basket] <= max_basket
    basket, item = basket[ok], item[ok]
    support = np.bincount(item, minlength=n_items)  # baskets holding each item
    # Single-item baskets count in `support` but add no pairs: drop them before the product.
    multi = sizes[basket] >= 2
    b = sp.csr_matrix(
        (np.ones(int(multi.sum()), dtype=np.int32), (basket[multi], item[multi])),
        shape=(len(basket_codes), n_items),
    )
    co = (b.T @ b).tocoo()
    rows, cols, both = co.row, co.col, co.data
    m = (rows != cols) & (both >= min_support)
    rows, cols, both = rows[m].astype(np.int64), cols[m].astype(np.int32), both[m].astype(np.int32)
    if len(rows) == 0:
        return empty
    scores = (both / (support[rows] + support[cols] - both)).astype(np.float32)
    # Best first; ties by co-count, then by item index for a stable order.
    order = np.lexsort((cols, -both, -scores, rows))
    rows, cols, scores, both = rows[order], cols[order], scores[order], both[order]
    starts = np.searchsorted(rows, rows, side="left")
    m = np.arange(len(rows)) - starts < keep
    rows, cols, scores, both = rows[m], cols[m], scores[m], both[m]
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_items), out=indptr[1:])
    return RelationTable(indptr, cols, scores, both)


# --------------------------------------------------------------------------- recommender


@dataclass(frozen=True)
class Recommendation:
    product_id: int
    score: float
    reason: str  # "personal", "popular in <category>" or "popular"


@dataclass
class ShopperHistory:
    """What the shopper did, as the serving side reads it from the database."""

    weights: dict[int, float] = field(default_factory=dict)  # product id -> weighted interactions
    carted: set[int] = field(default_factory=set)  # in the cart now
    bought: set[int] = field(default_factory=set)
    viewed_categories: list[str] = field(default_factory=list)  # most viewed first


def confidence(weights: np.ndarray, params: Params) -> np.ndarray:
    """ALS confidence of weighted interactions: log scaling so that a hundred views
    do not outweigh a purchase by twentyfold."""
    return (1.0 + params.alpha * np.log1p(np.asarray(weights, np.float64) / params.eps)).astype(np.float32)


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
    ) -> None:
        self.version = version
        self.params = params
        self.regularization = regularization  # the effective value ALS used
        self.product_ids = np.asarray(product_ids, np.int64)  # sorted: item index -> product id
        self.categories = categories
        self.item_category = np.asarray(item_category, np.int32)
        self.popularity = np.asarray(popularity, np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.relations = dict(relations)
        self.shopper_ids = shopper_ids
        self.user_factors = user_factors
        self.counts = dict(counts or {})
        self._category_code = {c: i for i, c in enumerate(categories)}
        # Stable sorts: equal popularity keeps product id order, so fallbacks are deterministic.
        self._popular = np.argsort(-self.popularity, kind="stable")
        self._popular_in = [self._popular[self.item_category[self._popular] == c] for c in range(len(categories))]
        # One thread per request: a web server serves many shoppers at once.
        self._model = _als(params, regularization, num_threads=1)
        self._model.item_factors = self.item_factors
        _ = self._model.YtY  # computed once here, then only read (thread-safe)

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

    def user_factor(self, weights: Mapping[int, float]) -> np.ndarray | None:
        """The shopper's factors recalculated from their weighted interactions (None if none is known)."""
        known = self.item_index(weights)
        if not known:
            return None
        idx = np.fromiter(known.values(), dtype=np.int32)
        w = np.array([weights[p] for p in known], dtype=np.float64)
        order = np.argsort(idx)
        row = sp.csr_matrix(
            (confidence(w[order], self.params), idx[order], np.array([0, len(idx)])), shape=(1, self.n_items)
        )
        return self._model.recalculate_user(0, row)

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

        u = self.user_factor(history.weights)
        if u is not None and np.any(u):  # all zeros: the model learnt nothing about these products
            # einsum, not BLAS: a multi-threaded BLAS matvec per request gave p95 spikes of
            # 5-20 ms on a busy 2-core box; einsum's own loop stays near 0.3 ms for 50k products.
            scores = np.einsum("ij,j->i", self.item_factors, u)
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
        history = load_history(session, shopper_id)
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
        u = self.user_factor(load_history(session, shopper_id).weights)
        values = self.item_factors[idx] @ u if u is not None and np.any(u) else self.popularity[idx]
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


def recommend_for(
    session: Session, shopper_id: int, n: int = 10, store: RecommenderStore | None = None
) -> list[Recommendation]:
    """The shopper's recommendations from the latest trained model; before the first
    training, the most ordered products (one aggregate query) so the panel is never empty."""
    model = (store or get_store()).get()
    if model is not None:
        return model.recommend(session, shopper_id, n)
    history = load_history(session, shopper_id)
    skip = history.bought | history.carted
    orders = func.count(OrderLine.id)
    rows = session.connection().execute(
        select(OrderLine.product_id, orders)
        .join(Product, col(Product.id) == OrderLine.product_id)
        .where(col(Product.in_stock))
        .group_by(OrderLine.product_id)
        .order_by(orders.desc(), OrderLine.product_id)
        .limit(n + len(skip))
    ).all()
    return [Recommendation(pid, float(count), "popular") for pid, count in rows if pid not in skip][:n]


def related_for(
    session: Session, product_id: int, n: int = 5, store: RecommenderStore | None = None
) -> Related:
    """The related-products popup's three lists (empty before the first training)."""
    model = (store or get_store()).get()
    return model.related(product_id, n, session) if model is not None else Related([], [], [])


def _available(session: Session, product_ids: list[int]) -> set[int]:
    if not product_ids:
        return set()
    rows = session.connection().execute(
        select(Product.id).where(col(Product.id).in_(product_ids), col(Product.in_stock))
    )
    return set(rows.scalars())


def load_history(session: Session, shopper_id: int, *, max_events: int = 5000) -> ShopperHistory:
    """The shopper's weighted interactions, cart, purchases and viewed categories, read
    with a few indexed queries (their latest `max_events` events, all their orders).

    Purchases are the shopper's order lines, plus the items of order events the
    browser reported without a matching order (tracking keeps those as events only).
    They count for this shopper alone; training leaves them out, so a forged stream
    of orders cannot reach the shared related-products tables.
    """
    ev = StoreEvent.__table__.c
    conn = session.connection()
    history = ShopperHistory()
    weights: Counter[int] = Counter()
    # Filtering on the shopper alone keeps SQLite on ix_storeevent_shopper_time (without
    # ANALYZE statistics it would pick the kind index and scan every view in the store).
    with_payload = ev.kind.in_([EventKind.CART.value, EventKind.ORDER.value])
    events = conn.execute(
        select(ev.kind, ev.product_id, case((with_payload, ev.payload), else_=None))
        .where(ev.shopper_id == shopper_id)
        .order_by(ev.occurred_at.desc(), ev.id.desc())
        .limit(max_events)
    ).all()
    views = Counter(pid for kind, pid, _p in events if kind == EventKind.PRODUCT_VIEW.value and pid is not None)
    carts = [(pid, *_cart_payload(payload)) for kind, pid, payload in events if kind == EventKind.CART.value]
    orders = [_order_payload(payload) for kind, _pid, payload in events if kind == EventKind.ORDER.value]

    skus = {s for _pid, items, added in carts for s in [*items, added] if s} | {
        s for _order_id, items in orders for s in items}
    sku_to_id = _ids_of_skus(conn, skus)
    category_of = dict(conn.execute(select(Product.id, Product.category).where(col(Product.id).in_(views))).all()) \
        if views else {}

    for product_id, n in views.items():
        weights[product_id] += VIEW_WEIGHT * n
    by_category: Counter[str] = Counter()
    for product_id, n in views.items():
        if product_id in category_of:
            by_category[category_of[product_id]] += n
    history.viewed_categories = [c for c, _n in sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))]

    in_cart_now = conn.execute(
        select(CartLine.product_id).join(Cart, col(Cart.id) == CartLine.cart_id).where(Cart.shopper_id == shopper_id)
    ).scalars().all()
    history.carted = set(in_cart_now)
    if carts:  # the latest cart event lists what is in the cart now, as the store saw it
        history.carted |= {sku_to_id[s] for s in carts[0][1] if s in sku_to_id}
    carted_ever = set(in_cart_now) | {pid for pid, _items, _added in carts if pid is not None} | {
        sku_to_id[s] for _pid, items, added in carts for s in [*items, added] if s in sku_to_id}
    for product_id in carted_ever:
        weights[product_id] += CART_WEIGHT

    lines = conn.execute(
        select(Order.external_id, OrderLine.product_id)
        .join(Order, col(Order.id) == OrderLine.order_id)
        .where(Order.shopper_id == shopper_id)
    ).all()
    seen_orders = {external_id for external_id, _pid in lines}
    bought = [product_id for _external_id, product_id in lines]
    for order_id, items in orders:
        if order_id not in seen_orders:
            seen_orders.add(order_id)
            bought += {sku_to_id[s] for s in items if s in sku_to_id}
    for product_id in bought:
        weights[product_id] += PURCHASE_WEIGHT
    history.bought = set(bought)
    history.weights = dict(weights)
    return history


def _ids_of_skus(conn: Any, skus: set[str]) -> dict[str, int]:
    if not skus:
        return {}
    return dict(conn.execute(select(Product.sku, Product.id).where(col(Product.sku).in_(skus))).all())


# --------------------------------------------------------------------------- fitting


def _member(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of `values` occur in `sorted_ids`."""
    if len(sorted_ids) == 0:
        return np.zeros(len(values), dtype=bool)
    return sorted_ids[np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)] == values


def weighted_interactions(data: Interactions, catalog: np.ndarray) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """(shopper ids, product ids, shoppers x products matrix of summed weights) over the
    products in `catalog` (sorted ids): views count each, a cart add once, a purchase once per order."""
    vm = _member(catalog, data.view_product)
    cm = _member(catalog, data.cart_product)
    bm = _member(catalog, data.buy_product)
    shopper = np.concatenate([data.view_shopper[vm], data.cart_shopper[cm], data.buy_shopper[bm]])
    product = np.concatenate([data.view_product[vm], data.cart_product[cm], data.buy_product[bm]])
    weight = np.concatenate([VIEW_WEIGHT * data.view_count[vm], np.full(int(cm.sum()), CART_WEIGHT),
                             np.full(int(bm.sum()), PURCHASE_WEIGHT)])
    shoppers, u = np.unique(shopper, return_inverse=True)
    products, i = np.unique(product, return_inverse=True)
    matrix = sp.csr_matrix((weight.astype(np.float64), (u, i)), shape=(len(shoppers), len(products)))
    matrix.sum_duplicates()
    return shoppers, products, matrix


def fit(data: Interactions, params: Params | None = None, progress: ProgressFn | None = None) -> Recommender:
    """Fit the ALS model, popularity and the three relation tables on `data` (pure, no database)."""
    params = params or Params()
    report = progress or (lambda _step, _done, _total: None)
    order = np.argsort(data.catalog_ids)
    catalog = np.asarray(data.catalog_ids, np.int64)[order]
    catalog_category = [data.catalog_categories[i] for i in order]
    shoppers, products, weights = weighted_interactions(data, catalog)
    if len(products) == 0:
        raise RecommenderError("no product views, cart adds or purchases to learn from yet")
    product_category = [catalog_category[i] for i in np.searchsorted(catalog, products)]
    categories = sorted(set(product_category))
    code = {c: i for i, c in enumerate(categories)}
    item_category = np.array([code[c] for c in product_category], np.int32)
    vm, bm = _member(products, data.view_product), _member(products, data.buy_product)
    vi = np.searchsorted(products, data.view_product[vm])
    bi = np.searchsorted(products, data.buy_product[bm])
    user_items = weights.copy()
    user_items.data = confidence(weights.data, params)

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

    # Popularity: how many shoppers bought the product, then how many showed any interest.
    buyer_pairs = np.unique(np.searchsorted(shoppers, data.buy_shopper[bm]) * len(products) + bi)
    buyers = np.bincount(buyer_pairs % len(products), minlength=len(products))
    interested = np.diff(weights.tocsc().indptr)
    popularity = (buyers + interested / (interested.max() + 1.0)).astype(np.float32)

    report("relations", 0, len(RELATIONS))
    keys = {
        "bought_also": (data.buy_shopper[bm], bi),
        "same_order": (data.buy_order[bm], bi),
        "viewed_together": (data.view_session[vm], vi),
    }
    relations = {}
    for done, name in enumerate(RELATIONS, 1):
        baskets, items = keys[name]
        relations[name] = cooccurrence(baskets, items, len(products), min_support=params.min_support,
                                       keep=params.keep_related, max_basket=params.max_basket)
        report("relations", done, len(RELATIONS))

    counts = {
        "interactions": data.count,
        "shoppers": len(shoppers),
        "products": len(products),
        "nonzeros": int(weights.nnz),
        **{f"{name}_pairs": relations[name].pairs for name in RELATIONS},
    }
    return Recommender(
        version="unsaved", params=params, regularization=regularization, product_ids=products,
        categories=categories, item_category=item_category,
        popularity=popularity, item_factors=model.item_factors, relations=relations, shopper_ids=shoppers,
        user_factors=model.user_factors, counts=counts,
    )


# --------------------------------------------------------------------------- artifacts


@dataclass(frozen=True)
class ArtifactInfo:
    version: str
    path: Path
    created_at: datetime
    interactions: int
    shoppers: int
    products: int
    seconds: float
    params: dict[str, Any]


def save(recommender: Recommender, out_dir: Path, *, seconds: float = 0.0) -> ArtifactInfo:
    """Write the artifacts to a new version directory and point latest.json at it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC)
    version = created.strftime("%Y%m%dT%H%M%S%fZ")
    while (out_dir / version).exists():  # two trainings within one microsecond
        version += "x"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide it from an app running as another user
        np.save(tmp / "item_factors.npy", recommender.item_factors)
        if recommender.user_factors is not None and recommender.shopper_ids is not None:
            np.save(tmp / "user_factors.npy", np.asarray(recommender.user_factors, np.float32))
            np.save(tmp / "shopper_ids.npy", recommender.shopper_ids)
        np.savez(tmp / "items.npz", product_ids=recommender.product_ids, category=recommender.item_category,
                 popularity=recommender.popularity)
        for name, table in recommender.relations.items():
            np.savez(tmp / f"{name}.npz", indptr=table.indptr, indices=table.indices, scores=table.scores,
                     counts=table.counts)
        manifest = {
            "format": ARTIFACT_FORMAT,
            "version": version,
            "created_at": created.isoformat(),
            "seconds": round(seconds, 3),
            "counts": recommender.counts,
            "params": asdict(recommender.params),
            "regularization": recommender.regularization,
            "categories": recommender.categories,
            "weights": {"view": VIEW_WEIGHT, "cart": CART_WEIGHT, "purchase": PURCHASE_WEIGHT},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        final = out_dir / version
        os.rename(tmp, final)  # the version appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_atomic(out_dir / LATEST, json.dumps({"version": version, "created_at": created.isoformat()}))
    recommender.version = version
    _prune(out_dir, keep=3, current=version)
    c = recommender.counts
    return ArtifactInfo(version, final, created, c.get("interactions", 0), c.get("shoppers", 0), c.get("products", 0),
                        seconds, asdict(recommender.params))


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _prune(out_dir: Path, keep: int, current: str) -> None:
    """Remove all but the newest `keep` versions (loaded models are in memory, not read from disk)."""
    versions = sorted(p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in versions[:-keep]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)
    for stale in out_dir.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def load_version(path: Path) -> Recommender:
    """Load one version directory into memory."""
    manifest = json.loads((path / "manifest.json").read_text())
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise RecommenderError(f"{path} has artifact format {manifest.get('format')}, expected {ARTIFACT_FORMAT}")
    known = Params.__dataclass_fields__
    params = Params(**{k: v for k, v in manifest["params"].items() if k in known})
    with np.load(path / "items.npz") as items:
        product_ids, category, popularity = items["product_ids"], items["category"], items["popularity"]
    relations = {}
    for name in RELATIONS:
        with np.load(path / f"{name}.npz") as t:
            relations[name] = RelationTable(t["indptr"], t["indices"], t["scores"], t["counts"])
    return Recommender(
        version=manifest["version"], params=params, regularization=manifest["regularization"],
        product_ids=product_ids, categories=manifest["categories"],
        item_category=category, popularity=popularity, item_factors=np.load(path / "item_factors.npy"),
        relations=relations, counts=manifest.get("counts"),
    )


def latest_version(out_dir: Path) -> str | None:
    try:
        return json.loads((out_dir / LATEST).read_text())["version"]
    except (FileNotFoundError, KeyError, ValueError):
        return None


def load_latest(out_dir: Path | None = None) -> Recommender | None:
    """The latest trained version, or None when nothing was trained yet."""
    out_dir = out_dir or default_model_dir()
    version = latest_version(out_dir)
    if version is None:
        return None
    try:
        return load_version(out_dir / version)
    except FileNotFoundError:
        log.warning("latest.json points to %s, which is missing", out_dir / version)
        return None


class RecommenderStore:
    """The loaded recommender, reloaded when latest.json changes (checked at most
    every `check_every` seconds). `get()` never blocks on a reload another thread is doing."""

    def __init__(self, out_dir: Path | None = None, check_every: float = 30.0) -> None:
        self.out_dir = out_dir or default_model_dir()
        self.check_every = check_every
        self._current: Recommender | None = None
        self._mtime: int | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()

    def get(self) -> Recommender | None:
        # The first caller waits for the first load; later ones keep serving the old model.
        if time.monotonic() >= self._next_check and self._lock.acquire(blocking=self._current is None):
            try:
                if time.monotonic() >= self._next_check:
                    self._refresh()
                    self._next_check = time.monotonic() + self.check_every
            finally:
                self._lock.release()
        return self._current

    def _refresh(self) -> None:
        try:
            mtime = (self.out_dir / LATEST).stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._mtime:
            return
        version = latest_version(self.out_dir)
        if version is not None and (self._current is None or self._current.version != version):
            try:
                loaded = load_version(self.out_dir / version)
            except (OSError, ValueError, KeyError, RecommenderError):
                log.exception("could not load recommender version %s; keeping the current one", version)
                return
            self._current = loaded
            log.info("recommender version %s loaded", version)
        self._mtime = mtime


_default_store: RecommenderStore | None = None
_default_store_lock = threading.Lock()


def get_store() -> RecommenderStore:
    """The process-wide store over default_model_dir()."""
    global _default_store
    with _default_store_lock:
        if _default_store is None:
            _default_store = RecommenderStore()
        return _default_store


# --------------------------------------------------------------------------- training


@contextlib.contextmanager
def _training_lock(out_dir: Path, *, blocking: bool) -> Iterator[bool]:
    """One training at a time per model directory, across processes (workers, CLI)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".train.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def train(
    engine: Engine, out_dir: Path | None = None, progress: ProgressFn | None = None, params: Params | None = None
) -> ArtifactInfo:
    """Train on everything in the database and publish a new version; waits for a
    training already running on the same directory.

    `progress(step, done, total)` is called for the steps "load", "model",
    "relations" and "save". Raises RecommenderError when there is nothing to learn from.
    """
    out_dir = out_dir or default_model_dir()
    with _training_lock(out_dir, blocking=True):
        return _train(engine, out_dir, progress, params)


def _train(engine: Engine, out_dir: Path, progress: ProgressFn | None, params: Params | None) -> ArtifactInfo:
    report = progress or (lambda _step, _done, _total: None)
    start = time.perf_counter()
    data = load_interactions(engine, progress=report)
    recommender = fit(data, params, report)
    report("save", 0, 1)
    info = save(recommender, out_dir, seconds=time.perf_counter() - start)
    report("save", 1, 1)
    return info


def train_if_due(
    engine: Engine, out_dir: Path | None = None, every: timedelta | None = None, params: Params | None = None
) -> ArtifactInfo | None:
    """Train when nothing was trained yet or, with `every`, when the latest version is
    older than that. Returns None when not due, when another process is training, or
    when there is no data yet. Meant for the app's start-up and schedule."""
    out_dir = out_dir or default_model_dir()
    with _training_lock(out_dir, blocking=False) as acquired:
        if not acquired:
            return None
        try:
            created = datetime.fromisoformat(json.loads((out_dir / LATEST).read_text())["created_at"])
        except (FileNotFoundError, KeyError, ValueError):
            created = None
        if created is not None and (every is None or datetime.now(UTC) - created < every):
            return None
        try:
            return _train(engine, out_dir, None, params)
        except RecommenderError as exc:
            log.info("recommender not trained: %s", exc)
            return None
