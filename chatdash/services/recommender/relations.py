"""Related products: co-occurrence tables over three kinds of basket, and the lists they give."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

RELATIONS = ("bought_also", "same_order", "viewed_together")


class RelatedItem(NamedTuple):
    product_id: int
    score: float  # Jaccard: baskets with both / baskets with either (heavy baskets down-weighted)
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
    heavy_basket: int = 200, max_basket: int = 5000,
) -> RelationTable:
    """Jaccard co-occurrence of items over baskets, computed as sparse products BᵀB.

    `baskets` and `items` are parallel arrays (any integer basket keys, item
    indices < n_items); repeats count once. A pair is kept when it shares at
    least `min_support` baskets; each item keeps its `keep` best partners.
    Jaccard (both / either) lets a popular partner score high only when it
    mostly comes with this item, so bestsellers do not fill every list.

    A basket with more than `heavy_basket` distinct items (a heavy shopper's
    history) counts `heavy_basket / size` of a basket, so that its items meet as
    many partners in all as a basket of `heavy_basket` would: heavy shoppers
    still count, without drowning the lists in everything they ever bought.
    Baskets over `max_basket` (bots, wholesale) add nothing.
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
    weight = np.minimum(1.0, heavy_basket / np.maximum(sizes, 1))  # per basket
    support = np.bincount(item, weights=weight[basket], minlength=n_items)  # weighted baskets holding each item
    # Single-item baskets count in `support` but add no pairs: drop them before the products.
    multi = sizes[basket] >= 2
    shape = (len(basket_codes), n_items)
    b = sp.csr_matrix((np.ones(int(multi.sum()), dtype=np.int32), (basket[multi], item[multi])), shape=shape)
    # sqrt on both sides of the product: each shared basket adds its weight once.
    w = sp.csr_matrix((np.sqrt(weight[basket[multi]]), (basket[multi], item[multi])), shape=shape)
    co, weighted = (b.T @ b).tocsr(), (w.T @ w).tocsr()
    co.sort_indices()
    weighted.sort_indices()  # the same pattern as `co`: its data lines up
    co = co.tocoo()
    rows, cols, both, shared = co.row, co.col, co.data, weighted.data
    m = (rows != cols) & (both >= min_support)
    rows, cols, both, shared = rows[m].astype(np.int64), cols[m].astype(np.int32), both[m].astype(np.int32), shared[m]
    if len(rows) == 0:
        return empty
    scores = (shared / (support[rows] + support[cols] - shared)).astype(np.float32)
    # Best first; ties by co-count, then by item index for a stable order.
    order = np.lexsort((cols, -both, -scores, rows))
    rows, cols, scores, both = rows[order], cols[order], scores[order], both[order]
    starts = np.searchsorted(rows, rows, side="left")
    m = np.arange(len(rows)) - starts < keep
    rows, cols, scores, both = rows[m], cols[m], scores[m], both[m]
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_items), out=indptr[1:])
    return RelationTable(indptr, cols, scores, both)
