"""Store events: validate what a store reports about a shopper (`schema`) and store it once (`storage`).

The browser's batches (``POST /api/track``) and the store's server-to-server
calls (``POST /api/store/orders``, ``/api/store/carts``) all end here.
No Reflex imports; the HTTP layer verifies visitor tokens and secrets.

Decisions (documented for stores in docs/tracking.md):

- A batch is all or nothing. One malformed event refuses the batch, with a
  reason per event (index, id, field); the widget drops only those events and
  re-sends the rest.
- Every event carries a client-made id; a (shopper, id) pair is stored once,
  so a retried batch, or an id repeated inside one batch, counts as a duplicate.
- Money arrives in currency units (19.99) and is stored in the event payload
  as given (normalised); carts and orders in tables are integer cents.
- The browser is not trusted with money: a browser cart is priced from the
  catalog, and a browser order is an event only. Carts and orders sent
  server-to-server (authenticated by the store secret) are taken as given.
- Unknown skus are not refused (a catalog is often behind the store): a product
  view keeps ``product_id`` empty, and cart or order lines of products not in
  the catalog (or priced in another currency) stay in the event payload but get
  no CartLine/OrderLine. The caller is told which skus were left out.

The names below are re-exported so callers keep writing `tracking.track_events(...)`.
"""

from chatdash.services.tracking.schema import (
    KINDS,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_LINES,
    MAX_QUANTITY,
    CartEvent,
    Event,
    Line,
    OrderEvent,
    PageViewEvent,
    ProductViewEvent,
    ServerCart,
    ServerOrder,
    TrackingError,
    parse_cart,
    parse_events,
    parse_order,
)
from chatdash.services.tracking.storage import (
    CartResult,
    OrderResult,
    ServerCartResult,
    TrackResult,
    clamp_time,
    record_cart,
    record_order,
    replace_cart,
    shopper_for,
    track_events,
)

__all__ = [
    "KINDS",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "MAX_LINES",
    "MAX_QUANTITY",
    "CartEvent",
    "CartResult",
    "Event",
    "Line",
    "OrderEvent",
    "OrderResult",
    "PageViewEvent",
    "ProductViewEvent",
    "ServerCart",
    "ServerCartResult",
    "ServerOrder",
    "TrackResult",
    "TrackingError",
    "clamp_time",
    "parse_cart",
    "parse_events",
    "parse_order",
    "record_cart",
    "record_order",
    "replace_cart",
    "shopper_for",
    "track_events",
]
