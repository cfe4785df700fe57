"""Store-wide settings edited in the admin, kept as JSON in the `setting` table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from sqlmodel import Session

from chatdash.models import Setting, utcnow
from chatdash.services.auth import EMAIL_RE

MAX_RECIPIENTS = 10
NOTIFY_KEY = "email_notifications"


class SettingsError(ValueError):
    """Invalid settings; the message is for the user."""


@dataclass
class EmailNotifications:
    enabled: bool = False
    recipients: list[str] = field(default_factory=list)


def parse_recipients(text: str) -> list[str]:
    """Split a comma/space/newline separated list of addresses, validating each."""
    if len(text) > 4000:
        raise SettingsError("The recipient list is too long.")
    parts = [p.strip().lower() for p in text.replace(",", " ").replace(";", " ").split()]
    recipients: list[str] = []
    for part in parts:
        if not EMAIL_RE.match(part):
            raise SettingsError(f"'{part[:80]}' is not an email address.")
        if part not in recipients:
            recipients.append(part)
    if len(recipients) > MAX_RECIPIENTS:
        raise SettingsError(f"At most {MAX_RECIPIENTS} recipients.")
    return recipients


def get_email_notifications(session: Session) -> EmailNotifications:
    row = session.get(Setting, NOTIFY_KEY)
    if row is None:
        return EmailNotifications()
    data = json.loads(row.value or "{}") or {}
    return EmailNotifications(
        enabled=bool(data.get("enabled", False)),
        recipients=[str(r) for r in data.get("recipients", [])],
    )


def save_email_notifications(session: Session, value: EmailNotifications) -> None:
    if value.enabled and not value.recipients:
        raise SettingsError("Add at least one recipient to turn emails on.")
    row = session.get(Setting, NOTIFY_KEY) or Setting(key=NOTIFY_KEY)
    row.value = json.dumps(asdict(value))
    row.updated_at = utcnow()
    session.add(row)


AUTO_ASSIGN_KEY = "auto_assign"


def get_auto_assign(session: Session) -> bool:
    """Whether new conversations go round robin to the team members online
    (services/auto_assign.py). Off by default."""
    row = session.get(Setting, AUTO_ASSIGN_KEY)
    if row is None:
        return False
    data = json.loads(row.value or "{}") or {}
    return bool(data.get("enabled", False))


def save_auto_assign(session: Session, enabled: bool) -> None:
    row = session.get(Setting, AUTO_ASSIGN_KEY) or Setting(key=AUTO_ASSIGN_KEY)
    row.value = json.dumps({"enabled": bool(enabled)})
    row.updated_at = utcnow()
    session.add(row)
