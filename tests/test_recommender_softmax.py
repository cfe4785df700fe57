"""The softmax model of first purchases: its training pairs, its gradients, the tuner choosing
it where first purchases follow popularity and taste, and its artifact served by a worker."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chatdash.services import recommender as rec
from chatdash.services.recommender import model as rec_model
from chatdash.services.recommender import softmax as rec_softmax
from tests.test_recommender import PARAMS, T0, StoreBuilder, ids, recommend
from tests.test_recommender_ease import DAY, _buys

SOFTMAX = replace(PARAMS, model="softmax", softmax_factors=8)


def test_training_pairs_are_the_history_before_a_cutoff_and_the_first_purchases_after_it() -> None:
    # Shopper 1: {1, 2} on day 0, {1, 3} on day 5, {4} on day 9. Shopper 2: {2} on day 1, {2, 5}
    # on day 6. Shopper 3: {6} on day 7, with no history before any cutoff.
    data = _buys([(1, 1, 0, 0.0), (1, 2, 0, 0.0), (2, 2, 1, 1.0), (1, 1, 2, 5.0), (1, 3, 2, 5.0),
                  (2, 2, 3, 6.0), (2, 5, 3, 6.0), (3, 6, 4, 7.0), (1, 4, 5, 9.0)], 6)
    products = np.arange(1, 7)
    cutoffs = [T0.timestamp() + 6 * DAY, T0.timestamp() + 2 * DAY]  # latest first: [day 6, ...), [day 2, day 6)
    ctx = rec_softmax.first_purchase_contexts(
        data, products, cutoffs, lambda d: rec.weighted_interactions(d, products, PARAMS), lambda w: w)

    def items(m: sp.csr_matrix, row: int) -> list[int]:
        return (m[row].indices + 1).tolist()

    assert ctx.window.tolist() == [0, 0, 1] and ctx.shopper.tolist() == [1, 2, 1]
    # Day 6 on: shopper 1 had bought 1, 2, 3 and then bought 4; shopper 2 re-bought 2 (not a
    # first purchase) and bought 5. Shopper 3 had no history: no pair.
    assert [items(ctx.x, r) for r in range(3)] == [[1, 2, 3], [2], [1, 2]]
    assert [items(ctx.bought, r) for r in range(3)] == [[1, 2, 3], [2], [1, 2]]
    assert [items(ctx.y, r) for r in range(3)] == [[4], [5], [3]]
    # The input is the history weighed as serving weighs it: product 1 in two orders by day 6, one by day 2.
    assert ctx.x[0, 0] == 2 * rec.PURCHASE_WEIGHT and ctx.x[2, 0] == rec.PURCHASE_WEIGHT

    # Six orders (days 0, 1, 5, 6, 7, 9): a quarter of them from day 7 on, half from day 6 on.
    times = rec_softmax.window_cutoffs(data, windows=2, share=0.25)
    assert times == [T0.timestamp() + 7 * DAY, T0.timestamp() + 6 * DAY]


def test_the_gradients_are_those_of_the_loss() -> None:
    rng = np.random.default_rng(0)
    n, d = 7, 3
    params = [rng.normal(size=n), rng.normal(size=(n, d)), rng.normal(size=(n, d))]
    x = sp.csr_matrix(np.where(rng.random((4, n)) < 0.4, rng.random((4, n)), 0.0))
    mask = sp.csr_matrix(np.eye(4, n, 3))  # each context has bought one product
    y = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
                                [0, 0, 1, 1, 0, 0, 0]], float))
    weight = np.array([1.0, 2.0, 0.5, 1.5])
    _loss, grads = rec_softmax.loss_and_gradients([p.copy() for p in params], x, mask, y, weight, 0.3)
    for k, p in enumerate(params):
        numeric = np.zeros_like(p)
        for at in np.ndindex(p.shape):
            for sign in (1.0, -1.0):
                moved = [q.copy() for q in params]
                moved[k][at] += sign * 1e-6
                numeric[at] += sign * rec_softmax.loss_and_gradients(moved, x, mask, y, weight, 0.3)[0] / 2e-6
        assert np.allclose(grads[k], numeric, atol=1e-6), k


def _taste_store(shoppers: int = 300, products: int = 80, seed: int = 0) -> rec.Interactions:
    """Shoppers buy products new to them, three an order, drawn from a softmax of the product's
    log popularity plus 2 where it is of their taste (one of four), over what they have not
    bought yet: the structure the softmax model has and popularity or confidence-weighted ALS lack."""
    rng = np.random.default_rng(seed)
    bias = rng.normal(0.0, 1.2, products)
    group = np.arange(products) % 4
    buys: list[tuple[int, int, int, float]] = []
    order = 0
    for shopper in range(1, shoppers + 1):
        preference = np.exp(bias + 2.0 * (group == rng.integers(4)))
        bought: set[int] = set()
        day = rng.uniform(0, 20)
        while day < 100:
            p = preference.copy()
            p[list(bought)] = 0.0
            basket = rng.choice(products, size=3, replace=False, p=p / p.sum()).tolist()
            bought.update(basket)
            buys += [(shopper, i + 1, order, day) for i in basket]
            order += 1
            day += rng.exponential(12)
    return _buys(buys, products)


def test_the_tuner_picks_the_softmax_model_where_first_purchases_follow_popularity_and_taste() -> None:
    tuning = rec.tune(_taste_store(), PARAMS, budget=120)

    assert tuning is not None and tuning.params.model == "softmax"
    by_model: dict[str, float] = {}
    for c in tuning.candidates:
        model = c["changes"].get("model", "als")
        by_model[model] = max(by_model.get(model, 0.0), c["ndcg@10"])
    assert by_model["softmax"] > by_model["als"] + 0.05
    assert tuning.model.ndcg > 1.15 * tuning.popularity.ndcg
    assert tuning.as_dict()["params"]["model"] == "softmax"


def test_the_softmax_model_learns_each_products_pull_and_the_shoppers_taste() -> None:
    data = _taste_store()
    model = rec.fit(data, SOFTMAX)
    assert model.softmax is not None and model.params.model == "softmax" and model.counts["softmax_contexts"] > 100
    # A shopper new to the model (no refit): three products of taste 1 (2, 6, 10) bring taste 1 first.
    history = rec.ShopperHistory(weights={2: rec.PURCHASE_WEIGHT, 6: rec.PURCHASE_WEIGHT, 10: rec.PURCHASE_WEIGHT},
                                 bought={2, 6, 10})
    ranked = model.rank(history, 10)
    assert all(r.reason == "personal" for r in ranked) and not {2, 6, 10} & set(ids(ranked))
    assert sum((p - 1) % 4 == 1 for p in ids(ranked)) >= 6  # a quarter of the products are of taste 1
    assert ranked[0].score == pytest.approx(1.0)  # the likeliest product's chance, relative to itself


def test_without_dated_first_purchases_or_over_the_size_cap_it_trains_als(monkeypatch: pytest.MonkeyPatch) -> None:
    one_order_each = _buys([(s, 1 + (s + k) % 6, s, float(s)) for s in range(1, 30) for k in range(2)], 6)
    model = rec.fit(one_order_each, SOFTMAX)  # nobody came back: no first purchase after a history
    assert model.params.model == "als" and model.softmax is None

    monkeypatch.setattr(rec_model, "SOFTMAX_MAX_ITEMS", 50)
    model = rec.fit(_taste_store(shoppers=40), SOFTMAX)
    assert model.params.model == "als" and model.softmax is None and model.item_factors.shape[1] == PARAMS.factors


def two_taste_store(engine: Engine, *, views: bool = True) -> tuple[list[int], int]:
    """12 products in two tastes (0-5, 6-11), 30 shoppers ordering three times
    each (and viewing one more product), and a shopper who bought p0 and p1:
    (the products, that shopper)."""
    b = StoreBuilder(engine)
    with b.batch():
        p = [b.product(f"p{i}", "Cat A" if i < 6 else "Cat B") for i in range(12)]
        for k in range(30):  # two tastes: products 0-5 and 6-11; each shopper orders three times
            s = b.shopper()
            taste = p[:6] if k % 2 else p[6:]
            for n in range(3):
                b.order(s, [taste[(k + n) % 6], taste[(k + n + 2) % 6]], T0 + timedelta(days=k + 10 * n))
            if views:
                b.view(s, taste[(k + 4) % 6], at=T0 + timedelta(days=k + 25))
        shopper = b.shopper()
        b.order(shopper, [p[0], p[1]], T0 + timedelta(days=40))
    return p, shopper


def assert_serves_like(engine: Engine, served, fitted, p: list[int], shopper: int) -> None:
    """The served version recommends what the fresh fit does: to `two_taste_store`'s
    shopper, products of their own taste they have not bought."""
    got = recommend(engine, served, shopper)
    assert got == recommend(engine, fitted, shopper)
    assert got[0].reason == "personal" and got[0].product_id in p[2:6]  # the shopper's taste, not bought yet
    with Session(engine) as session:
        scores = served.scores_for(session, shopper, [p[3], p[9]])
    assert scores[p[3]] > scores[p[9]]


def test_softmax_versions_are_saved_published_and_served_from_the_artifact(engine: Engine, tmp_path: Path) -> None:
    p, shopper = two_taste_store(engine)
    trainer_dir, worker_dir = tmp_path / "trainer", tmp_path / "worker"
    info = rec.train(engine, trainer_dir, params=SOFTMAX)
    assert info.params["model"] == "softmax" and (info.path / "softmax.npz").exists()
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert manifest["format"] == 3 and manifest["counts"]["softmax_contexts"] > 0  # code before it refuses

    # A worker without the trainer's disk unpacks the version from the database.
    worker = rec.RecommenderStore(worker_dir, check_every=0, engine=engine)
    served = worker.get()
    fitted = rec.fit(rec.load_interactions(engine), SOFTMAX)
    assert served.version == info.version and served.params == SOFTMAX and served.softmax is not None
    for mine, theirs in zip((served.softmax.bias, served.softmax.context, served.softmax.target),
                            (fitted.softmax.bias, fitted.softmax.context, fitted.softmax.target), strict=True):
        assert np.array_equal(mine, theirs)
    assert_serves_like(engine, served, fitted, p, shopper)
