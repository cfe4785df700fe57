"""Admin accounts and sessions, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from chatdash.models import AdminSession, AdminUser
from chatdash.services import auth


def test_password_is_stored_hashed_and_verifies(any_engine):
    with Session(any_engine) as s:
        auth.create_admin(s, "Owner@Store.com", "correct horse battery")
        s.commit()
        row = s.exec(select(AdminUser)).one()
    assert row.email == "owner@store.com"
    assert "correct horse" not in row.password_hash
    assert row.password_hash.startswith("$argon2")
    with Session(any_engine) as s:
        assert auth.authenticate(s, "owner@store.com", "correct horse battery") is not None
        assert auth.authenticate(s, " OWNER@store.com ", "correct horse battery") is not None
        assert auth.authenticate(s, "owner@store.com", "wrong password") is None
        assert auth.authenticate(s, "nobody@store.com", "correct horse battery") is None
        assert auth.authenticate(s, "owner@store.com", "") is None


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", "long enough pw", "valid email"),
        ("a@b.c", "short", "at least 8"),
        ("a@b.c", "x" * 300, "at most 256"),
    ],
)
def test_bad_admin_input_is_refused_with_a_reason(engine, email, password, message):
    with Session(engine) as s, pytest.raises(auth.AuthError, match=message):
        auth.create_admin(s, email, password)


def test_duplicate_admin_is_refused(engine):
    with Session(engine) as s:
        auth.create_admin(s, "a@b.co", "password1")
        s.commit()
        with pytest.raises(auth.AuthError, match="already exists"):
            auth.create_admin(s, "A@B.co", "password2")


def test_session_token_round_trip_logout_and_expiry(any_engine):
    with Session(any_engine) as s:
        admin = auth.create_admin(s, "a@b.co", "password1")
        token = auth.start_session(s, admin.id, hours=1)
        s.commit()
    with Session(any_engine) as s:
        assert auth.admin_for_token(s, token).email == "a@b.co"
        stored = s.exec(select(AdminSession)).one()
        assert stored.token_hash != token  # only the hash is kept
        assert auth.admin_for_token(s, token + "x") is None
        assert auth.admin_for_token(s, "") is None
        stored.expires_at = stored.expires_at - timedelta(hours=2)
        s.add(stored)
        s.commit()
        assert auth.admin_for_token(s, token) is None
    with Session(any_engine) as s:
        token2 = auth.start_session(s, admin.id, hours=1)
        s.commit()
        auth.end_session(s, token2)
        s.commit()
        assert auth.admin_for_token(s, token2) is None


def test_new_password_ends_existing_sessions(engine):
    with Session(engine) as s:
        admin = auth.create_admin(s, "a@b.co", "password1")
        token = auth.start_session(s, admin.id, hours=1)
        s.commit()
        auth.set_password(s, "a@b.co", "password2")
        s.commit()
        assert auth.admin_for_token(s, token) is None
        assert auth.authenticate(s, "a@b.co", "password2") is not None


def test_first_admin_created_once_with_generated_password(engine):
    email, password = auth.ensure_first_admin(engine, None, None)
    assert email == "admin@example.com" and len(password) >= 12
    assert auth.ensure_first_admin(engine, "other@x.co", "whatever1") is None
    with Session(engine) as s:
        assert auth.authenticate(s, email, password) is not None
        assert auth.count_admins(s) == 1


def test_first_admin_from_environment_values(engine):
    assert auth.ensure_first_admin(engine, "boss@shop.co", "from-env-pw") == ("boss@shop.co", None)
    with Session(engine) as s:
        assert auth.authenticate(s, "boss@shop.co", "from-env-pw") is not None
