"""Import order history from a CSV: one row per order line, one Shopper per customer, all or nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from chatdash.db import session_scope
from chatdash.models import Order, OrderLine, Product, Shopper, utcnow
from chatdash.services.catalog.csv_reader import (
    CHUNK,
    LOOKUP_CHUNK,
    MAX_CENTS,
    MAX_QUANTITY,
    ColumnSpec,
    CsvImportError,
    ImportResult,
    Progress,
    Row,
    RowError,
    chunks,
    conflict_error,
    no_progress,
    parse_cents,
    parse_currency,
    parse_datetime,
    parse_quantity,
    read_csv,
    require_columns,
)

ORDER_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec(
        "order_id",
        True,
        "Store's order number; lines with the same order_id form one order.",
    ),
    ColumnSpec("customer_id", True, "Store's customer identifier, at most 128 characters."),
    ColumnSpec(
        "sku",
        True,
        "Product sku as in the catalog. The column may be called product_id instead "
        "(if both exist, sku is used).",
    ),
    ColumnSpec("quantity", True, f"Whole number from 1 to {MAX_QUANTITY}."),
    ColumnSpec(
        "unit_price",
        True,
        "Decimal price of one item like 12.50 (at most 2 decimals, >= 0).",
    ),
    ColumnSpec(
        "ordered_at",
        True,
        "ISO 8601 date or date-time, e.g. 2024-05-01, 2024-05-01T14:30:00, "
        "2024-05-01T14:30:00Z or 2024-05-01 14:30:00+02:00 (no offset = UTC).",
    ),
    ColumnSpec(
        "currency",
        False,
        "3-letter currency code; default USD. Same for all lines of an order.",
    ),
)

_PRODUCT = Product.__table__  # type: ignore[attr-defined]
_SHOPPER = Shopper.__table__  # type: ignore[attr-defined]
_ORDER = Order.__table__  # type: ignore[attr-defined]
_ORDER_LINE = OrderLine.__table__  # type: ignore[attr-defined]


@dataclass
class _PendingOrder:
    external_id: str
    customer_id: str
    ordered_at: datetime
    currency: str
    first_row: int
    total_cents: int = 0
    lines: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # sku -> (qty, cents, row)


def customer_visitor_id(customer_id: str) -> str:
    """The visitor_id given to a shopper created for an imported customer."""
    return "cust-" + hashlib.sha256(customer_id.encode("utf-8")).hexdigest()[:32]


def import_orders(engine: Engine, path: Path, progress: Progress | None = None) -> ImportResult:
    """Import order history from an orders CSV (see ORDER_COLUMNS), one row per order line.

    Rows sharing an order_id make up one order, wherever they are in the file;
    they must agree on customer_id, ordered_at and currency, and list each
    product once. The order total is the sum of quantity * unit_price. Products
    are looked up by sku (the column may be named product_id), so import the
    catalog first. Each customer_id becomes a Shopper (created when missing).
    An order whose order_id is already in the database is left as it is and
    counted as ``unchanged``, so importing the same file twice is harmless.
    Counts in the result are orders; ``rows`` is the number of lines read.

    Row numbers in errors: the header is row 1, the first data row is row 2.
    The file is validated completely before anything is written, and all
    changes are made in one transaction: on any error nothing is imported.
    ``progress(done, total)`` is called with data rows written (or skipped)
    so far and the number of data rows; an exception raised by it aborts the
    import and rolls everything back.
    """
    path = Path(path)
    filename = path.name
    report = progress or no_progress
    table = read_csv(path)
    product_col = "sku" if "sku" in table.columns else "product_id"
    required = [s for s in ORDER_COLUMNS if s.name != "sku"]
    require_columns(table, required, filename)
    if product_col not in table.columns:
        raise CsvImportError("missing required column sku (or product_id)", row=1, filename=filename)

    orders: dict[str, _PendingOrder] = {}
    line_rows: dict[tuple[str, str], int] = {}  # (order, sku) -> row, for "unknown sku" errors
    for rowno, values in table.rows:
        try:
            row = Row(table.columns, values)
            order_id = row.text("order_id", 128)
            customer_id = row.text("customer_id", 128)
            sku = row.text(product_col, 64)
            quantity = parse_quantity(row.get("quantity"))
            unit_cents = parse_cents("unit_price", row.get("unit_price"))
            ordered_at = parse_datetime(row.get("ordered_at"))
            currency = parse_currency(row.get("currency"))
            order = orders.get(order_id)
            if order is None:
                order = orders[order_id] = _PendingOrder(order_id, customer_id, ordered_at, currency, rowno)
            else:
                first = order.first_row
                if customer_id != order.customer_id:
                    raise RowError(
                        f"order {order_id} has customer_id '{customer_id}' here but "
                        f"'{order.customer_id}' in row {first}; all lines of an order must agree"
                    )
                if ordered_at != order.ordered_at:
                    raise RowError(
                        f"order {order_id} has ordered_at '{row.get('ordered_at')}' here but a different "
                        f"time in row {first}; all lines of an order must agree"
                    )
                if currency != order.currency:
                    raise RowError(
                        f"order {order_id} has currency {currency} here but {order.currency} in row "
                        f"{first}; all lines of an order must agree"
                    )
            if sku in order.lines:
                raise RowError(
                    f"order {order_id} lists {product_col} '{sku}' again (first in row "
                    f"{order.lines[sku][2]}); put each product once per order with the total quantity"
                )
            order.lines[sku] = (quantity, unit_cents, rowno)
            line_rows[(order_id, sku)] = rowno
            order.total_cents += quantity * unit_cents
            if order.total_cents > MAX_CENTS:
                raise RowError(f"order {order_id} total is too large")
        except RowError as exc:
            raise CsvImportError(exc.reason, rowno, filename) from None

    total_rows = len(table.rows)
    result = ImportResult(rows=total_rows)
    report(0, total_rows)
    if not orders:
        return result

    try:
        with session_scope(engine) as session:
            # Products: every sku must exist.
            skus = sorted({sku for order in orders.values() for sku in order.lines})
            product_ids: dict[str, int] = {}
            for chunk in chunks(skus, LOOKUP_CHUNK):
                stmt = select(_PRODUCT.c.sku, _PRODUCT.c.id).where(_PRODUCT.c.sku.in_(chunk))
                product_ids.update({sku: pid for sku, pid in session.execute(stmt)})
            unknown = [(row, sku) for (_, sku), row in line_rows.items() if sku not in product_ids]
            if unknown:
                row, sku = min(unknown)
                raise CsvImportError(
                    f"unknown product {product_col} '{sku}' (not in the catalog; import the catalog first)",
                    row,
                    filename,
                )

            # Orders already imported are left alone.
            known: set[str] = set()
            for chunk in chunks(list(orders), LOOKUP_CHUNK):
                stmt = select(_ORDER.c.external_id).where(_ORDER.c.external_id.in_(chunk))
                known.update(session.execute(stmt).scalars())
            new_orders = [o for o in orders.values() if o.external_id not in known]
            result.unchanged = len(orders) - len(new_orders)
            done = sum(len(orders[eid].lines) for eid in known)
            if done:
                report(done, total_rows)
            if not new_orders:
                return result

            # Shoppers: find or create one per customer_id.
            shopper_ids: dict[str, int] = {}
            customers = sorted({o.customer_id for o in new_orders})
            for chunk in chunks(customers, LOOKUP_CHUNK):
                stmt = select(_SHOPPER.c.customer_id, _SHOPPER.c.id).where(_SHOPPER.c.customer_id.in_(chunk))
                shopper_ids.update({cid: sid for cid, sid in session.execute(stmt)})
            last_order: dict[str, datetime] = {}
            for o in new_orders:
                if o.customer_id not in shopper_ids:
                    seen = last_order.get(o.customer_id)
                    last_order[o.customer_id] = o.ordered_at if seen is None else max(seen, o.ordered_at)
            now = utcnow()
            new_shoppers = [
                {
                    "visitor_id": customer_visitor_id(cid),
                    "customer_id": cid,
                    "name": None,
                    "email": None,
                    "created_at": now,
                    # Imported customers were last seen when they last ordered, not now.
                    "last_seen_at": seen,
                }
                for cid, seen in last_order.items()
            ]
            for chunk in chunks(new_shoppers, CHUNK):
                stmt = insert(_SHOPPER).returning(_SHOPPER.c.customer_id, _SHOPPER.c.id)
                shopper_ids.update({cid: sid for cid, sid in session.execute(stmt, list(chunk))})

            # Orders, then their lines.
            order_ids: dict[str, int] = {}
            for chunk in chunks(new_orders, CHUNK):
                order_rows = [
                    {
                        "external_id": o.external_id,
                        "shopper_id": shopper_ids[o.customer_id],
                        "total_cents": o.total_cents,
                        "currency": o.currency,
                        "ordered_at": o.ordered_at,
                        "source": "import",
                    }
                    for o in chunk
                ]
                stmt = insert(_ORDER).returning(_ORDER.c.external_id, _ORDER.c.id)
                order_ids.update({eid: oid for eid, oid in session.execute(stmt, order_rows)})
            result.created = len(new_orders)

            lines = [
                {
                    "order_id": order_ids[o.external_id],
                    "product_id": product_ids[sku],
                    "quantity": qty,
                    "unit_price_cents": cents,
                }
                for o in new_orders
                for sku, (qty, cents, _) in o.lines.items()
            ]
            for chunk in chunks(lines, CHUNK):
                session.execute(insert(_ORDER_LINE), list(chunk))
                done += len(chunk)
                report(done, total_rows)
    except IntegrityError as exc:
        raise conflict_error(filename, exc) from None
    return result
