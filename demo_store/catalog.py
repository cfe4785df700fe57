"""The demo store's catalog: loading it from a catalog CSV, and browsing it
(categories with counts, a page of products, search, one product and its
neighbours). Returns plain dataclasses; no Reflex imports.

The CSV is the format chatdash's ``import-catalog`` reads (docs/importing.md),
so the store and the chat load the very same file.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import case, func, literal, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from demo_store.db import session_scope
from demo_store.models import Product

PER_PAGE = 24
# A search shows at most this many matches.
MAX_SEARCH_RESULTS = 200
MAX_QUERY_CHARS = 100
MAX_SKU_CHARS = 64


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


# --------------------------------------------------------------------------- loading


class CatalogFileError(ValueError):
    """A catalog CSV the store cannot load; nothing was written."""


_YES, _NO = {"", "1", "true", "yes"}, {"0", "false", "no"}
_PRICE_RE = re.compile(r"\d+(\.\d{1,2})?")


def _header(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def _row(raw: dict[str, str], line: int) -> dict:
    def text(key: str, limit: int, required: bool = False) -> str:
        value = (raw.get(key) or "").strip()
        if required and not value:
            raise CatalogFileError(f"row {line}: {key} is required")
        if len(value) > limit:
            raise CatalogFileError(f"row {line}: {key} is longer than {limit} characters")
        return value

    price = text("price", 20, required=True)
    if not _PRICE_RE.fullmatch(price):
        raise CatalogFileError(f"row {line}: price {price!r} is not a price like 12.50")
    try:
        cents = int(Decimal(price) * 100)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise CatalogFileError(f"row {line}: price {price!r} is not a number") from exc
    stock = text("in_stock", 5).lower()
    if stock not in _YES | _NO:
        raise CatalogFileError(f"row {line}: in_stock {stock!r} is not yes or no")
    image = text("image_url", 500)
    return {
        "sku": text("sku", MAX_SKU_CHARS, required=True),
        "name": text("name", 200, required=True),
        "category": text("category", 100, required=True),
        "price_cents": cents,
        "currency": (text("currency", 3) or "USD").upper(),
        "image_url": image if image.startswith(("https://", "http://", "/")) else "",
        "in_stock": stock in _YES,
        "description": text("description", 10_000),
    }


def read_catalog_csv(path: Path) -> list[dict]:
    """The products of a catalog CSV, all checked before any is used."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [_header(n) for n in reader.fieldnames or []]
        missing = {"sku", "name", "category", "price"} - set(reader.fieldnames)
        if missing:
            raise CatalogFileError(f"{path.name}: missing column(s) {', '.join(sorted(missing))}")
        return [_row(raw, reader.line_num) for raw in reader if any((v or "").strip() for v in raw.values())]


def load_catalog_csv(path: Path, engine: Engine | None = None) -> int:
    """Create or update the store's products from a catalog CSV (matched by
    sku), all in one transaction. Returns the number of products in the file."""
    rows = read_catalog_csv(path)
    with session_scope(engine) as session:
        known = {p.sku: p for p in session.exec(select(Product)).all()}
        for row in rows:
            product = known.get(row["sku"]) or Product(**row)
            for key, value in row.items():
                setattr(product, key, value)
            session.add(product)
    return len(rows)


def is_empty(engine: Engine | None = None) -> bool:
    with session_scope(engine) as session:
        return session.exec(select(Product.id).limit(1)).first() is None


# --------------------------------------------------------------------------- browsing


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


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(session: Session, query: str, limit: int = MAX_SEARCH_RESULTS) -> list[Product]:
    """Products whose name, sku or category contains ``query``, case-insensitively.
    Best first: exact sku, then name or sku starting with it, then a word of the
    name or the category starting with it, then any other match; ties by name."""
    needle = " ".join(query.split()).lower()
    if not needle:
        return []
    esc = _escape_like(needle)
    name, sku, category = func.lower(Product.name), func.lower(Product.sku), func.lower(Product.category)

    def like(expr, pattern: str):
        return expr.like(pattern, escape="\\")

    rank = case(
        (sku == literal(needle), 0),
        (or_(like(name, f"{esc}%"), like(sku, f"{esc}%")), 1),
        (or_(like(category, f"{esc}%"), like(name, f"% {esc}%")), 2),
        else_=3,
    )
    contains = f"%{esc}%"
    return list(session.exec(
        select(Product)
        .where(or_(like(name, contains), like(sku, contains), like(category, contains)))
        .order_by(rank, Product.name, Product.id)
        .limit(limit)
    ).all())


def browse(
    session: Session, *, category: str = "", query: str = "", page: int = 1, per_page: int = PER_PAGE
) -> ProductPage:
    """One page of products, optionally in one category and/or matching a search.

    Without a search: in-stock products first, then by name. With one: best
    matches first (see :func:`search`), at most 200 of them. A page past the
    end gives the last page.
    """
    query = " ".join(query.split())[:MAX_QUERY_CHARS]
    if query:
        found = search(session, query)
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
    if not isinstance(sku, str) or not sku or len(sku) > MAX_SKU_CHARS:
        return None
    p = session.exec(select(Product).where(Product.sku == sku)).first()
    if p is None:
        return None
    return ProductInfo(p.sku, p.name, p.category, p.price_cents, p.currency, p.image_url, p.in_stock,
                       id=p.id, description=p.description)


def more_in_category(session: Session, product: ProductInfo, limit: int = 6) -> list[ProductSummary]:
    """Other products of the same category: in stock first, then the ones
    catalogued nearest to this one (in the demo catalog, similar items)."""
    rows = session.exec(
        select(Product)
        .where(Product.category == product.category, Product.id != product.id)
        .order_by(col(Product.in_stock).desc(), func.abs(Product.id - product.id), Product.id)
        .limit(limit)
    ).all()
    return [_summary(p) for p in rows]
