"""Settings page: email notifications for new conversations, auto-assign."""

from __future__ import annotations

from typing import Any

import reflex as rx

from chatdash.db import session_scope
from chatdash.models import Role
from chatdash.services import auto_assign as auto_assign_service
from chatdash.services import store_settings
from chatdash.settings import get_settings
from chatdash.state.auth import AuthState, admin_event


class SettingsState(AuthState):
    email_enabled: bool = False
    recipients_text: str = ""
    settings_error: str = ""
    settings_saved: bool = False
    # Per browser: whether a new conversation chimes (read by assets/chat.js).
    sound_pref: str = rx.LocalStorage("on", name="chatdash-sound")

    # Filled by the admin-checked `load`: a computed var would reach every
    # client, logged in or not, with the initial state.
    smtp_summary: str = ""
    # Auto-assign (owner): the switch, and who would get the next conversations.
    auto_assign: bool = False
    online_text: str = ""

    @admin_event(role=Role.OWNER)
    def load(self):
        s = get_settings()
        self.smtp_summary = f"{s.smtp_host}:{s.smtp_port}, from {s.smtp_from}"
        with session_scope() as session:
            current = store_settings.get_email_notifications(session)
            self.auto_assign = store_settings.get_auto_assign(session)
        self.email_enabled = current.enabled
        self.recipients_text = ", ".join(current.recipients)
        self.settings_error = ""
        self.settings_saved = False
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

    @admin_event
    def set_sound(self, value: bool):
        self.sound_pref = "on" if value else "off"

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
