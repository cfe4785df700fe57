"""The demo store's paths, and the links built from them."""

from __future__ import annotations

from urllib.parse import quote, urlencode

STORE = "/store"
CART = "/store/cart"
PRODUCT_PREFIX = "/store/product"
PRODUCT = PRODUCT_PREFIX + "/[sku]"


def product_href(sku: str) -> str:
    return f"{PRODUCT_PREFIX}/{quote(sku, safe='')}"


def catalog_href(category: str = "", query: str = "", page: int = 1) -> str:
    params = {k: v for k, v in (("category", category), ("q", query)) if v}
    if page > 1:
        params["page"] = str(page)
    return f"{STORE}?{urlencode(params)}" if params else STORE
