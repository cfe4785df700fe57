"""Recommender and related products on small hand-built stores with known answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chatdash.models import Cart, CartLine, EventKind, Order, OrderLine, Product, Shopper, StoreEvent, Visit
from chatdash.services import recommender as rec

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# The tuned defaults, with fewer factors and iterations for speed; one thread for determinism.
PARAMS = rec.Params(factors=4, iterations=10, num_threads=1)


class StoreBuilder:
    """Writes products, shoppers, visits, events, carts and orders straight into the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ids = count(1)
        self.sku: dict[int, str] = {}
        self._batch: Session | None = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Write everything added inside in one transaction (fast on PostgreSQL)."""
        with Session(self.engine, expire_on_commit=False) as s:
            self._batch = s
            yield
            s.commit()
        self._batch = None

    def _add(self, row):
        if self._batch is not None:
            self._batch.add(row)
            self._batch.flush()
            return row.id
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(row)
            s.commit()
            return row.id

    def product(self, name: str, category: str) -> int:
        sku = f"SKU-{name}"
        pid = self._add(Product(sku=sku, name=name, category=category, price_cents=1000,
                                url=f"https://shop.example/p/{sku}"))
        self.sku[pid] = sku
        return pid

    def shopper(self) -> int:
        return self._add(Shopper(visitor_id=f"v-{next(self.ids)}"))

    def visit(self, shopper: int) -> int:
        return self._add(Visit(shopper_id=shopper))

    def event(self, shopper: int, kind: str, product: int | None = None, *, visit: int | None = None,
              at: datetime = T0, payload: dict | None = None) -> None:
        self._add(StoreEvent(event_id=f"e-{next(self.ids)}", shopper_id=shopper, visit_id=visit, kind=kind,
                             product_id=product, payload=json.dumps(payload or {}), occurred_at=at))

    def view(self, shopper: int, product: int, *, visit: int | None = None, at: datetime = T0, times: int = 1):
        for i in range(times):
            self.event(shopper, EventKind.PRODUCT_VIEW.value, product, visit=visit, at=at + timedelta(seconds=i))

    def order(self, shopper: int, products: list[int], at: datetime = T0) -> int:
        oid = self._add(Order(external_id=f"o-{next(self.ids)}", shopper_id=shopper, total_cents=0, ordered_at=at))
        for p in products:
            self._add(OrderLine(order_id=oid, product_id=p, quantity=1, unit_price_cents=1000))
        return oid

    def cart_line(self, shopper: int, product: int) -> None:
        cid = self._add(Cart(shopper_id=shopper))
        self._add(CartLine(cart_id=cid, product_id=product, quantity=1, unit_price_cents=1000))

    def order_event(self, shopper: int, order_id: str, products: list[int], at: datetime = T0) -> None:
        """An order the browser reported: tracking keeps it as an event, without an Order row."""
        items = [{"sku": self.sku[p], "quantity": 1, "price": 10.0} for p in products]
        self.event(shopper, EventKind.ORDER.value, None, at=at,
                   payload={"order_id": order_id, "items": items, "total": 10.0, "currency": "USD"})

    def cart_event(self, shopper: int, products: list[int], at: datetime = T0) -> None:
        """A cart event as a store reports it: no product id, the cart's skus in the payload."""
        items = [{"sku": self.sku[p], "quantity": 1, "price": 10.0} for p in products]
        self.event(shopper, EventKind.CART.value, None, at=at, payload={"action": "update", "items": items})


def ids(recs: list[rec.Recommendation]) -> list[int]:
    return [r.product_id for r in recs]


# --------------------------------------------------------------------------- co-occurrence


def test_cooccurrence_is_jaccard_with_minimum_support() -> None:
    # Baskets: {0,1,2} {0,1} {0,2} {1,2} {0,1,3} {3}. Baskets holding each item: 0:4 1:4 2:3 3:2.
    # Shared baskets: 0-1 3, 0-2 2, 1-2 2, 0-3 1, 1-3 1.
    baskets = np.array([1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6])
    items = np.array([0, 1, 2, 0, 1, 0, 2, 1, 2, 0, 1, 3, 3])
    table = rec.cooccurrence(baskets, items, 4, min_support=2)

    def row(i: int) -> list[tuple[int, float, int]]:
        idx, scores, counts = table.row(i)
        return [(int(j), round(float(s), 4), int(c)) for j, s, c in zip(idx, scores, counts, strict=True)]

    assert row(0) == [(1, round(3 / (4 + 4 - 3), 4), 3), (2, round(2 / (4 + 3 - 2), 4), 2)]
    assert row(2) == [(0, 0.4, 2), (1, 0.4, 2)]  # equal scores and counts: lower index first
    assert row(3) == []  # 3 meets 0 and 1 once each: under the minimum support

    loose = rec.cooccurrence(baskets, items, 4, min_support=1)
    idx, scores, _ = loose.row(3)
    assert list(idx) == [0, 1] and np.allclose(scores, [1 / (2 + 4 - 1)] * 2)
    strict = rec.cooccurrence(baskets, items, 4, min_support=3)
    assert [int(j) for j in strict.row(0)[0]] == [1] and len(strict.row(2)[0]) == 0


def test_a_popular_item_does_not_top_every_list() -> None:
    # Item 0 is in every basket; item 2 always comes with item 1 and never without it.
    baskets = np.array(list(range(10)) + [0, 1, 2] * 2)
    items = np.array([0] * 10 + [1, 1, 1] + [2, 2, 2])
    table = rec.cooccurrence(baskets, items, 3, min_support=2)
    assert int(table.row(1)[0][0]) == 2  # Jaccard 1.0 beats the bestseller's 0.3


def test_heavy_shoppers_count_down_weighted_not_dropped() -> None:
    # Two heavy shoppers bought 300 distinct products each: 0, 1 and 10..307. Two light shoppers
    # bought {2, 3}. A bot bought 6,000 products, all of these among them.
    heavy = np.concatenate([[0, 1], np.arange(10, 308)])
    baskets = np.concatenate([np.full(300, 1), np.full(300, 2), [3, 3, 4, 4], np.full(6000, 5)])
    items = np.concatenate([heavy, heavy, [2, 3, 2, 3], np.arange(6000)])
    table = rec.cooccurrence(baskets, items, 6000, min_support=2, heavy_basket=200, max_basket=5000)

    partners, scores, counts = table.row(0)
    assert partners[0] == 1  # the heavy shoppers' pair is listed, from both baskets, not the bot's
    assert counts[0] == 2 and scores[0] == pytest.approx(1.0)
    light_partners, _, light_counts = table.row(2)
    assert light_partners.tolist() == [3] and light_counts.tolist() == [2]  # the bot added nothing

    # Two light shoppers also buy {0, 2}. Each heavy basket counts 200/300 of a basket:
    # item 0 is in 2 x 2/3 + 2 = 10/3 baskets, item 1 in 4/3, item 2 in 4.
    mixed = rec.cooccurrence(np.concatenate([baskets, [6, 6, 7, 7]]), np.concatenate([items, [0, 2, 0, 2]]),
                             6000, min_support=2, keep=400, heavy_basket=200)
    p0, s0, _ = mixed.row(0)
    score = dict(zip(p0.tolist(), s0.tolist(), strict=True))
    assert score[2] == pytest.approx(2 / (10 / 3 + 4 - 2))
    assert score[1] == pytest.approx((4 / 3) / (10 / 3 + 4 / 3 - 4 / 3))
    # Counted in full, the heavy baskets would give 0-1 a Jaccard of 2 / 4.
    full = rec.cooccurrence(np.concatenate([baskets, [6, 6, 7, 7]]), np.concatenate([items, [0, 2, 0, 2]]),
                            6000, min_support=2, heavy_basket=1000)
    p0, s0, _ = full.row(0)
    assert s0[p0.tolist().index(1)] == pytest.approx(2 / 4)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Engine:
    """A migrated SQLite file (conftest `engine`) or a schema on PostgreSQL (`pg_engine`)."""
    return request.getfixturevalue("engine" if request.param == "sqlite" else "pg_engine")


@pytest.fixture
def relations_store(db: Engine) -> tuple[StoreBuilder, dict[str, int]]:
    """Orders, purchases and sessions whose co-occurrences are worked out by hand in the tests."""
    b = StoreBuilder(db)
    with b.batch():
        p = _relations_data(b)
    return b, p


def _relations_data(b: StoreBuilder) -> dict[str, int]:
    p = {f"p{i}": b.product(f"p{i}", "Cat A" if i <= 3 else "Cat B") for i in range(1, 8)}
    s1, s2, s3 = b.shopper(), b.shopper(), b.shopper()
    # Orders: s1 {1,2} then {3}; s2 {1,2,3}; s3 {1,2}.
    b.order(s1, [p["p1"], p["p2"]])
    b.order(s1, [p["p3"]], T0 + timedelta(days=3))
    b.order(s2, [p["p1"], p["p2"], p["p3"]])
    b.order(s3, [p["p1"], p["p2"]])
    # Sessions: visit 1 {4,5} (4 seen twice), visit 2 {4,5,6}, visit 3 {5,6}; s3 without visit ids:
    # 4 then 6 ten minutes later (one session), 5 two hours later (a new one).
    v1, v2, v3 = b.visit(s1), b.visit(s2), b.visit(s3)
    for visit, shopper, products in ((v1, s1, ["p4", "p5", "p4"]), (v2, s2, ["p4", "p5", "p6"]),
                                     (v3, s3, ["p5", "p6"])):
        for i, name in enumerate(products):
            b.view(shopper, p[name], visit=visit, at=T0 + timedelta(minutes=i))
    b.view(s3, p["p4"], at=T0 + timedelta(days=1))
    b.view(s3, p["p6"], at=T0 + timedelta(days=1, minutes=10))
    b.view(s3, p["p5"], at=T0 + timedelta(days=1, hours=2))
    b.view(s1, p["p7"], visit=b.visit(s1))  # viewed alone, bought by no one
    return p


def test_related_lists_match_hand_computed_jaccard(db: Engine, relations_store, tmp_path: Path) -> None:
    _b, p = relations_store
    rec.train(db, tmp_path, params=PARAMS)
    model = rec.load_latest(tmp_path)
    assert model is not None

    def rounded(items: list[rec.RelatedItem]) -> list[tuple[int, float, int]]:
        return [(r.product_id, round(r.score, 4), r.co_count) for r in items]

    # Per shopper: {1,2,3} {1,2,3} {1,2} -> 1:3 2:3 3:2 shoppers; 1-2 3, 1-3 2, 2-3 2.
    assert rounded(model.related(p["p1"]).bought_also) == [(p["p2"], 1.0, 3), (p["p3"], round(2 / 3, 4), 2)]
    # Per order: {1,2} {3} {1,2,3} {1,2} -> 1-3 and 2-3 share only one order: below min support.
    assert rounded(model.related(p["p1"]).same_order) == [(p["p2"], 1.0, 3)]
    assert model.related(p["p3"]).same_order == []
    # Per session: {4,5} {4,5,6} {5,6} {4,6} {5} -> 4:3 5:4 6:3 sessions; 4-5 2, 4-6 2, 5-6 2.
    assert rounded(model.related(p["p4"]).viewed_together) == [(p["p6"], 0.5, 2), (p["p5"], 0.4, 2)]
    assert rounded(model.related(p["p5"]).viewed_together) == [(p["p4"], 0.4, 2), (p["p6"], 0.4, 2)]
    assert len(model.related(p["p1"], n=1).bought_also) == 1


def test_product_without_relations_has_empty_lists(db: Engine, relations_store, tmp_path: Path) -> None:
    _b, p = relations_store
    rec.train(db, tmp_path, params=PARAMS)
    model = rec.load_latest(tmp_path)
    related = model.related(p["p7"])
    assert related.empty and related == rec.Related([], [], [])
    assert model.related(987_654).empty  # not in the catalog at all


# --------------------------------------------------------------------------- recommendations


@pytest.fixture
def two_tastes(db: Engine) -> tuple[StoreBuilder, list[int], list[int], list[int]]:
    """Eight shoppers who only browse and buy category A, eight only B.

    Buyers per product: A 8,6,4,2,1,0 and B 7,5,3,2,1,0, so popularity is known.
    Returns the builder, A's and B's products and the two groups' shopper ids.
    """
    b = StoreBuilder(db)
    with b.batch():
        a, bb, shoppers = _two_tastes_data(b)
    return b, a, bb, shoppers


def _two_tastes_data(b: StoreBuilder) -> tuple[list[int], list[int], list[int]]:
    a = [b.product(f"a{i}", "Cat A") for i in range(6)]
    bb = [b.product(f"b{i}", "Cat B") for i in range(6)]
    shoppers: list[int] = []
    for products, buyers in ((a, (8, 6, 4, 2, 1, 0)), (bb, (7, 5, 3, 2, 1, 0))):
        for k in range(8):
            s = b.shopper()
            shoppers.append(s)
            visit = b.visit(s)
            for i, p in enumerate(products):
                b.view(s, p, visit=visit, at=T0 + timedelta(minutes=i))
            bought = [p for p, n in zip(products, buyers, strict=True) if k < n]
            if bought:
                b.order(s, bought)
    return a, bb, shoppers


def recommend(engine: Engine, model: rec.Recommender, shopper: int, n: int = 10) -> list[rec.Recommendation]:
    with Session(engine) as session:
        return model.recommend(session, shopper, n)


def test_bought_and_carted_items_are_left_out_viewed_ones_stay(db: Engine, two_tastes, tmp_path: Path) -> None:
    b, a, bb, _ = two_tastes
    shopper = b.shopper()
    for p in a[:5]:
        b.view(shopper, p)
    b.order(shopper, [a[0]])
    b.cart_line(shopper, a[1])  # in the demo store's cart table
    b.cart_event(shopper, [a[2]])  # reported by a store's tracking, skus only
    b.order_event(shopper, "browser-1", [a[5]])  # an order the browser reported, no order row
    rec.train(db, tmp_path, params=PARAMS)
    model = rec.load_latest(tmp_path)

    recs = recommend(db, model, shopper, n=50)
    assert set(ids(recs)) == set(a + bb) - {a[0], a[1], a[2], a[5]}
    assert {a[3], a[4]} <= set(ids(recs)[:5])  # merely viewed: still recommended, and near the top
    assert all(r.reason == "personal" for r in recs)


def test_out_of_stock_products_are_skipped(db: Engine, two_tastes, tmp_path: Path) -> None:
    _b, _a, _bb, shoppers = two_tastes
    rec.train(db, tmp_path, params=PARAMS)
    model = rec.load_latest(tmp_path)
    first = recommend(db, model, shoppers[0], n=3)[0].product_id
    with Session(db) as s:
        product = s.get(Product, first)
        product.in_stock = False
        s.add(product)
        s.commit()
    assert first not in ids(recommend(db, model, shoppers[0], n=12))


def test_cold_start_popular_in_viewed_category_then_popular(db: Engine, two_tastes, tmp_path: Path) -> None:
    b, a, bb, _ = two_tastes
    rec.train(db, tmp_path, params=PARAMS)
    model = rec.load_latest(tmp_path)

    nobody = b.shopper()
    recs = recommend(db, model, nobody, n=4)
    assert [(r.product_id, r.reason) for r in recs] == [(a[0], "popular"), (bb[0], "popular"), (a[1], "popular"),
                                                        (bb[1], "popular")]

    # A product added after training: the model does not know it, but its category it does.
    newcomer = b.shopper()
    b.view(newcomer, b.product("b-new", "Cat B"))
    recs = recommend(db, model, newcomer, n=8)
    assert [(r.product_id, r.reason) for r in recs] == [(p, "popular in Cat B") for p in bb] + [
        (a[0], "popular"), (a[1], "popular")]


def test_before_the_first_training_the_most_ordered_products_show(db: Engine, two_tastes, tmp_path: Path) -> None:
    b, a, bb, _ = two_tastes
    shopper = b.shopper()
    b.order(shopper, [a[0]])
    store = rec.RecommenderStore(tmp_path / "models")  # nothing trained there
    with Session(db) as session:
        recs = rec.recommend_for(session, shopper, 3, store=store)
        assert [(r.product_id, r.reason) for r in recs] == [(bb[0], "popular"), (a[1], "popular"),
                                                            (bb[1], "popular")]
        assert rec.related_for(session, a[0], store=store).empty


def test_scores_for_ranks_the_shoppers_taste_first(db: Engine, two_tastes, tmp_path: Path) -> None:
    _b, a, bb, shoppers = two_tastes
    rec.train(db, tmp_path, params=PARAMS)
    model = rec.load_latest(tmp_path)
    with Session(db) as session:
        scores = model.scores_for(session, shoppers[-1], [a[0], bb[0], 987_654])  # a B shopper
    assert set(scores) == {a[0], bb[0]} and scores[bb[0]] > scores[a[0]]


def test_new_views_rerank_without_retraining(db: Engine, two_tastes, tmp_path: Path) -> None:
    b, a, bb, _ = two_tastes
    shopper = b.shopper()
    b.view(shopper, a[0])
    b.view(shopper, a[1])
    rec.train(db, tmp_path, params=PARAMS)
    model = rec.load_latest(tmp_path)
    before = ids(recommend(db, model, shopper, n=12))
    assert set(before[:3]) <= set(a)

    visit = b.visit(shopper)  # a new session after training: B this time, a few views each
    for i, p in enumerate(bb[2:5]):
        b.view(shopper, p, visit=visit, at=T0 + timedelta(days=30, minutes=i), times=2)
    after = recommend(db, model, shopper, n=12)
    assert set(ids(after)[:3]) <= set(bb) and all(r.reason == "personal" for r in after)
    assert all(ids(after).index(p) < before.index(p) for p in bb)  # every B product moved up
    assert model.version == rec.load_latest(tmp_path).version  # same model: nothing retrained

    # The caller may also pass interactions that are not stored yet.
    with Session(db) as session:
        now = ids(model.recommend(session, shopper, 12, extra_interactions={a[5]: 20.0}))
    assert now.index(a[5]) < ids(after).index(a[5])


# --------------------------------------------------------------------------- artifacts


def test_artifacts_round_trip(db: Engine, two_tastes, tmp_path: Path) -> None:
    _b, a, _bb, shoppers = two_tastes
    info = rec.train(db, tmp_path, params=PARAMS)
    assert (info.interactions, info.shoppers, info.products) == (16 * 6 + sum((8, 6, 4, 2, 1, 7, 5, 3, 2, 1)), 16, 12)
    assert json.loads((tmp_path / "latest.json").read_text())["version"] == info.version
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert manifest["params"]["factors"] == 4 and manifest["counts"]["products"] == 12

    loaded = rec.load_latest(tmp_path)
    fitted = rec.fit(rec.load_interactions(db), PARAMS)
    assert loaded.version == info.version
    assert np.allclose(loaded.item_factors, fitted.item_factors)
    for shopper in shoppers[::5]:
        assert recommend(db, loaded, shopper) == recommend(db, fitted, shopper)
    assert loaded.related(a[0]) == fitted.related(a[0])
    assert rec.load_latest(tmp_path / "nothing-here") is None


def test_store_reloads_a_new_version(db: Engine, two_tastes, tmp_path: Path) -> None:
    b, _a, _bb, _ = two_tastes
    store = rec.RecommenderStore(tmp_path, check_every=0)
    assert store.get() is None
    first = rec.train(db, tmp_path, params=PARAMS)
    assert store.get().version == first.version
    lazy = rec.RecommenderStore(tmp_path, check_every=3600)
    assert lazy.get().version == first.version

    late = b.product("late", "Cat A")  # a product the first model has never seen
    b.view(b.shopper(), late)
    second = rec.train(db, tmp_path, params=PARAMS)
    assert second.version != first.version
    assert store.get().version == second.version
    assert store.get().item_index([late]) == {late: 12}
    assert lazy.get().version == first.version  # checks again only after an hour


def test_train_if_due(db: Engine, two_tastes, tmp_path: Path) -> None:
    assert rec.train_if_due(db, tmp_path, params=PARAMS) is not None  # nothing trained yet
    assert rec.train_if_due(db, tmp_path, every=timedelta(hours=1), params=PARAMS) is None
    assert rec.train_if_due(db, tmp_path, every=timedelta(0), params=PARAMS) is not None
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_training_on_an_empty_store_says_why(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(rec.RecommenderError, match="no product views"):
        rec.train(engine, tmp_path)
    assert rec.train_if_due(engine, tmp_path) is None
    assert rec.load_latest(tmp_path) is None


def test_a_worker_without_the_trainers_disk_serves_and_reloads_the_model_from_the_database(
    db: Engine, two_tastes, tmp_path: Path
) -> None:
    """Workers on other machines: the trainer's model directory is not theirs."""
    b, _a, _bb, shoppers = two_tastes
    trainer_dir, worker_dir = tmp_path / "trainer", tmp_path / "worker"
    worker = rec.RecommenderStore(worker_dir, check_every=0, engine=db)
    assert worker.get() is None
    first = rec.train(db, trainer_dir, params=PARAMS)
    assert worker.get().version == first.version
    assert recommend(db, worker.get(), shoppers[0]) == recommend(db, rec.load_latest(trainer_dir), shoppers[0])

    late = b.product("late", "Cat A")
    b.view(b.shopper(), late)
    second = rec.train(db, trainer_dir, params=PARAMS)
    assert worker.get().version == second.version
    assert worker.get().item_index([late]) == {late: 12}
    # A new leader on another machine knows the model is fresh: nothing is due.
    assert rec.train_if_due(db, tmp_path / "new-leader", every=timedelta(hours=1), params=PARAMS) is None
