"""The chatdash app: pages, API routes and lifespan tasks."""

import reflex as rx

from chatdash.api.routes import api
from chatdash.pages import conversations, login, settings  # noqa: F401  (register pages)

app = rx.App(api_transformer=api)
