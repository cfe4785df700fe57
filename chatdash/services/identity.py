"""Shopper identity: signed visitor tokens and verified store customers.

Visitor tokens
    An anonymous shopper gets a random visitor id the first time the widget
    loads. The browser keeps ``"<visitor_id>.<sig>"`` where ``sig`` is the
    url-safe base64 of ``HMAC-SHA256(secret, "visitor:" + visitor_id)``
    (unpadded, first 32 characters = 192 bits). Only a token we signed is
    accepted, so a shopper cannot pick somebody else's visitor id.

Identified customers (the Intercom / Chatwoot "identity verification" convention)
    When the shopper is logged in on the store, the store's *backend* computes::

        user_hash = hex(HMAC-SHA256(key=store_secret, msg=customer_id))

    e.g. in Python ``hmac.new(store_secret.encode(), customer_id.encode(),
    hashlib.sha256).hexdigest()``, in PHP ``hash_hmac('sha256', $customer_id,
    $store_secret)``, in Node ``crypto.createHmac('sha256', storeSecret)
    .update(customerId).digest('hex')``, and renders ``customer_id`` and the hash
    into the page. The widget passes both on; ``verify_customer`` checks them.
    The store secret never reaches the browser, so a shopper cannot claim to be
    another customer. Both strings are UTF-8 encoded before hashing.

    That hash covers the id only: whoever holds a valid (id, hash) pair could
    attach any name and email to it. To show the customer's name and email,
    the store signs them too (``customer_identity_hmac``)::

        user_hash = hex(HMAC-SHA256(key=store_secret,
                        msg="chatdash-customer-v2\n" + id + "\n" + name + "\n" + email))

    (no line breaks inside the three values; absent ones are empty strings).
    A hash of the id alone is still accepted for the id, but then the name and
    email given beside it are ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

VISITOR_ID_BYTES = 18  # -> 24 url-safe characters
SIG_CHARS = 32
MAX_TOKEN_CHARS = 128
MAX_CUSTOMER_ID_CHARS = 128
MAX_CUSTOMER_LABEL_CHARS = 1000  # a name or email as signed; stored shorter
CUSTOMER_V2 = "chatdash-customer-v2"

# visitor ids are url-safe base64 (no '.'), so the token splits unambiguously.
# The id length is not pinned to 24 so that ids of another length (up to the
# 64 characters of Shopper.visitor_id) stay verifiable; the signature covers it.
_TOKEN_RE = re.compile(rf"([A-Za-z0-9_-]{{16,64}})\.([A-Za-z0-9_-]{{{SIG_CHARS}}})")
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")


def _visitor_sig(secret: str, visitor_id: str) -> str:
    digest = hmac.new(secret.encode(), b"visitor:" + visitor_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")[:SIG_CHARS]


def issue_visitor_token(secret: str) -> str:
    """A new visitor id with its signature: ``"<visitor_id>.<sig>"``."""
    if not secret:
        raise ValueError("A secret is needed to sign visitor tokens.")
    visitor_id = secrets.token_urlsafe(VISITOR_ID_BYTES)
    return f"{visitor_id}.{_visitor_sig(secret, visitor_id)}"


def visitor_token_for(secret: str, visitor_id: str) -> str:
    """The token of a visitor id the server already trusts (a follow-up email's
    link resolved it): the browser that opened the link speaks for that visitor."""
    if not secret:
        raise ValueError("A secret is needed to sign visitor tokens.")
    return f"{visitor_id}.{_visitor_sig(secret, visitor_id)}"


def verify_visitor_token(secret: str, token: object) -> str | None:
    """The visitor id of a token we signed, else None. Never raises."""
    if not secret or not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return None
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        return None
    visitor_id, sig = match.groups()
    # Both sides are ASCII here (the regex), which compare_digest requires for str.
    if hmac.compare_digest(_visitor_sig(secret, visitor_id), sig):
        return visitor_id
    return None


def customer_hmac(store_secret: str, customer_id: str) -> str:
    """Hex HMAC-SHA256 of the customer id: what the store's backend computes."""
    return hmac.new(store_secret.encode(), customer_id.encode(), hashlib.sha256).hexdigest()


def verify_customer(store_secret: str, customer_id: object, given_hmac: object) -> bool:
    """Whether ``given_hmac`` is the store's HMAC of ``customer_id``. Constant-time; never raises."""
    if not store_secret or not isinstance(customer_id, str) or not isinstance(given_hmac, str):
        return False
    if not customer_id or len(customer_id) > MAX_CUSTOMER_ID_CHARS:
        return False
    given = given_hmac.strip()
    if not _HEX64_RE.fullmatch(given):
        return False
    try:
        expected = customer_hmac(store_secret, customer_id)
    except UnicodeEncodeError:  # lone surrogates cannot be UTF-8 encoded
        return False
    return hmac.compare_digest(expected, given.lower())


def customer_identity_hmac(store_secret: str, customer_id: str, name: str = "", email: str = "") -> str:
    """Hex HMAC-SHA256 of the customer's id, name and email: what the store's
    backend computes to show the customer by name (see the module docstring)."""
    for value in (customer_id, name, email):
        if "\n" in value or "\r" in value:
            raise ValueError("customer id, name and email cannot contain line breaks")
    message = "\n".join((CUSTOMER_V2, customer_id, name, email))
    return hmac.new(store_secret.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class VerifiedCustomer:
    customer_id: str
    name: str = ""  # empty unless the store signed it
    email: str = ""


def verify_customer_identity(store_secret: str, customer_id: object, given_hmac: object,
                             name: object = "", email: object = "") -> VerifiedCustomer | None:
    """The customer the store vouched for, with the name and email only when its
    HMAC covers them (a hash of the id alone vouches for the id alone). Never raises."""
    if not isinstance(customer_id, str) or not isinstance(given_hmac, str):
        return None
    name = name if isinstance(name, str) else ""
    email = email if isinstance(email, str) else ""
    given = given_hmac.strip().lower()
    signed = (store_secret and customer_id and len(customer_id) <= MAX_CUSTOMER_ID_CHARS
              and len(name) <= MAX_CUSTOMER_LABEL_CHARS and len(email) <= MAX_CUSTOMER_LABEL_CHARS
              and _HEX64_RE.fullmatch(given))
    if signed:
        try:
            expected = customer_identity_hmac(store_secret, customer_id, name, email)
        except (ValueError, UnicodeEncodeError):  # line breaks, lone surrogates
            expected = ""
        if expected and hmac.compare_digest(expected, given):
            return VerifiedCustomer(customer_id, name, email)
    if verify_customer(store_secret, customer_id, given):
        return VerifiedCustomer(customer_id)
    return None
