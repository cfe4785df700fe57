"""Read and check an import CSV: the file, its header, its rows and their values; errors name the row."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError

#: `progress(done, total)`: data rows processed so far and the number of data rows.
Progress = Callable[[int, int], None]

# Refuse files larger than this before reading them.
MAX_FILE_BYTES = 200 * 1024 * 1024
# Largest value of a 32-bit INTEGER column (PostgreSQL): money is in cents.
MAX_CENTS = 2**31 - 1
MAX_QUANTITY = 1_000_000
# Rows per INSERT/UPDATE batch and per "IN (...)" lookup.
CHUNK = 1000
LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class ColumnSpec:
    """One column of an import file, as docs/importing.md and the CLI describe it."""

    name: str
    required: bool
    description: str


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


class RowError(Exception):
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
            raise RowError(
                f"not valid UTF-8: byte 0x{bad} at byte offset {offset + exc.start} "
                f"(line {lineno}); save the file as UTF-8 and try again",
                row=lineno,
            ) from None
        offset += len(line)
        yield text


@dataclass
class Table:
    columns: dict[str, int]  # normalised column name -> index
    # (row number, values) of the non-blank data rows
    rows: list[tuple[int, list[str]]] = field(default_factory=list)


def read_csv(path: Path) -> Table:
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
                raise RowError(_csv_error_reason(exc), row=rowno + 1) from None
    except RowError as exc:
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
    table = Table(columns=columns)
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


def require_columns(table: Table, specs: Sequence[ColumnSpec], filename: str) -> None:
    missing = [s.name for s in specs if s.required and s.name not in table.columns]
    if missing:
        found = ", ".join(table.columns) or "none"
        plural = "s" if len(missing) > 1 else ""
        raise CsvImportError(
            f"missing required column{plural} {', '.join(missing)} (found: {found})",
            row=1,
            filename=filename,
        )


class Row:
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
            raise RowError(f"{col} contains a NUL character")
        return value

    def text(self, col: str, max_len: int, *, required: bool = True) -> str:
        value = self.get(col)
        if required and not value:
            raise RowError(f"{col} is empty")
        if len(value) > max_len:
            raise RowError(f"{col} is {len(value)} characters long; the limit is {max_len}")
        return value


# --------------------------------------------------------------------------- field parsers

_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_INT_RE = re.compile(r"^\+?\d+$")
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_cents(col: str, value: str) -> int:
    if not value:
        raise RowError(f"{col} is empty")
    if not _NUMBER_RE.match(value):
        hint = ""
        if "," in value:
            hint = " (use a dot as decimal separator and no thousands separators)"
        elif re.search(r"\d", value):
            hint = " (write just the number, like 12.50, without a currency sign)"
        raise RowError(f"{col} '{value}' is not a number{hint}")
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the regex guards this
        raise RowError(f"{col} '{value}' is not a number") from None
    if amount < 0:
        raise RowError(f"{col} '{value}' is negative")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise RowError(f"{col} '{value}' has more than 2 decimal places")
    result = int(cents)
    if result > MAX_CENTS:
        raise RowError(f"{col} '{value}' is too large")
    return result


def parse_quantity(value: str) -> int:
    if not value:
        raise RowError("quantity is empty")
    if not _INT_RE.match(value):
        raise RowError(f"quantity '{value}' is not a whole number")
    qty = int(value)
    if qty < 1:
        raise RowError("quantity must be at least 1")
    if qty > MAX_QUANTITY:
        raise RowError(f"quantity {qty} is too large (limit {MAX_QUANTITY})")
    return qty


def parse_currency(value: str) -> str:
    if not value:
        return "USD"
    if not _CURRENCY_RE.match(value):
        raise RowError(f"currency '{value}' is not a 3-letter code like USD or EUR")
    return value.upper()


def parse_bool(col: str, value: str) -> bool:
    if not value:
        return True
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise RowError(f"{col} '{value}' must be true/false, yes/no or 1/0")


def parse_url(col: str, value: str, max_len: int, *, required: bool) -> str:
    if not value:
        if required:
            raise RowError(f"{col} is empty")
        return ""
    if len(value) > max_len:
        raise RowError(f"{col} is {len(value)} characters long; the limit is {max_len}")
    shown = value if len(value) <= 60 else value[:57] + "..."
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise RowError(f"{col} '{shown}' contains spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise RowError(f"{col} '{shown}' is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise RowError(f"{col} '{shown}' must be a full http:// or https:// address")
    return value


def parse_datetime(value: str) -> datetime:
    """ISO 8601 date or date-time -> aware UTC (no offset given = UTC)."""
    if not value:
        raise RowError("ordered_at is empty")
    text = value
    if len(text) > 10 and text[10] in " tT":
        text = text[:10] + "T" + text[11:]
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(
            f"ordered_at '{value}' is not an ISO 8601 date or date-time "
            "(like 2024-05-01 or 2024-05-01T14:30:00Z)"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def no_progress(_done: int, _total: int) -> None:
    return None


def conflict_error(filename: str, exc: IntegrityError) -> CsvImportError:
    return CsvImportError(
        "the database changed while importing (another import running at the same time?); "
        f"nothing was imported, run the import again [{exc.orig}]",
        filename=filename,
    )
