"""The store's team (services/team.py): owner and agents, invites with a
one-time link, removal, password resets; the migration that makes the
existing admin the owner; the CLI."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chatdash.db import make_engine, session_scope
from chatdash.models import AdminSession, AdminUser, Conversation, Role, Shopper
from chatdash.services import auth, team, workspace
from chatdash.services import conversations as convs
from chatdash.services.auth import AuthError


def owner(engine: Engine) -> auth.AdminInfo:
    with session_scope(engine) as s:
        return auth.create_admin(s, f"owner-{uuid.uuid4().hex[:6]}@store.test", "owner-password-1", "Olga Owner")


def login(engine: Engine, email: str, password: str) -> auth.AdminInfo | None:
    with session_scope(engine) as s:
        return auth.authenticate(s, email, password)


def test_an_invited_agent_sets_a_password_once_and_is_an_agent(any_engine):
    boss = owner(any_engine)
    member, token = team.invite("Dana@Store.test", "Dana Scully", engine=any_engine)
    assert (member.email, member.role, member.initials, member.pending) == ("dana@store.test", "agent", "DS", True)
    # No password yet: nothing logs in as the invited account.
    assert login(any_engine, "dana@store.test", "") is None
    assert team.check_link(token, engine=any_engine).email == "dana@store.test"

    admin, session_token = team.accept(token, "dana-password-1", engine=any_engine)
    assert admin.role == Role.AGENT and not admin.may(Role.OWNER) and admin.may(Role.AGENT)
    with session_scope(any_engine) as s:
        assert auth.admin_for_token(s, session_token).email == "dana@store.test"
    assert login(any_engine, "dana@store.test", "dana-password-1").id == admin.id
    # The link is used up.
    assert team.check_link(token, engine=any_engine) is None
    with pytest.raises(AuthError, match="expired or was already used"):
        team.accept(token, "another-password", engine=any_engine)
    assert login(any_engine, "dana@store.test", "another-password") is None
    assert team.members(engine=any_engine)[0].email == boss.email  # owners first


def test_invites_refuse_bad_input_and_duplicates(engine):
    owner(engine)
    with pytest.raises(AuthError, match="valid email"):
        team.invite("not-an-email", "", engine=engine)
    with pytest.raises(AuthError, match="at most 200"):
        team.invite("x@store.test", "n" * 201, engine=engine)
    team.invite("x@store.test", "X", engine=engine)
    with pytest.raises(AuthError, match="already exists"):
        team.invite("X@store.test", "X again", engine=engine)
    _m, token = team.invite("y@store.test", "Y", engine=engine)
    with pytest.raises(AuthError, match="at least 8"):
        team.accept(token, "short", engine=engine)
    assert team.check_link(token, engine=engine) is not None  # a refused password keeps the link
    for forged in ("", "x" * 500, token[:-2] + "AA", 12345):
        assert team.check_link(forged, engine=engine) is None


def test_a_reset_ends_the_old_password_and_sessions(engine):
    boss = owner(engine)
    _m, token = team.invite("dana@store.test", "Dana", engine=engine)
    dana, session_token = team.accept(token, "dana-password-1", engine=engine)
    member, reset = team.reset_link(boss.id, dana.id, engine=engine)
    assert member.pending
    assert login(engine, "dana@store.test", "dana-password-1") is None
    with session_scope(engine) as s:
        assert auth.admin_for_token(s, session_token) is None
    team.accept(reset, "dana-password-2", engine=engine)
    assert login(engine, "dana@store.test", "dana-password-2") is not None


def test_removing_an_agent_unassigns_their_conversations_and_keeps_the_owner(any_engine):
    boss = owner(any_engine)
    _m, token = team.invite("dana@store.test", "Dana", engine=any_engine)
    dana, _t = team.accept(token, "dana-password-1", engine=any_engine)
    with session_scope(any_engine) as s:
        shopper = Shopper(visitor_id=uuid.uuid4().hex)
        s.add(shopper)
        s.flush()
        conv, _ = convs.start_conversation(s, shopper.id)
        conv_id = conv.id
    workspace.assign(boss.id, conv_id, dana.id, engine=any_engine)
    with pytest.raises(AuthError, match="your own account"):
        team.remove(boss.id, boss.id, engine=any_engine)
    team.remove(boss.id, dana.id, engine=any_engine)
    with Session(any_engine) as s:
        assert s.get(Conversation, conv_id).assignee_id is None
        assert s.exec(select(AdminUser).where(AdminUser.email == "dana@store.test")).first() is None
        assert s.exec(select(AdminSession).where(AdminSession.admin_id == dana.id)).first() is None
    with pytest.raises(AuthError, match="No such team member"):
        team.remove(boss.id, dana.id, engine=any_engine)


def test_the_store_keeps_an_owner(engine):
    """One owner may remove another, but the last owner stays (whoever asks:
    the handlers let only owners ask, the service holds the line anyway)."""
    a, b = owner(engine), owner(engine)
    team.remove(a.id, b.id, engine=engine)
    _m, token = team.invite("dana@store.test", "Dana", engine=engine)
    dana, _t = team.accept(token, "dana-password-1", engine=engine)
    with pytest.raises(AuthError, match="needs an owner"):
        team.remove(dana.id, a.id, engine=engine)
    with pytest.raises(AuthError, match="needs an owner"):
        team.reset_link(dana.id, a.id, engine=engine)
    assert login(engine, a.email, "owner-password-1") is not None


def test_initials():
    assert team.initials("Dana Scully", "d@x") == "DS"
    assert team.initials("dana", "d@x") == "DA"
    assert team.initials("", "fox@x") == "FO"
    assert team.initials("Mary Ann de la Cruz", "m@x") == "MC"


def test_the_existing_admin_becomes_the_owner_in_the_migration(tmp_path):
    from alembic.config import Config

    from alembic import command
    from chatdash.db import PROJECT_ROOT

    eng = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(text("INSERT INTO adminuser (email, name, password_hash, created_at) "
                          "VALUES ('old@store.test', 'Old', 'x', '2026-01-01 00:00:00')"))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with Session(eng) as s:
        assert s.exec(select(AdminUser.role).where(AdminUser.email == "old@store.test")).one() == "owner"
        assert s.exec(select(Conversation.assignee_id)).all() == []
    eng.dispose()


def test_cli_invites_an_agent_and_adds_one_with_a_password(tmp_path):
    import os

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "CHATDASH_PUBLIC_URL": "http://chat.store.test"}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "chatdash.cli", *args], env=env, input=stdin,
                              capture_output=True, text=True, check=False)

    out = run("invite", "dana@store.test", "--name", "Dana Scully")
    assert out.returncode == 0, out.stderr
    link = out.stdout.split("http://chat.store.test/invite?t=")[1].split()[0]
    added = run("add-admin", "fox@store.test", "--role", "agent", "--password", "fox-password-1")
    assert added.returncode == 0 and "Agent fox@store.test added" in added.stdout
    assert run("add-admin", "x@store.test", "--role", "boss", "--password", "x-password-1").returncode == 2
    listed = run("team").stdout
    assert "agent  dana@store.test" in listed and "(invited)" in listed and "fox@store.test" in listed
    eng = make_engine(env["DATABASE_URL"])
    assert team.check_link(link.replace("\n", ""), engine=eng).email == "dana@store.test"
    eng.dispose()
