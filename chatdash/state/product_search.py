"""Product search (the magnifier beside Reply): find a product and send its
card into the open conversation."""

from __future__ import annotations

import asyncio
from typing import Any

from chatdash.models import CardSource
from chatdash.services import product_picks
from chatdash.state.auth import AuthState, admin_event
from chatdash.state.views import ProductHit

MAX_QUERY = 100


class ProductSearchState(AuthState):
    search_open: bool = False
    search_query: str = ""
    search_results: list[ProductHit] = []

    @admin_event
    def set_search_open(self, value: Any):
        self.search_open = bool(value)
        if not self.search_open:
            self.search_query = ""
            self.search_results = []

    @admin_event
    async def search(self, query: Any):
        from chatdash.state.chat import ChatState

        self.search_query = query[:MAX_QUERY] if isinstance(query, str) else ""
        chat_state = await self.get_state(ChatState)
        products = await asyncio.to_thread(product_picks.search_for, self.search_query, chat_state.conversation_id)
        self.search_results = [ProductHit.from_product(p) for p in products]

    @admin_event
    async def send_product(self, product_id: Any):
        from chatdash.state.chat import ChatState

        chat_state = await self.get_state(ChatState)
        if await chat_state._send_product(product_id, CardSource.SEARCH):
            self.search_open = False
            self.search_query = ""
            self.search_results = []
