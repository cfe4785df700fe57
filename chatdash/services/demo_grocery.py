"""A second demo profile: a grocery / everyday-goods store's order history.

Shaped like a real basket store rather than the fashion-and-gear demo: thousands
of SKUs with a long tail, baskets of 10-60 lines, weekly to occasional customers
(a few heavy ones), and mostly repeat purchases. Only orders are generated — the
history a store brings with `import-orders` — so there are no views or carts.

How shoppers choose (a latent-taste model, not one any recommender was built from):

* products belong to aisles and load on a few of 12 "themes" (family, vegan,
  baking, Asian cooking, pets, baby, ...); a shopper likes 1-3 themes. Preference
  = long-tail popularity x exp(taste . theme loadings);
* each shopper keeps a changing set of **staples** bought again on a cycle that
  depends on the product (milk every order, washing powder every few weeks);
* every order also **explores** a few products new to the shopper, drawn from
  their preference, sometimes with a complement (pasta -> sauce); an explored
  product can become a staple, and staples are dropped now and then;
* a tenth of the products launch during the year.

Deterministic from the seed and the anchor (`ANCHOR` unless told otherwise: another
anchor moves every timestamp by the difference); written with Core bulk inserts into
an empty database, in one transaction, like `demo_data.generate_demo_data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from chatdash.models import Order, OrderLine, Product, Shopper
from chatdash.services.demo_data import (
    ANCHOR,
    CURRENCY,
    DemoSummary,
    ProgressFn,
    _is_empty,
    _reset_sequences,
    _utc_anchor,
)

ORDER_SOURCE = "demo-grocery"
DAYS = 365
#: An order's hour is drawn on its day: the last ones fall up to this long after the anchor.
OVERRUN = timedelta(hours=22)

# fmt: off
#: Aisle: (name, share of the catalog, how often a staple from it is re-bought per
#: order, typical price in dollars, themes it leans to, product nouns).
AISLES: tuple[tuple[str, float, float, float, tuple[int, ...], tuple[str, ...]], ...] = (
    ("Fruit & Vegetables", 1.6, 0.75, 2.5, (1, 2), ("Bananas", "Apples", "Carrots", "Spinach", "Tomatoes",
                                                     "Avocados", "Onions", "Peppers", "Berries", "Lettuce")),
    ("Dairy & Eggs", 1.2, 0.8, 3.0, (0,), ("Whole Milk", "Greek Yogurt", "Cheddar", "Butter", "Free-Range Eggs",
                                           "Cream", "Mozzarella", "Skyr")),
    ("Bakery", 0.8, 0.7, 3.5, (0, 4), ("Sourdough", "Wholemeal Loaf", "Bagels", "Croissants", "Wraps", "Rolls")),
    ("Meat & Fish", 1.0, 0.5, 8.0, (3, 6), ("Chicken Breast", "Minced Beef", "Salmon Fillet", "Sausages",
                                            "Bacon", "Prawns", "Lamb Chops")),
    ("Plant Protein", 0.5, 0.55, 3.5, (1, 2), ("Tofu", "Tempeh", "Oat Drink", "Soy Yogurt", "Veggie Burgers",
                                               "Lentil Pasta")),
    ("Pantry", 1.4, 0.25, 3.0, (3, 5), ("Olive Oil", "Basmati Rice", "Spaghetti", "Chopped Tomatoes",
                                        "Chickpeas", "Stock Cubes", "Peanut Butter", "Honey")),
    ("Baking", 0.6, 0.2, 2.5, (4,), ("Plain Flour", "Caster Sugar", "Baking Powder", "Cocoa", "Vanilla Extract",
                                     "Dried Yeast")),
    ("World Foods", 0.9, 0.3, 3.0, (5, 8), ("Soy Sauce", "Coconut Milk", "Curry Paste", "Tortillas", "Salsa",
                                            "Noodles", "Kimchi", "Miso")),
    ("Breakfast", 0.7, 0.45, 3.5, (0, 2), ("Granola", "Porridge Oats", "Cornflakes", "Muesli", "Jam")),
    ("Snacks & Sweets", 1.3, 0.4, 2.0, (0, 7), ("Crisps", "Chocolate Bar", "Biscuits", "Popcorn", "Nuts",
                                                "Rice Cakes")),
    ("Drinks", 1.0, 0.5, 2.5, (0, 7), ("Orange Juice", "Sparkling Water", "Cola", "Coffee Beans", "Green Tea",
                                       "Kombucha")),
    ("Beer & Wine", 0.6, 0.3, 9.0, (7, 3), ("Lager", "IPA", "Red Wine", "White Wine", "Cider", "Prosecco")),
    ("Frozen", 0.9, 0.35, 4.0, (0, 6), ("Frozen Peas", "Pizza", "Ice Cream", "Fish Fingers", "Chips",
                                        "Berries Mix")),
    ("Baby", 0.4, 0.6, 6.0, (9,), ("Nappies", "Baby Wipes", "Baby Food Pouch", "Formula", "Teething Rusks")),
    ("Pet", 0.5, 0.5, 7.0, (10,), ("Dry Cat Food", "Wet Dog Food", "Cat Litter", "Dog Treats", "Bird Seed")),
    ("Household", 0.9, 0.15, 4.5, (11,), ("Washing Powder", "Dish Tabs", "Kitchen Roll", "Bin Bags",
                                          "Surface Spray", "Sponges")),
    ("Personal Care", 0.8, 0.15, 4.0, (11, 2), ("Shampoo", "Toothpaste", "Shower Gel", "Deodorant", "Razors",
                                                "Hand Soap")),
    ("Health & Organic", 0.6, 0.35, 5.0, (2, 1), ("Chia Seeds", "Protein Bar", "Vitamins", "Organic Quinoa",
                                                  "Almond Butter")),
)
THEMES = ("family", "vegan", "healthy", "home cooking", "baking", "world food", "bbq", "party",
          "asian", "baby", "pets", "household")
NICHE_THEMES = {THEMES.index("baby"), THEMES.index("pets")}
BRANDS = ("Harvest", "Greenfield", "Daily Best", "Northmill", "Sunvale", "Bramble", "Oakridge", "Simply",
          "Meadow", "Urban Pantry", "Tideway", "Golden Ear", "Nordic", "Casa", "Kinfolk", "Value")
SIZES = ("", "Small", "Large", "Family Pack", "Organic", "Twin Pack", "Light", "Extra")
#: Shopper rhythms: (share, mean days between orders, mean basket lines).
RHYTHMS = ((0.17, 7.0, 19.0), (0.28, 14.0, 16.0), (0.33, 30.0, 14.0), (0.17, 60.0, 11.0), (0.05, 4.0, 30.0))
# fmt: on


@dataclass(frozen=True)
class _Catalog:
    aisle: np.ndarray  # product index -> aisle index
    loadings: np.ndarray  # products x themes
    log_pop: np.ndarray  # long-tail popularity (log scale)
    repeat: np.ndarray  # probability a staple is re-bought in an order
    launch: np.ndarray  # day the product appears (0 = from the start)
    price: np.ndarray  # cents
    complement: np.ndarray  # products x 3: products often bought along with it


def generate_grocery_data(
    engine: Engine,
    *,
    store_url: str,
    seed: int = 7,
    products: int = 4000,
    shoppers: int = 2000,
    progress: ProgressFn | None = None,
    anchor: datetime | None = None,
) -> DemoSummary:
    """Fill an empty database with the grocery profile's catalog, customers and a
    year of orders (about 460 order lines per customer on average: ~0.9M for 2,000).
    `progress(step, done, total)` reports "products" and "shoppers" (customers done).
    `anchor` (timezone-aware; default `ANCHOR`): the year of orders ends about there,
    every timestamp the default store's moved by `anchor - ANCHOR`.
    Raises ValueError when the database already has products or shoppers."""
    # The year is drawn against ANCHOR and moved as it is written: `_shopper` keeps
    # the signature bench_recommender_ceiling replays.
    shift = _utc_anchor(anchor) - ANCHOR
    if products < len(AISLES) * 2:
        raise ValueError(f"need at least {len(AISLES) * 2} products")
    if shoppers < 1:
        raise ValueError("need at least one shopper")
    report = progress or (lambda _step, _done, _total: None)
    rng = np.random.default_rng(seed)
    catalog = _catalog(rng, products)
    store_url = store_url.rstrip("/")
    with engine.begin() as conn:
        if not _is_empty(conn):
            raise ValueError("database already has data; demo data can only be generated into an empty database")
        conn.execute(insert(Product.__table__), _product_rows(rng, catalog, store_url, shift))
        report("products", products, products)
        counts = {"orders": 0, "lines": 0}
        batch_shoppers: list[dict] = []
        batch_orders: list[dict] = []
        batch_lines: list[dict] = []
        for c in range(shoppers):
            first, last = _shopper(rng, catalog, c + 1, counts, batch_orders, batch_lines)
            batch_shoppers.append(
                {
                    "id": c + 1,
                    "visitor_id": f"g_{c + 1:08d}_{seed}",
                    "customer_id": f"G-{c + 1:06d}",
                    "created_at": first + shift,
                    "last_seen_at": last + shift,
                }
            )
            if len(batch_lines) >= 50_000 or c == shoppers - 1:
                conn.execute(insert(Shopper.__table__), batch_shoppers)
                if batch_orders:
                    for order in batch_orders:
                        order["ordered_at"] += shift
                    conn.execute(insert(Order.__table__), batch_orders)
                    conn.execute(insert(OrderLine.__table__), batch_lines)
                batch_shoppers, batch_orders, batch_lines = [], [], []
            if (c + 1) % 100 == 0 or c == shoppers - 1:
                report("shoppers", c + 1, shoppers)
        if conn.dialect.name == "postgresql":
            _reset_sequences(conn)
    return DemoSummary(
        products=products,
        categories=len(AISLES),
        shoppers=shoppers,
        visits=0,
        events=0,
        orders=counts["orders"],
        order_lines=counts["lines"],
        carts=0,
    )


def _catalog(rng: np.random.Generator, n: int) -> _Catalog:
    shares = np.array([a[1] for a in AISLES])
    aisle = np.sort(rng.choice(len(AISLES), size=n, p=shares / shares.sum()))
    aisle[: len(AISLES)] = np.arange(len(AISLES))  # every aisle has products
    aisle.sort()
    loadings = rng.normal(0.0, 0.35, size=(n, len(THEMES)))
    for i, a in enumerate(aisle):
        for rank, theme in enumerate(AISLES[a][4]):
            loadings[i, theme] += rng.uniform(0.6, 1.6) / (1 + rank)
    # A share of products speaks strongly to one more theme (a vegan chocolate, a party-size pizza).
    extra = rng.random(n) < 0.3
    loadings[extra, rng.integers(0, len(THEMES), int(extra.sum()))] += 1.0
    log_pop = rng.normal(0.0, 1.4, n)  # log-normal popularity: a long tail
    # Baby and pet products are for households with a baby or a pet, hardly anyone else.
    niche = np.isin(aisle, [a for a, spec in enumerate(AISLES) if set(spec[4]) & NICHE_THEMES])
    log_pop[niche] -= 3.5
    for theme in NICHE_THEMES:
        loadings[niche & (loadings[:, theme] > 0.5), theme] += 3.0
    repeat = np.clip(np.array([AISLES[a][2] for a in aisle]) * rng.uniform(0.6, 1.25, n), 0.05, 0.95)
    launch = np.where(rng.random(n) < 0.1, rng.uniform(30, DAYS - 20, n), 0.0)
    base = np.array([AISLES[a][3] for a in aisle])
    price = np.maximum(49, (base * rng.lognormal(0.0, 0.45, n) * 100).round()).astype(np.int64)
    # Complements: similar theme profile, another aisle.
    unit = loadings / np.linalg.norm(loadings, axis=1, keepdims=True)
    complement = np.zeros((n, 3), np.int64)
    for start in range(0, n, 512):
        sim = unit[start : start + 512] @ unit.T
        sim[aisle[start : start + 512, None] == aisle[None, :]] = -np.inf
        sim += rng.gumbel(0.0, 0.15, sim.shape) + 0.1 * log_pop[None, :]
        complement[start : start + 512] = np.argsort(-sim, axis=1)[:, :3]
    return _Catalog(aisle, loadings, log_pop, repeat, launch, price, complement)


def _product_rows(rng: np.random.Generator, catalog: _Catalog, store_url: str, shift: timedelta) -> list[dict]:
    rows, used = [], set()
    for i, a in enumerate(catalog.aisle.tolist()):
        name_, _share, _repeat, _price, _themes, nouns = AISLES[a]
        name = ""
        for _attempt in range(20):
            size = SIZES[rng.integers(len(SIZES))]
            name = " ".join(x for x in (BRANDS[rng.integers(len(BRANDS))], size, nouns[rng.integers(len(nouns))]) if x)
            if name not in used:
                break
        else:
            name = f"{name} No. {i + 1}"
        used.add(name)
        sku = f"GRO-{i + 1:05d}"
        rows.append(
            {
                "id": i + 1,
                "sku": sku,
                "name": name,
                "category": name_,
                "description": f"{name}, from our {name_} aisle.",
                "price_cents": int(catalog.price[i]),
                "currency": CURRENCY,
                "url": f"{store_url}/product/{sku}",
                "image_url": "",
                "in_stock": bool(rng.random() > 0.03),
                "created_at": ANCHOR + shift - timedelta(days=DAYS - float(catalog.launch[i]) + 1),
            }
        )
    return rows


def _shopper(
    rng: np.random.Generator,
    catalog: _Catalog,
    sid: int,
    counts: dict[str, int],
    orders: list[dict],
    lines: list[dict],
) -> tuple:
    """One customer's orders over the year; returns (first seen, last seen)."""
    n = len(catalog.aisle)
    share = np.array([r[0] for r in RHYTHMS])
    _s, every, basket = RHYTHMS[rng.choice(len(RHYTHMS), p=share / share.sum())]
    every *= rng.uniform(0.7, 1.4)
    basket = float(np.clip(basket * rng.lognormal(0.0, 0.3), 10, 60))
    taste = np.zeros(len(THEMES))
    k = rng.choice((1, 2, 3), p=(0.3, 0.45, 0.25))
    taste[rng.choice(len(THEMES), size=k, replace=False)] = rng.uniform(0.8, 1.6, k)
    pref = catalog.log_pop + catalog.loadings @ taste + rng.normal(0.0, 0.5, n)  # idiosyncrasy
    weight = np.exp(pref - pref.max())
    cum = np.cumsum(weight)

    start = rng.uniform(0, DAYS * 0.6) if rng.random() < 0.7 else 0.0  # most customers join during the year
    end = DAYS if rng.random() < 0.85 else rng.uniform(start + 30, DAYS + 30)  # some leave
    explore_rate = rng.beta(2.0, 7.0)  # share of a basket that is new to the shopper

    def draw(m: int, day: float) -> np.ndarray:
        picks = np.searchsorted(cum, rng.random(m) * cum[-1])
        return picks[catalog.launch[picks] <= day]

    staples: dict[int, float] = {}  # product -> this shopper's chance to re-buy it per order
    bought: set[int] = set()
    day = start + rng.uniform(0, every)
    first = last = ANCHOR - timedelta(days=DAYS - day)
    while day < min(end, DAYS):
        target = int(np.clip(round(rng.normal(basket, basket * 0.25)), 6, 60))
        order: set[int] = set()
        if staples:
            ids = np.fromiter(staples, np.int64)
            p = np.fromiter(staples.values(), float)
            order.update(ids[rng.random(len(ids)) < p].tolist())
            for pid in ids[rng.random(len(ids)) < 0.015].tolist():  # tastes drift
                del staples[pid]
        # New to the shopper, or bought before without becoming a staple: up to the basket's size.
        want_new = max(1, round(target * explore_rate), target - len(order)) if staples else target
        fresh = [pid for pid in draw(4 * want_new + 8, day).tolist() if pid not in order]
        added = 0
        for pid in fresh:
            if added >= want_new or len(order) >= 60:
                break
            if pid in order:
                continue
            order.add(pid)
            added += 1
            if rng.random() < 0.3:  # a complement comes along
                comp = int(catalog.complement[pid, rng.integers(3)])
                if catalog.launch[comp] <= day:
                    order.add(comp)
            if pid not in staples and rng.random() < 0.5 * catalog.repeat[pid] + (0.3 if pid not in bought else 0):
                staples[pid] = float(catalog.repeat[pid] * rng.uniform(0.5, 1.2))
        # Keep the staple set near what a basket of this size re-buys.
        while len(staples) > 2.2 * basket:
            del staples[next(iter(staples))]
        if len(order) > 60:
            order = set(list(order)[:60])
        bought |= order
        counts["orders"] += 1
        oid = counts["orders"]
        when = (
            ANCHOR
            - timedelta(days=DAYS - day)
            + timedelta(hours=int(rng.integers(7, 22)), seconds=int(rng.integers(3600)))
        )
        total = 0
        for pid in sorted(order):
            counts["lines"] += 1
            quantity = int(rng.choice((1, 1, 1, 2, 2, 3)))
            total += int(catalog.price[pid]) * quantity
            lines.append(
                {
                    "id": counts["lines"],
                    "order_id": oid,
                    "product_id": pid + 1,
                    "quantity": quantity,
                    "unit_price_cents": int(catalog.price[pid]),
                }
            )
        orders.append(
            {
                "id": oid,
                "external_id": f"G-{oid:07d}",
                "shopper_id": sid,
                "total_cents": total,
                "currency": CURRENCY,
                "ordered_at": when,
                "source": ORDER_SOURCE,
            }
        )
        last = when
        day += max(1.0, rng.gamma(4.0, every / 4.0))
    return first, last
