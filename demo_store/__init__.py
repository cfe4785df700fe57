"""A small demo shop, served by the same Reflex app as chatdash so anyone can
try the shopper's side of the chat.

It stands in for a real store and talks to chatdash only the way a real store
would: the embed script (``widget.js``, ``chatdash.track`` and
``chatdash.visitor()`` in the browser), the server-to-server API
(``POST /api/store/carts`` and ``/api/store/orders`` with the store secret) and
the catalog CSV that chatdash's ``import-catalog`` reads. It has its own
settings, database, catalog, carts and orders, and imports nothing from
``chatdash``.

Modules: ``settings``, ``models``/``db`` (its own tables and database),
``catalog`` (loading and browsing), ``cart`` (cart and checkout),
``chatdash_api`` (reports to chatdash), ``routes``, ``state``, ``components``
and ``pages`` (``demo_store.pages.add_pages(app)`` adds the pages).
"""
