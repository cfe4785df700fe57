"""Product search for the admin's product picker: case-insensitive, best matches first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, literal, or_, select
from sqlalchemy.orm import Session

from chatdash.models import Product


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _lower(session: Session, column: Any) -> Any:
    """lower() that folds non-ASCII letters on SQLite too (its built-in lower is ASCII-only)."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return func.lower(column)
    raw = session.connection().connection.driver_connection
    raw.create_function(  # cheap; registers once per connection
        "chatdash_lower",
        1,
        lambda v: v.lower() if isinstance(v, str) else v,
        deterministic=True,
    )
    return func.chatdash_lower(column)


def match_tier(product: Product, query: str) -> int:
    """The relevance tier search_products ranks ``product`` in for ``query``
    (0 best), so callers can break ties inside a tier by their own scores."""
    needle = " ".join(query.split()).lower()
    name, sku, category = product.name.lower(), product.sku.lower(), product.category.lower()
    if sku == needle:
        return 0
    if name.startswith(needle) or sku.startswith(needle):
        return 1
    if category.startswith(needle) or f" {needle}" in f" {name}"[1:] or (" " + needle) in name:
        return 2
    return 3


def search_products(session: Session, query: str, limit: int = 20) -> list[Product]:
    """Products whose name, sku or category contains ``query``, case-insensitively.

    Best matches first: exact sku, then name/sku starting with the query, then
    category starting with it or a word of the name starting with it, then any
    other match; ties by name. A blank query returns nothing.
    """
    needle = " ".join(query.split()).lower()
    if not needle or limit <= 0:
        return []
    limit = min(limit, 200)
    name, sku, category = (_lower(session, c) for c in (Product.name, Product.sku, Product.category))
    esc = _escape_like(needle)
    contains, prefix, word = f"%{esc}%", f"{esc}%", f"% {esc}%"

    def like(expr: Any, pattern: str) -> Any:
        return expr.like(pattern, escape="\\")

    rank = case(
        (sku == literal(needle), 0),
        (or_(like(name, prefix), like(sku, prefix)), 1),
        (or_(like(category, prefix), like(name, word)), 2),
        else_=3,
    )
    stmt = (
        select(Product)
        .where(or_(like(name, contains), like(sku, contains), like(category, contains)))
        .order_by(rank, Product.name, Product.id)
        .limit(limit)
    )
    return list(session.execute(stmt).scalars().all())
