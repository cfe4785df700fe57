"""Per-store tuning at train time, and the variants it chooses from, on small stores with known answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chatdash.services import recommender as rec
from chatdash.services.demo_grocery import generate_grocery_data
from tests.test_recommender import PARAMS, T0, StoreBuilder

DAY = 86400.0


def _interactions(
    buys: list[tuple[int, int, int, float]], views: list[tuple[int, int, float]] = ()
) -> rec.Interactions:
    """(shopper, product, order, day) purchases and (shopper, product, day) views as training input."""
    t0 = T0.timestamp()
    return rec.Interactions(
        view_shopper=np.array([v[0] for v in views], np.int64),
        view_product=np.array([v[1] for v in views], np.int64),
        view_session=np.arange(len(views), dtype=np.int64),
        view_count=np.ones(len(views), np.int64),
        view_time=np.array([t0 + v[2] * DAY for v in views]),
        cart_shopper=np.zeros(0, np.int64),
        cart_product=np.zeros(0, np.int64),
        cart_time=np.zeros(0),
        buy_shopper=np.array([b[0] for b in buys], np.int64),
        buy_product=np.array([b[1] for b in buys], np.int64),
        buy_order=np.array([b[2] for b in buys], np.int64),
        buy_time=np.array([t0 + b[3] * DAY for b in buys]),
        catalog_ids=np.arange(1, 11, dtype=np.int64),
        catalog_categories=["Cat"] * 10,
    )


def test_time_split_holds_out_the_latest_orders_and_keeps_only_first_purchases() -> None:
    # Ten orders on days 0..9, the last two (20%) after the cutoff. Shopper 1 buys product 1
    # again there (not a first purchase) and product 2 for the first time; shopper 2 buys 3 again.
    buys = [(1 + k % 2, 1 + k % 2 * 2, k, float(k)) for k in range(8)]  # 1 buys 1, 2 buys 3
    buys += [(1, 1, 8, 8.0), (1, 2, 8, 8.0), (2, 3, 9, 9.0)]
    views = [(1, 5, 1.0), (1, 6, 8.5)]  # the second view comes after the cutoff
    split = rec.time_split(_interactions(buys, views), min_orders=10)

    assert split is not None and split.orders == 10
    assert split.cutoff == datetime.fromtimestamp(T0.timestamp() + 8 * DAY, UTC)
    assert split.truth == {1: {2}}  # re-buys are not what the metric scores; shopper 2 bought nothing new
    assert sorted(split.train.buy_order.tolist()) == list(range(8))
    assert split.train.view_product.tolist() == [5]  # nothing after the cutoff leaks into training
    assert rec.time_split(_interactions(buys, views), min_orders=11) is None  # too short to hold out


def test_quality_is_ndcg_and_precision_at_10_over_shoppers_with_new_purchases() -> None:
    from chatdash.services.recommender.tuning import score

    truth = {1: {7}, 2: {8, 9}, 3: {4}}
    # Each history names its shopper in viewed_categories; shopper 3 had bought 4 before: not scored.
    hist = {
        1: rec.ShopperHistory(viewed_categories=["1"]),
        2: rec.ShopperHistory(viewed_categories=["2"]),
        3: rec.ShopperHistory(bought={4}, viewed_categories=["3"]),
    }
    ranking = {"1": [3, 7], "2": [8, 1, 9], "3": [4]}
    quality = score(lambda h: ranking[h.viewed_categories[0]], truth, hist)
    ndcg1 = 1 / np.log2(3)  # hit at rank 2, one relevant product
    ndcg2 = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))  # hits at 1 and 3 of two relevant
    assert quality.shoppers == 2
    assert quality.ndcg == pytest.approx((ndcg1 + ndcg2) / 2)
    assert quality.precision == pytest.approx((1 / 10 + 2 / 10) / 2)


@pytest.fixture
def grocery(engine: Engine) -> Engine:
    generate_grocery_data(engine, store_url="http://localhost:3000/store", seed=3, products=150, shoppers=60)
    return engine


def test_train_tunes_on_the_stores_own_orders_and_records_it_with_the_version(grocery: Engine, tmp_path: Path):
    steps: dict[str, tuple[int, int]] = {}
    info = rec.train(
        grocery,
        tmp_path,
        params=PARAMS,
        tune=True,
        budget=60,
        progress=lambda step, done, total: steps.__setitem__(step, (done, total)),
    )

    manifest = json.loads((info.path / "manifest.json").read_text())
    tuning = manifest["tuning"]
    assert tuning == info.tuning
    assert steps["tune"][0] == steps["tune"][1] > 1  # the progress bar reaches its end
    holdout = tuning["holdout"]
    assert holdout["shoppers"] > 10 and holdout["train_interactions"] < info.interactions
    for who in ("model", "popularity"):
        assert 0 < holdout[who]["ndcg@10"] <= 1 and 0 < holdout[who]["precision@10"] <= 1
    # The version is trained with the best candidate's parameters, which scored what the holdout says.
    best = max(tuning["candidates"], key=lambda c: c["ndcg@10"])
    assert best["ndcg@10"] == holdout["model"]["ndcg@10"]
    assert len(tuning["candidates"]) > 3
    tried = [json.dumps(c["changes"], sort_keys=True) for c in tuning["candidates"]]
    assert len(set(tried)) == len(tried)  # no candidate is fitted twice
    chosen = rec.load_latest(tmp_path).params
    assert {k: getattr(chosen, k) for k in best["changes"]} == best["changes"]
    assert manifest["params"] == tuning["params"]

    # The schedule's retraining keeps the tuned parameters.
    again = rec.train_if_due(grocery, tmp_path, every=timedelta(0))
    assert again is not None and again.tuning is None
    assert _without_threads(again.params) == _without_threads(info.params)  # threads follow the machine


def test_the_budget_bounds_the_tuning(grocery: Engine, tmp_path: Path) -> None:
    info = rec.train(grocery, tmp_path, params=PARAMS, tune=True, budget=0)
    assert [c["changes"] for c in info.tuning["candidates"]] == [{}]  # the starting point, scored, nothing else
    assert rec.load_latest(tmp_path).params == PARAMS


def test_the_schedule_keeps_tuned_parameters_only(grocery: Engine, tmp_path: Path) -> None:
    from dataclasses import replace

    rec.train(grocery, tmp_path, params=replace(PARAMS, max_basket=200))  # as versions before tuning were
    assert rec.latest_params(tmp_path) is None
    again = rec.train_if_due(grocery, tmp_path, every=timedelta(0))
    assert again.params["max_basket"] == rec.Params().max_basket  # back to the defaults, not the old setting


def _without_threads(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != "num_threads"}


def test_a_store_too_young_to_split_is_trained_untuned(engine: Engine, tmp_path: Path) -> None:
    b = StoreBuilder(engine)
    p = [b.product(f"p{i}", "Cat") for i in range(3)]
    b.order(b.shopper(), p[:2])
    info = rec.train(engine, tmp_path, params=PARAMS, tune=True)
    assert info.tuning is None and json.loads((info.path / "manifest.json").read_text())["tuning"] is None


# --------------------------------------------------------------------------- the variants


def test_repeat_purchases_count_once_in_training_and_serving_alike(engine: Engine) -> None:
    b = StoreBuilder(engine)
    p = [b.product(f"p{i}", "Cat") for i in range(2)]
    s = b.shopper()
    for day in range(3):
        b.order(s, [p[0]], T0 + timedelta(days=day))
    b.order(s, [p[1]])
    data = rec.load_interactions(engine)
    _shoppers, _products, counted = rec.weighted_interactions(data, np.sort(data.catalog_ids))
    _shoppers, _products, once = rec.weighted_interactions(
        data, np.sort(data.catalog_ids), rec.Params(purchase_once=True)
    )
    assert counted.toarray().tolist() == [[3 * rec.PURCHASE_WEIGHT, rec.PURCHASE_WEIGHT]]
    assert once.toarray().tolist() == [[rec.PURCHASE_WEIGHT, rec.PURCHASE_WEIGHT]]
    with Session(engine) as session:
        assert rec.load_history(session, s).weights == {p[0]: 3 * rec.PURCHASE_WEIGHT, p[1]: rec.PURCHASE_WEIGHT}
        assert rec.load_history(session, s, purchase_once=True).weights == {
            p[0]: rec.PURCHASE_WEIGHT,
            p[1]: rec.PURCHASE_WEIGHT,
        }


def test_bm25_saturates_weights_and_shrinks_long_histories() -> None:
    import scipy.sparse as sp

    weights = sp.csr_matrix(np.array([[5.0, 50.0, 0.0], [5.0, 0.0, 0.0]]))
    idf = np.ones(3, np.float32)
    out = rec.bm25(weights, idf, mean_length=30.0, b=1.0).toarray()
    # Shopper 0's history (55) is longer than the mean, shopper 1's (5) shorter: the same purchase
    # weighs less for shopper 0; ten times the weight gives far less than ten times the score.
    assert out[0, 0] < out[1, 0]
    assert out[0, 0] < out[0, 1] < 3 * out[0, 0]
    rare = rec.bm25(weights, np.array([1.0, 1.0, 1.0], np.float32) * [1, 2, 1], 30.0, 1.0).toarray()
    assert rare[0, 1] == pytest.approx(2 * out[0, 1])


def test_variants_survive_saving_and_rank_the_same(grocery: Engine, tmp_path: Path) -> None:
    from dataclasses import replace

    params = replace(PARAMS, bm25_b=1.0, purchase_once=True, related_weight=0.3, popularity_weight=0.2)
    rec.train(grocery, tmp_path, params=params)
    loaded = rec.load_latest(tmp_path)
    fitted = rec.fit(rec.load_interactions(grocery), params)
    assert loaded.params == params and np.allclose(loaded.idf, fitted.idf)
    with Session(grocery) as session:
        for shopper in (1, 7, 30):
            got = [r.product_id for r in loaded.recommend(session, shopper, 10)]
            assert got == [r.product_id for r in fitted.recommend(session, shopper, 10)] and len(got) == 10


def test_the_train_command_tunes_and_says_how_the_model_compares_with_popularity(grocery: Engine, tmp_path: Path):
    import os
    import subprocess
    import sys

    from chatdash.cli import MODEL_NAMES

    env = {
        **os.environ,
        "DATABASE_URL": str(grocery.url),
        "CHATDASH_MODEL_DIR": str(tmp_path / "models"),
        "CHATDASH_SECRET_KEY": "test",
        "CHATDASH_STORE_SECRET": "test",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "chatdash.cli", "train", "--budget", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    manifest = rec.read_manifest(tmp_path / "models")
    holdout = manifest["tuning"]["holdout"]
    assert f"ndcg@10 {holdout['model']['ndcg@10']:.4f} vs popularity {holdout['popularity']['ndcg@10']:.4f}" in out
    assert f"{holdout['shoppers']:,} shoppers' first purchases" in out
    assert f"model {MODEL_NAMES[manifest['params']['model']]}." in out  # what tuning chose

    untuned = subprocess.run(
        [sys.executable, "-m", "chatdash.cli", "train", "--no-tune"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert untuned.returncode == 0, untuned.stderr
    assert "Tuned" not in untuned.stdout and rec.read_manifest(tmp_path / "models")["tuning"] is None
