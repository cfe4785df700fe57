"""The demo store's conversations: shoppers' questions, the staff's answers and
product cards, and what those cards led to, so that a new install's inbox and
Insights page have something to show.

Written inside `demo_data.generate_demo_data`'s transaction, once the store's
activity is there, with a random stream of its own: the products, shoppers,
events and orders stay exactly what the seed made them. Each conversation
happens in a visit of its own, in a gap of the shopper's history, and is
stored in the rows the chat itself writes: the fields `post_message` keeps
(preview, seen marks, the awaiting-reply clock), a card's source, and its
first click as `attribution.record_click` stores it, followed by the product
page view the store reports when the click lands there.

What a card led to is the shopper's own history, not invented for it: a card
"ordered" is a product the shopper went on to order within attribution's
window (the chat is placed in the days before that order), a card "added to
cart" one the shopper put in the cart they left. Each card's outcome is worked
out here with attribution's rules, so the summary's funnel is the one the
Insights page shows.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from chatdash.models import (
    AdminUser,
    CardSource,
    Cart,
    CartLine,
    Conversation,
    EventKind,
    Message,
    MessageKind,
    Order,
    OrderLine,
    Sender,
    Shopper,
    Status,
    StoreEvent,
    Visit,
)
from chatdash.services.attribution import WINDOW
from chatdash.services.conversations import PREVIEW_CHARS
from chatdash.services.demo_data import (
    _CATEGORY_INDEX,
    BUNDLE_TEMPLATES,
    CATEGORIES,
    STORE_NAME,
    _Generator,
    _Product,
)
from chatdash.services.store_settings import DEFAULT_ASK_AFTER_SECONDS

#: The conversations happen in these last days before the anchor.
PERIOD = timedelta(days=35)
#: A visit of the demo starts at least this long after the previous one ends.
VISIT_GAP = timedelta(minutes=30)
#: Open conversations are the recent ones; older ones were resolved.
RECENT = timedelta(days=6)


@dataclass(frozen=True)
class ChatSummary:
    """What was written, and the cards' funnel as attribution counts it."""

    conversations: int = 0
    messages: int = 0
    sent: int = 0
    clicked: int = 0
    carted: int = 0
    ordered: int = 0
    revenue_cents: int = 0


# --------------------------------------------------------------------------- what people say


@dataclass(frozen=True)
class _Topic:
    uses: tuple[str, ...]  # "... for {use}"
    details: tuple[tuple[str, str], ...]  # (shopper's question, staff's answer)


# fmt: off
_TOPICS: dict[str, _Topic] = {
    "running-shoes": _Topic(
        ("my first marathon", "easy runs on the road", "faster training days"),
        (("Do they run true to size? I'm usually a 42.",
          "They run true to size. If you're between sizes, go half a size up: feet swell on long runs."),
         ("How many miles do they usually last?",
          "Most runners get 300-500 miles out of a pair, depending on the surface."),
         ("Are they OK for wide feet?",
          "Yes, the toe box is on the roomy side, and most sizes come in a wide fit too."))),
    "trail-gear": _Topic(
        ("weekend hikes in the mountains", "a week-long trek", "early starts on the trail"),
        (("Is it heavy? I try to keep my pack light.",
          "It's one of the lightest in its class; the exact weight is on the product page under Specs."),
         ("Does it come with a warranty?",
          "Yes, a lifetime repair guarantee: if anything breaks, we fix it."))),
    "yoga": _Topic(
        ("hot yoga", "practising at home", "a beginners' class"),
        (("Is it easy to clean?", "Yes, a damp cloth with a drop of mild soap is all it needs."),
         ("What is it made of?", "Responsibly sourced, non-toxic materials, and no PVC."))),
    "cycling": _Topic(
        ("commuting to work", "long weekend rides", "gravel riding"),
        (("Does it come with a warranty?", "Yes, two years, and we handle any claim with the brand for you."),
         ("How quickly can you deliver it?",
          "Order before 2 pm and it leaves today; delivery takes 1-3 working days."))),
    "swimwear": _Topic(
        ("swimming laps twice a week", "open-water swims", "a beach holiday"),
        (("Does it hold up in chlorine?",
          "Yes, it keeps its shape and colour after hundreds of pool sessions."),
         ("How do I look after it?", "Rinse it in cold water after a swim and let it dry in the shade."))),
    "outerwear": _Topic(
        ("rainy commutes", "winter walks", "a trip to Scotland"),
        (("Is it warm enough for winter?", "Yes: warm without the bulk, and it breathes when you're on the move."),
         ("What if it doesn't fit?", "Free returns and exchanges within 30 days, as long as the tags are on."))),
    "tents-camping": _Topic(
        ("a first camping trip with the kids", "backpacking for a few nights", "a summer festival"),
        (("Is it OK for a beginner?", "Definitely: it's simple to use and forgives a few mistakes."),
         ("How heavy is it?",
          "The weight is on the product page under Specs; it's one of the lighter ones we sell."))),
    "kitchen": _Topic(
        ("everyday cooking", "a wedding present", "a new kitchen"),
        (("How long is the warranty?", "Five years, and a lifetime on the cast iron and forged pieces."),
         ("Is it dishwasher safe?", "It is, though washing it by hand keeps it looking new for longer."))),
    "coffee-tea": _Topic(
        ("brewing at home", "a coffee lover's birthday", "the office kitchen"),
        (("Can you gift-wrap it?", "Yes! Leave a note at checkout and we wrap it for free."),
         ("Is the packaging plastic-free?", "Yes, everything goes out in recyclable paper packaging."))),
    "home-fitness": _Topic(
        ("a small flat", "training at home", "getting back into shape"),
        (("Is it noisy? I live in a flat.", "It's very quiet, and the rubber finish protects the floor."),
         ("How much space does it take?", "Not much: it stores away in a cupboard or under the bed."))),
    "kids": _Topic(
        ("a four-year-old", "a six-year-old", "the school run"),
        (("Will it still fit next year?", "There's a little room to grow. If in doubt, take the next size up."),
         ("Is it easy for little hands?", "Yes, it's made so that kids can manage it on their own."))),
    "accessories": _Topic(
        ("long runs", "the gym", "a present for a runner"),
        (("Does it come with a warranty?", "Yes, our 2-year no-questions warranty."),
         ("How quickly can you deliver it?",
          "Order before 2 pm and it leaves today; delivery takes 1-3 working days."))),
    "climbing": _Topic(
        ("starting out at the bouldering gym", "outdoor sport climbing", "a present for a climber"),
        (("Is it OK for a beginner?", "Yes, it's comfortable for long sessions and forgiving while you learn."),
         ("Is it certified?", "Yes, it's UIAA and CE certified."))),
    "nutrition": _Topic(
        ("marathon training", "long bike rides", "recovery after the gym"),
        (("Is it vegan?", "Most flavours are; every ingredient is listed on the product page."),
         ("Is it OK for a sensitive stomach?", "Yes, it's made to be easy on the stomach during long efforts."))),
}

_ASK = (
    "Hi! I'm looking for {a_noun} for {use}. What would you recommend?",
    "Hello, could you help me choose {a_noun}? It's for {use}.",
    "Hi there, which {noun} would you suggest for {use}?",
    "Hey! I need {a_noun} for {use}, but there are so many. Which one would you pick?",
)
_HELLO = ("Hi {first}! Happy to help.", "Hi {first}, good question!", "Hello {first}! Sure.")
_MAIN = ("For {use}, this is the one I'd pick:", "This is our best seller for {use}:", "I'd go for this one:")
_RECOMMENDED = ("Based on what you've been looking at, I think you'd like this one:",
                "Going by what you've viewed, this one should suit you:")
_ALSO = ("Most people who buy it also get this:", "It goes really well with this one:")
_ALTERNATIVE = ("If you'd like to spend a little less, this one is good too:",
                "Another one worth a look:", "And a lighter alternative:")
_THANKS = ("Perfect, thank you!", "Great, that's exactly what I needed. Thanks!",
           "Thanks, I'll order it tonight.", "Brilliant, thanks for the quick help!")
_WELCOME = ("You're welcome! Enjoy it.", "My pleasure. Happy to help any time!",
            "Great choice! Let us know how you get on.")
_LATER = ("Thanks! I'll think about it and come back.", "OK, I'll have a look and decide later.",
          "Thanks, I'll check with my partner first.")
_LOOKING = ("Thanks, I'll have a look.", "Nice, thank you!", "Thanks, those look good.")
_TAKE_TIME = ("Sure, take your time. The chat stays open if anything comes up.",
              "No rush! Just write here if you have more questions.")
_QUESTIONS = (
    (("Hi, do you ship to {country}?",
      "We do! Delivery to {country} takes 3-5 working days, and it's free over $75."),
     ("Is there a customs fee?", "No, duties are included in the price you see at checkout.")),
    (("Hi, I'd like to return something from my last order. How does that work?",
      "No problem: use the returns link in your order email, print the label and drop the parcel off. "
      "The refund follows within 5 days of it reaching us."),),
    (("Is there a discount for a first order?",
      "Yes: sign up to the newsletter at the bottom of the page and you get 10% off your first order."),),
    (("Do you sell gift cards?", "We do, from $25 to $200: you'll find them at the bottom of the home page."),
     ("Can I send one by email?", "Yes, you choose email or post at checkout, and the date it arrives.")),
    (("Can I pick up an order in a shop?",
      "Not yet, we're online only for now. Delivery is free over $75 though."),),
)
_UNANSWERED = ("Hi, can I still change the delivery address on my order?",
               "Do you price match? I saw this cheaper somewhere else.",
               "Hello? Is anyone there? I have a question about sizes.",
               "Hi, do you have a shop in Berlin?")
_WHERE_IS_MY_ORDER = (
    "Hi, I ordered on {day} (order {order}) and it hasn't arrived yet. Any news?",
    "Hello, where is my order {order}? I placed it on {day}.",
)
_ORDER_NEWS = ("Let me check... It left our warehouse yesterday and should be with you tomorrow. "
               "The tracking link is in your shipping email.")
_COUNTRIES = ("Canada", "Ireland", "Norway", "Australia", "Switzerland")
_NOTES = ("Regular customer: offer free shipping on the next order.",
          "Follow up on Monday if they haven't decided.")
_MASS_NOUNS = {"trail mix", "matcha", "creatine", "protein powder", "liquid chalk", "loose leaf tea",
               "espresso blend", "recovery drink"}
# fmt: on


#: Categories whose products the store's bundles put in one order (both ways round).
_GO_TOGETHER = {(_CATEGORY_INDEX[a[0]], _CATEGORY_INDEX[b[0]]) for t in BUNDLE_TEMPLATES for a in t for b in t}


def _noun(p: _Product) -> str:
    return re.sub(r"\s*\(.*\)", "", p.noun).lower()


def _a_noun(p: _Product) -> str:
    noun = _noun(p)
    if noun in _MASS_NOUNS or (noun.endswith("s") and not noun.endswith("ss")):
        return f"some {noun}"
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


# --------------------------------------------------------------------------- one chat


@dataclass
class _Msg:
    sender: str
    at: timedelta  # from the start of the chat's visit
    body: str = ""
    product: _Product | None = None
    source: str | None = None
    clicked: timedelta | None = None


@dataclass
class _Chat:
    """One conversation as written: the visit it happens in and its messages,
    times relative to the visit's start until it is placed."""

    shopper_id: int
    topic: _Product | None  # the product the shopper asks about (the landing category)
    status: str = Status.RESOLVED
    unread: bool = False
    messages: list[_Msg] = field(default_factory=list)
    views: list[tuple[timedelta, _Product]] = field(default_factory=list)  # before the chat
    t: timedelta = timedelta(0)
    start: datetime | None = None
    after_last_visit: bool = False
    assignee: int | None = None

    def shopper(self, rng: random.Random, text: str) -> None:
        clicks = [m.clicked for m in self.messages if m.clicked is not None]
        self.t = max([self.t, *clicks]) + timedelta(seconds=rng.randint(20, 90))
        self.messages.append(_Msg(Sender.SHOPPER, self.t, text))

    def staff(self, rng: random.Random, text: str, *, quick: bool = False) -> None:
        self.t += timedelta(seconds=rng.randint(8, 30) if quick else rng.randint(40, 200))
        self.messages.append(_Msg(Sender.ADMIN, self.t, text))

    def card(self, rng: random.Random, product: _Product, source: str, *, click: bool) -> None:
        self.t += timedelta(seconds=rng.randint(6, 25))
        clicked = self.t + timedelta(seconds=rng.randint(15, 100)) if click else None
        self.messages.append(_Msg(Sender.ADMIN, self.t, product=product, source=source, clicked=clicked))

    def note(self, rng: random.Random, text: str) -> None:
        self.t += timedelta(seconds=rng.randint(10, 60))
        self.messages.append(_Msg(Sender.NOTE, self.t, text))

    @property
    def length(self) -> timedelta:
        """How long the chat's visit lasts: to the last message or click (notes come after)."""
        said = [m.at for m in self.messages if m.sender != Sender.NOTE]
        return max([*said, *(m.clicked for m in self.messages if m.clicked is not None)], default=self.t)

    def cards(self) -> list[_Msg]:
        return [m for m in self.messages if m.product is not None]


# --------------------------------------------------------------------------- the shoppers' histories


@dataclass
class _VisitRow:
    start: datetime
    end: datetime
    ua: tuple[str, str, str, str]  # user agent, device, browser, os


@dataclass
class _History:
    """A shopper's visits, cart events and orders from just before the period on."""

    first: str  # first name, or "" for an anonymous shopper
    last_seen: datetime
    visits: list[_VisitRow]
    carts: list[tuple[datetime, frozenset[str], int | None]]  # time, skus in the cart, product added
    orders: list[tuple[datetime, str, dict[int, int]]]  # time, external id, product id -> line amount

    def fits(self, start: datetime, length: timedelta) -> bool:
        """A visit [start, start + length] keeps its distance from every other."""
        end = start + length
        return all(end + VISIT_GAP <= v.start or v.end + VISIT_GAP <= start for v in self.visits)

    def visit_at(self, at: datetime) -> _VisitRow | None:
        return next((v for v in self.visits if v.start <= at <= v.end), None)

    def outcome(self, product: _Product, sent: datetime) -> tuple[bool, int]:
        """(added to cart, revenue of its orders) within attribution's window of a send."""
        deadline = sent + WINDOW
        revenue = sum(lines.get(product.id, 0) for at, _, lines in self.orders if sent <= at <= deadline)
        carted = revenue > 0 or any(sent <= at <= deadline and product.sku in skus for at, skus, _ in self.carts)
        return carted, revenue


class _Histories:
    def __init__(self, conn: Connection, since: datetime) -> None:
        self.conn = conn
        self.since = since
        self._cache: dict[int, _History] = {}

    def __getitem__(self, sid: int) -> _History:
        if sid not in self._cache:
            self._cache[sid] = self._load(sid)
        return self._cache[sid]

    def _load(self, sid: int) -> _History:
        conn, early = self.conn, self.since - timedelta(days=2)
        v, e, o, s = Visit.__table__.c, StoreEvent.__table__.c, Order.__table__.c, Shopper.__table__.c
        ol = OrderLine.__table__
        name, last_seen = conn.execute(select(s.name, s.last_seen_at).where(s.id == sid)).one()
        visits = [_VisitRow(start, end, (ua, device, browser, os_name)) for start, end, ua, device, browser, os_name
                  in conn.execute(select(v.started_at, v.last_seen_at, v.user_agent, v.device, v.browser, v.os)
                                  .where(v.shopper_id == sid, v.started_at >= early).order_by(v.started_at))]
        carts = [(at, frozenset(i["sku"] for i in json.loads(payload)["items"]), pid) for at, payload, pid
                 in conn.execute(select(e.occurred_at, e.payload, e.product_id)
                                 .where(e.shopper_id == sid, e.occurred_at >= early, e.kind == EventKind.CART))]
        orders: dict[int, tuple[datetime, str, dict[int, int]]] = {}
        for oid, at, external_id, pid, amount in conn.execute(
            select(o.id, o.ordered_at, o.external_id, ol.c.product_id, ol.c.quantity * ol.c.unit_price_cents)
            .join(ol, ol.c.order_id == o.id).where(o.shopper_id == sid, o.ordered_at >= early)
        ):
            orders.setdefault(oid, (at, external_id, {}))[2][pid] = amount
        return _History((name or "").split(" ")[0], last_seen, visits, carts, sorted(orders.values()))


# --------------------------------------------------------------------------- writing them


class _Writer:
    def __init__(self, gen: _Generator, seed: int, progress: Callable[[str, int, int], None]) -> None:
        self.gen = gen
        self.conn = gen.conn
        self.rng = random.Random(f"demo-chats-{seed}")
        self.progress = progress
        self.anchor = gen.anchor
        self.since = self.anchor - PERIOD
        self.histories = _Histories(self.conn, self.since)
        self.used: set[int] = set()
        self.chats: list[_Chat] = []
        self.agent_id = self.conn.execute(select(AdminUser.__table__.c.id).order_by(AdminUser.__table__.c.id)
                                          .limit(1)).scalar()

    # ------------------------------------------------------------------ placing

    def _place_before(self, chat: _Chat, h: _History, before: datetime, max_hours: int = 70) -> bool:
        """Start the chat's visit some hours before `before`, in a gap of the shopper's visits."""
        for _attempt in range(4):
            start = before - chat.length - timedelta(minutes=self.rng.randint(90, max_hours * 60))
            if start >= self.since and h.fits(start, chat.length):
                chat.start = start
                return True
        return False

    def _place_after_last(self, chat: _Chat, h: _History) -> bool:
        """The shopper's latest visit: some hours after the last one, before the anchor."""
        room = self.anchor - timedelta(minutes=10) - chat.length - (h.last_seen + VISIT_GAP)
        if room <= timedelta(hours=1):
            return False
        start = h.last_seen + VISIT_GAP + timedelta(seconds=self.rng.randint(0, int(min(room, timedelta(days=3))
                                                                                  .total_seconds())))
        chat.start, chat.after_last_visit = start, True
        return True

    def _greeting(self, h: _History) -> str:
        return self.rng.choice(_HELLO).format(first=h.first).replace(" !", "!").replace(" ,", ",")

    def _ask(self, chat: _Chat, h: _History, p: _Product, source: str) -> None:
        """The shopper asks for advice on a kind of product; the staff's answer leads to a card from `source`."""
        use = self.rng.choice(_TOPICS[CATEGORIES[p.cat].slug].uses)
        chat.shopper(self.rng, self.rng.choice(_ASK).format(a_noun=_a_noun(p), noun=_noun(p), use=use))
        intro = _RECOMMENDED if source == CardSource.RECOMMENDED else _MAIN
        chat.staff(self.rng, f"{self._greeting(h)} {self.rng.choice(intro).format(use=use)}")

    def _source(self, recommended: float) -> str:
        return CardSource.RECOMMENDED if self.rng.random() < recommended else CardSource.SEARCH

    def _detail(self, chat: _Chat, p: _Product) -> None:
        question, answer = self.rng.choice(_TOPICS[CATEGORIES[p.cat].slug].details)
        chat.shopper(self.rng, question)
        chat.staff(self.rng, answer)

    def _browse(self, chat: _Chat, p: _Product) -> None:
        """What the shopper looked at before opening the chat: similar products."""
        for _ in range(self.rng.randint(1, 2)):
            chat.t += timedelta(seconds=self.rng.randint(15, 70))
            chat.views.append((chat.t, self.gen.by_noun[(p.cat, p.noun)].pick(self.rng)))

    def _alternative(self, p: _Product, avoid: set[int]) -> _Product | None:
        for _attempt in range(6):
            q = self.gen.by_noun[(p.cat, p.noun)].pick(self.rng)
            if q.id not in avoid:
                return q
        return None

    # ------------------------------------------------------------------ the kinds of chat

    def bought(self, sid: int, order_at: datetime) -> _Chat | None:
        """Advice with cards, then the shopper ordered what was sent."""
        h = self.histories[sid]
        order = next(((at, lines) for at, _, lines in h.orders if at == order_at), None)
        visit = h.visit_at(order_at)
        if order is None or visit is None:
            return None
        bought = [self.gen.products[pid - 1] for pid in sorted(order[1])]
        main = self.rng.choice(bought)
        chat = _Chat(sid, main, status=Status.OPEN if order_at >= self.anchor - RECENT else Status.RESOLVED)
        self._browse(chat, main)
        source = self._source(0.5)
        self._ask(chat, h, main, source)
        chat.card(self.rng, main, source, click=True)
        alt = self._alternative(main, set(order[1])) if self.rng.random() < 0.6 else None
        if alt is not None:
            chat.staff(self.rng, self.rng.choice(_ALTERNATIVE), quick=True)
            alt_source = CardSource.VIEWED_TOGETHER if self.rng.random() < 0.5 else CardSource.SEARCH
            chat.card(self.rng, alt, alt_source, click=self.rng.random() < 0.5)
        self._detail(chat, main)
        # Only what goes with it: the same category, or a pair the store's bundles make (shoes and socks).
        others = [p for p in bought if p is not main and (p.cat == main.cat or (p.cat, main.cat) in _GO_TOGETHER)]
        if others:
            chat.staff(self.rng, self.rng.choice(_ALSO), quick=True)
            also = CardSource.SAME_ORDER if self.rng.random() < 0.5 else CardSource.BOUGHT_ALSO
            chat.card(self.rng, self.rng.choice(others), also, click=True)
        chat.shopper(self.rng, self.rng.choice(_THANKS))
        chat.staff(self.rng, self.rng.choice(_WELCOME))
        if not self._place_before(chat, h, visit.start):
            return None
        # Every card bought was clicked; the order (by the shopper's own history) counts.
        return chat if all(h.outcome(m.product, self._at(chat, m.at))[1] for m in chat.cards()
                           if m.product.id in order[1]) else None

    def carted(self, sid: int, product_id: int) -> _Chat | None:
        """A card the shopper put in the cart they left: the conversation is still open."""
        h = self.histories[sid]
        added = max((at for at, _, pid in h.carts if pid == product_id), default=None)
        visit = h.visit_at(added) if added is not None else None
        if visit is None:
            return None
        p = self.gen.products[product_id - 1]
        chat = _Chat(sid, p, status=Status.OPEN)
        self._browse(chat, p)
        source = self._source(0.4)
        self._ask(chat, h, p, source)
        chat.card(self.rng, p, source, click=True)
        self._detail(chat, p)
        chat.shopper(self.rng, self.rng.choice(_LATER))
        if self.rng.random() < 0.5:
            chat.staff(self.rng, self.rng.choice(_TAKE_TIME))
        else:
            chat.unread = True  # the shopper wrote last; nobody has read it yet
        if not self._place_before(chat, h, visit.start, max_hours=100):
            return None
        carted, revenue = h.outcome(p, self._at(chat, chat.cards()[0].at))
        return chat if carted and not revenue else None

    def looked(self, sid: int) -> _Chat | None:
        """Cards the shopper looked at (or not), and nothing more came of it."""
        h = self.histories[sid]
        seen = self.conn.execute(
            select(StoreEvent.__table__.c.product_id)
            .where(StoreEvent.__table__.c.shopper_id == sid, StoreEvent.__table__.c.kind == EventKind.PRODUCT_VIEW)
            .order_by(StoreEvent.__table__.c.occurred_at.desc()).limit(1)
        ).scalar()
        if seen is None:
            return None
        viewed = self.gen.products[seen - 1]
        chat = _Chat(sid, viewed)
        self._browse(chat, viewed)
        source = self._source(0.5)
        self._ask(chat, h, viewed, source)
        first = self._alternative(viewed, set()) or viewed
        chat.card(self.rng, first, source, click=self.rng.random() < 0.5)
        if self.rng.random() < 0.7:
            second = self._alternative(viewed, {first.id})
            if second is not None:
                chat.staff(self.rng, self.rng.choice(_ALTERNATIVE), quick=True)
                chat.card(self.rng, second, CardSource.VIEWED_TOGETHER, click=self.rng.random() < 0.3)
        chat.shopper(self.rng, self.rng.choice(_LOOKING))
        if not self._place_after_last(chat, h):
            return None
        chat.status = Status.OPEN if chat.start >= self.anchor - RECENT else Status.RESOLVED
        return chat

    def question(self, sid: int, unanswered: bool = False) -> _Chat | None:
        """Shipping, returns, an order on its way: no product cards."""
        h = self.histories[sid]
        chat = _Chat(sid, None)
        chat.t = timedelta(seconds=self.rng.randint(20, 90))
        recent = [(at, ext) for at, ext, _ in h.orders if self.anchor - timedelta(days=12) < at < h.last_seen]
        if unanswered:
            chat.shopper(self.rng, self.rng.choice(_UNANSWERED))
            chat.status, chat.unread = Status.OPEN, True
        elif recent and h.last_seen > recent[-1][0] + timedelta(days=2):
            at, ext = recent[-1]
            chat.shopper(self.rng, self.rng.choice(_WHERE_IS_MY_ORDER).format(order=ext, day=f"{at.day} {at:%B}"))
            chat.staff(self.rng, f"{self._greeting(h)} {_ORDER_NEWS}")
            chat.shopper(self.rng, self.rng.choice(_THANKS[:2]))
        else:
            country = self.rng.choice(_COUNTRIES)
            for question, answer in self.rng.choice(_QUESTIONS):
                chat.shopper(self.rng, question.format(country=country))
                chat.staff(self.rng, answer.format(country=country))
            if self.rng.random() < 0.5:
                chat.shopper(self.rng, self.rng.choice(_THANKS[:2]))
        if not self._place_after_last(chat, h):
            return None
        if not unanswered:
            fresh = chat.start >= self.anchor - RECENT
            chat.status = Status.OPEN if fresh and self.rng.random() < 0.5 else Status.RESOLVED
        return chat

    # ------------------------------------------------------------------ choosing

    def make(self, n: int) -> ChatSummary:
        if n <= 0:
            return ChatSummary()
        o, cart, line, s = Order.__table__, Cart.__table__, CartLine.__table__, Shopper.__table__
        orders = list(self.conn.execute(
            select(o.c.shopper_id, o.c.ordered_at).where(o.c.ordered_at >= self.since + timedelta(days=4))
            .order_by(o.c.id)))
        carts = list(self.conn.execute(
            select(cart.c.shopper_id, line.c.product_id).join(line, line.c.cart_id == cart.c.id)
            .where(cart.c.updated_at >= self.since + timedelta(days=5)).order_by(line.c.id)))
        recent = list(self.conn.execute(
            select(s.c.id).where(s.c.last_seen_at >= self.since, s.c.last_seen_at < self.anchor - timedelta(hours=3))
            .order_by(s.c.id)).scalars())
        for pool in (orders, carts, recent):
            self.rng.shuffle(pool)

        # The scarcest kinds first: they need a cart left or an order in the period.
        plan = (
            ("carted", self.carted, [(sid, pid) for sid, pid in carts], 0.15),
            ("bought", self.bought, [(sid, at) for sid, at in orders], 0.3),
            ("unanswered", self.question, [(sid, True) for sid in recent], 0.08),
            ("looked", self.looked, [(sid,) for sid in recent], 0.3),
            ("question", self.question, [(sid,) for sid in recent], 1.0),  # the rest
        )
        for _kind, maker, pool, share in plan:
            want = min(n - len(self.chats), max(1, round(n * share)))
            made = tries = 0
            for args in pool:
                if made >= want or tries >= 8 * want:
                    break
                if args[0] in self.used:
                    continue
                tries += 1
                chat = maker(*args)
                if chat is not None:
                    self.used.add(chat.shopper_id)
                    self.chats.append(chat)
                    made += 1
        self.progress("conversations", 0, len(self.chats))
        summary = self._write() if self.chats else ChatSummary()
        self.progress("conversations", len(self.chats), len(self.chats))
        return summary

    # ------------------------------------------------------------------ rows

    @staticmethod
    def _at(chat: _Chat, offset: timedelta) -> datetime:
        assert chat.start is not None
        return chat.start + offset

    def _write(self) -> ChatSummary:
        rng = self.rng
        self.chats.sort(key=lambda ch: (ch.start, ch.shopper_id))
        # Assigned: half the open ones and most resolved ones, to the first staff member (if any yet).
        for chat in self.chats:
            if self.agent_id is not None and rng.random() < (0.5 if chat.status == Status.OPEN else 0.7):
                chat.assignee = self.agent_id
        assigned_open = [ch for ch in self.chats if ch.status == Status.OPEN and ch.assignee is not None and ch.cards()]
        for chat, text in zip(assigned_open, _NOTES, strict=False):
            chat.note(rng, text)

        visits, events, shoppers_seen = [], [], []
        messages: list[tuple[datetime, int, int, _Msg]] = []
        for ci, chat in enumerate(self.chats, start=1):
            h = self.histories[chat.shopper_id]
            visits.append(self._visit_rows(chat, h, events))
            if chat.after_last_visit:
                shoppers_seen.append({"sid": chat.shopper_id, "seen": visits[-1]["last_seen_at"]})
            for k, m in enumerate(chat.messages):
                messages.append((self._at(chat, m.at), ci, k, m))
        messages.sort(key=lambda row: row[:3])

        conversations: dict[int, dict[str, Any]] = {}
        message_rows = []
        sent = clicked = carted = ordered = revenue = 0
        for mid, (at, ci, _k, m) in enumerate(messages, start=1):
            chat = self.chats[ci - 1]
            conv = conversations.setdefault(ci, self._conversation_row(ci, chat, at))
            clicked_at = self._at(chat, m.clicked) if m.clicked is not None else None
            message_rows.append({
                "id": mid, "conversation_id": ci, "sender": str(m.sender),
                "kind": str(MessageKind.PRODUCT if m.product else MessageKind.TEXT),
                "body": m.product.name if m.product else m.body, "product_id": m.product.id if m.product else None,
                "admin_id": self.agent_id if m.sender in (Sender.ADMIN, Sender.NOTE) else None,
                "client_msg_id": f"demo-{mid:08d}", "created_at": at,
                "card_source": str(m.source) if m.product else None, "clicked_at": clicked_at,
            })
            if m.sender == Sender.NOTE:
                continue  # notes touch neither the preview nor the seen marks
            # What post_message keeps on the conversation.
            preview = f"Product: {m.product.name}" if m.product else m.body
            conv.update(last_message_at=at, last_message_preview=" ".join(preview.split())[:PREVIEW_CHARS])
            if m.sender == Sender.ADMIN:
                conv["admin_seen_message_id"] = mid
                conv["awaiting_reply_since"] = None
            else:
                conv["last_shopper_message_id"] = mid
                conv["awaiting_reply_since"] = conv["awaiting_reply_since"] or at
            conv["shopper_seen_message_id"] = mid  # the shopper's widget was open throughout
            if not chat.unread:
                conv["admin_seen_message_id"] = mid  # an agent has read it all
            if m.product is not None:
                was_carted, earned = self.histories[chat.shopper_id].outcome(m.product, at)
                sent += 1
                clicked += clicked_at is not None
                carted += was_carted
                ordered += earned > 0
                revenue += earned

        # What the email-ask job (followup.ask_due) would have done long ago: an open conversation an
        # anonymous shopper still waits in was asked for an email, so a first start changes nothing.
        ask_after = timedelta(seconds=DEFAULT_ASK_AFTER_SECONDS)
        for ci, conv in conversations.items():
            chat, waiting = self.chats[ci - 1], conv["awaiting_reply_since"]
            if chat.status == Status.OPEN and waiting is not None and not self.histories[chat.shopper_id].first:
                conv["email_asked_at"] = waiting + ask_after

        conn = self.conn
        conn.execute(insert(Visit.__table__), visits)
        if events:
            conn.execute(insert(StoreEvent.__table__), events)
        conn.execute(insert(Conversation.__table__), [conversations[i] for i in sorted(conversations)])
        conn.execute(insert(Message.__table__), message_rows)
        if shoppers_seen:
            s = Shopper.__table__
            conn.execute(update(s).where(s.c.id == bindparam("sid")).values(last_seen_at=bindparam("seen")),
                         shoppers_seen)
        return ChatSummary(len(conversations), len(message_rows), sent, clicked, carted, ordered, revenue)

    def _conversation_row(self, ci: int, chat: _Chat, at: datetime) -> dict[str, Any]:
        return {
            "id": ci, "token": secrets.token_urlsafe(32), "shopper_id": chat.shopper_id, "status": str(chat.status),
            "created_at": at, "last_message_at": at, "last_message_preview": "",
            "admin_seen_message_id": 0, "shopper_seen_message_id": 0, "last_shopper_message_id": 0,
            "assignee_id": chat.assignee, "awaiting_reply_since": None,
            "email_asked_at": None, "email_ask_dismissed_at": None, "followup_due_at": None,
            "followup_sent_at": None, "followup_sent_message_id": 0, "proactive_message_id": 0,
            "proactive_shown_id": 0, "snoozed_until": None,
        }

    def _visit_rows(self, chat: _Chat, h: _History, events: list[dict[str, Any]]) -> dict[str, Any]:
        """The visit the chat happens in, and the events the store reported during it:
        the page the shopper landed on, what they viewed, and each card clicked."""
        gen, rng, store = self.gen, self.rng, self.gen.store_url
        near = min(h.visits, key=lambda v: abs(v.start - chat.start)) if h.visits else None
        ua, device, browser, os_name = near.ua if near else ("Mozilla/5.0", "desktop", "Chrome", "Windows")
        gen.counts["visits"] += 1
        vid = gen.counts["visits"]
        page: list[tuple[timedelta, str, str, str, int | None, str]] = []  # at, kind, url, title, product, payload
        if chat.topic is not None:
            cat = CATEGORIES[chat.topic.cat]
            page.append((timedelta(0), EventKind.PAGE_VIEW, f"{store}/category/{cat.slug}",
                         f"{cat.name} | {STORE_NAME}", None, "{}"))
        else:
            page.append((timedelta(0), EventKind.PAGE_VIEW, store, f"Home | {STORE_NAME}", None, "{}"))
        for at, p in chat.views:
            page.append((at, EventKind.PRODUCT_VIEW, p.url, p.title, p.id, p.view_payload))
        for m in chat.messages:
            if m.clicked is not None and m.product is not None:
                p = m.product
                page.append((m.clicked, EventKind.PRODUCT_VIEW, p.url, p.title, p.id, p.view_payload))
        page.sort(key=lambda row: row[0])
        referrer = rng.choice(("https://www.google.com/", "", "https://www.instagram.com/"))
        for at, kind, url, title, pid, payload in page:
            gen.counts["events"] += 1
            eid = gen.counts["events"]
            when = self._at(chat, at)
            events.append({"id": eid, "event_id": f"demo-{eid}", "shopper_id": chat.shopper_id, "visit_id": vid,
                           "kind": str(kind), "url": url, "title": title, "referrer": referrer, "product_id": pid,
                           "payload": payload, "occurred_at": when,
                           "received_at": when + timedelta(milliseconds=rng.randrange(40, 1500))})
            referrer = url
        end = self._at(chat, chat.length)
        return {"id": vid, "shopper_id": chat.shopper_id, "user_agent": ua, "device": device, "browser": browser,
                "os": os_name, "started_at": chat.start, "last_seen_at": end, "current_url": page[-1][2],
                "current_title": page[-1][3], "left_at": end + timedelta(seconds=rng.randint(5, 60)),
                "open_for": None}


def make_conversations(gen: _Generator, seed: int, n: int) -> ChatSummary:
    """Write about `n` demo conversations (fewer when the store's history has
    too few shoppers to hold them) into the generator's transaction."""
    return _Writer(gen, seed, gen.progress).make(n)
