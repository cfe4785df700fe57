"""The unsubscribe link of a follow-up email (`/api/followup/unsubscribe`):
opening it changes nothing (mail scanners open links), the button or a mail
program's one-click POST unsubscribes, and a changed link is refused."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session

from chatdash.db import get_engine
from chatdash.models import Shopper
from chatdash.services import chat, followup
from tests.security.http_client import api_client


@pytest.fixture
def client(tmp_path):
    with api_client(tmp_path) as c:
        yield c


def a_shopper_with_email() -> int:
    visitor = uuid.uuid4().hex
    opened = chat.open_widget(visitor)
    chat.shopper_send(visitor, opened.shopper_id, 0, uuid.uuid4().hex, "Hello")
    followup.give_email(visitor, f"s-{uuid.uuid4().hex[:6]}@example.com")
    return opened.shopper_id


def unsubscribed(shopper_id: int) -> bool:
    with Session(get_engine()) as s:
        return s.get(Shopper, shopper_id).followup_unsubscribed_at is not None


def test_opening_the_link_asks_and_the_button_unsubscribes(client):
    shopper_id = a_shopper_with_email()
    path = followup.unsubscribe_url(shopper_id).split("://", 1)[1].split("/", 1)[1]
    page = client.get(f"/{path}")
    assert page.status_code == 200 and 'id="unsubscribe-confirm"' in page.text.replace("'", '"')
    assert not unsubscribed(shopper_id)
    done = client.post(f"/{path}")
    assert done.status_code == 200 and "unsubscribe-done" in done.text
    assert unsubscribed(shopper_id)
    assert client.post(f"/{path}").status_code == 200  # twice is fine


def test_a_mail_programs_one_click_post_unsubscribes(client):
    shopper_id = a_shopper_with_email()
    token = followup.unsubscribe_token(shopper_id)
    r = client.post(f"{followup.UNSUBSCRIBE_PATH}?t={token}", content="List-Unsubscribe=One-Click",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and unsubscribed(shopper_id)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_changed_or_missing_token_is_refused(client, method):
    shopper_id = a_shopper_with_email()
    token = followup.unsubscribe_token(shopper_id)
    other = f"{shopper_id + 1}.{token.split('.')[1]}"
    for bad in ("", token[:-1], other, "1." + "A" * 32, "x" * 5000, "<script>"):
        r = client.request(method, followup.UNSUBSCRIBE_PATH, params={"t": bad})
        assert r.status_code == 400 and "unsubscribe-invalid" in r.text
        assert "<script>" not in r.text
    assert not unsubscribed(shopper_id)


def test_an_oversize_body_is_refused(client):
    shopper_id = a_shopper_with_email()
    r = client.post(f"{followup.UNSUBSCRIBE_PATH}?t={followup.unsubscribe_token(shopper_id)}", content="x" * 5000)
    assert r.status_code == 413 and not unsubscribed(shopper_id)
