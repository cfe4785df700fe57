"""Browsing the demo store: categories with counts, a page of products, one
product and its neighbours. Returns plain dataclasses; no Reflex imports."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from chatdash.models import Product
from chatdash.services.catalog import search_products

PER_PAGE = 24
# search_products returns at most this many matches; search pages stay within it.
MAX_SEARCH_RESULTS = 200
MAX_QUERY_CHARS = 100


@dataclass(frozen=True)
class CategoryCount:
    name: str
    count: int


@dataclass(frozen=True)
class ProductSummary:
    sku: str
    name: str
    category: str
    price_cents: int
    currency: str
    image_url: str
    in_stock: bool


@dataclass(frozen=True)
class ProductInfo(ProductSummary):
    id: int
    description: str


@dataclass(frozen=True)
class ProductPage:
    products: list[ProductSummary]
    total: int
    page: int
    pages: int


def _summary(p: Product) -> ProductSummary:
    return ProductSummary(p.sku, p.name, p.category, p.price_cents, p.currency, p.image_url, p.in_stock)


def categories(session: Session) -> list[CategoryCount]:
    rows = session.exec(
        select(Product.category, func.count()).group_by(Product.category).order_by(Product.category)
    ).all()
    return [CategoryCount(name, int(count)) for name, count in rows]


def _page_bounds(total: int, page: int, per_page: int) -> tuple[int, int]:
    pages = max(1, math.ceil(total / per_page))
    return min(max(1, page), pages), pages


def browse(
    session: Session, *, category: str = "", query: str = "", page: int = 1, per_page: int = PER_PAGE
) -> ProductPage:
    """One page of products, optionally in one category and/or matching a search.

    Without a search: in-stock products first, then by name. With one: best
    matches first (see :func:`search_products`), at most 200 of them. A page
    past the end gives the last page.
    """
    query = " ".join(query.split())[:MAX_QUERY_CHARS]
    if query:
        found = search_products(session, query, limit=MAX_SEARCH_RESULTS)
        if category:
            found = [p for p in found if p.category == category]
        page, pages = _page_bounds(len(found), page, per_page)
        start = (page - 1) * per_page
        return ProductPage([_summary(p) for p in found[start : start + per_page]], len(found), page, pages)

    where = [Product.category == category] if category else []
    total = int(session.exec(select(func.count()).select_from(Product).where(*where)).one())
    page, pages = _page_bounds(total, page, per_page)
    rows = session.exec(
        select(Product)
        .where(*where)
        .order_by(col(Product.in_stock).desc(), Product.name, Product.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return ProductPage([_summary(p) for p in rows], total, page, pages)


def product_by_sku(session: Session, sku: str) -> ProductInfo | None:
    if not isinstance(sku, str) or not sku or len(sku) > 64:
        return None
    p = session.exec(select(Product).where(Product.sku == sku)).first()
    if p is None:
        return None
    return ProductInfo(p.sku, p.name, p.category, p.price_cents, p.currency, p.image_url, p.in_stock,
                       id=p.id, description=p.description)


def more_in_category(session: Session, product: ProductInfo, limit: int = 6) -> list[ProductSummary]:
    """Other products of the same category: in stock first, then the ones
    catalogued nearest to this one (in the demo store, similar items)."""
    rows = session.exec(
        select(Product)
        .where(Product.category == product.category, Product.id != product.id)
        .order_by(col(Product.in_stock).desc(), func.abs(Product.id - product.id), Product.id)
        .limit(limit)
    ).all()
    return [_summary(p) for p in rows]
