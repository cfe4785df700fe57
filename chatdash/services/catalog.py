"""Import a store's product catalog and order history from CSV files; search products.

Both importers work in two phases:

1. The whole file is read and validated (and product / order references are
   checked against the database). The first problem found raises
   :class:`CsvImportError`, naming the row and the reason.
2. Everything is written in ONE transaction, with bulk inserts. If anything
   fails (or the ``progress`` callback raises), the transaction is rolled back:
   a file is imported completely or not at all.

Row numbers are the ones a spreadsheet shows: the header is row 1, so the
first data row is row 2. They count CSV records, so a quoted value spanning
several lines still counts as one row. Encoding errors (which are found before
the CSV is parsed) name the physical line instead, together with the byte
offset in the file.

No Reflex imports here: the CLI and the admin pages both call these functions.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatdash.db import session_scope
from chatdash.models import Order, OrderLine, Product, Shopper, utcnow

__all__ = [
    "CATALOG_COLUMNS",
    "MAX_FILE_BYTES",
    "ORDER_COLUMNS",
    "CsvImportError",
    "ImportResult",
    "import_catalog",
    "import_orders",
    "search_products",
]

Progress = Callable[[int, int], None]

# Refuse files larger than this before reading them.
MAX_FILE_BYTES = 200 * 1024 * 1024
# Longest accepted description (the column itself is unbounded TEXT).
MAX_DESCRIPTION_CHARS = 10_000
# Largest value of a 32-bit INTEGER column (PostgreSQL): money is in cents.
MAX_CENTS = 2**31 - 1
MAX_QUANTITY = 1_000_000
# Rows per INSERT/UPDATE batch and per "IN (...)" lookup.
CHUNK = 1000
LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    required: bool
    description: str


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


@dataclass
class ImportResult:
    """What an import did.

    For catalogs the counts are products; for orders they are orders (an order
    made of several lines counts once). ``rows`` is the number of data rows read.
    """

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rows: int = 0


class CsvImportError(ValueError):
    """A file that cannot be imported; nothing was written.

    ``row`` is the spreadsheet row number (header = row 1, first data row = row 2),
    or None when the problem is not about one row (missing file, ...).
    """

    def __init__(self, reason: str, row: int | None = None, filename: str = "") -> None:
        self.reason = reason
        self.row = row
        self.filename = filename
        where = filename or "file"
        if row is not None:
            where += f" row {row}"
        super().__init__(f"{where}: {reason}")


# --------------------------------------------------------------------------- reading


class _RowError(Exception):
    """Raised while validating one row; turned into CsvImportError by the caller."""

    def __init__(self, reason: str, row: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.row = row


def _normalise_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _decoded_lines(raw: Iterable[bytes]) -> Iterator[str]:
    """Decode UTF-8 line by line so an error can name its line and byte offset."""
    offset = 0
    for lineno, line in enumerate(raw, start=1):
        if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
            offset = 3
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = line[exc.start : exc.start + 1].hex().upper()
            raise _RowError(
                f"not valid UTF-8: byte 0x{bad} at byte offset {offset + exc.start} "
                f"(line {lineno}); save the file as UTF-8 and try again",
                row=lineno,
            ) from None
        offset += len(line)
        yield text


@dataclass
class _Table:
    columns: dict[str, int]  # normalised column name -> index
    # (row number, values) of the non-blank data rows
    rows: list[tuple[int, list[str]]] = field(default_factory=list)


def _read_csv(path: Path) -> _Table:
    """Read a whole CSV file (header + rows) or raise CsvImportError."""
    name = path.name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CsvImportError("file not found", filename=str(path)) from None
    except OSError as exc:
        raise CsvImportError(f"cannot read the file ({exc.strerror})", filename=str(path)) from None
    if not path.is_file():
        raise CsvImportError("not a regular file", filename=str(path))
    if size > MAX_FILE_BYTES:
        raise CsvImportError(
            f"file is too large ({size / 1024 / 1024:.0f} MB; the limit is "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB); split it into smaller files",
            filename=name,
        )
    try:
        with path.open("rb") as fh:
            reader = csv.reader(_decoded_lines(fh))
            records: list[tuple[int, list[str]]] = []
            rowno = 0
            try:
                for rowno, record in enumerate(reader, start=1):
                    records.append((rowno, record))
            except csv.Error as exc:
                # The record that failed is the one after the last good one.
                raise _RowError(_csv_error_reason(exc), row=rowno + 1) from None
    except _RowError as exc:
        raise CsvImportError(exc.reason, exc.row, name) from None
    except OSError as exc:
        raise CsvImportError(f"cannot read the file ({exc.strerror})", filename=name) from None

    if not any(cell.strip() for _, record in records for cell in record):
        raise CsvImportError(
            "the file is empty; the first row must be a header naming the columns",
            filename=name,
        )
    header = records[0][1]
    if not any(cell.strip() for cell in header):
        raise CsvImportError("the header row is empty; it must name the columns", row=1, filename=name)
    columns: dict[str, int] = {}
    for index, raw_name in enumerate(header):
        col = _normalise_header(raw_name)
        if not col:
            continue
        if col in columns:
            raise CsvImportError(f"column '{col}' appears twice in the header", row=1, filename=name)
        columns[col] = index
    table = _Table(columns=columns)
    width = len(header)
    for rowno, record in records[1:]:
        if not any(cell.strip() for cell in record):
            continue  # blank line
        if len(record) > width and any(cell.strip() for cell in record[width:]):
            raise CsvImportError(
                f"the row has {len(record)} values but the header has only {width} columns "
                "(a value containing a comma must be quoted)",
                row=rowno,
                filename=name,
            )
        table.rows.append((rowno, record))
    return table


def _csv_error_reason(exc: csv.Error) -> str:
    msg = str(exc)
    if "field larger than field limit" in msg:
        return f"a value is longer than {csv.field_size_limit()} characters (or a quote is not closed)"
    if "NUL" in msg:
        return "the row contains a NUL byte; is this really a CSV file?"
    return f"malformed CSV ({msg})"


def _require_columns(table: _Table, specs: Sequence[ColumnSpec], filename: str) -> None:
    missing = [s.name for s in specs if s.required and s.name not in table.columns]
    if missing:
        found = ", ".join(table.columns) or "none"
        plural = "s" if len(missing) > 1 else ""
        raise CsvImportError(
            f"missing required column{plural} {', '.join(missing)} (found: {found})",
            row=1,
            filename=filename,
        )


class _Row:
    """Access to one record's values by normalised column name."""

    __slots__ = ("columns", "values")

    def __init__(self, columns: dict[str, int], values: list[str]) -> None:
        self.columns = columns
        self.values = values

    def has(self, col: str) -> bool:
        return col in self.columns

    def get(self, col: str) -> str:
        index = self.columns.get(col)
        if index is None or index >= len(self.values):
            return ""
        value = self.values[index].strip()
        if "\x00" in value:
            raise _RowError(f"{col} contains a NUL character")
        return value

    def text(self, col: str, max_len: int, *, required: bool = True) -> str:
        value = self.get(col)
        if required and not value:
            raise _RowError(f"{col} is empty")
        if len(value) > max_len:
            raise _RowError(f"{col} is {len(value)} characters long; the limit is {max_len}")
        return value


# --------------------------------------------------------------------------- field parsers

_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_INT_RE = re.compile(r"^\+?\d+$")
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _parse_cents(col: str, value: str) -> int:
    if not value:
        raise _RowError(f"{col} is empty")
    if not _NUMBER_RE.match(value):
        hint = ""
        if "," in value:
            hint = " (use a dot as decimal separator and no thousands separators)"
        elif re.search(r"\d", value):
            hint = " (write just the number, like 12.50, without a currency sign)"
        raise _RowError(f"{col} '{value}' is not a number{hint}")
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the regex guards this
        raise _RowError(f"{col} '{value}' is not a number") from None
    if amount < 0:
        raise _RowError(f"{col} '{value}' is negative")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise _RowError(f"{col} '{value}' has more than 2 decimal places")
    result = int(cents)
    if result > MAX_CENTS:
        raise _RowError(f"{col} '{value}' is too large")
    return result


def _parse_quantity(value: str) -> int:
    if not value:
        raise _RowError("quantity is empty")
    if not _INT_RE.match(value):
        raise _RowError(f"quantity '{value}' is not a whole number")
    qty = int(value)
    if qty < 1:
        raise _RowError("quantity must be at least 1")
    if qty > MAX_QUANTITY:
        raise _RowError(f"quantity {qty} is too large (limit {MAX_QUANTITY})")
    return qty


def _parse_currency(value: str) -> str:
    if not value:
        return "USD"
    if not _CURRENCY_RE.match(value):
        raise _RowError(f"currency '{value}' is not a 3-letter code like USD or EUR")
    return value.upper()


def _parse_bool(col: str, value: str) -> bool:
    if not value:
        return True
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise _RowError(f"{col} '{value}' must be true/false, yes/no or 1/0")


def _parse_url(col: str, value: str, max_len: int, *, required: bool) -> str:
    if not value:
        if required:
            raise _RowError(f"{col} is empty")
        return ""
    if len(value) > max_len:
        raise _RowError(f"{col} is {len(value)} characters long; the limit is {max_len}")
    shown = value if len(value) <= 60 else value[:57] + "..."
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _RowError(f"{col} '{shown}' contains spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _RowError(f"{col} '{shown}' is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise _RowError(f"{col} '{shown}' must be a full http:// or https:// address")
    return value


def _parse_datetime(value: str) -> datetime:
    """ISO 8601 date or date-time -> aware UTC (no offset given = UTC)."""
    if not value:
        raise _RowError("ordered_at is empty")
    text = value
    if len(text) > 10 and text[10] in " tT":
        text = text[:10] + "T" + text[11:]
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _RowError(
            f"ordered_at '{value}' is not an ISO 8601 date or date-time "
            "(like 2024-05-01 or 2024-05-01T14:30:00Z)"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _noop_progress(_done: int, _total: int) -> None:
    return None


# --------------------------------------------------------------------------- catalog

_PRODUCT = Product.__table__  # type: ignore[attr-defined]
_SHOPPER = Shopper.__table__  # type: ignore[attr-defined]
_ORDER = Order.__table__  # type: ignore[attr-defined]
_ORDER_LINE = OrderLine.__table__  # type: ignore[attr-defined]

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


def _parse_product(row: _Row) -> dict[str, Any]:
    values: dict[str, Any] = {
        "sku": row.text("sku", 64),
        "name": row.text("name", 200),
        "category": row.text("category", 100),
        "price_cents": _parse_cents("price", row.get("price")),
        "url": _parse_url("url", row.get("url"), 500, required=True),
    }
    if row.has("currency"):
        values["currency"] = _parse_currency(row.get("currency"))
    if row.has("image_url"):
        values["image_url"] = _parse_url("image_url", row.get("image_url"), 500, required=False)
    if row.has("in_stock"):
        values["in_stock"] = _parse_bool("in_stock", row.get("in_stock"))
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
    report = progress or _noop_progress
    table = _read_csv(path)
    _require_columns(table, CATALOG_COLUMNS, filename)

    parsed: list[tuple[int, dict[str, Any]]] = []
    first_row_of_sku: dict[str, int] = {}
    for rowno, values in table.rows:
        try:
            product = _parse_product(_Row(table.columns, values))
        except _RowError as exc:
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
            for chunk in _chunks(skus, LOOKUP_CHUNK):
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
            for chunk in _chunks(to_insert, CHUNK):
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
                for chunk in _chunks(to_update, CHUNK):
                    session.execute(stmt, list(chunk))
                    done += len(chunk)
                    result.updated += len(chunk)
                    report(done, total)
    except IntegrityError as exc:
        raise _conflict(filename, exc) from None
    return result


def _conflict(filename: str, exc: IntegrityError) -> CsvImportError:
    return CsvImportError(
        "the database changed while importing (another import running at the same time?); "
        f"nothing was imported, run the import again [{exc.orig}]",
        filename=filename,
    )


# --------------------------------------------------------------------------- orders


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
    report = progress or _noop_progress
    table = _read_csv(path)
    product_col = "sku" if "sku" in table.columns else "product_id"
    required = [s for s in ORDER_COLUMNS if s.name != "sku"]
    _require_columns(table, required, filename)
    if product_col not in table.columns:
        raise CsvImportError("missing required column sku (or product_id)", row=1, filename=filename)

    orders: dict[str, _PendingOrder] = {}
    line_rows: dict[tuple[str, str], int] = {}  # (order, sku) -> row, for "unknown sku" errors
    for rowno, values in table.rows:
        try:
            row = _Row(table.columns, values)
            order_id = row.text("order_id", 128)
            customer_id = row.text("customer_id", 128)
            sku = row.text(product_col, 64)
            quantity = _parse_quantity(row.get("quantity"))
            unit_cents = _parse_cents("unit_price", row.get("unit_price"))
            ordered_at = _parse_datetime(row.get("ordered_at"))
            currency = _parse_currency(row.get("currency"))
            order = orders.get(order_id)
            if order is None:
                order = orders[order_id] = _PendingOrder(order_id, customer_id, ordered_at, currency, rowno)
            else:
                first = order.first_row
                if customer_id != order.customer_id:
                    raise _RowError(
                        f"order {order_id} has customer_id '{customer_id}' here but "
                        f"'{order.customer_id}' in row {first}; all lines of an order must agree"
                    )
                if ordered_at != order.ordered_at:
                    raise _RowError(
                        f"order {order_id} has ordered_at '{row.get('ordered_at')}' here but a different "
                        f"time in row {first}; all lines of an order must agree"
                    )
                if currency != order.currency:
                    raise _RowError(
                        f"order {order_id} has currency {currency} here but {order.currency} in row "
                        f"{first}; all lines of an order must agree"
                    )
            if sku in order.lines:
                raise _RowError(
                    f"order {order_id} lists {product_col} '{sku}' again (first in row "
                    f"{order.lines[sku][2]}); put each product once per order with the total quantity"
                )
            order.lines[sku] = (quantity, unit_cents, rowno)
            line_rows[(order_id, sku)] = rowno
            order.total_cents += quantity * unit_cents
            if order.total_cents > MAX_CENTS:
                raise _RowError(f"order {order_id} total is too large")
        except _RowError as exc:
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
            for chunk in _chunks(skus, LOOKUP_CHUNK):
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
            for chunk in _chunks(list(orders), LOOKUP_CHUNK):
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
            for chunk in _chunks(customers, LOOKUP_CHUNK):
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
            for chunk in _chunks(new_shoppers, CHUNK):
                stmt = insert(_SHOPPER).returning(_SHOPPER.c.customer_id, _SHOPPER.c.id)
                shopper_ids.update({cid: sid for cid, sid in session.execute(stmt, list(chunk))})

            # Orders, then their lines.
            order_ids: dict[str, int] = {}
            for chunk in _chunks(new_orders, CHUNK):
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
            for chunk in _chunks(lines, CHUNK):
                session.execute(insert(_ORDER_LINE), list(chunk))
                done += len(chunk)
                report(done, total_rows)
    except IntegrityError as exc:
        raise _conflict(filename, exc) from None
    return result


# --------------------------------------------------------------------------- search


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
