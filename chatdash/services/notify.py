"""In-app notification counts (and, later, email on new conversations)."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from chatdash.models import Conversation, Message, Sender


def unseen_conversation_count(session: Session) -> int:
    """Open conversations holding shopper messages no admin has seen yet."""
    stmt = (
        select(func.count(func.distinct(Conversation.id)))
        .join(Message, Message.conversation_id == Conversation.id)
        .where(
            Conversation.status == "open",
            Message.sender == Sender.SHOPPER,
            Message.id > Conversation.admin_seen_message_id,
        )
    )
    return int(session.exec(stmt).one())
