"""Settings page: email notifications for new conversations."""

from __future__ import annotations

import reflex as rx

from chatdash.db import session_scope
from chatdash.models import Role
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

    @admin_event(role=Role.OWNER)
    def load(self):
        s = get_settings()
        self.smtp_summary = f"{s.smtp_host}:{s.smtp_port}, from {s.smtp_from}"
        with session_scope() as session:
            current = store_settings.get_email_notifications(session)
        self.email_enabled = current.enabled
        self.recipients_text = ", ".join(current.recipients)
        self.settings_error = ""
        self.settings_saved = False

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
