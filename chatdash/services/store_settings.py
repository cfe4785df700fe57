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


def _read(session: Session, key: str) -> dict:
    """A setting's stored JSON object ({} when never saved)."""
    row = session.get(Setting, key)
    return (json.loads(row.value or "{}") or {}) if row is not None else {}


def _write(session: Session, key: str, data: dict) -> None:
    row = session.get(Setting, key) or Setting(key=key)
    row.value = json.dumps(data)
    row.updated_at = utcnow()
    session.add(row)


def get_email_notifications(session: Session) -> EmailNotifications:
    data = _read(session, NOTIFY_KEY)
    return EmailNotifications(
        enabled=bool(data.get("enabled", False)),
        recipients=[str(r) for r in data.get("recipients", [])],
    )


def save_email_notifications(session: Session, value: EmailNotifications) -> None:
    # On with no recipients is fine: the members who chose emails get them
    # (services/agent_notifications.py has the rule).
    was_on = get_email_notifications(session).enabled
    _write(session, NOTIFY_KEY, asdict(value))
    if value.enabled != was_on:
        # Switched back on, the emails start afresh (not held by a window from before).
        from chatdash.services import staff_emails  # (it reads these settings)

        staff_emails.switched(session, on=value.enabled)


# ----- offline follow-up

FOLLOWUP_KEY = "offline_followup"
DEFAULT_ASK_AFTER_SECONDS = 120
MAX_ASK_AFTER_SECONDS = 24 * 3600


@dataclass
class OfflineFollowup:
    """When nobody has answered a shopper for `ask_after_seconds` (0: never),
    their widget asks for an email address for the replies."""

    ask_after_seconds: int = DEFAULT_ASK_AFTER_SECONDS


def parse_ask_minutes(text: str) -> int:
    """Minutes as typed in Settings ("2", "0.5", "0" for off) → whole seconds."""
    text = str(text).strip().replace(",", ".")
    if len(text) > 12:
        raise SettingsError("Enter a number of minutes, such as 2.")
    try:
        minutes = float(text)
    except ValueError:
        raise SettingsError("Enter a number of minutes, such as 2 (0 turns the question off).") from None
    if not minutes == minutes or minutes < 0 or minutes * 60 > MAX_ASK_AFTER_SECONDS:  # NaN, negative, huge
        raise SettingsError("Enter between 0 and 1440 minutes (0 turns the question off).")
    seconds = round(minutes * 60)
    if minutes > 0 and seconds == 0:
        raise SettingsError("Enter at least 0.02 minutes (one second), or 0 to turn the question off.")
    return seconds


def get_offline_followup(session: Session) -> OfflineFollowup:
    seconds = _read(session, FOLLOWUP_KEY).get("ask_after_seconds", DEFAULT_ASK_AFTER_SECONDS)
    return OfflineFollowup(int(seconds) if isinstance(seconds, int) and 0 <= seconds <= MAX_ASK_AFTER_SECONDS
                           else DEFAULT_ASK_AFTER_SECONDS)


def save_offline_followup(session: Session, value: OfflineFollowup) -> None:
    if not 0 <= value.ask_after_seconds <= MAX_ASK_AFTER_SECONDS:
        raise SettingsError("Enter between 0 and 1440 minutes.")
    _write(session, FOLLOWUP_KEY, asdict(value))


# ----- auto-assign

AUTO_ASSIGN_KEY = "auto_assign"


def get_auto_assign(session: Session) -> bool:
    """Whether new conversations go round robin to the team members online
    (services/auto_assign.py). Off by default."""
    return bool(_read(session, AUTO_ASSIGN_KEY).get("enabled", False))


def save_auto_assign(session: Session, enabled: bool) -> None:
    _write(session, AUTO_ASSIGN_KEY, {"enabled": bool(enabled)})
