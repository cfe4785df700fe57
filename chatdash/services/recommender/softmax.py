"""A multinomial (softmax) model of first purchases: which product a shopper buys next for the first time.

    score(u, i) = b_i + p_u . q_i,    p_u = x_u E

`x_u` is the shopper's history as the model's input row (`model.model_input`: log-scaled
weights, L2-normalised), `E` a products x d matrix of "context" embeddings, `q_i` a
product's "target" embedding and `b_i` its bias (how readily shoppers try it). The
shopper's vector is built from their history (the FISM / asymmetric-factor style), so
any shopper, old or new, is served without refitting, and a view made a second ago counts.

It is fitted on the store's own history the way it is used: at several cutoffs (order
times leaving 10%, 20%, ... of the orders after them), each shopper's history before the
cutoff is an input and the products they bought **for the first time** in the window
after it are its targets. The loss is the cross-entropy of a softmax over every product
the shopper had not bought yet (exactly the products serving may show); dense logits
(shoppers x products) are small at a few thousand products. Adam, L2 on the embeddings,
and early stopping on the latest window of a fifth of the shoppers, held out.

Why: a grocery shopper's next new product follows log popularity plus a low-rank taste
(BENCHMARKS.md, issue 13). Confidence-weighted ALS spends itself on repeat staples, EASE^R
has no popularity term, and a plain popularity count ignores that popular products were
mostly bought already; this model estimates that multinomial choice directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from chatdash.services.recommender.interactions import Interactions, ProgressFn, interactions_before

log = logging.getLogger(__name__)

#: The logits of a batch are dense (contexts x products): more products than this train ALS instead.
SOFTMAX_MAX_ITEMS = 20_000
#: Contexts (a shopper at a cutoff) per gradient step: a sixteenth of them, within these bounds.
BATCH = (32, 512)
#: Early stopping needs at least this many held-out contexts; with fewer, all epochs run.
MIN_VALIDATION = 20

#: (shopper ids, product ids, shoppers x products weights) of some interactions.
Weigh = Callable[[Interactions], tuple[np.ndarray, np.ndarray, sp.csr_matrix]]
#: Weights -> the model's input rows (the same transform serving applies).
ToInput = Callable[[sp.csr_matrix], sp.csr_matrix]


@dataclass(frozen=True)
class SoftmaxConfig:
    """The fitting's knobs (from `model.Params`)."""

    factors: int = 32
    l2: float = 1e-4
    learning_rate: float = 0.01
    #: Adam's step size for the biases: larger, so that they settle before the embeddings grow.
    bias_learning_rate: float = 0.1
    epochs: int = 40
    patience: int = 3
    windows: int = 10
    window_share: float = 0.1
    #: Each context's weight in the loss is (its number of targets) ** this: 1 sums the
    #: log-likelihood of every target (Mult-DAE), 0 gives every shopper-and-window the same say.
    target_power: float = 1.0
    random_state: int = 42


@dataclass(frozen=True)
class SoftmaxWeights:
    """A fitted model: what serving needs (and what the artifact stores)."""

    bias: np.ndarray  # products
    context: np.ndarray  # products x d: what having the product in one's history says
    target: np.ndarray  # products x d: what draws a shopper to the product

    def logits(self, row: sp.csr_matrix) -> np.ndarray:
        """Every product's score for one input row (1 x products, as `model_input` gives it)."""
        p = np.asarray(row.data, np.float32) @ self.context[row.indices]
        # einsum, not BLAS: see Recommender.raw_scores (per-request BLAS threads spike p95).
        return np.einsum("ij,j->i", self.target, p) + self.bias


@dataclass(frozen=True)
class Contexts:
    """Training pairs: a shopper's history at a cutoff, and what they bought first after it."""

    x: sp.csr_matrix  # contexts x products: the model's input
    bought: sp.csr_matrix  # contexts x products: bought before the cutoff (masked out of the softmax)
    y: sp.csr_matrix  # contexts x products: first purchases in the window after the cutoff
    window: np.ndarray  # 0 for the latest window, 1 for the one before, ...
    shopper: np.ndarray  # the shopper's id


def window_cutoffs(data: Interactions, windows: int, share: float) -> list[float]:
    """Cutoffs, latest first: the order times leaving share, 2 share, ... of the orders after them."""
    if data.buy_time is None or len(data.buy_order) == 0:
        return []
    _orders, first = np.unique(data.buy_order, return_index=True)
    times = np.sort(data.buy_time[first])
    out: list[float] = []
    for k in range(1, windows + 1):
        q = 1.0 - k * share
        if q < -1e-9:
            break
        t = float(times[max(int(len(times) * q + 1e-9), 0)])
        if not out or t < out[-1]:
            out.append(t)
    return out


def first_purchase_contexts(
    data: Interactions, products: np.ndarray, cutoffs: list[float], weigh: Weigh, to_input: ToInput,
    *, cold: bool = False, launched: bool = False,
) -> Contexts:
    """One context per shopper and window who bought something new in the window, and had a
    history before its cutoff (or, with `cold`, had none: those teach the biases alone).
    `products` are the model's (sorted ids). With `launched`, a product nobody had bought by
    the end of a window (not on sale yet: launched later) is masked out of that window's
    softmax like the shopper's own purchases, so that its absence does not lower its bias."""
    assert data.buy_time is not None
    n = len(products)
    xs, masks, ys, windows, shoppers = [], [], [], [], []
    ends = [np.inf, *cutoffs]
    if launched:  # when each product was first bought by anyone
        first_sale = np.full(n, np.inf)
        sold = _known(products, data.buy_product)
        np.minimum.at(first_sale, np.searchsorted(products, data.buy_product[sold]), data.buy_time[sold])
    for w, cutoff in enumerate(cutoffs):
        before = interactions_before(data, cutoff)
        s_ids, p_ids, weights = weigh(before)
        in_window = (data.buy_time >= cutoff) & (data.buy_time < ends[w]) & _known(products, data.buy_product)
        if cold:  # every shopper who bought in the window, with or without a history
            rows_of = np.union1d(s_ids, data.buy_shopper[in_window])
        else:
            rows_of = s_ids
            in_window &= _known(s_ids, data.buy_shopper)
        cols = np.searchsorted(products, p_ids)
        weights = sp.csr_matrix((weights.data, cols[weights.indices], weights.indptr), shape=(len(s_ids), n))
        weights = _place_rows(weights, np.searchsorted(rows_of, s_ids), len(rows_of))
        known_b = _known(products, before.buy_product)
        bought = _pairs(np.searchsorted(rows_of, before.buy_shopper[known_b]),
                        np.searchsorted(products, before.buy_product[known_b]), len(rows_of), n)
        later = _pairs(np.searchsorted(rows_of, data.buy_shopper[in_window]),
                       np.searchsorted(products, data.buy_product[in_window]), len(rows_of), n)
        first = (later - later.multiply(bought)).tocsr()
        first.eliminate_zeros()
        rows = np.flatnonzero(np.diff(first.indptr) > 0)
        s_ids = rows_of
        if len(rows) == 0:
            continue
        xs.append(to_input(weights[rows]))
        mask = bought[rows]
        if launched:
            unsold_ids = np.flatnonzero(first_sale >= ends[w])
            if len(unsold_ids):
                k = len(unsold_ids)
                unsold = sp.csr_matrix((np.ones(len(rows) * k, np.float32), np.tile(unsold_ids, len(rows)),
                                        np.arange(len(rows) + 1) * k), shape=(len(rows), n))
                mask = mask + unsold
                mask.data[:] = 1.0
        masks.append(mask)
        ys.append(first[rows])
        windows.append(np.full(len(rows), w, np.int32))
        shoppers.append(s_ids[rows])
    if not xs:
        empty = sp.csr_matrix((0, n), dtype=np.float32)
        return Contexts(empty, empty, empty, np.zeros(0, np.int32), np.zeros(0, np.int64))
    return Contexts(
        sp.vstack(xs, format="csr").astype(np.float32),
        sp.vstack(masks, format="csr").astype(np.float32),
        sp.vstack(ys, format="csr").astype(np.float32),
        np.concatenate(windows),
        np.concatenate(shoppers),
    )


def _place_rows(m: sp.csr_matrix, at: np.ndarray, n_rows: int) -> sp.csr_matrix:
    """`m`'s rows moved to rows `at` of an otherwise empty n_rows-row matrix."""
    coo = m.tocoo()
    out = sp.csr_matrix((coo.data, (at[coo.row], coo.col)), shape=(n_rows, m.shape[1]))
    out.sort_indices()
    return out


def _known(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    if len(sorted_ids) == 0:
        return np.zeros(len(values), dtype=bool)
    return sorted_ids[np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)] == values


def _pairs(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """A 0/1 matrix with a one at every (row, col) given (repeats count once)."""
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_rows, n_cols))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def fit_softmax(
    ctx: Contexts, n_items: int, config: SoftmaxConfig, progress: ProgressFn | None = None
) -> tuple[SoftmaxWeights, dict[str, float]]:
    """Fit the model on `ctx`; returns the weights of the best epoch and what the fit did
    (contexts, epochs run, the best epoch, the held-out contexts' ndcg@10)."""
    report = progress or (lambda _step, _done, _total: None)
    rng = np.random.default_rng(config.random_state)
    # Held out for early stopping: the latest window of a fifth of its shoppers.
    latest = np.flatnonzero(ctx.window == 0)
    held = latest[rng.random(len(latest)) < 0.2] if len(latest) else latest
    if len(held) < MIN_VALIDATION:
        held = np.zeros(0, np.int64)
    train_rows = np.setdiff1d(np.arange(ctx.x.shape[0]), held)
    x, mask, y = ctx.x[train_rows], ctx.bought[train_rows], ctx.y[train_rows]
    weight = _context_weights(y, config.target_power)

    counts = np.asarray(y.sum(axis=0)).ravel()
    bias = np.log(counts + 1.0).astype(np.float32)
    bias -= bias.mean()
    # Target embeddings start at zero: the model starts as its biases alone (a popularity of
    # first purchases) and grows tastes only as far as the held-out shoppers confirm them.
    context = rng.normal(0.0, 0.1, (n_items, config.factors)).astype(np.float32)
    target = np.zeros((n_items, config.factors), np.float32)
    params = [bias, context, target]
    adam = _Adam(params, [config.bias_learning_rate, config.learning_rate, config.learning_rate])

    batch = int(np.clip(len(train_rows) // 16, *BATCH))
    held_x, held_mask, held_y = ctx.x[held], ctx.bought[held], ctx.y[held]
    held_weight = _context_weights(held_y, config.target_power)
    # Early stopping on the held-out cross-entropy (smoother than their ndcg, and what is fitted).
    best = (np.inf, 0, [p.copy() for p in params])
    epochs_run = 0
    report("model", 0, config.epochs)
    for epoch in range(config.epochs):
        epochs_run = epoch + 1
        order = rng.permutation(len(train_rows))
        for start in range(0, len(order), batch):
            idx = np.sort(order[start:start + batch])
            _loss, grads = loss_and_gradients(params, x[idx], mask[idx], y[idx], weight[idx], config.l2)
            adam.step(grads)
        if len(held) == 0:
            best = (0.0, epochs_run, params)
        else:
            loss = loss_and_gradients(params, held_x, held_mask, held_y, held_weight, 0.0, gradients=False)[0]
            log.debug("softmax epoch %d: held-out loss %.4f", epochs_run, loss)
            if loss < best[0]:
                best = (loss, epochs_run, [p.copy() for p in params])
            elif epochs_run - best[1] >= config.patience:
                report("model", config.epochs, config.epochs)
                break
        report("model", epochs_run, config.epochs)
    weights = SoftmaxWeights(*best[2])
    ndcg = _ndcg(weights, ctx, held) if len(held) else 0.0
    info = {"contexts": float(len(train_rows)), "held_out": float(len(held)), "epochs": float(epochs_run),
            "best_epoch": float(best[1]), "held_out_ndcg": round(ndcg, 5)}
    log.info("softmax: %d contexts, best epoch %d of %d, held-out ndcg@10 %.4f",
             len(train_rows), best[1], epochs_run, ndcg)
    return weights, info


def _context_weights(y: sp.csr_matrix, power: float) -> np.ndarray:
    """Each context's weight in the loss, (its targets) ** power, scaled to a mean of 1."""
    weight = np.asarray(y.sum(axis=1)).ravel() ** power
    return (weight / max(float(weight.mean()), 1e-12)).astype(np.float32) if len(weight) else weight


def loss_and_gradients(
    params: list[np.ndarray], x: sp.csr_matrix, mask: sp.csr_matrix, y: sp.csr_matrix, weight: np.ndarray,
    l2: float, *, gradients: bool = True,
) -> tuple[float, list[np.ndarray]]:
    """The loss of a batch of contexts and its gradients for [bias, context, target]: the mean
    over contexts of weight x (mean cross-entropy of the context's targets under a softmax over
    the products it had not bought), plus l2 / 2 x the squared embeddings."""
    bias, context, target = params
    p = np.asarray(x @ context)  # batch x d
    probs = _softmax(p @ target.T + bias, mask)
    k = np.maximum(np.asarray(y.sum(axis=1)).ravel(), 1.0)
    rows, cols = y.nonzero()
    n = x.shape[0]
    loss = -float(np.sum((weight / k)[rows] * np.log(np.maximum(probs[rows, cols], 1e-30)))) / n
    loss += 0.5 * l2 * float(np.sum(context ** 2) + np.sum(target ** 2))
    if not gradients:
        return loss, []
    # d loss / d logits = weight (softmax - y / |y|), averaged over the batch.
    g = probs
    g *= (weight / n)[:, None]
    g[rows, cols] -= (weight / k / n)[rows]
    grad_bias = g.sum(axis=0)
    grad_target = g.T @ p + l2 * target
    grad_context = np.asarray(x.T @ (g @ target)) + l2 * context
    return loss, [grad_bias, grad_context, grad_target]


def _softmax(logits: np.ndarray, mask: sp.csr_matrix) -> np.ndarray:
    """Row-wise softmax (in place) over the products not in `mask`."""
    rows, cols = mask.nonzero()
    logits[rows, cols] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def _ndcg(weights: SoftmaxWeights, ctx: Contexts, rows: np.ndarray, k: int = 10) -> float:
    """Mean ndcg@k of the held-out contexts' first purchases, ranking the products they had not bought."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    x, mask, y = ctx.x[rows], ctx.bought[rows], ctx.y[rows]
    scores = (x @ weights.context) @ weights.target.T + weights.bias
    r, c = mask.nonzero()
    scores[r, c] = -np.inf
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)
    hits = np.take_along_axis(y.toarray(), top, axis=1) > 0
    n_rel = np.minimum(np.diff(y.indptr), k)
    ideal = np.cumsum(discounts)[n_rel - 1]
    return float(np.mean(hits @ discounts / ideal))


class _Adam:
    """Adam (Kingma & Ba) over a few numpy arrays, updated in place."""

    def __init__(self, params: list[np.ndarray], lr: list[float], b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, b1, b2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        correction = np.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        for p, g, m, v, lr in zip(self.params, grads, self.m, self.v, self.lr, strict=True):
            scale = lr * correction
            g = np.asarray(g, np.float32)
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= scale * m / (np.sqrt(v) + self.eps)
