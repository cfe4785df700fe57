"""Products an admin picks to send into a chat: search ranked for the shopper,
and the related-products lists."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from chatdash.db import session_scope
from chatdash.models import Conversation, Product
from chatdash.services import catalog, recommender
from chatdash.services.shopper_context import products_by_id

SEARCH_LIMIT = 20
RELATED_LIMIT = 5


def search_for(query: str, conversation_id: int = 0, *, engine: Engine | None = None) -> list[Product]:
    """Products matching `query`: relevance first; inside a relevance tier, what
    suits this conversation's shopper best."""
    with session_scope(engine) as session:
        products = catalog.search_products(session, query, limit=SEARCH_LIMIT)
        scores: dict[int, float] = {}
        conv = session.get(Conversation, conversation_id) if conversation_id else None
        model = recommender.get_store().get()
        if conv is not None and model is not None and products:
            scores = model.scores_for(session, conv.shopper_id, [p.id for p in products])
    products.sort(key=lambda p: (catalog.match_tier(p, query), -scores.get(p.id, float("-inf"))))
    return products


@dataclass(frozen=True)
class RelatedProducts:
    product: Product
    bought_also: list[tuple[Product, int]]  # (product, baskets with both)
    same_order: list[tuple[Product, int]]
    viewed_together: list[tuple[Product, int]]


def related(product_id: int, *, engine: Engine | None = None) -> RelatedProducts | None:
    with session_scope(engine) as session:
        product = session.get(Product, product_id)
        if product is None:
            return None
        rel = recommender.related_for(session, product_id, n=RELATED_LIMIT)
        found = products_by_id(session, [i.product_id for i in (*rel.bought_also, *rel.same_order,
                                                                 *rel.viewed_together)])

    def rows(items) -> list[tuple[Product, int]]:
        return [(found[i.product_id], i.co_count) for i in items if i.product_id in found]

    return RelatedProducts(product, rows(rel.bought_also), rows(rel.same_order), rows(rel.viewed_together))
