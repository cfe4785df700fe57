"""Entry points for the UI: recommendations and related products from the process-wide store."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlmodel import Session, col

from chatdash.models import OrderLine, Product
from chatdash.services.recommender.artifacts import RecommenderStore
from chatdash.services.recommender.interactions import load_history
from chatdash.services.recommender.model import Recommendation
from chatdash.services.recommender.relations import Related

_default_store: RecommenderStore | None = None
_default_store_lock = threading.Lock()


def get_store() -> RecommenderStore:
    """The process-wide store over default_model_dir(), kept up to date from the database."""
    global _default_store
    with _default_store_lock:
        if _default_store is None:
            from chatdash.db import get_engine

            _default_store = RecommenderStore(engine=get_engine())
        return _default_store


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
