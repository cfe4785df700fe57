"""Auto-assign and the staff emails: the shopper's message that brings a
conversation to its new assignee (a new conversation, or one the shopper
brings back with nobody on it) is news to them. They get it by email when
they chose "email on messages in my conversations" — they alone, exactly once
whether it goes at once or in the next window's email — and a member who also
chose "email on new conversations" gets it once, in that email. Emails go to a
real SMTP server on loopback, on a SQLite file and on PostgreSQL; time is
passed in (`now=`) as the leader's job would see it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from chatdash.models import utcnow
from chatdash.services import notify, staff_emails, workspace
from tests.test_agent_notifications import member, plain, store_emails
from tests.test_auto_assign import assignee, online, switch
from tests.test_staff_emails import WINDOW, link, pending, settings_for, to
from tests.test_workspace import shopper_writes


def mentions(smtp_server, address: str, text: str) -> int:
    """In how many emails to `address` the shopper's `text` appears."""
    return sum(text in plain(msg) for _r, msg in to(smtp_server, address))


def test_a_new_conversation_auto_assigned_emails_its_first_message_to_the_assignee_once(any_engine, smtp_server):
    tag = uuid.uuid4().hex[:6]
    owner = f"owner-{tag}@store.test"
    store_emails(any_engine, True, [owner])
    dana = member(any_engine, "Dana", notify_assigned_message=True)
    walt = member(any_engine, "Walt", notify_assigned_message=True)  # chose it too, but nothing is his
    online(any_engine, dana)
    switch(any_engine, True)
    settings = settings_for(smtp_server.port)
    start = utcnow()

    first = f"Do you ship to Norway? {tag}"
    _v, _s, conv_id = shopper_writes(any_engine, first)
    assert assignee(any_engine, conv_id) == dana.id
    assert notify.send_due(settings, now=start, engine=any_engine) == 2  # the owner's, and Dana's at once
    [(rcpts, to_dana)] = to(smtp_server, dana.email)
    assert rcpts == [dana.email]
    assert to_dana["Subject"].endswith("wrote in your conversation on Trail Shop")
    assert first in plain(to_dana) and link(conv_id) in plain(to_dana)
    assert to(smtp_server, walt.email) == []

    # Within Dana's window: the next conversation given to her waits, then goes in one email.
    second = f"Is the tent waterproof? {tag}"
    _v, _s, later_id = shopper_writes(any_engine, second)
    assert assignee(any_engine, later_id) == dana.id
    assert notify.send_due(settings, now=start + timedelta(minutes=2), engine=any_engine) == 0
    assert notify.send_due(settings, now=start + WINDOW, engine=any_engine) == 2  # the owner's digest, Dana's
    [_first, (_r, digest)] = to(smtp_server, dana.email)
    assert second in plain(digest) and link(later_id) in plain(digest) and first not in plain(digest)
    # Nothing more, ever: each message reached Dana once, and nobody else as "yours".
    assert notify.send_due(settings, now=start + 10 * WINDOW, engine=any_engine) == 0
    assert (mentions(smtp_server, dana.email, first), mentions(smtp_server, dana.email, second)) == (1, 1)
    assert to(smtp_server, walt.email) == [] and pending(any_engine) == 0


def test_an_assignee_who_chose_new_conversation_emails_too_gets_the_first_message_once(any_engine, smtp_server):
    tag = uuid.uuid4().hex[:6]
    store_emails(any_engine, True, [])
    dana = member(any_engine, "Dana", notify_assigned_message=True, notify_new_conversation=True)
    online(any_engine, dana)
    switch(any_engine, True)
    settings = settings_for(smtp_server.port)
    first = f"Any discount on boots? {tag}"
    visitor, _s, _conv = shopper_writes(any_engine, first)
    assert notify.send_due(settings, now=utcnow(), engine=any_engine) == 1
    [(rcpts, msg)] = to(smtp_server, dana.email)
    assert rcpts == [dana.email] and msg["Subject"].startswith("New conversation on Trail Shop")
    assert notify.send_due(settings, now=utcnow() + 3 * WINDOW, engine=any_engine) == 0
    assert mentions(smtp_server, dana.email, first) == 1
    # Her next message in that conversation is no new conversation: it comes as hers.
    again = f"Or free shipping? {tag}"
    shopper_writes(any_engine, again, visitor)
    assert notify.send_due(settings, now=utcnow() + 4 * WINDOW, engine=any_engine) == 1
    assert mentions(smtp_server, dana.email, again) == 1


def test_a_conversation_brought_back_and_auto_assigned_emails_the_message_to_its_new_assignee(
        any_engine, smtp_server):
    tag = uuid.uuid4().hex[:6]
    dana = member(any_engine, "Dana", notify_assigned_message=True)
    visitor, _s, conv_id = shopper_writes(any_engine, f"first {tag}")  # before anyone is online: nobody's
    workspace.set_status(dana.id, conv_id, "resolved", engine=any_engine)
    store_emails(any_engine, True, [])
    online(any_engine, dana)
    switch(any_engine, True)
    back = f"The parcel never came {tag}"
    shopper_writes(any_engine, back, visitor)  # re-opens it with nobody on it: Dana's now
    assert assignee(any_engine, conv_id) == dana.id
    settings = settings_for(smtp_server.port)
    assert notify.send_due(settings, now=utcnow(), engine=any_engine) == 1
    [(rcpts, msg)] = to(smtp_server, dana.email)
    assert rcpts == [dana.email] and back in plain(msg) and f"first {tag}" not in plain(msg)


def test_the_listening_worker_emails_the_auto_assigned_message_at_once(any_engine, smtp_server):
    """The at-once path: the worker that stored the message sends Dana's email
    without waiting for the leader's job."""
    tag = uuid.uuid4().hex[:6]
    store_emails(any_engine, True, [])
    dana = member(any_engine, "Dana", notify_assigned_message=True)
    online(any_engine, dana)
    switch(any_engine, True)
    settings = settings_for(smtp_server.port)
    stop = notify.email_new_conversations(lambda: settings, any_engine)
    try:
        text = f"Hello, is anyone there? {tag}"
        _v, _s, conv_id = shopper_writes(any_engine, text)
        rcpts, msg = smtp_server.wait_for(lambda m: text in plain(m[1]))
        notify._mailer.submit(lambda: None).result(30)  # the mailer thread is done with this write's sends
    finally:
        stop()
    assert rcpts == [dana.email] and link(conv_id) in plain(msg)
    assert pending(any_engine) == 0 and mentions(smtp_server, dana.email, text) == 1
    assert staff_emails.due_channels(WINDOW.total_seconds(), engine=any_engine) == []
