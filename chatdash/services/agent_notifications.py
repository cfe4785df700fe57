"""Each team member's own notification choices (Settings → My notifications)
and who gets the staff emails.

The rule: the store's "Email notifications" switch (owner, services/
store_settings.py) is the master switch for every staff email.
- Off: no staff email at all; the members' choices are kept for later.
- On: a new conversation is emailed to the store's recipient list plus every
  member who chose "email on new conversations" (each address once); a
  shopper's message in a conversation assigned to a member is emailed to that
  member if they chose "email on messages in my conversations".
The sound is each member's own, on every admin tab they open.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chatdash.db import session_scope, write_scope
from chatdash.models import AdminUser
from chatdash.services import store_settings

CHOICES = ("notify_sound", "notify_new_conversation", "notify_assigned_message")


@dataclass(frozen=True)
class Choices:
    sound: bool = True
    new_conversation: bool = False
    assigned_message: bool = False
    store_emails_on: bool = False  # the owner's master switch, shown beside them


def choices(admin_id: int, *, engine: Engine | None = None) -> Choices | None:
    with session_scope(engine) as session:
        admin = session.get(AdminUser, admin_id)
        if admin is None:
            return None
        return Choices(admin.notify_sound, admin.notify_new_conversation, admin.notify_assigned_message,
                       store_settings.get_email_notifications(session).enabled)


def set_choice(admin_id: int, name: str, value: bool, *, engine: Engine | None = None) -> Choices | None:
    """Change one of this member's own choices (`name` from CHOICES)."""
    if name not in CHOICES or not isinstance(value, bool):
        raise ValueError("Unknown notification choice.")
    with write_scope(engine) as session:
        admin = session.get(AdminUser, admin_id)
        if admin is None:
            return None
        before = getattr(admin, name)
        setattr(admin, name, value)
        session.add(admin)
        if name == "notify_assigned_message" and value != before:
            # Their own channel, switched: back on, their emails start afresh.
            from chatdash.services import staff_emails  # (it reads these choices)

            staff_emails.switched(session, on=value, channels=[staff_emails.assigned(admin_id)])
    return choices(admin_id, engine=engine)


def new_conversation_recipients(session: Session) -> list[str]:
    """Who is emailed about a new conversation (the rule above)."""
    store = store_settings.get_email_notifications(session)
    if not store.enabled:
        return []
    opted = session.exec(select(AdminUser.email).where(col(AdminUser.notify_new_conversation).is_(True),
                                                       AdminUser.password_hash != "")).all()
    out: list[str] = []
    for address in [*store.recipients, *opted]:
        address = address.strip().lower()
        if address and address not in out:
            out.append(address)
    return out


def assigned_message_recipient(session: Session, assignee_id: int | None) -> str | None:
    """The assignee's address, when they want emails on their conversations' messages."""
    if not assignee_id or not store_settings.get_email_notifications(session).enabled:
        return None
    admin = session.get(AdminUser, assignee_id)
    if admin is None or not admin.notify_assigned_message or not admin.password_hash:
        return None
    return admin.email
