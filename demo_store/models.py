"""The demo store's own tables: catalog, carts and orders.

They live in the store's own database (``DEMO_STORE_DATABASE_URL``, by default
``data/demo_store/store.db``) and on their own SQLAlchemy registry, so they
never join chatdash's schema or its migrations. Timestamps are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Text, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class StoreModel(SQLModel, registry=registry()):
    """Base of the store's tables; ``StoreModel.metadata`` is the store's schema."""


class Product(StoreModel, table=True):
    __tablename__ = "store_product"

    id: int | None = Field(default=None, primary_key=True)
    sku: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    category: str = Field(max_length=100, index=True)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    price_cents: int = Field(ge=0)
    currency: str = Field(default="USD", max_length=3)
    image_url: str = Field(default="", max_length=500)
    in_stock: bool = True


class Cart(StoreModel, table=True):
    __tablename__ = "store_cart"

    id: int | None = Field(default=None, primary_key=True)
    # The store's own anonymous shopper id (the browser's store session token).
    shopper: str = Field(max_length=64, unique=True, index=True)
    currency: str = Field(default="USD", max_length=3)
    total_cents: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class CartLine(StoreModel, table=True):
    __tablename__ = "store_cart_line"
    __table_args__ = (UniqueConstraint("cart_id", "product_id"),)

    id: int | None = Field(default=None, primary_key=True)
    cart_id: int = Field(foreign_key="store_cart.id", index=True, ondelete="CASCADE")
    product_id: int = Field(foreign_key="store_product.id", ondelete="CASCADE")
    quantity: int = Field(ge=1)
    unit_price_cents: int = Field(ge=0)


class Order(StoreModel, table=True):
    __tablename__ = "store_order"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True, index=True)
    shopper: str = Field(max_length=64, index=True)
    total_cents: int = Field(ge=0)
    currency: str = Field(max_length=3)
    placed_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    # The chat's visitor token (``chatdash.visitor()`` in the browser), which
    # names this shopper to chatdash; and when chatdash acknowledged the order.
    chatdash_visitor: str = Field(default="", max_length=128)
    reported_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class OrderLine(StoreModel, table=True):
    __tablename__ = "store_order_line"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="store_order.id", index=True, ondelete="CASCADE")
    # Copied, not referenced: an order keeps what was bought even if the catalog changes.
    sku: str = Field(max_length=64)
    name: str = Field(max_length=200)
    quantity: int = Field(ge=1)
    unit_price_cents: int = Field(ge=0)
