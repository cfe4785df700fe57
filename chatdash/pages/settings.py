"""Settings page: email on new conversations."""

import reflex as rx

from chatdash import routes
from chatdash.components.frame import admin_page
from chatdash.state.settings_page import SettingsState


@admin_page(route=routes.SETTINGS, title="Settings", on_load=[SettingsState.load])
def settings() -> rx.Component:
    return rx.box(
        rx.vstack(
            rx.heading("Settings", size="6"),
            rx.card(
                rx.vstack(
                    rx.heading("Email notifications", size="4"),
                    rx.text("Send an email when a shopper starts a new conversation.",
                            color_scheme="gray", size="2"),
                    rx.hstack(
                        rx.switch(checked=SettingsState.email_enabled,
                                  on_change=SettingsState.set_email_enabled, id="email-enabled"),
                        rx.text("Email me on each new conversation"),
                        align="center",
                    ),
                    rx.text("Recipients", size="2", weight="medium"),
                    rx.text_area(
                        value=SettingsState.recipients_text,
                        on_change=SettingsState.set_recipients_text,
                        placeholder="support@store.com, owner@store.com",
                        max_length=4000,
                        width="100%",
                        id="email-recipients",
                    ),
                    rx.text("Mail server (from the environment): ", SettingsState.smtp_summary,
                            size="1", color_scheme="gray"),
                    rx.cond(
                        SettingsState.settings_error != "",
                        rx.callout(SettingsState.settings_error, icon="triangle-alert",
                                   color_scheme="red", width="100%", id="settings-error"),
                    ),
                    rx.cond(
                        SettingsState.settings_saved,
                        rx.callout("Saved.", icon="check", color_scheme="green", width="100%",
                                   id="settings-saved"),
                    ),
                    rx.button("Save", on_click=SettingsState.save, id="settings-save"),
                    spacing="3",
                    width="100%",
                ),
                width="100%",
            ),
            rx.card(
                rx.vstack(
                    rx.heading("In this browser", size="4"),
                    rx.hstack(
                        rx.switch(checked=SettingsState.sound_pref != "off",
                                  on_change=SettingsState.set_sound, id="sound-enabled"),
                        rx.text("Play a sound when a new conversation starts"),
                        align="center",
                    ),
                    rx.text("The tab title always shows the number of conversations waiting.",
                            size="1", color_scheme="gray"),
                    spacing="3",
                ),
                width="100%",
            ),
            spacing="4",
            max_width="640px",
            width="100%",
        ),
        padding="2rem",
        overflow_y="auto",
        height="100%",
    )
