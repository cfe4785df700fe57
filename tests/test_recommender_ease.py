"""EASE^R as the personal model: its weights, its neighbours, its artifact, and the tuner choosing it."""

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
from tests.test_recommender import PARAMS, T0, StoreBuilder, ids, recommend

EASE = replace(PARAMS, model="ease", ease_lambda=0.5, ease_keep=0)
DAY = 86400.0


def _buys(buys: list[tuple[int, int, int, float]], products: int) -> rec.Interactions:
    """(shopper, product, order, day) purchases, nothing else, over a catalog of products 1..products."""
    t0 = T0.timestamp()
    empty = np.zeros(0, np.int64)
    return rec.Interactions(
        view_shopper=empty, view_product=empty, view_session=empty, view_count=empty, view_time=np.zeros(0),
        cart_shopper=empty, cart_product=empty, cart_time=np.zeros(0),
        buy_shopper=np.array([b[0] for b in buys], np.int64),
        buy_product=np.array([b[1] for b in buys], np.int64),
        buy_order=np.array([b[2] for b in buys], np.int64),
        buy_time=np.array([t0 + b[3] * DAY for b in buys]),
        catalog_ids=np.arange(1, products + 1, dtype=np.int64),
        catalog_categories=["Cat"] * products,
    )


def test_ease_weights_are_the_closed_form_with_a_zero_diagonal() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 1, 1, 1], [1, 0, 0, 1]], np.float32))
    b, lam = rec_model.fit_ease(x, EASE)

    gram = (x.T @ x).toarray().astype(np.float64)
    assert lam == pytest.approx(0.5 * gram.diagonal().mean())
    p = np.linalg.inv(gram + lam * np.eye(4))
    expected = np.eye(4) - p / p.diagonal()[np.newaxis, :]  # Steck 2019, eq. 8
    assert np.allclose(np.diag(expected), 0)
    assert np.allclose(b.toarray(), expected, atol=1e-5)


def test_ease_keeps_the_largest_weights_of_each_product() -> None:
    dense = np.array([[0.0, 0.5, -0.9, 0.1], [0.2, 0.0, 0.3, -0.1], [0.4, -0.6, 0.0, 0.05]], np.float32)
    kept = rec_model._keep_largest(dense, keep=2, block=2).toarray()  # two blocks of rows
    assert np.allclose(kept, [[0.0, 0.5, -0.9, 0.0], [0.2, 0.0, 0.3, 0.0], [0.4, -0.6, 0.0, 0.0]])


def test_the_product_bought_with_yours_comes_first() -> None:
    # Products 1-2 are bought together, 3-4 together; 5 is the bestseller, bought with everything
    # by others. A shopper who bought 3 is shown 4 first, not the bestseller.
    buys, order = [], 0
    for shopper in range(1, 7):
        pair = (1, 2) if shopper <= 3 else (3, 4)
        for product in pair:
            buys.append((shopper, product, order, 1.0))
        order += 1
    for shopper in range(7, 17):
        buys.append((shopper, 5, order, 1.0))
        buys.append((shopper, 1 + shopper % 4, order, 1.0))
        order += 1
    buys.append((99, 3, order, 2.0))
    model = rec.fit(_buys(buys, 5), EASE)

    assert model.ease is not None and model.params.model == "ease"
    history = rec.ShopperHistory(weights={3: rec.PURCHASE_WEIGHT}, bought={3})
    ranked = model.rank(history, 3)
    assert ranked[0].product_id == 4 and ranked[0].reason == "personal"
    assert 3 not in ids(ranked)  # bought: left out
    popular = model.rank(rec.ShopperHistory(), 1)
    assert ids(popular) == [5]  # without a history, the bestseller


def test_ease_versions_are_saved_published_and_served_from_the_artifact(
    engine: Engine, tmp_path: Path
) -> None:
    b = StoreBuilder(engine)
    with b.batch():
        p = [b.product(f"p{i}", "Cat A" if i < 4 else "Cat B") for i in range(8)]
        for k in range(12):
            s = b.shopper()
            pair = (p[k % 4], p[4 + k % 4])  # p0 goes with p4, p1 with p5, ...
            b.order(s, list(pair), T0 + timedelta(days=k))
            b.view(s, p[(k + 1) % 8], at=T0 + timedelta(days=k, hours=1))
        shopper = b.shopper()
        b.order(shopper, [p[1]], T0 + timedelta(days=20))
    params = replace(EASE, ease_keep=3)
    trainer_dir, worker_dir = tmp_path / "trainer", tmp_path / "worker"
    info = rec.train(engine, trainer_dir, params=params)
    assert info.params["model"] == "ease" and (info.path / "ease.npz").exists()
    # A format code from before EASE refuses (ALS versions keep format 1, which it reads).
    assert json.loads((info.path / "manifest.json").read_text())["format"] == 2

    # A worker without the trainer's disk unpacks the version from the database.
    worker = rec.RecommenderStore(worker_dir, check_every=0, engine=engine)
    served = worker.get()
    fitted = rec.fit(rec.load_interactions(engine), params)
    assert served.version == info.version and served.params == params
    assert served.ease is not None and (served.ease != fitted.ease).nnz == 0
    assert np.diff(served.ease.indptr).max() <= 3  # only the largest weights per product are kept
    got = recommend(engine, served, shopper)
    assert ids(got) == ids(recommend(engine, fitted, shopper))
    assert got[0].product_id == p[5] and got[0].reason == "personal"  # p1's partner
    with Session(engine) as session:
        scores = served.scores_for(session, shopper, [p[5], p[6]])
    assert scores[p[5]] > scores[p[6]]


def test_ease_over_the_size_cap_trains_als_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _buys([(s, 1 + (s + k) % 6, s, float(s)) for s in range(1, 30) for k in range(2)], 6)
    monkeypatch.setattr(rec_model, "EASE_MAX_ITEMS", 5)
    model = rec.fit(data, EASE)
    assert model.params.model == "als" and model.ease is None and model.item_factors.shape == (6, PARAMS.factors)


def _pairs_store(pairs: int = 30, buyers: int = 3) -> rec.Interactions:
    """Product k goes with product pairs + k: `buyers` shoppers per pair bought both early on;
    one more bought k early too and its partner last (the latest 20% of the orders: what the
    tuner holds out). Every product is as popular as the others: only the pairs say what comes next."""
    buys, order, shopper = [], 0, 0
    for day in range(buyers):
        for k in range(1, pairs + 1):
            shopper += 1
            buys += [(shopper, k, order, float(day)), (shopper, pairs + k, order, float(day))]
            order += 1
    for k in range(1, pairs + 1):
        shopper += 1
        buys.append((shopper, k, order, 1.5))
        buys.append((shopper, pairs + k, order + 1, 20.0))
        order += 2
    return _buys(buys, 2 * pairs)


def test_the_tuner_picks_ease_where_item_pairs_predict_the_next_purchase() -> None:
    tuning = rec.tune(_pairs_store(), PARAMS, budget=120)

    assert tuning is not None
    tried = {c["changes"].get("model", "als") for c in tuning.candidates}
    assert {"als", "ease"} <= tried  # (and the softmax model)
    assert tuning.params.model == "ease"
    best_als = max(c["ndcg@10"] for c in tuning.candidates if c["changes"].get("model", "als") == "als")
    assert tuning.model.ndcg > best_als + 0.2
    assert tuning.model.ndcg > 2 * tuning.popularity.ndcg


def test_the_tuner_leaves_ease_out_when_the_store_has_too_many_products(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatdash.services.recommender import tuning as rec_tuning

    monkeypatch.setattr(rec_tuning, "EASE_MAX_ITEMS", 10)
    tuning = rec.tune(_pairs_store(), PARAMS, budget=120)
    assert tuning is not None and tuning.params.model == "als"
    assert all(c["changes"].get("model", "als") == "als" for c in tuning.candidates)
