"""Settings page: email on new conversations, offline follow-up, the team and the
recommender's model card (owner only); each member's own notifications and the saved
replies (everyone)."""

import reflex as rx

from chatdash import routes
from chatdash.components.frame import admin_page
from chatdash.components.model_card import recommendations_section
from chatdash.state.auth import AuthState
from chatdash.state.recommendations import RecommendationsState
from chatdash.state.saved_replies import SavedRepliesState, SavedReplyRow
from chatdash.state.settings_page import MyNotificationsState, SettingsState
from chatdash.state.team import TeamRow, TeamState


def _member_row(m: TeamRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.hstack(rx.avatar(fallback=m.initials, size="2", radius="full"),
                                rx.vstack(rx.text(m.name, weight="medium", size="2"),
                                          rx.text(m.email, size="1", color_scheme="gray"), spacing="0"),
                                align="center")),
        rx.table.cell(rx.badge(m.role, color_scheme=rx.cond(m.role == "owner", "amber", "blue"))),
        rx.table.cell(rx.cond(m.pending, rx.badge("Invited", color_scheme="gray", variant="outline"),
                              rx.text("Active", size="1", color_scheme="green"))),
        rx.table.cell(rx.cond(
            m.email != AuthState.admin_email,
            rx.hstack(
                rx.button("Reset password", size="1", variant="soft", on_click=TeamState.reset_password(m.id),
                          class_name="team-reset"),
                rx.button("Remove", size="1", variant="soft", color_scheme="red", on_click=TeamState.remove(m.id),
                          class_name="team-remove"),
            ),
            rx.text("You", size="1", color_scheme="gray"),
        )),
        class_name="team-member",
        data_email=m.email,
    )


def team_section() -> rx.Component:
    """Settings → Team: the owner invites agents, resets passwords, removes members."""
    return rx.card(
        rx.vstack(
            rx.heading("Team", size="4"),
            rx.text("Owners change settings and the team; agents answer conversations. An invited agent "
                    "sets their own password through a one-time link (valid 7 days).",
                    color_scheme="gray", size="2"),
            rx.table.root(
                rx.table.header(rx.table.row(
                    rx.table.column_header_cell("Member"), rx.table.column_header_cell("Role"),
                    rx.table.column_header_cell("Status"), rx.table.column_header_cell(""))),
                rx.table.body(rx.foreach(TeamState.members, _member_row)),
                width="100%", size="1", id="team-members",
            ),
            rx.hstack(
                rx.input(placeholder="agent@store.com", value=TeamState.invite_email, type="email",
                         on_change=TeamState.set_invite_email, max_length=320, id="invite-email", flex="2"),
                rx.input(placeholder="Name", value=TeamState.invite_name, on_change=TeamState.set_invite_name,
                         max_length=200, id="invite-name", flex="1"),
                rx.button("Invite agent", on_click=TeamState.invite, id="invite-send"),
                width="100%",
            ),
            rx.cond(TeamState.team_error != "",
                    rx.callout(TeamState.team_error, icon="triangle-alert", color_scheme="red", width="100%",
                               id="team-error")),
            rx.cond(
                TeamState.new_link != "",
                rx.callout(
                    rx.vstack(
                        rx.text("Send this one-time link to ", rx.text.strong(TeamState.new_link_for),
                                ": it lets them set a password.", size="2"),
                        rx.code(TeamState.new_link, id="invite-link", word_break="break-all"),
                        spacing="1",
                    ),
                    icon="link", color_scheme="green", width="100%",
                ),
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id="team-section",
    )


def _saved_reply_row(r: SavedReplyRow) -> rx.Component:
    return rx.hstack(
        rx.code("/", r.shortcut, flex_shrink="0"),
        rx.text(r.body, size="2", color_scheme="gray", flex="1", white_space="pre-wrap"),
        rx.icon_button(rx.icon("trash-2", size=14), size="1", variant="ghost", color_scheme="red",
                       on_click=SavedRepliesState.remove(r.id), aria_label="Delete"),
        width="100%",
        align="start",
        class_name="saved-reply-row",
        data_shortcut=r.shortcut,
    )


def saved_replies_section() -> rx.Component:
    """Settings → Saved replies: the team's library (every agent may edit it)."""
    return rx.card(
        rx.vstack(
            rx.heading("Saved replies", size="4"),
            rx.text("Type / and a few letters of a shortcut in the reply box to use one. {first_name} becomes "
                    "the shopper's first name (\"there\" when we do not know it).",
                    color_scheme="gray", size="2"),
            rx.vstack(rx.foreach(SavedRepliesState.replies, _saved_reply_row), width="100%", spacing="2",
                      id="saved-reply-list"),
            rx.hstack(
                rx.input(placeholder="shortcut", value=SavedRepliesState.new_shortcut,
                         on_change=SavedRepliesState.set_new_shortcut, max_length=40, id="saved-shortcut",
                         width="160px"),
                rx.text_area(placeholder="Hi {first_name}, …", value=SavedRepliesState.new_body,
                             on_change=SavedRepliesState.set_new_body, max_length=4000, rows="2",
                             id="saved-body", flex="1"),
                rx.button("Add", on_click=SavedRepliesState.add, id="saved-add"),
                width="100%",
                align="start",
            ),
            rx.cond(SavedRepliesState.saved_error != "",
                    rx.callout(SavedRepliesState.saved_error, icon="triangle-alert", color_scheme="red",
                               width="100%", id="saved-error")),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id="saved-replies-section",
    )


def auto_assign_section() -> rx.Component:
    """Settings → Auto-assign (owner): new conversations round robin to the team online."""
    return rx.card(
        rx.vstack(
            rx.heading("Auto-assign", size="4"),
            rx.text("Give each new conversation to the next team member online, in turn. A conversation the "
                    "shopper re-opens with nobody on it is given out the same way. Online means their "
                    "conversations page is open.", color_scheme="gray", size="2"),
            rx.hstack(
                rx.switch(checked=SettingsState.auto_assign, on_change=SettingsState.set_auto_assign,
                          id="auto-assign-enabled"),
                rx.text("Assign new conversations round robin"),
                align="center",
            ),
            rx.text("Online now: ", rx.text.span(SettingsState.online_text, id="auto-assign-online"),
                    size="1", color_scheme="gray"),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id="auto-assign-section",
    )


def _email_section() -> rx.Component:
    return rx.card(
                rx.vstack(
                    rx.heading("Email notifications", size="4"),
                    rx.text("The store's switch for every staff email. While it is on, each new "
                            "conversation is emailed to the addresses below and to each member who chose it "
                            "under My notifications; members may also choose emails about their own "
                            "conversations.", color_scheme="gray", size="2"),
                    rx.hstack(
                        rx.switch(checked=SettingsState.email_enabled,
                                  on_change=SettingsState.set_email_enabled, id="email-enabled"),
                        rx.text("Send staff emails"),
                        align="center",
                    ),
                    rx.text("Also email each new conversation to", size="2", weight="medium"),
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
                id="email-section",
            )


def _followup_section() -> rx.Component:
    """The owner's offline follow-up: when the widget asks a waiting shopper for an email."""
    return rx.card(
        rx.vstack(
            rx.heading("Offline follow-up", size="4"),
            rx.text("When nobody has answered a shopper for this long, the chat asks for their email address. "
                    "Replies sent after they leave the site then also go there by email (from the store's "
                    "name, at most one email per conversation every few minutes), with a link back to the "
                    "chat and an unsubscribe link.", color_scheme="gray", size="2"),
            rx.hstack(
                rx.text("Ask after", size="2"),
                rx.input(value=SettingsState.ask_minutes_text, on_change=SettingsState.set_ask_minutes,
                         max_length=12, width="90px", id="followup-minutes"),
                rx.text("minutes without an answer (0: never ask)", size="2", color_scheme="gray"),
                align="center",
            ),
            rx.cond(SettingsState.followup_error != "",
                    rx.callout(SettingsState.followup_error, icon="triangle-alert", color_scheme="red",
                               width="100%", id="followup-error")),
            rx.cond(SettingsState.followup_saved,
                    rx.callout("Saved.", icon="check", color_scheme="green", width="100%", id="followup-saved")),
            rx.button("Save", on_click=SettingsState.save_followup, id="followup-save"),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id="followup-section",
    )


def _choice(checked, on_change, element_id: str, label: str) -> rx.Component:
    return rx.hstack(rx.switch(checked=checked, on_change=on_change, id=element_id), rx.text(label, size="2"),
                     align="center")


def my_notifications_section() -> rx.Component:
    """Settings → My notifications: the logged-in member's own choices (every role)."""
    s = MyNotificationsState
    return rx.card(
        rx.vstack(
            rx.heading("My notifications", size="4"),
            _choice(s.my_sound, s.set_sound, "sound-enabled", "Play a sound when a shopper sends a message"),
            _choice(s.my_new_conversation, s.set_new_conversation, "notify-new-conversation",
                    "Email me when a new conversation starts"),
            _choice(s.my_assigned_message, s.set_assigned_message, "notify-assigned-message",
                    "Email me when a conversation assigned to me gets a message (unless I have it open)"),
            rx.cond(~s.store_emails_on,
                    rx.text("Staff emails are switched off for the store: the owner turns them on under "
                            "Email notifications. Your choices are kept.", size="1", color_scheme="amber",
                            id="store-emails-off")),
            rx.cond(s.my_error != "", rx.text(s.my_error, size="1", color_scheme="red")),
            rx.text("The tab title always shows the number of conversations waiting.", size="1",
                    color_scheme="gray"),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id="my-notifications",
    )


def _section_link(label: str, section_id: str) -> rx.Component:
    return rx.link(label, href=f"#{section_id}", size="2", color_scheme="gray", underline="hover")


def _index() -> rx.Component:
    """The page's sections, beside them on wide screens: the page is long for an owner."""
    return rx.vstack(
        rx.text("On this page", size="1", weight="bold", color_scheme="gray", text_transform="uppercase"),
        _section_link("My notifications", "my-notifications"),
        rx.cond(
            AuthState.is_owner,
            rx.fragment(
                _section_link("Email notifications", "email-section"),
                _section_link("Offline follow-up", "followup-section"),
                _section_link("Team", "team-section"),
                _section_link("Auto-assign", "auto-assign-section"),
                _section_link("Recommendations", "recommendations-section"),
            ),
        ),
        _section_link("Saved replies", "saved-replies-section"),
        spacing="2",
        position="sticky",
        top="0",
        min_width="180px",
        padding_top="3.2rem",
        display=["none", "none", "flex"],
        id="settings-index",
    )


@admin_page(route=routes.SETTINGS, title="Settings",
            on_load=[SettingsState.load, TeamState.load, SavedRepliesState.load, MyNotificationsState.load,
                     RecommendationsState.load])
def settings() -> rx.Component:
    return rx.box(
        rx.hstack(
            _index(),
            rx.vstack(
                rx.heading("Settings", size="6"),
                my_notifications_section(),
                rx.cond(AuthState.is_owner, rx.fragment(_email_section(), _followup_section(), team_section(),
                                                        auto_assign_section(), recommendations_section())),
                saved_replies_section(),
                spacing="4",
                max_width="680px",
                width="100%",
            ),
            spacing="7",
            align="start",
            justify="center",
            width="100%",
        ),
        padding="2rem",
        overflow_y="auto",
        height="100%",
    )
