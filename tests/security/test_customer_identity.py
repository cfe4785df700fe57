"""A store customer's name and email count only when the store's HMAC covers
them: a valid (id, hash) pair cannot rename the customer."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from urllib.parse import urlencode

import pytest
from sqlmodel import Session, select

from chatdash.db import make_engine
from chatdash.models import Shopper
from chatdash.services import identity
from chatdash.state.widget import WidgetState
from tests.reflex_client import RawReflexClient

SECRET = "test-store-secret"  # the live app's (tests/conftest.py)


def test_the_identity_hmac_covers_id_name_and_email():
    # What a store's backend computes, written out with the standard library.
    message = b"chatdash-customer-v2\ncust_7\nAda Lovelace\nada@example.com"
    given = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert identity.customer_identity_hmac(SECRET, "cust_7", "Ada Lovelace", "ada@example.com") == given
    assert identity.verify_customer_identity(SECRET, "cust_7", given, "Ada Lovelace", "ada@example.com") == \
        identity.VerifiedCustomer("cust_7", "Ada Lovelace", "ada@example.com")
    for name, email in [("Mallory", "ada@example.com"), ("Ada Lovelace", "mallory@evil.test"), ("", "")]:
        assert identity.verify_customer_identity(SECRET, "cust_7", given, name, email) is None
    assert identity.verify_customer_identity(SECRET, "cust_8", given, "Ada Lovelace", "ada@example.com") is None
    assert identity.verify_customer_identity("other", "cust_7", given, "Ada Lovelace", "ada@example.com") is None


def test_a_hash_of_the_id_alone_vouches_for_the_id_alone():
    legacy = identity.customer_hmac(SECRET, "cust_7")
    assert identity.verify_customer_identity(SECRET, "cust_7", legacy, "Mallory", "mallory@evil.test") == \
        identity.VerifiedCustomer("cust_7")


@pytest.mark.parametrize("field", ["customer_id", "name", "email"])
def test_line_breaks_cannot_shift_one_field_into_another(field):
    values = {"customer_id": "cust_7", "name": "Ada", "email": "ada@example.com"}
    values[field] += "\nx"
    with pytest.raises(ValueError):
        identity.customer_identity_hmac(SECRET, **values)
    given = identity.customer_identity_hmac(SECRET, "cust_7", "Ada", "ada@example.com")
    assert identity.verify_customer_identity(SECRET, values["customer_id"], given,
                                             values["name"], values["email"]) is None


# --- the widget of the running app ---------------------------------------------

@pytest.fixture
def live_engine(live_app):
    eng = make_engine(live_app.db_url)
    yield eng
    eng.dispose()


def _open_widget(live_app, **params: str) -> None:
    token = identity.issue_visitor_token("test-secret-key")
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/widget")
        client.call(WidgetState, "load", path=f"/widget?{urlencode({'v': token, **params})}")
        assert client.seen_values(WidgetState).get("ready") is True
    finally:
        client.close()


def _customer(live_engine, customer_id: str) -> Shopper:
    with Session(live_engine) as s:
        return s.exec(select(Shopper).where(Shopper.customer_id == customer_id)).one()


def test_a_valid_id_hash_cannot_rename_the_customer(live_app, live_engine):
    customer_id = f"cust_{uuid.uuid4().hex[:8]}"
    signed = identity.customer_identity_hmac(SECRET, customer_id, "Ada Lovelace", "ada@example.com")
    _open_widget(live_app, c=customer_id, h=signed, n="Ada Lovelace", e="ada@example.com")
    shopper = _customer(live_engine, customer_id)
    assert (shopper.name, shopper.email) == ("Ada Lovelace", "ada@example.com")

    # Somebody holding the old-style pair (id, hash of the id) tries to rename her…
    _open_widget(live_app, c=customer_id, h=identity.customer_hmac(SECRET, customer_id),
                 n="Mallory", e="mallory@evil.test")
    # …and the signed pair with other values:
    _open_widget(live_app, c=customer_id, h=signed, n="Mallory", e="mallory@evil.test")
    shopper = _customer(live_engine, customer_id)
    assert (shopper.name, shopper.email) == ("Ada Lovelace", "ada@example.com")
