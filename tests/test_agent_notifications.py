"""Each member's own notification choices (services/agent_notifications.py)
and how they combine with the store's switch: who gets the new-conversation
email, and the assignee's email on a shopper's message — delivered to a real
SMTP server on loopback, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chatdash.db import session_scope
from chatdash.models import AdminUser, ConversationViewer, Role, utcnow
from chatdash.services import agent_notifications, auth, chat, notify, store_settings, workspace
from chatdash.settings import Settings


def member(engine: Engine, name: str, role: str = Role.AGENT, **choices: bool) -> AdminUser:
    with session_scope(engine) as s:
        info = auth.create_admin(s, f"{name.lower()}-{uuid.uuid4().hex[:6]}@store.test", "member-password-1",
                                 name, role=role)
    for key, value in choices.items():
        agent_notifications.set_choice(info.id, key, value, engine=engine)
    with Session(engine) as s:
        return s.get(AdminUser, info.id)


def store_emails(engine: Engine, enabled: bool, recipients: list[str] | None = None) -> None:
    with session_scope(engine) as s:
        store_settings.save_email_notifications(s, store_settings.EmailNotifications(enabled, recipients or []))


def recipients(engine: Engine) -> list[str]:
    with Session(engine) as s:
        return agent_notifications.new_conversation_recipients(s)


def test_the_store_switch_is_the_master_and_members_add_themselves(any_engine):
    dana = member(any_engine, "Dana", notify_new_conversation=True)
    member(any_engine, "Fox")  # did not choose it
    store_emails(any_engine, False, ["help@store.test"])
    assert recipients(any_engine) == []  # off: nobody, whatever they chose
    store_emails(any_engine, True, ["help@store.test", dana.email])
    assert recipients(any_engine) == ["help@store.test", dana.email]  # each address once
    store_emails(any_engine, True, [])  # on with no list: the members who chose it
    assert recipients(any_engine) == [dana.email]
    # An invited member who has not set a password yet gets nothing.
    with session_scope(any_engine) as s:
        s.get(AdminUser, dana.id).password_hash = ""
    assert recipients(any_engine) == []


def test_a_member_changes_only_their_own_choices(any_engine):
    dana, fox = member(any_engine, "Dana"), member(any_engine, "Fox")
    mine = agent_notifications.set_choice(dana.id, "notify_sound", False, engine=any_engine)
    assert mine.sound is False and mine.new_conversation is False
    agent_notifications.set_choice(dana.id, "notify_assigned_message", True, engine=any_engine)
    assert agent_notifications.choices(fox.id, engine=any_engine) == agent_notifications.Choices()
    assert agent_notifications.choices(dana.id, engine=any_engine) == agent_notifications.Choices(
        sound=False, new_conversation=False, assigned_message=True)
    for name, value in [("password_hash", True), ("role", True), ("notify_sound", "yes"), ("notify_sound", 1)]:
        with pytest.raises(ValueError, match="Unknown notification choice"):
            agent_notifications.set_choice(dana.id, name, value, engine=any_engine)
    with Session(any_engine) as s:
        assert s.get(AdminUser, dana.id).role == Role.AGENT


def shopper_writes(engine: Engine, text: str, visitor: str | None = None) -> tuple[str, int]:
    visitor = visitor or uuid.uuid4().hex
    opened = chat.open_widget(visitor, engine=engine)
    conv_id, _m, _c = chat.shopper_send(visitor, opened.shopper_id, opened.conversation_id, uuid.uuid4().hex,
                                        text, engine=engine)
    return visitor, conv_id


def plain(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def test_the_assignee_who_chose_it_is_emailed_a_shoppers_message(any_engine, smtp_server):
    tag = uuid.uuid4().hex[:6]
    dana = member(any_engine, "Dana", notify_assigned_message=True)
    fox = member(any_engine, "Fox")  # left the choice off
    watcher = member(any_engine, "Walt", notify_assigned_message=True)
    store_emails(any_engine, True, [])
    conversations = {}
    for who in (dana, fox, watcher):
        visitor, conv_id = shopper_writes(any_engine, f"first message {tag}")
        workspace.assign(who.id, conv_id, who.id, engine=any_engine)
        conversations[who.id] = (visitor, conv_id)
    with session_scope(any_engine) as s:  # Walt has his conversation open right now
        s.add(ConversationViewer(conversation_id=conversations[watcher.id][1], admin_id=watcher.id,
                                 seen_at=utcnow()))
    settings = Settings(smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_from="chat@store.test",
                        store_name="Trail Shop", public_url="https://chat.store.test", email_coalesce_minutes=0)
    stop = notify.email_new_conversations(lambda: settings, any_engine)
    try:
        for who in (fox, watcher, dana):  # Dana's last: her email is the marker the others would precede
            visitor, conv_id = conversations[who.id]
            shopper_writes(any_engine, f"Is my order late? {who.name} {tag}", visitor)
        rcpts, msg = smtp_server.wait_for(lambda m: f"Dana {tag}" in plain(m[1]))
    finally:
        stop()
    assert rcpts == [dana.email]
    assert msg["Subject"].endswith("wrote in your conversation on Trail Shop")
    assert f"https://chat.store.test/admin/conversations?c={conversations[dana.id][1]}" in plain(msg)
    mine = [m for m in smtp_server.messages if tag in plain(m[1])]
    assert [m[0] for m in mine] == [[dana.email]], "no email to Fox (off) nor to Walt (has it open)"


def test_with_the_store_switch_off_no_assignee_is_emailed(any_engine):
    dana = member(any_engine, "Dana", notify_assigned_message=True)
    store_emails(any_engine, False)
    with Session(any_engine) as s:
        assert agent_notifications.assigned_message_recipient(s, dana.id) is None
    store_emails(any_engine, True)
    with Session(any_engine) as s:
        assert agent_notifications.assigned_message_recipient(s, dana.id) == dana.email
        assert agent_notifications.assigned_message_recipient(s, None) is None
