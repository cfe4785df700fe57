"""Import a store's product catalog and order history from CSV files; search products.

Both importers (`catalog_import`, `orders_import`) work in two phases:

1. The whole file is read and validated by `csv_reader` (and product / order
   references are checked against the database). The first problem found raises
   :class:`CsvImportError`, naming the row and the reason.
2. Everything is written in ONE transaction, with bulk inserts. If anything
   fails (or the ``progress`` callback raises), the transaction is rolled back:
   a file is imported completely or not at all.

Row numbers are the ones a spreadsheet shows: the header is row 1, so the
first data row is row 2. They count CSV records, so a quoted value spanning
several lines still counts as one row. Encoding errors (which are found before
the CSV is parsed) name the physical line instead, together with the byte
offset in the file.

`search` finds products for the admin's product picker.

No Reflex imports here: the CLI and the admin pages both call these functions,
through the names re-exported below.
"""

from chatdash.services.catalog.catalog_import import CATALOG_COLUMNS, import_catalog
from chatdash.services.catalog.csv_reader import MAX_FILE_BYTES, ColumnSpec, CsvImportError, ImportResult, Progress
from chatdash.services.catalog.orders_import import ORDER_COLUMNS, customer_visitor_id, import_orders
from chatdash.services.catalog.search import match_tier, search_products

__all__ = [
    "CATALOG_COLUMNS",
    "MAX_FILE_BYTES",
    "ORDER_COLUMNS",
    "ColumnSpec",
    "CsvImportError",
    "ImportResult",
    "Progress",
    "customer_visitor_id",
    "import_catalog",
    "import_orders",
    "match_tier",
    "search_products",
]
