"""Import the product catalog from a CSV: create new skus, update changed ones, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from chatdash.db import session_scope
from chatdash.models import Product, utcnow
from chatdash.services.catalog.csv_reader import (
    CHUNK,
    LOOKUP_CHUNK,
    ColumnSpec,
    CsvImportError,
    ImportResult,
    Progress,
    Row,
    RowError,
    chunks,
    conflict_error,
    no_progress,
    parse_bool,
    parse_cents,
    parse_currency,
    parse_url,
    read_csv,
    require_columns,
)

# Longest accepted description (the column itself is unbounded TEXT).
MAX_DESCRIPTION_CHARS = 10_000

CATALOG_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("sku", True, "Store's product identifier, unique, at most 64 characters."),
    ColumnSpec("name", True, "Product name, at most 200 characters."),
    ColumnSpec("category", True, "Category name, at most 100 characters."),
    ColumnSpec(
        "price",
        True,
        "Decimal price like 12.50 (dot separator, at most 2 decimals, >= 0).",
    ),
    ColumnSpec("url", True, "Absolute http(s) URL of the product page, at most 500 characters."),
    ColumnSpec("currency", False, "3-letter currency code (ISO 4217); default USD."),
    ColumnSpec("image_url", False, "Absolute http(s) URL of an image, at most 500 characters."),
    ColumnSpec("in_stock", False, "true/false, 1/0 or yes/no; default true."),
    ColumnSpec("description", False, f"Free text, at most {MAX_DESCRIPTION_CHARS} characters."),
)

_PRODUCT = Product.__table__  # type: ignore[attr-defined]

# Columns a catalog row may set, in the order they are compared.
_PRODUCT_FIELDS = (
    "name",
    "category",
    "description",
    "price_cents",
    "currency",
    "url",
    "image_url",
    "in_stock",
)
# Optional CSV columns -> product fields they set. Absent columns leave existing values alone.
_OPTIONAL_PRODUCT_COLUMNS = {
    "currency": "currency",
    "image_url": "image_url",
    "in_stock": "in_stock",
    "description": "description",
}


def _parse_product(row: Row) -> dict[str, Any]:
    values: dict[str, Any] = {
        "sku": row.text("sku", 64),
        "name": row.text("name", 200),
        "category": row.text("category", 100),
        "price_cents": parse_cents("price", row.get("price")),
        "url": parse_url("url", row.get("url"), 500, required=True),
    }
    if row.has("currency"):
        values["currency"] = parse_currency(row.get("currency"))
    if row.has("image_url"):
        values["image_url"] = parse_url("image_url", row.get("image_url"), 500, required=False)
    if row.has("in_stock"):
        values["in_stock"] = parse_bool("in_stock", row.get("in_stock"))
    if row.has("description"):
        values["description"] = row.text("description", MAX_DESCRIPTION_CHARS, required=False)
    return values


def import_catalog(engine: Engine, path: Path, progress: Progress | None = None) -> ImportResult:
    """Create or update products from a catalog CSV (see CATALOG_COLUMNS).

    Products are matched by sku: a new sku is created; a known one is updated
    when any imported value differs (counted as ``updated``) and otherwise
    counted as ``unchanged``. Optional columns missing from the file keep the
    existing products' values (new products get the defaults). A sku listed
    twice in the file is an error.

    Row numbers in errors: the header is row 1, the first data row is row 2.
    The file is validated completely before anything is written, and all
    changes are made in one transaction: on any error nothing is imported.
    ``progress(done, total)`` is called with data rows written so far and the
    number of data rows; an exception raised by it aborts the import and
    rolls everything back.
    """
    path = Path(path)
    filename = path.name
    report = progress or no_progress
    table = read_csv(path)
    require_columns(table, CATALOG_COLUMNS, filename)

    parsed: list[tuple[int, dict[str, Any]]] = []
    first_row_of_sku: dict[str, int] = {}
    for rowno, values in table.rows:
        try:
            product = _parse_product(Row(table.columns, values))
        except RowError as exc:
            raise CsvImportError(exc.reason, rowno, filename) from None
        sku = product["sku"]
        if sku in first_row_of_sku:
            raise CsvImportError(
                f"sku '{sku}' is already listed in row {first_row_of_sku[sku]}; each sku may appear once",
                rowno,
                filename,
            )
        first_row_of_sku[sku] = rowno
        parsed.append((rowno, product))

    total = len(parsed)
    result = ImportResult(rows=total)
    report(0, total)
    if not parsed:
        return result

    optional_present = [f for c, f in _OPTIONAL_PRODUCT_COLUMNS.items() if c in table.columns]
    fields = [
        f for f in _PRODUCT_FIELDS if f in ("name", "category", "price_cents", "url") or f in optional_present
    ]

    try:
        with session_scope(engine) as session:
            existing: dict[str, dict[str, Any]] = {}
            skus = [p["sku"] for _, p in parsed]
            for chunk in chunks(skus, LOOKUP_CHUNK):
                stmt = select(_PRODUCT.c.id, _PRODUCT.c.sku, *(_PRODUCT.c[f] for f in fields)).where(
                    _PRODUCT.c.sku.in_(chunk)
                )
                for rec in session.execute(stmt).mappings():
                    existing[rec["sku"]] = dict(rec)

            now = utcnow()
            to_insert: list[dict[str, Any]] = []
            to_update: list[dict[str, Any]] = []
            for _, product in parsed:
                current = existing.get(product["sku"])
                if current is None:
                    row = {
                        "description": "",
                        "currency": "USD",
                        "image_url": "",
                        "in_stock": True,
                        **product,
                        "created_at": now,
                    }
                    to_insert.append(row)
                elif any(product[f] != current[f] for f in fields):
                    to_update.append(
                        {
                            "b_id": current["id"],
                            **{f"b_{f}": product[f] for f in fields},
                        }
                    )
                else:
                    result.unchanged += 1

            done = result.unchanged
            if done:
                report(done, total)
            for chunk in chunks(to_insert, CHUNK):
                session.execute(insert(_PRODUCT), list(chunk))
                done += len(chunk)
                result.created += len(chunk)
                report(done, total)
            if to_update:
                stmt = (
                    update(_PRODUCT)
                    .where(_PRODUCT.c.id == bindparam("b_id"))
                    .values({f: bindparam(f"b_{f}") for f in fields})
                )
                for chunk in chunks(to_update, CHUNK):
                    session.execute(stmt, list(chunk))
                    done += len(chunk)
                    result.updated += len(chunk)
                    report(done, total)
    except IntegrityError as exc:
        raise conflict_error(filename, exc) from None
    return result
