"""Catalog / order CSV import and product search, on real SQLite files and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from chatdash.models import Order, OrderLine, Product, Shopper
from chatdash.services.catalog import (
    CATALOG_COLUMNS,
    ORDER_COLUMNS,
    CsvImportError,
    ImportResult,
    customer_visitor_id,
    import_catalog,
    import_orders,
    search_products,
)

CATALOG = """\
sku,name,category,price,url,currency,image_url,in_stock,description
TS-1,Blue T-Shirt,Apparel,19.99,https://s.example/p/ts-1,usd,https://cdn.example/ts.jpg,yes,"Soft, 95% cotton"
MUG-2,Coffee Mug,Kitchen,8.5,https://shop.example/p/mug-2,EUR,,false,
SOCK-3,Wool Socks,Apparel,12,http://shop.example/p/sock-3,,,1,Warm
"""

ORDERS = """\
order_id,customer_id,sku,quantity,unit_price,ordered_at,currency
A-100,cust-1,TS-1,2,19.99,2024-05-01T10:00:00Z,USD
A-100,cust-1,MUG-2,1,8.50,2024-05-01T12:00:00+02:00,USD
A-101,cust-2,SOCK-3,3,12.00,2024-05-02,USD
A-102,cust-1,MUG-2,4,8.00,2024-05-03 09:15:00,USD
A-101,cust-2,TS-1,1,19.99,2024-05-02T00:00:00,USD
"""


@pytest.fixture
def db(any_engine):
    return any_engine


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def counts(engine) -> dict[str, int]:
    with Session(engine) as s:
        return {
            m.__name__: s.execute(select(func.count()).select_from(m)).scalar_one()
            for m in (Product, Shopper, Order, OrderLine)
        }


def products(engine) -> dict[str, Product]:
    with Session(engine) as s:
        return {p.sku: p for p in s.exec(select(Product)).scalars()}


def expect_error(func_, engine, path: Path, row: int | None, *words: str) -> CsvImportError:
    before = counts(engine)
    with pytest.raises(CsvImportError) as info:
        func_(engine, path)
    err = info.value
    assert err.row == row, str(err)
    for word in words:
        assert word.lower() in err.reason.lower(), str(err)
    if row is None:
        assert path.name in str(err)
    else:
        assert str(err).startswith(f"{path.name} row {row}:")
    assert counts(engine) == before, "a failed import must not write anything"
    return err


@pytest.fixture
def catalog_loaded(db, tmp_path):
    """The CATALOG products, on SQLite and on PostgreSQL."""
    import_catalog(db, write(tmp_path, "catalog.csv", CATALOG))
    return db


@pytest.fixture
def sqlite_catalog(engine, tmp_path):
    """The CATALOG products on SQLite only (for the many validation cases)."""
    import_catalog(engine, write(tmp_path, "catalog.csv", CATALOG))
    return engine


# --------------------------------------------------------------------------- catalog


def test_column_docs():
    assert [c.name for c in CATALOG_COLUMNS if c.required] == [
        "sku",
        "name",
        "category",
        "price",
        "url",
    ]
    assert {c.name for c in ORDER_COLUMNS if c.required} == {
        "order_id",
        "customer_id",
        "sku",
        "quantity",
        "unit_price",
        "ordered_at",
    }


def test_import_catalog(db, tmp_path):
    calls: list[tuple[int, int]] = []
    result = import_catalog(
        db,
        write(tmp_path, "catalog.csv", CATALOG),
        progress=lambda d, t: calls.append((d, t)),
    )
    assert result == ImportResult(created=3, updated=0, unchanged=0, rows=3)
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)
    got = products(db)
    ts = got["TS-1"]
    assert (ts.name, ts.category, ts.price_cents, ts.currency) == (
        "Blue T-Shirt",
        "Apparel",
        1999,
        "USD",
    )
    assert ts.url == "https://s.example/p/ts-1"
    assert ts.image_url == "https://cdn.example/ts.jpg"
    assert ts.in_stock is True and ts.description == "Soft, 95% cotton"
    mug = got["MUG-2"]
    assert (mug.price_cents, mug.currency, mug.in_stock, mug.image_url) == (
        850,
        "EUR",
        False,
        "",
    )
    sock = got["SOCK-3"]
    assert (sock.price_cents, sock.currency, sock.in_stock) == (1200, "USD", True)


def test_reimport_catalog_updates_without_duplicates(db, tmp_path):
    import_catalog(db, write(tmp_path, "catalog.csv", CATALOG))
    again = import_catalog(db, write(tmp_path, "catalog.csv", CATALOG))
    assert again == ImportResult(created=0, updated=0, unchanged=3, rows=3)

    changed = CATALOG.replace("Coffee Mug,Kitchen,8.5", "Coffee Mug XL,Kitchen,9.00")
    changed += "NEW-4,Tea Pot,Kitchen,30,https://shop.example/p/new-4,,,,\n"
    result = import_catalog(db, write(tmp_path, "catalog2.csv", changed))
    assert result == ImportResult(created=1, updated=1, unchanged=2, rows=4)
    got = products(db)
    assert len(got) == 4
    assert (got["MUG-2"].name, got["MUG-2"].price_cents) == ("Coffee Mug XL", 900)


def test_optional_columns_absent_keep_existing_values(engine, tmp_path):
    import_catalog(engine, write(tmp_path, "catalog.csv", CATALOG))
    minimal = "SKU , Name,CATEGORY,Price,URL,Extra Column\n"
    minimal += "TS-1,Blue T-Shirt,Apparel,21.00,https://s.example/p/ts-1,ignored\n"
    result = import_catalog(engine, write(tmp_path, "min.csv", minimal))
    assert (result.updated, result.unchanged) == (1, 0)
    ts = products(engine)["TS-1"]
    assert ts.price_cents == 2100
    assert ts.description == "Soft, 95% cotton"  # column absent: left alone
    assert ts.image_url == "https://cdn.example/ts.jpg"


def test_catalog_bom_crlf_and_header_normalisation(engine, tmp_path):
    text = "\ufeff Sku ,NAME,Category , price,Url,In Stock\r\n"
    text += "X-1,Café crème,Drinks,3.5,https://shop.example/x-1,NO\r\n"
    path = write(tmp_path, "bom.csv", text.encode("utf-8"))
    assert import_catalog(engine, path).created == 1
    x = products(engine)["X-1"]
    assert (x.name, x.price_cents, x.in_stock) == ("Café crème", 350, False)


def test_header_only_and_blank_lines(engine, tmp_path):
    path = write(tmp_path, "catalog.csv", "sku,name,category,price,url\n")
    assert import_catalog(engine, path) == ImportResult(0, 0, 0, 0)
    path = write(
        tmp_path,
        "orders.csv",
        "order_id,customer_id,product_id,quantity,unit_price,ordered_at\n\n",
    )
    assert import_orders(engine, path) == ImportResult(0, 0, 0, 0)
    assert counts(engine) == {"Product": 0, "Shopper": 0, "Order": 0, "OrderLine": 0}


@pytest.mark.parametrize(
    ("content", "row", "words"),
    [
        (
            "sku,name,category,url\nA,B,C,https://x.example\n",
            1,
            ["missing required column price"],
        ),
        ("sku,name,price\nA,B,1\n", 1, ["missing required columns category, url"]),
        (
            "sku,name,category,price,url\nA,B,C,abc,https://x.example\n",
            2,
            ["price 'abc' is not a number"],
        ),
        (
            'sku,name,category,price,url\nA,B,C,"1,50",https://x.example\n',
            2,
            ["not a number", "dot"],
        ),
        (
            "sku,name,category,price,url\nA,B,C,$5,https://x.example\n",
            2,
            ["not a number"],
        ),
        (
            "sku,name,category,price,url\nA,B,C,-1.00,https://x.example\n",
            2,
            ["negative"],
        ),
        (
            "sku,name,category,price,url\nA,B,C,1.005,https://x.example\n",
            2,
            ["more than 2 decimal"],
        ),
        (
            "sku,name,category,price,url\nA,B,C,NaN,https://x.example\n",
            2,
            ["not a number"],
        ),
        (
            "sku,name,category,price,url\nA,B,C,99999999999,https://x.example\n",
            2,
            ["too large"],
        ),
        (
            "sku,name,category,price,url\nA,B,C,1,javascript:alert(1)\n",
            2,
            ["url", "http"],
        ),
        (
            'sku,name,category,price,url\nA,B,C,1,"data:text/html;base64,xx"\n',
            2,
            ["url", "http"],
        ),
        ("sku,name,category,price,url\nA,B,C,1,/p/relative\n", 2, ["url", "http"]),
        ("sku,name,category,price,url\nA,B,C,1,https://\n", 2, ["url", "http"]),
        (
            "sku,name,category,price,url,image_url\nA,B,C,1,https://x.example,javascript:x\n",
            2,
            ["image_url"],
        ),
        (
            "sku,name,category,price,url\n,B,C,1,https://x.example\n",
            2,
            ["sku is empty"],
        ),
        (
            "sku,name,category,price,url\nA,B,C,1,https://x.example,extra\n",
            2,
            ["6 values", "5 columns"],
        ),
        (
            f"sku,name,category,price,url\n{'S' * 65},B,C,1,https://x.example\n",
            2,
            ["sku", "limit is 64"],
        ),
        (
            f"sku,name,category,price,url\nA,{'n' * 201},C,1,https://x.example\n",
            2,
            ["name", "200"],
        ),
        (
            "sku,name,category,price,url,currency\nA,B,C,1,https://x.example,EURO\n",
            2,
            ["currency"],
        ),
        (
            "sku,name,category,price,url,in_stock\nA,B,C,1,https://x.example,maybe\n",
            2,
            ["in_stock"],
        ),
        (
            "sku,name,category,price,url\nA,B,C,1,https://x.example\nA,B2,C,2,https://x.example\n",
            3,
            ["already listed in row 2"],
        ),
        ("sku,SKU,name,category,price,url\n", 1, ["appears twice"]),
        ('sku,name,category,price,url\nA,"unclosed,C,1,https://x.example\n', None, []),
    ],
)
def test_bad_catalog_rejected(engine, tmp_path, content, row, words):
    path = write(tmp_path, "catalog.csv", content)
    if row is None:  # unterminated quote: swallows the rest; must still fail cleanly
        before = counts(engine)
        with pytest.raises(CsvImportError):
            import_catalog(engine, path)
        assert counts(engine) == before
        return
    expect_error(import_catalog, engine, path, row, *words)


def test_bad_last_row_writes_nothing(db, tmp_path):
    rows = [f"S-{i},Item {i},Cat,1.00,https://shop.example/{i}" for i in range(2500)]
    rows.append("BAD,Bad,Cat,1.00,javascript:alert(1)")
    path = write(
        tmp_path,
        "catalog.csv",
        "sku,name,category,price,url\n" + "\n".join(rows) + "\n",
    )
    expect_error(import_catalog, db, path, 2502, "url")
    assert counts(db)["Product"] == 0


def test_failure_during_write_rolls_back(db, tmp_path):
    """An exception after some chunks were written (here: from progress) undoes them."""
    import_catalog(db, write(tmp_path, "catalog.csv", CATALOG))
    rows = [f"S-{i},Item {i},Cat,1.00,https://shop.example/{i}" for i in range(2500)]
    path = write(tmp_path, "big.csv", "sku,name,category,price,url\n" + "\n".join(rows) + "\n")

    class Cancelled(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        if done >= 2000:
            raise Cancelled

    with pytest.raises(Cancelled):
        import_catalog(db, path, progress=cancel)
    assert counts(db)["Product"] == 3


def test_missing_empty_and_non_utf8_files(engine, tmp_path):
    expect_error(import_catalog, engine, tmp_path / "nope.csv", None, "not found")
    expect_error(import_orders, engine, tmp_path / "nope.csv", None, "not found")
    expect_error(
        import_catalog,
        engine,
        write(tmp_path, "empty.csv", b""),
        None,
        "empty",
        "header",
    )
    expect_error(
        import_orders,
        engine,
        write(tmp_path, "bom.csv", b"\xef\xbb\xbf"),
        None,
        "empty",
    )
    expect_error(
        import_catalog,
        engine,
        write(tmp_path, "blank.csv", ",,\nA,B,C\n"),
        1,
        "header row is empty",
    )

    latin1 = "sku,name,category,price,url\nA,ok,C,1,https://x.example\nB,Caf\xe9,C,1,https://x.example\n"
    raw = latin1.encode("latin-1")
    path = write(tmp_path, "latin1.csv", raw)
    offset = raw.index(b"\xe9")
    err = expect_error(import_catalog, engine, path, 3, "not valid UTF-8", "0xE9", f"offset {offset}")
    assert "UnicodeDecodeError" not in str(err)


def test_file_too_large(engine, tmp_path, monkeypatch):
    from chatdash.services.catalog import csv_reader

    monkeypatch.setattr(csv_reader, "MAX_FILE_BYTES", 10)
    path = write(tmp_path, "catalog.csv", CATALOG)
    expect_error(import_catalog, engine, path, None, "too large")


# --------------------------------------------------------------------------- orders


def test_import_orders(catalog_loaded, tmp_path):
    engine = catalog_loaded
    calls: list[tuple[int, int]] = []
    result = import_orders(
        engine,
        write(tmp_path, "orders.csv", ORDERS),
        progress=lambda d, t: calls.append((d, t)),
    )
    assert result == ImportResult(created=3, updated=0, unchanged=0, rows=5)
    assert calls[0] == (0, 5) and calls[-1] == (5, 5)
    assert counts(engine) == {"Product": 3, "Shopper": 2, "Order": 3, "OrderLine": 5}

    with Session(engine) as s:
        orders = {o.external_id: o for o in s.exec(select(Order)).scalars()}
        shoppers = {sh.id: sh for sh in s.exec(select(Shopper)).scalars()}
        pid = {p.sku: p.id for p in s.exec(select(Product)).scalars()}
        lines = {
            (ln.order_id, ln.product_id): (ln.quantity, ln.unit_price_cents)
            for ln in s.exec(select(OrderLine)).scalars()
        }

    a100, a101, a102 = orders["A-100"], orders["A-101"], orders["A-102"]
    assert a100.total_cents == 2 * 1999 + 850
    assert a101.total_cents == 3 * 1200 + 1999  # lines not adjacent in the file
    assert a102.total_cents == 4 * 800
    assert {o.source for o in orders.values()} == {"import"}
    assert {o.currency for o in orders.values()} == {"USD"}
    assert lines[(a100.id, pid["TS-1"])] == (2, 1999)
    assert lines[(a101.id, pid["TS-1"])] == (1, 1999)

    # 10:00Z and 12:00+02:00 are the same instant; no offset means UTC.
    assert a100.ordered_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert a101.ordered_at == datetime(2024, 5, 2, 0, 0, tzinfo=UTC)
    assert a102.ordered_at == datetime(2024, 5, 3, 9, 15, tzinfo=UTC)

    assert a100.shopper_id == a102.shopper_id != a101.shopper_id
    cust1 = shoppers[a100.shopper_id]
    assert cust1.customer_id == "cust-1"
    assert cust1.visitor_id == customer_visitor_id("cust-1")
    assert len(cust1.visitor_id) <= 64
    assert cust1.last_seen_at == datetime(2024, 5, 3, 9, 15, tzinfo=UTC)  # last order


def test_reimport_orders_adds_nothing(catalog_loaded, tmp_path):
    engine = catalog_loaded
    import_orders(engine, write(tmp_path, "orders.csv", ORDERS))
    before = counts(engine)
    again = import_orders(engine, write(tmp_path, "orders.csv", ORDERS))
    assert again == ImportResult(created=0, updated=0, unchanged=3, rows=5)
    assert counts(engine) == before

    more = ORDERS + "A-103,cust-1,SOCK-3,1,12,2024-06-01,USD\nA-104,cust-9,SOCK-3,1,12,2024-06-02,USD\n"
    result = import_orders(engine, write(tmp_path, "orders2.csv", more))
    assert result == ImportResult(created=2, updated=0, unchanged=3, rows=7)
    after = counts(engine)
    assert after["Order"] == 5 and after["Shopper"] == 3  # cust-1 reused, cust-9 new


def test_orders_existing_shopper_reused_and_product_id_column(sqlite_catalog, tmp_path):
    engine = sqlite_catalog
    with Session(engine) as s:
        now = datetime.now(UTC)
        s.add(
            Shopper(
                visitor_id="v-123",
                customer_id="known",
                created_at=now,
                last_seen_at=now,
            )
        )
        s.commit()
    text = "Order ID,Customer ID,Product ID,Quantity,Unit Price,Ordered At\n"
    text += "Z-1,known,TS-1,1,19.99,2024-01-01\n"
    assert import_orders(engine, write(tmp_path, "orders.csv", text)).created == 1
    with Session(engine) as s:
        shopper = s.exec(select(Shopper)).scalars().one()
        order = s.exec(select(Order)).scalars().one()
    assert shopper.visitor_id == "v-123" and order.shopper_id == shopper.id


HEAD = "order_id,customer_id,sku,quantity,unit_price,ordered_at\n"


@pytest.mark.parametrize(
    ("content", "row", "words"),
    [
        (
            "order_id,customer_id,quantity,unit_price,ordered_at\n",
            1,
            ["sku (or product_id)"],
        ),
        (
            "order_id,sku,quantity,unit_price,ordered_at\n",
            1,
            ["missing required column customer_id"],
        ),
        (
            HEAD + "O1,c1,TS-1,1,19.99,2024-01-01\nO2,c1,TS-1,1,abc,2024-01-01\n",
            3,
            ["unit_price 'abc' is not a number"],
        ),
        (HEAD + "O1,c1,TS-1,0,1,2024-01-01\n", 2, ["quantity must be at least 1"]),
        (
            HEAD + "O1,c1,TS-1,1.5,1,2024-01-01\n",
            2,
            ["quantity '1.5' is not a whole number"],
        ),
        (HEAD + "O1,c1,TS-1,1,-2,2024-01-01\n", 2, ["negative"]),
        (
            HEAD + "O1,c1,TS-1,1,1,yesterday\n",
            2,
            ["ordered_at 'yesterday'", "ISO 8601"],
        ),
        (HEAD + "O1,c1,TS-1,1,1,2024-13-01\n", 2, ["ISO 8601"]),
        (
            HEAD + "O1,c1,TS-1,1,1,2024-01-01\nO2,c2,NOPE,1,1,2024-01-01\n",
            3,
            ["unknown product sku 'NOPE'"],
        ),
        (
            HEAD + "O1,c1,TS-1,1,1,2024-01-01\nO1,c2,MUG-2,1,1,2024-01-01\n",
            3,
            ["customer_id", "row 2"],
        ),
        (
            HEAD + "O1,c1,TS-1,1,1,2024-01-01\nO2,c1,TS-1,1,1,2024-01-01\nO1,c1,MUG-2,1,1,2024-01-02\n",
            4,
            ["ordered_at", "row 2"],
        ),
        (
            HEAD + "O1,c1,TS-1,1,1,2024-01-01\nO1,c1,TS-1,2,1,2024-01-01\n",
            3,
            ["'TS-1' again", "row 2"],
        ),
        (HEAD + ",c1,TS-1,1,1,2024-01-01\n", 2, ["order_id is empty"]),
        (HEAD + f"O1,{'c' * 129},TS-1,1,1,2024-01-01\n", 2, ["customer_id", "128"]),
        (HEAD + "O1,c1,TS-1,1000,20000000,2024-01-01\n", 2, ["total is too large"]),
        (
            (
                "order_id,customer_id,sku,quantity,unit_price,ordered_at,currency\n"
                "O1,c1,TS-1,1,1,2024-01-01,USD\nO1,c1,MUG-2,1,1,2024-01-01,EUR\n"
            ),
            3,
            ["currency"],
        ),
    ],
)
def test_bad_orders_rejected(sqlite_catalog, tmp_path, content, row, words):
    expect_error(
        import_orders,
        sqlite_catalog,
        write(tmp_path, "orders.csv", content),
        row,
        *words,
    )


def test_bad_order_row_at_end_writes_nothing(catalog_loaded, tmp_path):
    engine = catalog_loaded
    body = ORDERS + "A-200,cust-3,TS-1,1,19.99,2024-05-09,USD\n" + "A-201,cust-3,GHOST,1,1,2024-05-09,USD\n"
    expect_error(
        import_orders,
        engine,
        write(tmp_path, "orders.csv", body),
        8,
        "unknown product",
        "GHOST",
    )
    assert counts(engine) == {"Product": 3, "Shopper": 0, "Order": 0, "OrderLine": 0}

    latin1 = (ORDERS + "A-300,Jos\xe9,TS-1,1,1,2024-05-09,USD\n").encode("latin-1")
    expect_error(import_orders, engine, write(tmp_path, "orders.csv", latin1), 7, "UTF-8")


def test_import_50k_order_lines_is_fast(engine, tmp_path):
    cat = ["sku,name,category,price,url"] + [
        f"P{i},Product {i},Cat {i % 20},{i % 50}.99,https://shop.example/p/{i}" for i in range(2000)
    ]
    import_catalog(engine, write(tmp_path, "catalog.csv", "\n".join(cat) + "\n"))
    lines = [HEAD.strip()]
    for n in range(50_000):
        order = n // 4  # 4 lines per order
        lines.append(
            f"O{order},c{order % 3000},P{n % 2000},{1 + n % 3},{n % 50}.99,"
            f"2024-03-{1 + order % 28:02d}T10:00:00"
        )
    path = write(tmp_path, "orders.csv", "\n".join(lines) + "\n")
    started = time.perf_counter()
    result = import_orders(engine, path)
    elapsed = time.perf_counter() - started
    assert result == ImportResult(created=12_500, updated=0, unchanged=0, rows=50_000)
    assert counts(engine)["OrderLine"] == 50_000
    assert elapsed < 20, f"importing 50k order lines took {elapsed:.1f}s"


def test_docs_samples_import_cleanly(engine):
    samples = Path(__file__).resolve().parent.parent / "docs" / "samples"
    catalog = import_catalog(engine, samples / "catalog.csv")
    assert catalog.created == catalog.rows > 0
    orders = import_orders(engine, samples / "orders.csv")
    assert orders.created > 0 and orders.rows == counts(engine)["OrderLine"]


# --------------------------------------------------------------------------- search

SEARCH_CATALOG = """\
sku,name,category,price,url
BAG-1,Leather Bag,Bags,50,https://s.example/1
SH-RED,Red Shirt,Shirts,20,https://s.example/2
SH-BLU,Blue Shirt,Shirts,20,https://s.example/3
TSHIRT,Classic Tee,Apparel,15,https://s.example/4
PCT-1,100% Cotton Scarf,Accessories,25,https://s.example/5
UND-1,Under_score Cap,Hats,10,https://s.example/6
CAFE-1,ÉCLAIR Café Crème,Bakery,4,https://s.example/7
"""


@pytest.fixture
def search_session(db, tmp_path):
    import_catalog(db, write(tmp_path, "catalog.csv", SEARCH_CATALOG))
    with Session(db) as session:
        yield session


def skus(found: list[Product]) -> list[str]:
    return [p.sku for p in found]


def test_search_case_insensitive_and_prefix_first(search_session):
    found = skus(search_products(search_session, "SHIRT"))
    # "Red Shirt"/"Blue Shirt" (word prefix) and category "Shirts" (prefix)
    # come before "TSHIRT" (only contains "shirt").
    assert set(found) == {"SH-RED", "SH-BLU", "TSHIRT"}
    assert found[-1] == "TSHIRT"
    assert skus(search_products(search_session, "blue")) == ["SH-BLU"]
    assert skus(search_products(search_session, "  leather   bag ")) == ["BAG-1"]


def test_search_sku_and_category(search_session):
    assert skus(search_products(search_session, "bag-1")) == ["BAG-1"]
    assert skus(search_products(search_session, "bags")) == ["BAG-1"]
    assert skus(search_products(search_session, "sh-"))[:2] == ["SH-BLU", "SH-RED"]
    assert skus(search_products(search_session, "apparel")) == ["TSHIRT"]


def test_search_name_prefix_beats_contains(search_session):
    # "Classic Tee" starts with "c"; "100% Cotton Scarf" has a word starting with it.
    found = skus(search_products(search_session, "cl"))
    assert found[0] == "TSHIRT"


def test_search_escapes_wildcards(search_session):
    assert skus(search_products(search_session, "%")) == ["PCT-1"]
    assert skus(search_products(search_session, "_")) == ["UND-1"]
    assert skus(search_products(search_session, "e_s")) == []  # no "Red Shirt" via wildcard
    assert search_products(search_session, "\\") == []


def test_search_non_ascii_case_insensitive(search_session):
    assert skus(search_products(search_session, "éclair")) == ["CAFE-1"]
    assert skus(search_products(search_session, "CRÈME")) == ["CAFE-1"]


def test_search_blank_and_limit(search_session):
    assert search_products(search_session, "") == []
    assert search_products(search_session, "   ") == []
    assert len(search_products(search_session, "s", limit=2)) == 2
    assert search_products(search_session, "s", limit=0) == []
    assert search_products(search_session, "zzz") == []


def test_match_tier_agrees_with_search_ranking():
    from chatdash.models import Product
    from chatdash.services.catalog import match_tier

    p = Product(sku="RUN-1", name="Trail Runner Shoe", category="Running Shoes", price_cents=1, url="https://s/p")
    assert match_tier(p, "run-1") == 0
    assert match_tier(p, "trail") == 1
    assert match_tier(p, "running") == 2
    assert match_tier(p, "runner") == 2
    assert match_tier(p, "ail") == 3
