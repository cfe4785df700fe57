"""A deterministic, realistic demo store: products, shoppers, visits, events, carts, orders.

Everything is derived from one seed and an anchor moment (the fixed `ANCHOR`
unless told otherwise), so the same seed and anchor always give the same
database, and another anchor gives the same rows moved in time by the
difference: tests and benchmarks use `ANCHOR`, a new install its own day
(`anchor_for`), so its store looks current. The data carries structure a recommender can
learn from:

* every shopper has 1-3 favourite categories and mostly browses and buys there;
* "bundles" (shoe + socks, tent + sleeping bag + pad, ...) are often bought
  together in one order;
* a session views similar items of one category one after the other;
* product popularity follows a long tail (Zipf-like within each category).

Rows are written with SQLAlchemy Core bulk inserts and primary keys assigned
here (the database must be empty), all in one transaction.
"""

from __future__ import annotations

import csv
import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection, Engine

from chatdash.models import (
    Cart,
    CartLine,
    Conversation,
    EventKind,
    Message,
    Order,
    OrderLine,
    Product,
    Shopper,
    StoreEvent,
    Visit,
)
from chatdash.services.tracking.schema import compact_json

ProgressFn = Callable[[str, int, int], None]

#: The default anchor: the demo's activity ends here (a visit may run a few minutes past
#: it), never relative to now(), so tests and benchmarks see the same data on any day.
#: Datetimes are timezone-aware: SQLModel's UTCDateTime column type refuses naive values.
ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)
STORE_NAME = "Demo Store"
CURRENCY = "USD"
ORDER_SOURCE = "demo"

_FLUSH_EVENTS = 20_000
_DAY = timedelta(days=1)


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Noun:
    """A kind of product within a category, with its own price range (USD)."""

    name: str
    low: float
    high: float
    adjectives: tuple[str, ...] = ()  # overrides the category's adjectives when set


@dataclass(frozen=True)
class Category:
    name: str
    slug: str
    sku_prefix: str
    color: str  # tile colour of the category image
    weight: float  # overall popularity
    brands: tuple[str, ...]
    adjectives: tuple[str, ...]
    nouns: tuple[Noun, ...]
    blurbs: tuple[str, ...]


def _n(name: str, low: float, high: float, *adjectives: str) -> Noun:
    return Noun(name, low, high, tuple(adjectives))


# fmt: off
CATEGORIES: tuple[Category, ...] = (
    Category(
        "Running Shoes", "running-shoes", "RUN", "#e4572e", 1.4,
        ("Strideline", "Fleetfoot", "Apex Run", "Kinetica", "Northpace", "Velora"),
        ("Featherlight", "Cushioned", "Tempo", "Carbon", "Responsive", "Cloudstep",
         "Racer", "Endurance", "Breeze", "Glide"),
        (_n("Road Running Shoe", 80, 180), _n("Racing Flat", 110, 250),
         _n("Trail Runner", 90, 170), _n("Marathon Trainer", 120, 220),
         _n("Daily Trainer", 70, 140), _n("Track Spike", 60, 130),
         _n("Recovery Slide", 30, 60), _n("Stability Shoe", 100, 170)),
        ("Breathable engineered mesh upper and a grippy rubber outsole.",
         "Responsive foam midsole that stays lively mile after mile.",
         "Available in half sizes; true to size for most runners.",
         "Reflective details for early-morning and evening runs."),
    ),
    Category(
        "Trail Gear", "trail-gear", "TRL", "#6a994e", 0.8,
        ("Ridgeback", "Summit & Co", "Wildpath", "Cairn", "Timberline"),
        ("Alpine", "Rugged", "Ultralight", "Packable", "Weatherproof", "Expedition",
         "Trekking", "Backcountry", "Ridge", "Basecamp"),
        (_n("Hiking Backpack", 60, 220), _n("Trekking Poles", 40, 150),
         _n("Hydration Vest", 50, 140), _n("Headlamp", 20, 90),
         _n("Hiking Boot", 110, 260), _n("Gaiters", 25, 60),
         _n("Water Filter", 25, 90),
         _n("First Aid Kit", 20, 60, "Ultralight", "Expedition", "Trekking", "Basecamp")),
        ("Built for long days on rough trails.",
         "Tested in the Alps and the Rockies.",
         "Lightweight, durable and easy to repair in the field.",
         "Backed by a lifetime repair guarantee."),
    ),
    Category(
        "Yoga", "yoga", "YGA", "#9b5de5", 0.9,
        ("Lotus Lane", "Prana Flow", "Zenmat", "Shanti", "Balance Studio"),
        ("Eco", "Grip", "Cork", "Natural", "Studio", "Travel", "Restorative",
         "Soft-Touch", "Align", "Flow"),
        (_n("Yoga Mat", 30, 130), _n("Yoga Block", 10, 30), _n("Yoga Strap", 8, 25),
         _n("Meditation Cushion", 30, 80), _n("Yoga Leggings", 40, 110),
         _n("Yoga Towel", 20, 50), _n("Bolster", 35, 90), _n("Mat Bag", 20, 60)),
        ("Made from responsibly sourced, non-toxic materials.",
         "Non-slip surface that grips even in hot yoga.",
         "Easy to clean with a damp cloth.",
         "Designed with teachers for daily practice."),
    ),
    Category(
        "Cycling", "cycling", "CYC", "#f4a259", 0.8,
        ("Velocita", "Chainring", "Pedalworks", "Aerowind", "Spoke & Hub"),
        ("Aero", "Carbon", "Gravel", "Commuter", "Climber", "Endurance", "Pro",
         "Night", "Road", "Urban"),
        (_n("Road Helmet", 60, 280),
         _n("Bike Light Set", 25, 120, "Night", "Commuter", "Urban", "Rechargeable"),
         _n("Cycling Jersey", 50, 150), _n("Bib Shorts", 60, 200),
         _n("Cycling Gloves", 20, 60),
         _n("Saddle", 40, 180),
         _n("Floor Pump", 30, 90, "Pro", "Compact", "Gravel", "Road"),
         _n("Bike Lock", 25, 110, "Urban", "Commuter", "Heavy-Duty", "Folding"),
         _n("Cycling Shoe", 90, 320),
         _n("Bottle Cage", 8, 40, "Carbon", "Aero", "Gravel", "Lightweight")),
        ("Race-proven design for road, gravel and the daily commute.",
         "Wind-tunnel tested and kept as light as possible.",
         "Fits all standard mounts; tools included.",
         "High-visibility accents for safer rides."),
    ),
    Category(
        "Swimwear", "swimwear", "SWM", "#00a6d6", 0.6,
        ("Tidewater", "Aqualis", "Coral Bay", "Finline", "Wavecrest"),
        ("Chlorine-Proof", "Classic", "Racerback", "Performance", "Sunset", "Tropical",
         "Competition", "Reef", "Lagoon", "Open-Water"),
        (_n("Swimsuit", 30, 110), _n("Swim Trunks", 25, 70), _n("Swim Goggles", 12, 45),
         _n("Swim Cap", 8, 25),
         _n("Rash Guard", 30, 80),
         _n("Beach Towel", 20, 55, "Sunset", "Tropical", "Classic", "Oversized", "Quick-Dry"),
         _n("Kickboard", 15, 35, "Training", "Classic", "Junior", "Competition"),
         _n("Wetsuit", 150, 450, "Open-Water", "Performance", "Thermal", "Triathlon")),
        ("Quick-drying fabric with UPF 50+ sun protection.",
         "Holds its shape and colour after hundreds of pool sessions.",
         "Comfortable fit for laps, open water and the beach.",
         "Made partly from recycled fishing nets."),
    ),
    Category(
        "Outerwear", "outerwear", "OUT", "#3d5a80", 1.1,
        ("Northwind", "Glacier Peak", "Stormline", "Fjordsen", "Harbor & Pine"),
        ("Insulated", "Waterproof", "Down", "Softshell", "Windproof", "Packable",
         "Thermal", "Storm", "Heritage", "Quilted"),
        (_n("Rain Jacket", 80, 250), _n("Down Jacket", 150, 400),
         _n("Fleece Pullover", 45, 120), _n("Softshell Jacket", 90, 220),
         _n("Parka", 180, 500),
         _n("Insulated Vest", 70, 170),
         _n("Beanie", 18, 45, "Merino", "Thermal", "Cable-Knit", "Fleece-Lined", "Heritage"),
         _n("Winter Gloves", 25, 80, "Insulated", "Waterproof", "Thermal", "Touchscreen", "Down")),
        ("Seam-sealed, breathable and built for wet, windy days.",
         "Warm without the bulk; packs into its own pocket.",
         "Adjustable hood, cuffs and hem for a sealed fit.",
         "PFC-free water repellent finish."),
    ),
    Category(
        "Tents & Camping", "tents-camping", "CMP", "#2a9d8f", 0.7,
        ("Campfire Co", "Basecamp Outfitters", "Starlight", "Pinecone", "Trailhaven"),
        ("Ultralight", "Family", "Four-Season", "Backpacking", "Freestanding",
         "All-Weather", "Compact", "Lakeside", "Summit", "Rugged"),
        (_n("Tent", 120, 650), _n("Sleeping Bag", 70, 350), _n("Sleeping Pad", 40, 180),
         _n("Camp Stove", 40, 160, "Compact", "Ultralight", "Backpacking", "Two-Burner"),
         _n("Camp Chair", 30, 120, "Compact", "Lakeside", "Ultralight", "Rugged", "Folding"),
         _n("Lantern", 20, 70, "Compact", "Rugged", "Solar", "Lakeside"),
         _n("Cookset", 30, 110, "Ultralight", "Backpacking", "Family", "Compact"),
         _n("Cooler", 60, 300, "Rugged", "Family", "Lakeside", "Hard-Sided"),
         _n("Hammock", 35, 100, "Ultralight", "Lakeside", "Compact", "Backpacking")),
        ("Sets up in minutes, even in the dark.",
         "Tested through storms, snow and summer heat.",
         "Packs small and carries light.",
         "Comes with a stuff sack and repair kit."),
    ),
    Category(
        "Kitchen", "kitchen", "KIT", "#d1495b", 1.0,
        ("Copperleaf", "Hearth & Home", "Oakline", "Maison Blanc", "Saltworks"),
        ("Cast Iron", "Nonstick", "Stainless", "Artisan", "Professional", "Ceramic",
         "Classic", "Enamelled", "Everyday", "Forged"),
        (_n("Skillet", 30, 150), _n("Dutch Oven", 70, 350),
         _n("Chef's Knife", 40, 220, "Forged", "Professional", "Damascus", "Classic",
            "Japanese", "Everyday"),
         _n("Cutting Board", 25, 90, "Walnut", "Maple", "Bamboo", "Artisan", "End-Grain",
            "Everyday"),
         _n("Saucepan", 35, 140), _n("Mixing Bowl Set", 25, 80, "Stainless", "Ceramic",
                                      "Nesting", "Classic", "Everyday"),
         _n("Pour-Over Dripper", 20, 60, "Ceramic", "Glass", "Classic", "Artisan"),
         _n("Kettle", 35, 180, "Stainless", "Gooseneck", "Enamelled", "Classic",
            "Electric"),
         _n("Knife Sharpener", 20, 90, "Professional", "Whetstone", "Compact", "Classic")),
        ("Oven safe and suitable for every hob, including induction.",
         "Loved by home cooks and professional chefs alike.",
         "Built to last a lifetime with simple care.",
         "Dishwasher safe for easy cleaning."),
    ),
    Category(
        "Coffee & Tea", "coffee-tea", "COF", "#7f5539", 1.0,
        ("Roastery Row", "Highland Leaf", "Morning Ritual", "Kettle & Cup", "Bean Theory"),
        ("Classic", "Stainless", "Compact", "Barista", "Precision", "Glass"),
        (_n("Coffee Beans", 14, 28, "Single-Origin", "Dark Roast", "Light Roast",
            "Organic", "Small-Batch", "Decaf", "Estate"),
         _n("Espresso Blend", 15, 30, "Dark Roast", "Organic", "Small-Batch", "House",
            "Italian"),
         _n("Loose Leaf Tea", 10, 32, "Organic", "Smoked", "Estate", "First-Flush",
            "Herbal", "Jasmine"),
         _n("Matcha", 20, 45, "Ceremonial", "Organic", "Culinary", "Premium"),
         _n("Cold Brew Kit", 25, 60), _n("Burr Grinder", 50, 250),
         _n("French Press", 25, 80), _n("Tea Infuser Mug", 15, 40),
         _n("Coffee Filters", 5, 15, "Unbleached", "Classic", "Compostable")),
        ("Roasted in small batches every week.",
         "Ethically sourced from farms we know by name.",
         "Brews a clean, balanced cup every morning.",
         "Shipped fresh within days of roasting."),
    ),
    Category(
        "Home Fitness", "home-fitness", "FIT", "#ef476f", 0.9,
        ("IronForge", "CoreLab", "Kettlebell Co", "FlexPoint", "PowerNest"),
        ("Adjustable", "Pro", "Compact", "Heavy-Duty", "Smart", "Foldable", "Studio",
         "Rubber", "Competition", "Home"),
        (_n("Dumbbell Set", 60, 400), _n("Kettlebell", 30, 120),
         _n("Resistance Bands", 15, 45), _n("Pull-Up Bar", 25, 70),
         _n("Jump Rope", 10, 35), _n("Foam Roller", 20, 60),
         _n("Exercise Bike", 300, 1200), _n("Weight Bench", 120, 400),
         _n("Ab Roller", 15, 40)),
        ("A full-body workout without leaving home.",
         "Quiet, sturdy and easy to store away.",
         "Includes a free 30-day training plan.",
         "Commercial-gym quality at a home-gym price."),
    ),
    Category(
        "Kids", "kids", "KID", "#ffb703", 0.7,
        ("Little Explorer", "Sprout", "Puddle Jumpers", "Tiny Trails", "Acorn Kids"),
        ("Junior", "Mini", "Waterproof", "Glow-in-the-Dark", "Adventure", "Rainbow",
         "Cozy", "Playground", "Splash", "Explorer"),
        (_n("Kids Rain Boots", 25, 55), _n("Kids Rain Jacket", 35, 80),
         _n("Kids Backpack", 25, 60), _n("Kids Helmet", 30, 70),
         _n("Kids Sleeping Bag", 40, 100), _n("Kids Swimsuit", 20, 45),
         _n("Balance Bike", 80, 200), _n("Kids Running Shoe", 40, 90)),
        ("Tough enough for puddles, parks and playgrounds.",
         "Easy for little hands to put on and take off.",
         "Free from PVC, BPA and phthalates.",
         "Bright colours that kids actually want to wear."),
    ),
    Category(
        "Accessories", "accessories", "ACC", "#577590", 1.3,
        ("Everyday Carry", "Stride Supply", "Trailmark", "Pacer", "Loop & Co"),
        ("Merino", "Performance", "Insulated", "Reflective", "Lightweight", "Cushioned",
         "Classic", "Compression", "Sport", "Travel"),
        (_n("Running Socks", 12, 28, "Merino", "Cushioned", "Compression", "Lightweight",
            "Performance", "No-Show"),
         _n("Water Bottle", 15, 45, "Insulated", "Lightweight", "Sport", "Travel",
            "Collapsible"),
         _n("Sports Cap", 18, 40, "Lightweight", "Reflective", "Performance", "Classic"),
         _n("Sunglasses", 40, 180, "Polarized", "Sport", "Classic", "Lightweight", "Aviator"),
         _n("GPS Watch", 150, 500, "Multisport", "Solar", "Pro", "Lightweight", "Smart"),
         _n("Running Belt", 18, 40, "Reflective", "Lightweight", "Performance", "Sport"),
         _n("Armband Phone Holder", 15, 35, "Reflective", "Lightweight", "Sport"),
         _n("Gym Bag", 35, 120, "Classic", "Travel", "Sport", "Weekender"),
         _n("Hiking Socks", 15, 30, "Merino", "Cushioned", "Wool-Blend", "Trail",
            "Performance")),
        ("The small thing that makes every workout better.",
         "Lightweight, durable and machine washable.",
         "Designed to pair with our best-selling shoes and gear.",
         "Covered by our 2-year no-questions warranty."),
    ),
    Category(
        "Climbing", "climbing", "CLM", "#8d6a9f", 0.4,
        ("Crux", "Boulderline", "Granite & Chalk", "Overhang", "Redpoint"),
        ("Pro", "Dynamic", "Bouldering", "Sport", "Trad", "Lightweight", "Alpine", "Gym",
         "Performance", "Vertical"),
        (_n("Climbing Shoe", 80, 190), _n("Chalk Bag", 15, 40), _n("Harness", 50, 150),
         _n("Dynamic Rope", 120, 300), _n("Carabiner Set", 30, 90),
         _n("Belay Device", 25, 70), _n("Crash Pad", 150, 350),
         _n("Climbing Helmet", 50, 130), _n("Liquid Chalk", 8, 18)),
        ("UIAA and CE certified.",
         "Designed with pro climbers for gym and crag.",
         "Precise, comfortable and built to take a beating.",
         "Light enough for multi-pitch days."),
    ),
    Category(
        "Nutrition", "nutrition", "NUT", "#43aa8b", 0.8,
        ("FuelUp", "Peak Provisions", "Greenfield", "Endura Labs", "Oat & Honey"),
        ("Vegan", "High-Protein", "Organic", "Salted Caramel", "Berry", "Chocolate",
         "Vanilla", "Citrus", "Unflavoured", "Peanut Butter"),
        (_n("Protein Powder", 30, 70, "Vegan", "Chocolate", "Vanilla", "Salted Caramel", "Unflavoured"),
         _n("Energy Gels (12-pack)", 18, 35, "Berry", "Citrus", "Salted Caramel", "Espresso", "Vanilla"),
         _n("Electrolyte Tabs", 8, 20, "Citrus", "Berry", "Lemon-Lime", "Tropical", "Unflavoured"),
         _n("Protein Bars (12-pack)", 20, 40),
         _n("Recovery Drink", 25, 50, "Chocolate", "Vanilla", "Berry", "Vegan"),
         _n("Trail Mix", 8, 18, "Salted", "Organic", "Chocolate", "Peanut Butter", "Berry"),
         _n("Creatine", 20, 45, "Micronized", "Pure", "Unflavoured", "Vegan"),
         _n("Oat Bars (10-pack)", 12, 25)),
        ("No artificial sweeteners or colours.",
         "Third-party tested for purity.",
         "Easy on the stomach during long efforts.",
         "Made in small batches from real ingredients."),
    ),
)

_CATEGORY_INDEX = {c.slug: i for i, c in enumerate(CATEGORIES)}

#: Items often bought together: (category slug, noun or None for any product of the category).
BUNDLE_TEMPLATES: tuple[tuple[tuple[str, str | None], ...], ...] = (
    (("running-shoes", None), ("accessories", "Running Socks")),
    (("running-shoes", None), ("accessories", "Running Socks"), ("accessories", "Running Belt")),
    (("running-shoes", "Racing Flat"), ("nutrition", "Energy Gels (12-pack)")),
    (("running-shoes", "Road Running Shoe"), ("accessories", "Water Bottle")),
    (("trail-gear", "Hiking Boot"), ("accessories", "Hiking Socks")),
    (("trail-gear", "Hiking Backpack"), ("trail-gear", "Water Filter"), ("trail-gear", "Headlamp")),
    (("trail-gear", "Trekking Poles"), ("trail-gear", "Gaiters")),
    (("yoga", "Yoga Mat"), ("yoga", "Yoga Block"), ("yoga", "Yoga Strap")),
    (("yoga", "Yoga Mat"), ("yoga", "Mat Bag")),
    (("yoga", "Meditation Cushion"), ("yoga", "Bolster")),
    (("cycling", "Road Helmet"), ("cycling", "Bike Light Set")),
    (("cycling", "Cycling Jersey"), ("cycling", "Bib Shorts")),
    (("cycling", "Cycling Shoe"), ("cycling", "Cycling Gloves")),
    (("swimwear", "Swimsuit"), ("swimwear", "Swim Goggles"), ("swimwear", "Swim Cap")),
    (("swimwear", "Swim Trunks"), ("swimwear", "Beach Towel")),
    (("outerwear", "Down Jacket"), ("outerwear", "Beanie"), ("outerwear", "Winter Gloves")),
    (("outerwear", "Rain Jacket"), ("outerwear", "Fleece Pullover")),
    (("tents-camping", "Tent"), ("tents-camping", "Sleeping Bag"), ("tents-camping", "Sleeping Pad")),
    (("tents-camping", "Camp Stove"), ("tents-camping", "Cookset")),
    (("tents-camping", "Camp Chair"), ("tents-camping", "Lantern")),
    (("kitchen", "Skillet"), ("kitchen", "Dutch Oven")),
    (("kitchen", "Chef's Knife"), ("kitchen", "Cutting Board"), ("kitchen", "Knife Sharpener")),
    (("coffee-tea", "Coffee Beans"), ("coffee-tea", "Burr Grinder")),
    (("coffee-tea", "Coffee Beans"), ("kitchen", "Pour-Over Dripper"), ("coffee-tea", "Coffee Filters")),
    (("coffee-tea", "Loose Leaf Tea"), ("coffee-tea", "Tea Infuser Mug")),
    (("home-fitness", "Dumbbell Set"), ("home-fitness", "Weight Bench")),
    (("home-fitness", "Resistance Bands"), ("home-fitness", "Foam Roller"), ("yoga", "Yoga Mat")),
    (("home-fitness", "Kettlebell"), ("nutrition", "Protein Powder")),
    (("kids", "Kids Rain Boots"), ("kids", "Kids Rain Jacket")),
    (("kids", "Balance Bike"), ("kids", "Kids Helmet")),
    (("climbing", "Climbing Shoe"), ("climbing", "Chalk Bag"), ("climbing", "Liquid Chalk")),
    (("climbing", "Harness"), ("climbing", "Belay Device"), ("climbing", "Carabiner Set")),
    (("nutrition", "Protein Powder"), ("nutrition", "Creatine")),
    (("nutrition", "Energy Gels (12-pack)"), ("nutrition", "Electrolyte Tabs")),
    (("accessories", "GPS Watch"), ("accessories", "Running Belt")),
    (("accessories", "Gym Bag"), ("accessories", "Water Bottle")),
)

#: (user agent, device, browser, os, weight)
USER_AGENTS: tuple[tuple[str, str, str, str, float], ...] = (
    (("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/129.0.0.0 Safari/537.36"), "desktop", "Chrome", "Windows", 14),
    (("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0"), "desktop", "Edge", "Windows", 5),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0",
     "desktop", "Firefox", "Windows", 3),
    (("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.0 Safari/605.1.15"), "desktop", "Safari", "macOS", 6),
    (("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/129.0.0.0 Safari/537.36"), "desktop", "Chrome", "macOS", 6),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
     "desktop", "Firefox", "Linux", 1.5),
    (("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1"), "mobile", "Safari", "iOS", 20),
    (("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) CriOS/129.0.6668.69 Mobile/15E148 Safari/604.1"),
     "mobile", "Chrome", "iOS", 4),
    (("Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/129.0.6668.81 Mobile Safari/537.36"), "mobile", "Chrome", "Android", 12),
    (("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/129.0.6668.81 Mobile Safari/537.36"), "mobile", "Chrome", "Android", 6),
    (("Mozilla/5.0 (Linux; Android 13; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"),
     "mobile", "Samsung Internet", "Android", 3),
    (("Mozilla/5.0 (iPad; CPU OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.0 Mobile/15E148 Safari/604.1"), "tablet", "Safari", "iPadOS", 5),
    (("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/129.0.6668.81 Safari/537.36"), "tablet", "Chrome", "Android", 2),
)

_FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Mateo", "Sophia", "Lucas", "Mia", "Ethan",
    "Amelia", "James", "Harper", "Benjamin", "Isabella", "Elijah", "Chloe", "Daniel",
    "Aisha", "Omar", "Priya", "Arjun", "Mei", "Hiroshi", "Yuki", "Chen", "Fatima", "Yusuf",
    "Sofia", "Diego", "Camila", "Santiago", "Lena", "Jonas", "Freya", "Lars", "Zoe",
    "Gabriel", "Nora", "Leo", "Hannah", "Samuel", "Grace", "David", "Maya", "Kofi", "Amara",
    "Tariq", "Elena", "Marco",
)
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker",
    "Young", "King", "Wright", "Scott", "Nguyen", "Patel", "Kim", "Chen", "Singh", "Khan",
    "Muller", "Schmidt", "Rossi", "Silva", "Okafor", "Mensah", "Tanaka", "Sato", "Ivanova",
    "Novak", "Larsen", "Dubois", "Costa", "Cohen", "Murphy",
)
#: Reserved example domains (RFC 2606): demo e-mails can never reach a real person.
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")

_REFERRERS = (
    ("https://www.google.com/", 40), ("", 25), ("https://www.instagram.com/", 8),
    ("https://www.facebook.com/", 6), ("https://www.bing.com/", 5),
    ("https://duckduckgo.com/", 4), ("https://www.pinterest.com/", 4),
    ("https://newsletter.example.com/", 8),
)

# Visits by hour of day (UTC): quiet nights, lunch bump, evening peak.
_HOUR_WEIGHTS = (1, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2, 2.2, 2.3, 2.6, 3, 2.8, 2.4,
                 2.3, 2.4, 2.8, 3.4, 4, 4.2, 3.8, 2.8, 1.8)
# Number of lines of an order.
_LINE_COUNTS = ((1, 7), (2, 30), (3, 28), (4, 20), (5, 11), (6, 4))


# fmt: on


# --------------------------------------------------------------------------- public API


@dataclass
class DemoSummary:
    products: int
    categories: int
    shoppers: int
    visits: int
    events: int
    orders: int
    order_lines: int
    carts: int
    # The demo conversations (services/demo_chats.py) and their product cards'
    # funnel, as the Insights page counts it.
    conversations: int = 0
    messages: int = 0
    cards_sent: int = 0
    cards_clicked: int = 0
    cards_carted: int = 0
    cards_ordered: int = 0
    card_revenue_cents: int = 0


def database_is_empty(engine: Engine) -> bool:
    """True when the database has no products and no shoppers."""
    with engine.connect() as conn:
        return _is_empty(conn)


#: The columns of import-catalog's CSV (docs/importing.md), in the order written.
CATALOG_CSV_COLUMNS = ("sku", "name", "category", "price", "currency", "url", "image_url", "in_stock", "description")


def write_catalog_csv(engine: Engine, path: Path, store_url: str) -> int:
    """Write the demo store's products (those with pages under `store_url`) as
    a catalog CSV in import-catalog's format: the demo store loads its own
    catalog from it, as a real store and chatdash share one catalog file.
    Returns the number of products written."""
    prefix = f"{store_url.rstrip('/')}/product/"
    p = Product.__table__.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(p.sku, p.name, p.category, p.price_cents, p.currency, p.url, p.image_url, p.in_stock,
                   p.description)
            .where(p.url.startswith(prefix, autoescape=True))
            .order_by(p.id)
        ).all()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(CATALOG_CSV_COLUMNS)
        for sku, name, category, cents, currency, url, image_url, in_stock, description in rows:
            out.writerow([sku, name, category, f"{cents // 100}.{cents % 100:02d}", currency, url, image_url,
                          "true" if in_stock else "false", description])
    return len(rows)


def anchor_for(now: datetime) -> datetime:
    """The anchor for a store generated at `now`: the start of the hour before,
    so its latest activity is about an hour old (a visit may run a few minutes
    past the anchor) and no demo shopper shows as on the site."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def _utc_anchor(anchor: datetime | None) -> datetime:
    if anchor is None:
        return ANCHOR
    if anchor.tzinfo is None:
        raise ValueError("the anchor must be timezone-aware (UTC)")
    return anchor.astimezone(UTC)


def category_image_url(store_url: str, slug: str) -> str:
    """Absolute URL of a category's image, served from the app's assets/product-images."""
    base = store_url.rstrip("/").rsplit("/store", 1)[0]
    return f"{base}/product-images/{slug}.svg"


def generate_demo_data(
    engine: Engine,
    *,
    store_url: str,
    seed: int = 7,
    products: int = 1200,
    shoppers: int = 3000,
    orders: int = 9000,
    conversations: int = 30,
    progress: ProgressFn | None = None,
    anchor: datetime | None = None,
) -> DemoSummary:
    """Fill an empty database with a deterministic demo store, in one transaction.

    `store_url` is where the demo store's pages are served (e.g.
    "http://localhost:3000/store"); product pages are `{store_url}/product/{sku}`.
    `progress(step, done, total)` is called with the steps "products" (products
    written), then "shoppers" and "events" (shoppers whose activity is generated,
    out of all shoppers), "orders" (orders generated so far, out of `orders`)
    and "conversations" (about `conversations` chats with the staff in the last
    weeks, fewer in a store too small to hold them).
    `anchor` (timezone-aware; default `ANCHOR`) is where the activity ends:
    every timestamp is the default store's moved by `anchor - ANCHOR`.
    Raises ValueError when the database already has products or shoppers.
    """
    anchor = _utc_anchor(anchor)
    if products < len(CATEGORIES):
        raise ValueError(f"need at least {len(CATEGORIES)} products (one per category)")
    if shoppers < 1 or orders < 0:
        raise ValueError("need at least one shopper and a non-negative number of orders")
    store_url = store_url.rstrip("/")
    with engine.begin() as conn:
        if not _is_empty(conn):
            raise ValueError(
                "database already has data; demo data can only be generated into an "
                "empty database (no products and no shoppers)"
            )
        gen = _Generator(conn, store_url=store_url, seed=seed, progress=progress, anchor=anchor)
        gen.make_products(products)
        gen.make_bundles()
        gen.make_shoppers_and_activity(shoppers, orders)
        # Imported here: the chats are built on this module's generator.
        from chatdash.services import demo_chats

        chats = demo_chats.make_conversations(gen, seed, conversations)
        if conn.dialect.name == "postgresql":
            _reset_sequences(conn)
        return replace(
            gen.summary(), conversations=chats.conversations, messages=chats.messages, cards_sent=chats.sent,
            cards_clicked=chats.clicked, cards_carted=chats.carted, cards_ordered=chats.ordered,
            card_revenue_cents=chats.revenue_cents,
        )


# --------------------------------------------------------------------------- images


_ICONS: dict[str, str] = {
    "running-shoes": (
        '<path d="M96 236 L100 170 Q132 168 152 140 L186 150 Q196 184 246 194 L288 202 '
        'Q310 208 306 236 Z" fill="#fff"/>'
        '<path d="M96 236 L306 236" stroke="#fff" stroke-width="14" stroke-linecap="round"/>'
        '<path d="M170 166 l14 6 M162 180 l16 6 M154 194 l18 6" stroke="{c}" '
        'stroke-width="6" stroke-linecap="round"/>'
        '<path d="M60 170 h26 M50 196 h32 M64 222 h18" stroke="#fff" stroke-width="8" '
        'stroke-linecap="round" opacity=".6"/>'
    ),
    "trail-gear": (
        '<circle cx="272" cy="108" r="22" fill="#fff" opacity=".7"/>'
        '<path d="M80 250 L168 116 L212 182 L244 142 L320 250 Z" fill="#fff"/>'
        '<path d="M168 116 L186 144 L172 138 L158 150 Z" fill="{c}" opacity=".5"/>'
    ),
    "yoga": (
        '<ellipse cx="200" cy="170" rx="26" ry="62" fill="#fff"/>'
        '<ellipse cx="200" cy="170" rx="26" ry="62" fill="#fff" opacity=".8" '
        'transform="rotate(-45 200 220)"/>'
        '<ellipse cx="200" cy="170" rx="26" ry="62" fill="#fff" opacity=".8" '
        'transform="rotate(45 200 220)"/>'
        '<path d="M120 246 Q200 270 280 246" stroke="#fff" stroke-width="10" fill="none" '
        'stroke-linecap="round"/>'
    ),
    "cycling": (
        '<g fill="none" stroke="#fff" stroke-width="10" stroke-linecap="round" '
        'stroke-linejoin="round">'
        '<circle cx="134" cy="210" r="44"/><circle cx="266" cy="210" r="44"/>'
        '<path d="M134 210 L180 148 L240 148 L266 210 M180 148 L204 210 L134 210 '
        'M204 210 L240 148 M170 132 L196 132 M240 148 L232 124 L256 124"/></g>'
    ),
    "swimwear": (
        '<g fill="none" stroke="#fff" stroke-width="12" stroke-linecap="round">'
        '<path d="M80 150 q30 -24 60 0 t60 0 t60 0 t60 0"/>'
        '<path d="M80 195 q30 -24 60 0 t60 0 t60 0 t60 0" opacity=".8"/>'
        '<path d="M80 240 q30 -24 60 0 t60 0 t60 0 t60 0" opacity=".6"/></g>'
    ),
    "outerwear": (
        '<path d="M164 104 L200 122 L236 104 L290 136 L272 186 L252 176 L252 262 '
        'L148 262 L148 176 L128 186 L110 136 Z" fill="#fff"/>'
        '<path d="M200 124 L200 262" stroke="{c}" stroke-width="6"/>'
        '<path d="M164 104 Q200 150 236 104" fill="none" stroke="{c}" stroke-width="6"/>'
    ),
    "tents-camping": (
        '<path d="M84 250 L200 102 L316 250 Z" fill="#fff"/>'
        '<path d="M164 250 L200 176 L236 250 Z" fill="{c}"/>'
        '<path d="M200 102 L200 80 M60 250 H340" stroke="#fff" stroke-width="8" '
        'stroke-linecap="round"/>'
    ),
    "kitchen": (
        '<circle cx="168" cy="184" r="68" fill="#fff"/>'
        '<circle cx="168" cy="184" r="48" fill="{c}" opacity=".35"/>'
        '<rect x="228" y="172" width="100" height="24" rx="12" fill="#fff"/>'
    ),
    "coffee-tea": (
        '<path d="M120 150 H260 L248 246 Q244 262 228 262 H152 Q136 262 132 246 Z" '
        'fill="#fff"/>'
        '<path d="M258 170 Q306 170 300 206 Q294 236 252 232" fill="none" stroke="#fff" '
        'stroke-width="14"/>'
        '<path d="M160 130 q-12 -20 0 -40 M196 130 q-12 -20 0 -40 M232 130 q-12 -20 0 -40" '
        'fill="none" stroke="#fff" stroke-width="8" stroke-linecap="round" opacity=".7"/>'
    ),
    "home-fitness": (
        '<rect x="90" y="140" width="34" height="100" rx="8" fill="#fff"/>'
        '<rect x="276" y="140" width="34" height="100" rx="8" fill="#fff"/>'
        '<rect x="62" y="160" width="24" height="60" rx="6" fill="#fff" opacity=".8"/>'
        '<rect x="314" y="160" width="24" height="60" rx="6" fill="#fff" opacity=".8"/>'
        '<rect x="124" y="180" width="152" height="20" rx="6" fill="#fff"/>'
    ),
    "kids": (
        '<path d="M200 92 L222 150 L284 152 L236 190 L252 250 L200 216 L148 250 L164 190 '
        'L116 152 L178 150 Z" fill="#fff"/>'
        '<circle cx="184" cy="176" r="7" fill="{c}"/><circle cx="216" cy="176" r="7" fill="{c}"/>'
        '<path d="M184 200 Q200 212 216 200" fill="none" stroke="{c}" stroke-width="6" '
        'stroke-linecap="round"/>'
    ),
    "accessories": (
        '<rect x="172" y="76" width="56" height="220" rx="16" fill="#fff" opacity=".7"/>'
        '<circle cx="200" cy="186" r="62" fill="#fff"/>'
        '<circle cx="200" cy="186" r="48" fill="{c}"/>'
        '<path d="M200 156 V186 L222 200" fill="none" stroke="#fff" stroke-width="8" '
        'stroke-linecap="round"/>'
    ),
    "climbing": (
        '<rect x="150" y="86" width="100" height="190" rx="50" fill="none" stroke="#fff" '
        'stroke-width="18" transform="rotate(12 200 181)"/>'
        '<path d="M246 140 L228 226" stroke="{c}" stroke-width="22"/>'
        '<path d="M248 146 L234 214" stroke="#fff" stroke-width="8" stroke-linecap="round"/>'
    ),
    "nutrition": (
        '<path d="M110 256 Q100 120 290 96 Q300 250 110 256 Z" fill="#fff"/>'
        '<path d="M116 250 Q180 180 250 134" fill="none" stroke="{c}" stroke-width="8" '
        'stroke-linecap="round"/>'
    ),
}


def category_image_svg(category: Category) -> str:
    """A 400x400 rounded tile in the category colour with a simple icon and its name."""
    icon = _ICONS.get(category.slug, '<circle cx="200" cy="180" r="70" fill="#fff"/>')
    icon = icon.replace("{c}", category.color)
    label = category.name.replace("&", "&amp;")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" '
        'viewBox="0 0 400 400">'
        '<defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1">'
        '<stop offset="0" stop-color="#fff" stop-opacity=".18"/>'
        '<stop offset="1" stop-color="#000" stop-opacity=".12"/></linearGradient></defs>'
        f'<rect width="400" height="400" rx="48" fill="{category.color}"/>'
        '<rect width="400" height="400" rx="48" fill="url(#g)"/>'
        f"{icon}"
        '<text x="200" y="338" text-anchor="middle" fill="#fff" '
        'font-family="Inter, Segoe UI, Helvetica, Arial, sans-serif" font-size="30" '
        f'font-weight="600">{label}</text>'
        "</svg>\n"
    )


# --------------------------------------------------------------------------- internals


def _is_empty(conn: Connection) -> bool:
    for table in (Product.__table__, Shopper.__table__):
        if conn.execute(select(table.c.id).limit(1)).first() is not None:
            return False
    return True


def _reset_sequences(conn: Connection) -> None:
    """Ids were given explicitly: move PostgreSQL's sequences past them."""
    for model in (Product, Shopper, Visit, StoreEvent, Cart, CartLine, Order, OrderLine, Conversation, Message):
        name = model.__table__.name
        conn.execute(
            text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT MAX(id) FROM {name}))")
        )


def _money(cents: int) -> float:
    return cents / 100


@dataclass
class _Product:
    id: int
    sku: str
    name: str
    cat: int
    noun: str
    price: int  # cents
    url: str
    title: str
    view_payload: str  # the product_view event payload, the same every time


class _Picker:
    """Weighted choice over a fixed population (bisect over cumulative weights)."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, items: Sequence[Any], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random) -> Any:
        return self.items[bisect_left(self.cum, rng.random() * self.total)]


class _Generator:
    def __init__(
        self, conn: Connection, *, store_url: str, seed: int, progress: ProgressFn | None, anchor: datetime = ANCHOR
    ) -> None:
        self.conn = conn
        self.anchor = anchor
        self.store_url = store_url
        self.rng = random.Random(seed)
        self.progress = progress or (lambda _step, _done, _total: None)
        self.products: list[_Product] = []
        self.by_cat: list[_Picker] = []
        self.by_noun: dict[tuple[int, str], _Picker] = {}
        self.cat_picker = _Picker(range(len(CATEGORIES)), [c.weight for c in CATEGORIES])
        self.bundles_by_cat: dict[int, _Picker] = {}
        self.ua_picker = _Picker(USER_AGENTS, [u[4] for u in USER_AGENTS])
        self.ua_by_device: dict[str, _Picker] = {}
        for device in ("desktop", "mobile", "tablet"):
            uas = [u for u in USER_AGENTS if u[1] == device]
            self.ua_by_device[device] = _Picker(uas, [u[4] for u in uas])
        self.hour_picker = _Picker(range(24), _HOUR_WEIGHTS)
        self.referrer_picker = _Picker([r[0] for r in _REFERRERS], [r[1] for r in _REFERRERS])
        self.lines_picker = _Picker([n for n, _ in _LINE_COUNTS], [w for _, w in _LINE_COUNTS])
        self.counts = dict.fromkeys(
            ("products", "shoppers", "visits", "events", "orders", "order_lines", "carts", "cart_lines"),
            0,
        )
        self.buffers: dict[str, list[dict[str, Any]]] = {
            "shoppers": [],
            "visits": [],
            "events": [],
            "orders": [],
            "order_lines": [],
            "carts": [],
            "cart_lines": [],
        }

    # ------------------------------------------------------------------ products

    def make_products(self, total: int) -> None:
        rng = self.rng
        n_cat = len(CATEGORIES)
        # Bigger categories get more products; every category gets at least one.
        weights = [c.weight * rng.uniform(0.8, 1.2) for c in CATEGORIES]
        shares = [1 + int((total - n_cat) * w / sum(weights)) for w in weights]
        for i in range(total - sum(shares)):
            shares[i % n_cat] += 1
        out_of_stock = set(rng.sample(range(total), max(1, round(total * 0.05))))

        rows: list[dict[str, Any]] = []
        for ci, (cat, count) in enumerate(zip(CATEGORIES, shares, strict=True)):
            image_url = category_image_url(self.store_url, cat.slug)
            used: set[str] = set()
            cat_products: list[_Product] = []
            for k in range(count):
                noun = cat.nouns[k % len(cat.nouns)] if k < len(cat.nouns) else rng.choice(cat.nouns)
                adjectives = noun.adjectives or cat.adjectives
                brand = adjective = name = ""
                for _attempt in range(20):
                    brand, adjective = rng.choice(cat.brands), rng.choice(adjectives)
                    name = f"{brand} {adjective} {noun.name}"
                    if name not in used:
                        break
                else:
                    name = f"{name} {k + 1}"
                used.add(name)
                pid = len(self.products) + 1
                sku = f"{cat.sku_prefix}-{k + 1:05d}"
                # Log-uniform price in the noun's range, with a shop-like ending.
                dollars = noun.low * (noun.high / noun.low) ** rng.random()
                ending = rng.choice((0.99, 0.99, 0.95, 0.0, 0.49))
                price = max(99, int(dollars) * 100 + round(ending * 100))
                url = f"{self.store_url}/product/{sku}"
                blurb = " ".join(rng.sample(cat.blurbs, 2))
                description = (
                    f"The {adjective} {noun.name} from {brand}, part of our {cat.name} range. {blurb}"
                )
                view_payload = compact_json({"sku": sku, "price": _money(price), "currency": CURRENCY})
                product = _Product(
                    pid,
                    sku,
                    name,
                    ci,
                    noun.name,
                    price,
                    url,
                    f"{name} | {STORE_NAME}",
                    view_payload,
                )
                cat_products.append(product)
                self.products.append(product)
                rows.append(
                    {
                        "id": pid,
                        "sku": sku,
                        "name": name,
                        "category": cat.name,
                        "description": description,
                        "price_cents": price,
                        "currency": CURRENCY,
                        "url": url,
                        "image_url": image_url,
                        "in_stock": (pid - 1) not in out_of_stock,
                        "created_at": self.anchor - timedelta(days=380 + rng.uniform(0, 400)),
                    }
                )
            # Long tail: a random popularity rank per product, Zipf-like weights.
            ranks = list(range(1, len(cat_products) + 1))
            rng.shuffle(ranks)
            pop = [1.0 / r**1.1 for r in ranks]
            self.by_cat.append(_Picker(cat_products, pop))
            nouns: dict[str, list[tuple[_Product, float]]] = {}
            for p, w in zip(cat_products, pop, strict=True):
                nouns.setdefault(p.noun, []).append((p, w))
            for noun_name, items in nouns.items():
                self.by_noun[(ci, noun_name)] = _Picker([p for p, _ in items], [w for _, w in items])
        self.progress("products", 0, total)
        for start in range(0, len(rows), 5000):
            self.conn.execute(insert(Product.__table__), rows[start : start + 5000])
        self.counts["products"] = len(rows)
        self.progress("products", total, total)

    def make_bundles(self) -> None:
        """Instantiate bundle templates with concrete products (popular ones more often)."""
        rng = self.rng
        n = max(len(BUNDLE_TEMPLATES), len(self.products) // 12)
        templates = list(BUNDLE_TEMPLATES) + [
            rng.choice(BUNDLE_TEMPLATES) for _ in range(n - len(BUNDLE_TEMPLATES))
        ]
        seen: set[tuple[int, ...]] = set()
        by_cat: dict[int, list[tuple[list[_Product], float]]] = {}
        for rank, template in enumerate(templates, start=1):
            items: list[_Product] = []
            for slug, noun in template:
                ci = _CATEGORY_INDEX[slug]
                picker = self.by_noun.get((ci, noun)) if noun else None
                for _attempt in range(6):
                    p = (picker or self.by_cat[ci]).pick(rng)
                    if p not in items:
                        items.append(p)
                        break
            key = tuple(sorted(p.id for p in items))
            if len(items) < 2 or key in seen:
                continue
            seen.add(key)
            by_cat.setdefault(items[0].cat, []).append((items, 1.0 / rank**0.6))
        self.bundles_by_cat = {
            ci: _Picker([b for b, _ in by_cat[ci]], [w for _, w in by_cat[ci]]) for ci in sorted(by_cat)
        }

    # ------------------------------------------------------------------ shoppers

    def make_shoppers_and_activity(self, n_shoppers: int, n_orders: int) -> None:
        rng = self.rng
        # Who buys and how often: 75% of shoppers buy, a few buy a lot (heavy tail).
        n_buyers = min(n_orders, max(1, round(n_shoppers * 0.75))) if n_orders else 0
        buyers = rng.sample(range(n_shoppers), n_buyers)
        order_counts = [0] * n_shoppers
        for b in buyers:
            order_counts[b] = 1
        if n_buyers:
            # Capped so that no single shopper dominates (at most ~40 orders a year).
            picker = _Picker(buyers, [min(rng.paretovariate(1.6), 12.0) for _ in buyers])
            for _ in range(n_orders - n_buyers):
                order_counts[picker.pick(rng)] += 1

        used_visitors: set[str] = set()
        used_emails: set[str] = set()
        known = 0
        for i in range(n_shoppers):
            sid = i + 1
            visitor_id = f"v_{rng.getrandbits(96):024x}"
            while visitor_id in used_visitors:
                visitor_id = f"v_{rng.getrandbits(96):024x}"
            used_visitors.add(visitor_id)
            shopper: dict[str, Any] = {
                "id": sid,
                "visitor_id": visitor_id,
                "customer_id": None,
                "name": None,
                "email": None,
            }
            if rng.random() < (0.7 if order_counts[i] else 0.35):
                known += 1
                first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
                email = f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(_EMAIL_DOMAINS)}".lower()
                while email in used_emails:
                    email = f"{first}.{last}{rng.randint(100, 9999)}@example.com".lower()
                used_emails.add(email)
                shopper.update(customer_id=f"CUST-{known:06d}", name=f"{first} {last}", email=email)
            first_seen, last_seen = self._activity(sid, order_counts[i])
            shopper["created_at"] = first_seen
            shopper["last_seen_at"] = last_seen
            self.buffers["shoppers"].append(shopper)
            self.counts["shoppers"] += 1
            if len(self.buffers["events"]) >= _FLUSH_EVENTS:
                self._flush()
            if sid % 100 == 0 or sid == n_shoppers:
                self.progress("shoppers", sid, n_shoppers)
                self.progress("events", sid, n_shoppers)
                self.progress("orders", self.counts["orders"], n_orders)
        self._flush()

    def _taste(self) -> _Picker:
        """A shopper's category preferences: 1-3 favourites and a little of everything."""
        rng = self.rng
        k = self.rng.choices((1, 2, 3), (30, 45, 25))[0]
        favourites: list[int] = []
        while len(favourites) < k:
            ci = self.cat_picker.pick(rng)
            if ci not in favourites:
                favourites.append(ci)
        fav_weights = [0.84 * w for w in (0.6, 0.28, 0.12)[:k]]
        norm = sum(fav_weights) / 0.84
        cats = favourites + list(range(len(CATEGORIES)))
        weights = [w / norm for w in fav_weights] + [
            0.16 * c.weight / sum(x.weight for x in CATEGORIES) for c in CATEGORIES
        ]
        return _Picker(cats, weights)

    def _visit_starts(self, n: int) -> list[datetime]:
        rng = self.rng
        span_days = max(rng.uniform(1, 365), min(365.0, 2.0 * n))
        first_day = self.anchor - timedelta(days=span_days)
        days = sorted([0.0] + [rng.uniform(0, span_days - 0.1) for _ in range(n - 1)])
        starts = []
        for d in days:
            # The start of its day, counting days from the anchor (midnight for ANCHOR): any
            # anchor then moves every visit by the same amount.
            t = first_day + timedelta(days=d)
            day = t - (t - self.anchor) % _DAY
            starts.append(day + timedelta(hours=self.hour_picker.pick(rng), seconds=rng.randrange(3600)))
        starts.sort()
        return starts

    def _activity(self, sid: int, n_orders: int) -> tuple[datetime, datetime]:
        """All visits, events, orders and the final cart of one shopper."""
        rng = self.rng
        taste = self._taste()
        n_browse = 1
        while rng.random() < 0.55 and n_browse < 10:
            n_browse += 1
        kinds = ["order"] * n_orders + ["browse"] * n_browse
        rng.shuffle(kinds)
        starts = self._visit_starts(len(kinds))
        device = self.ua_picker.pick(rng)[1]
        cart: dict[int, list[Any]] = {}  # product id -> [product, quantity]
        cart_time: datetime | None = None
        prev_end: datetime | None = None
        first_seen = starts[0]
        for kind, start in zip(kinds, starts, strict=True):
            if prev_end is not None and start < prev_end + timedelta(minutes=30):
                start = prev_end + timedelta(minutes=30, seconds=rng.randrange(7200))
            ua = (self.ua_by_device[device] if rng.random() < 0.85 else self.ua_picker).pick(rng)
            session = _Session(self, sid, start, ua, cart)
            if kind == "order":
                session.order(taste)
            else:
                session.browse(taste)
            prev_end = session.finish()
            if session.cart_changed_at is not None:
                cart_time = session.cart_changed_at
            if kind == "order":
                cart_time = None
        if cart and cart_time is not None:
            self._cart(sid, cart, cart_time)
        return first_seen, prev_end or first_seen

    def _cart(self, sid: int, cart: dict[int, list[Any]], updated: datetime) -> None:
        self.counts["carts"] += 1
        cid = self.counts["carts"]
        total = 0
        for product, quantity in cart.values():
            self.counts["cart_lines"] += 1
            total += product.price * quantity
            self.buffers["cart_lines"].append(
                {
                    "id": self.counts["cart_lines"],
                    "cart_id": cid,
                    "product_id": product.id,
                    "quantity": quantity,
                    "unit_price_cents": product.price,
                }
            )
        self.buffers["carts"].append(
            {
                "id": cid,
                "shopper_id": sid,
                "total_cents": total,
                "currency": CURRENCY,
                "updated_at": updated,
            }
        )

    # ------------------------------------------------------------------ writing

    def _flush(self) -> None:
        tables = (
            ("shoppers", Shopper),
            ("visits", Visit),
            ("events", StoreEvent),
            ("orders", Order),
            ("order_lines", OrderLine),
            ("carts", Cart),
            ("cart_lines", CartLine),
        )
        for key, model in tables:
            rows = self.buffers[key]
            if rows:
                self.conn.execute(insert(model.__table__), rows)
                self.buffers[key] = []

    def summary(self) -> DemoSummary:
        c = self.counts
        return DemoSummary(
            products=c["products"],
            categories=len({p.cat for p in self.products}),
            shoppers=c["shoppers"],
            visits=c["visits"],
            events=c["events"],
            orders=c["orders"],
            order_lines=c["order_lines"],
            carts=c["carts"],
        )


class _Session:
    """One visit: a stream of events with a moving clock and referrer chain."""

    def __init__(
        self,
        gen: _Generator,
        sid: int,
        start: datetime,
        ua: tuple[str, str, str, str, float],
        cart: dict[int, list[Any]],
    ) -> None:
        self.gen = gen
        self.rng = gen.rng
        self.sid = sid
        self.t = start
        self.start = start
        self.ua = ua
        self.cart = cart
        self.cart_changed_at: datetime | None = None
        gen.counts["visits"] += 1
        self.vid = gen.counts["visits"]
        self.referrer = gen.referrer_picker.pick(self.rng)
        self.url = ""
        self.title = ""
        self.n_events = 0
        self.store = gen.store_url

    # ------------------------------------------------------------------ events

    def _event(
        self, kind: str, url: str, title: str, product_id: int | None = None, payload: str = "{}"
    ) -> None:
        gen = self.gen
        if self.n_events:
            # Dwell time on the previous page.
            self.t += timedelta(seconds=4 + int(self.rng.expovariate(1 / 40)))
        gen.counts["events"] += 1
        eid = gen.counts["events"]
        gen.buffers["events"].append(
            {
                "id": eid,
                "event_id": f"demo-{eid}",
                "shopper_id": self.sid,
                "visit_id": self.vid,
                "kind": kind,
                "url": url,
                "title": title,
                "referrer": self.referrer,
                "product_id": product_id,
                "payload": payload,
                "occurred_at": self.t,
                "received_at": self.t + timedelta(milliseconds=self.rng.randrange(40, 1500)),
            }
        )
        self.n_events += 1
        self.referrer = url
        self.url, self.title = url, title

    def page(self, path: str, title: str) -> None:
        self._event(EventKind.PAGE_VIEW.value, f"{self.store}{path}", f"{title} | {STORE_NAME}")

    def category_page(self, ci: int) -> None:
        cat = CATEGORIES[ci]
        self.page(f"/category/{cat.slug}", cat.name)

    def view(self, p: _Product) -> None:
        self._event(EventKind.PRODUCT_VIEW.value, p.url, p.title, p.id, p.view_payload)

    def add_to_cart(self, p: _Product, quantity: int) -> None:
        line = self.cart.get(p.id)
        if line:
            line[1] += quantity
        else:
            self.cart[p.id] = [p, quantity]
        items = [{"sku": q.sku, "quantity": n, "price": _money(q.price)} for q, n in self.cart.values()]
        total = sum(q.price * n for q, n in self.cart.values())
        payload = compact_json(
            {"action": "add", "sku": p.sku, "items": items, "total": _money(total), "currency": CURRENCY}
        )
        self._event(EventKind.CART.value, p.url, p.title, p.id, payload)
        self.cart_changed_at = self.t

    def land(self, ci: int, first: _Product | None) -> None:
        """The first page of the visit."""
        rng = self.rng
        r = rng.random()
        if self.cart and r < 0.3:
            self.page("/cart", "Your cart")
        elif r < 0.4:
            self.page("", "Home")
        elif r < 0.72:
            self.category_page(ci)
        elif r < 0.84:
            noun = first.noun if first else rng.choice(CATEGORIES[ci].nouns).name
            self.page(f"/search?q={quote_plus(noun.lower())}", f"Search: {noun.lower()}")
        # else: landed straight on a product page (the first view)

    def similar(self, p: _Product) -> _Product:
        picker = self.gen.by_noun[(p.cat, p.noun)] if self.rng.random() < 0.6 else self.gen.by_cat[p.cat]
        for _attempt in range(3):
            other = picker.pick(self.rng)
            if other is not p:
                return other
        return self.gen.by_cat[p.cat].pick(self.rng)

    # ------------------------------------------------------------------ visit kinds

    def browse(self, taste: _Picker) -> None:
        rng = self.rng
        gen = self.gen
        ci = taste.pick(rng)
        self.land(ci, None)
        current = gen.by_cat[ci].pick(rng)
        added = 0
        for _ in range(2 + int(rng.expovariate(1 / 6))):
            if rng.random() < 0.12:  # wander to another category
                ci = taste.pick(rng)
                self.category_page(ci)
                current = gen.by_cat[ci].pick(rng)
            self.view(current)
            if added < 3 and rng.random() < 0.06:
                self.add_to_cart(current, 1)
                added += 1
            current = self.similar(current)

    def order(self, taste: _Picker) -> None:
        rng = self.rng
        gen = self.gen
        target = gen.lines_picker.pick(rng)
        items: list[_Product] = []
        in_cart = set(self.cart)
        if rng.random() < 0.55:
            bundles = gen.bundles_by_cat.get(taste.pick(rng))
            if bundles is not None:
                items.extend(p for p in bundles.pick(rng) if p.id not in in_cart)
        attempts = 0
        while len(items) + len(in_cart) < target and attempts < 30:
            attempts += 1
            p = gen.by_cat[taste.pick(rng)].pick(rng)
            if p.id not in in_cart and p not in items:
                items.append(p)
        if not items and not self.cart:
            items.append(gen.by_cat[taste.pick(rng)].pick(rng))

        ci = items[0].cat if items else next(iter(self.cart.values()))[0].cat
        self.land(ci, items[0] if items else None)
        for p in items:
            if p.cat != ci and rng.random() < 0.5:
                self.category_page(p.cat)
            ci = p.cat
            for _ in range(rng.choices((0, 1, 2, 3), (25, 35, 25, 15))[0]):
                self.view(self.similar(p))
            self.view(p)
            quantity = rng.choices((1, 2, 3), (60, 30, 10))[0] if p.price < 2500 else 1 if rng.random() < 0.93 else 2
            self.add_to_cart(p, quantity)
        self.page("/cart", "Your cart")
        self.page("/checkout", "Checkout")

        gen.counts["orders"] += 1
        oid = gen.counts["orders"]
        external_id = f"D-{oid:06d}"
        total = 0
        line_items = []
        for p, quantity in self.cart.values():
            gen.counts["order_lines"] += 1
            total += p.price * quantity
            gen.buffers["order_lines"].append(
                {
                    "id": gen.counts["order_lines"],
                    "order_id": oid,
                    "product_id": p.id,
                    "quantity": quantity,
                    "unit_price_cents": p.price,
                }
            )
            line_items.append({"sku": p.sku, "quantity": quantity, "price": _money(p.price)})
        self._event(
            EventKind.ORDER.value,
            f"{self.store}/order/{external_id}",
            f"Order {external_id} confirmed | {STORE_NAME}",
            None,
            compact_json(
                {"order_id": external_id, "items": line_items, "total": _money(total), "currency": CURRENCY}
            ),
        )
        gen.buffers["orders"].append(
            {
                "id": oid,
                "external_id": external_id,
                "shopper_id": self.sid,
                "total_cents": total,
                "currency": CURRENCY,
                "ordered_at": self.t,
                "source": ORDER_SOURCE,
            }
        )
        self.cart.clear()
        self.cart_changed_at = self.t

    def finish(self) -> datetime:
        ua, device, browser, os_name, _w = self.ua
        self.gen.buffers["visits"].append(
            {
                "id": self.vid,
                "shopper_id": self.sid,
                "user_agent": ua,
                "device": device,
                "browser": browser,
                "os": os_name,
                "started_at": self.start,
                "last_seen_at": self.t,
                "current_url": self.url,
                "current_title": self.title,
                "left_at": self.t + timedelta(seconds=5 + self.rng.randrange(60)),
            }
        )
        return self.t
