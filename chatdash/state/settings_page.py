"""Settings page: the store's email notifications, offline follow-up and
auto-assign (owner), and each member's own notification choices (everyone)."""

from __future__ import annotations

import asyncio
from typing import Any

from chatdash.db import session_scope
from chatdash.models import Role
from chatdash.services import agent_notifications, store_settings
from chatdash.services import auto_assign as auto_assign_service
from chatdash.settings import get_settings
from chatdash.state.auth import AuthState, admin_event


class SettingsState(AuthState):
    email_enabled: bool = False
    recipients_text: str = ""
    settings_error: str = ""
    settings_saved: bool = False
    # Offline follow-up: minutes without an answer before the widget asks for an email.
    ask_minutes_text: str = ""
    followup_error: str = ""
    followup_saved: bool = False
    # Auto-assign (owner): the switch, and who would get the next conversations.
    auto_assign: bool = False
    online_text: str = ""

    # Filled by the admin-checked `load`: a computed var would reach every
    # client, logged in or not, with the initial state.
    smtp_summary: str = ""

    @admin_event(role=Role.OWNER)
    def load(self):
        s = get_settings()
        self.smtp_summary = f"{s.smtp_host}:{s.smtp_port}, from {s.smtp_from}"
        with session_scope() as session:
            current = store_settings.get_email_notifications(session)
            followup = store_settings.get_offline_followup(session)
            self.auto_assign = store_settings.get_auto_assign(session)
        self.email_enabled = current.enabled
        self.recipients_text = ", ".join(current.recipients)
        self.settings_error = ""
        self.settings_saved = False
        self.ask_minutes_text = _minutes(followup.ask_after_seconds)
        self.followup_error = ""
        self.followup_saved = False
        self._show_online()

    def _show_online(self) -> None:
        names = auto_assign_service.online_names()
        self.online_text = ", ".join(names) if names else "nobody has the conversations page open"

    @admin_event(role=Role.OWNER)
    def set_auto_assign(self, value: Any):
        """The switch saves at once: new conversations go round robin to the
        team members online (off: they wait under Unassigned)."""
        if not isinstance(value, bool):
            return
        with session_scope() as session:
            store_settings.save_auto_assign(session, value)
        self.auto_assign = value
        self._show_online()

    @admin_event(role=Role.OWNER)
    def set_email_enabled(self, value: bool):
        self.email_enabled = bool(value)
        self.settings_saved = False

    @admin_event(role=Role.OWNER)
    def set_recipients_text(self, value: str):
        self.recipients_text = str(value)[:4001]
        self.settings_saved = False

    @admin_event(role=Role.OWNER)
    def save(self):
        try:
            recipients = store_settings.parse_recipients(self.recipients_text)
            with session_scope() as session:
                store_settings.save_email_notifications(
                    session,
                    store_settings.EmailNotifications(self.email_enabled, recipients),
                )
        except store_settings.SettingsError as exc:
            self.settings_error = str(exc)
            self.settings_saved = False
            return
        self.recipients_text = ", ".join(recipients)
        self.settings_error = ""
        self.settings_saved = True

    @admin_event(role=Role.OWNER)
    def set_ask_minutes(self, value: Any):
        self.ask_minutes_text = str(value)[:13]
        self.followup_saved = False

    @admin_event(role=Role.OWNER)
    def save_followup(self):
        try:
            seconds = store_settings.parse_ask_minutes(self.ask_minutes_text)
            with session_scope() as session:
                store_settings.save_offline_followup(session, store_settings.OfflineFollowup(seconds))
        except store_settings.SettingsError as exc:
            self.followup_error = str(exc)
            self.followup_saved = False
            return
        self.ask_minutes_text = _minutes(seconds)
        self.followup_error = ""
        self.followup_saved = True


def _minutes(seconds: int) -> str:
    """120 → "2", 90 → "1.5", 3 → "0.05"."""
    return f"{seconds / 60:.2f}".rstrip("0").rstrip(".")


class MyNotificationsState(AuthState):
    """Settings → My notifications: the logged-in member's own choices. The
    handlers take no member id: each changes the caller's own row."""

    my_sound: bool = True
    my_new_conversation: bool = False
    my_assigned_message: bool = False
    store_emails_on: bool = False
    my_error: str = ""

    @admin_event
    async def load(self):
        self._show(await asyncio.to_thread(agent_notifications.choices, self._checked_admin.id))

    @admin_event
    async def set_sound(self, value: Any):
        await self._set("notify_sound", value)
        from chatdash.state.notifications import NotificationState

        (await self.get_state(NotificationState)).sound_on = self.my_sound

    @admin_event
    async def set_new_conversation(self, value: Any):
        await self._set("notify_new_conversation", value)

    @admin_event
    async def set_assigned_message(self, value: Any):
        await self._set("notify_assigned_message", value)

    async def _set(self, name: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.my_error = "A choice is on or off."
            return
        self._show(await asyncio.to_thread(agent_notifications.set_choice, self._checked_admin.id, name, value))

    def _show(self, found: agent_notifications.Choices | None) -> None:
        if found is None:
            return
        self.my_sound = found.sound
        self.my_new_conversation = found.new_conversation
        self.my_assigned_message = found.assigned_message
        self.store_emails_on = found.store_emails_on
        self.my_error = ""
