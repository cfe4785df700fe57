"""The conversations page: list (left), chat (middle), shopper (right)."""

import reflex as rx

from chatdash import routes
from chatdash.components.chat import length_counter, message_bubble, typing_indicator
from chatdash.components.frame import admin_page
from chatdash.components.products import product_search_dialog, recommendations_section, related_dialog
from chatdash.components.shopper_panel import presence_badge, shopper_panel
from chatdash.state.chat import ChatState
from chatdash.state.inbox import InboxState
from chatdash.state.shopper_panel import ShopperPanelState
from chatdash.state.views import ConversationRow

BORDER = f"1px solid {rx.color('gray', 5)}"


def _row(row: ConversationRow) -> rx.Component:
    # The selected row is solid blue (the theme's accent) with white text, so
    # which conversation is open reads at a glance.
    selected = InboxState.selected_id == row.id
    muted = rx.cond(selected, "rgba(255, 255, 255, 0.85)", rx.color("gray", 11))
    return rx.box(
        rx.hstack(
            rx.text(row.label, weight="bold", size="2", class_name="conv-label",
                    color=rx.cond(selected, "white", rx.color("gray", 12)), overflow="hidden",
                    text_overflow="ellipsis", white_space="nowrap", min_width="0"),
            rx.spacer(),
            rx.text(row.time, size="1", color=muted, flex_shrink="0", class_name="conv-time"),
            align="center",
            width="100%",
        ),
        rx.hstack(
            rx.text(row.preview, size="1", color=muted, overflow="hidden",
                    text_overflow="ellipsis", white_space="nowrap", flex="1", class_name="conv-preview"),
            rx.cond(row.unread > 0, rx.badge(row.unread, color_scheme="red", variant="solid",
                                             radius="full", class_name="conv-unread")),
            width="100%",
            align="center",
        ),
        rx.hstack(
            rx.cond(selected, presence_badge(row.on_site, variant="surface"), presence_badge(row.on_site)),
            rx.spacer(),
            _row_filing(row, selected),
            width="100%",
            align="center",
        ),
        on_click=InboxState.select(row.id),
        cursor="pointer",
        padding="10px 14px",
        border_bottom=BORDER,
        background=rx.cond(selected, rx.color("accent", 9), "transparent"),
        border_left=rx.cond(selected, f"4px solid {rx.color('accent', 11)}", "4px solid transparent"),
        _hover={"background": rx.cond(selected, rx.color("accent", 10), rx.color("accent", 3))},
        class_name=rx.cond(selected, "conv-row conv-selected", "conv-row"),
        aria_current=rx.cond(selected, "true", "false"),
        data_conversation_id=row.id,
        width="100%",
    )


def _row_filing(row: ConversationRow, selected) -> rx.Component:
    """The assignee's initials and a resolved or snoozed mark, on the row's last line."""
    return rx.hstack(
        rx.cond(row.status == "resolved",
                rx.badge("Resolved", color_scheme="green", variant="soft", size="1", class_name="conv-resolved")),
        rx.cond(row.status == "snoozed",
                rx.badge(rx.icon("alarm-clock", size=12), row.wakes, color_scheme="violet",
                         variant=rx.cond(selected, "surface", "soft"), size="1", class_name="conv-snoozed")),
        rx.cond(row.assignee_initials != "",
                rx.tooltip(rx.avatar(fallback=row.assignee_initials, size="1", radius="full",
                                     class_name="conv-assignee"),
                           content="Assigned"),
                rx.text("Unassigned", size="1", color_scheme="gray", class_name="conv-unassigned")),
        spacing="2",
        align="center",
    )


def _filter_tab(name: str, label: str, count) -> rx.Component:
    chosen = (InboxState.filter == name) & (InboxState.query.strip() == "")
    return rx.button(
        label,
        rx.text(count, size="1", weight="bold", class_name="filter-count"),
        size="1",
        variant=rx.cond(chosen, "solid", "soft"),
        color_scheme=rx.cond(chosen, "accent", "gray"),
        on_click=InboxState.set_filter(name),
        id=f"filter-{name}",
        data_selected=chosen,
    )


def _search_box() -> rx.Component:
    return rx.vstack(
        rx.input(
            rx.input.slot(rx.icon("search", size=14)),
            placeholder="Search name, email, customer id, message (/)",
            value=InboxState.query,
            on_change=InboxState.search.debounce(300),
            max_length=200,
            size="2",
            width="100%",
            id="inbox-search",
            type="search",
        ),
        rx.cond(InboxState.search_error != "",
                rx.text(InboxState.search_error, size="1", color_scheme="red", id="search-error")),
        rx.cond((InboxState.query.strip() != "") & (InboxState.search_error == ""),
                rx.text(InboxState.rows.length(), " found (open and resolved)", size="1", color_scheme="gray",
                        id="search-count")),
        spacing="1",
        padding="8px 10px 0",
        width="100%",
    )


def _filters() -> rx.Component:
    return rx.hstack(
        _filter_tab("mine", "Mine", InboxState.mine_total),
        _filter_tab("unassigned", "Unassigned", InboxState.unassigned_total),
        _filter_tab("open", "All open", InboxState.open_total),
        _filter_tab("snoozed", "Snoozed", InboxState.snoozed_total),
        _filter_tab("resolved", "Resolved", InboxState.resolved_total),
        spacing="1",
        padding="8px 10px",
        border_bottom=BORDER,
        width="100%",
        flex_wrap="wrap",
        id="inbox-filters",
    )


def _empty_text():
    """What an empty list says: each filter its own (a quiet filter is not an empty inbox)."""
    return rx.match(
        InboxState.filter,
        ("mine", "Nothing assigned to you."),
        ("unassigned", "Every open conversation has an agent."),
        ("snoozed", "Nothing snoozed."),
        ("resolved", "Nothing resolved yet."),
        "No conversations yet.",
    )


def _list_panel() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.text("Conversations", weight="bold", size="3"),
            rx.badge(InboxState.open_total, variant="soft", id="conversation-total"),
            padding="12px 14px",
            border_bottom=BORDER,
            width="100%",
        ),
        _search_box(),
        _filters(),
        rx.cond(
            InboxState.rows.length() == 0,
            rx.center(
                rx.vstack(
                    rx.icon("inbox", size=32, color=rx.color("gray", 8)),
                    rx.text(_empty_text(), color_scheme="gray", size="2", id="conversation-list-empty"),
                    rx.text("They appear here the moment a shopper writes.", color_scheme="gray", size="1"),
                    align="center",
                ),
                padding="2rem",
                width="100%",
            ),
            rx.box(
                rx.foreach(InboxState.rows, _row),
                rx.cond(
                    InboxState.rows.length() < InboxState.shown_total,
                    rx.center(
                        rx.button("Show more", variant="soft", size="1", on_click=InboxState.show_more,
                                  id="conversation-list-more"),
                        padding="10px",
                    ),
                ),
                width="100%", overflow_y="auto", flex="1",
            ),
        ),
        # Narrower below 1280 px, so the chat keeps room for its reply box at 1024.
        width=rx.breakpoints(initial="250px", lg="320px"),
        min_width="220px",
        flex_shrink="0",
        height="100%",
        spacing="0",
        border_right=BORDER,
        id="conversation-list",
    )


def _attribution_bar() -> rx.Component:
    """What the products sent in this chat earned (kept live by ChatState)."""
    return rx.cond(
        ChatState.attribution_text != "",
        rx.hstack(
            rx.icon("shopping-bag", size=14, color=rx.color("green", 10)),
            rx.text(ChatState.attribution_text, size="1", id="attribution-line"),
            rx.spacer(),
            rx.link("Insights", href=routes.INSIGHTS, size="1", color_scheme="gray"),
            align="center",
            spacing="2",
            padding="5px 16px",
            width="100%",
            background=rx.color("green", 2),
            border_bottom=BORDER,
        ),
    )


def _chat_panel() -> rx.Component:
    return rx.vstack(
        rx.cond(
            ChatState.has_selection,
            rx.fragment(
                rx.hstack(
                    rx.text(ShopperPanelState.shopper_label, weight="bold", size="3", id="chat-title"),
                    presence_badge(ShopperPanelState.shopper_on_site),
                    rx.spacer(),
                    _workspace_controls(),
                    padding="12px 16px",
                    border_bottom=BORDER,
                    width="100%",
                    align="center",
                ),
                _collision_bar(),
                _attribution_bar(),
                rx.box(
                    rx.vstack(
                        rx.foreach(ChatState.messages, _chat_item),
                        spacing="2",
                        width="100%",
                        id="message-list",
                    ),
                    typing_indicator(ChatState.shopper_typing_seq, "Shopper is typing…"),
                    _agent_typing(),
                    id="message-scroller",
                    flex="1",
                    overflow_y="auto",
                    padding="16px",
                    width="100%",
                ),
                _compose_mode(),
                rx.cond(ChatState.note_mode, _note_form()),
                rx.hstack(
                    rx.form(
                        rx.vstack(
                            rx.cond(
                                ChatState.reply_error != "",
                                rx.callout(ChatState.reply_error, icon="triangle-alert", color_scheme="red", size="1",
                                           width="100%", id="reply-error"),
                            ),
                            rx.hstack(
                                rx.text_area(
                                    name="reply",
                                    id="reply-input",
                                    placeholder="Write a reply… (Enter sends, Shift+Enter for a new line)",
                                    max_length=ChatState.max_chars,
                                    rows="2",
                                    resize="none",
                                    width="100%",
                                    custom_attrs={"data-send-button": "reply-send", "data-counter": "reply-counter"},
                                    on_change=ChatState.typing.throttle(2500),
                                ),
                                rx.button("Reply", type="submit", id="reply-send", height="auto"),
                                # Made by chat.js on submit, cleared once stored: one message per reply.
                                rx.el.input(type="hidden", name="client_id", id="reply-client-id"),
                                width="100%",
                                align="stretch",
                            ),
                            length_counter("reply-counter"),
                            width="100%",
                            spacing="1",
                        ),
                        on_submit=ChatState.send_reply,
                        reset_on_submit=False,
                        flex="1",
                    ),
                    product_search_dialog(),
                    _saved_replies_menu(),
                    width="100%",
                    align="end",
                    padding="10px 16px",
                    border_top=BORDER,
                    display=rx.cond(ChatState.note_mode, "none", "flex"),
                    position="relative",
                ),
            ),
            rx.center(
                rx.vstack(
                    rx.icon("message-square", size=36, color=rx.color("gray", 8)),
                    rx.text("Select a conversation to read and reply.", color_scheme="gray"),
                    align="center",
                ),
                height="100%",
                width="100%",
            ),
        ),
        flex="1",
        height="100%",
        spacing="0",
        min_width="0",
        id="chat-panel",
    )


# ----- the agent workspace: filing, notes, collision --------------------------

# Keys (not while typing): up/down move through the list, Enter opens, `e`
# resolves the open conversation, `/` goes to the search box. Every 20 s the page
# tells the server this agent still has it open ("Dana is viewing").
WORKSPACE_SCRIPT = r"""
(function () {
  if (window.__chatdashWorkspace) return; window.__chatdashWorkspace = true;
  document.addEventListener("keydown", function (ev) {
    const t = ev.target; const tag = t && t.tagName;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (t && t.isContentEditable)) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp" || ev.key === "Enter") {
      const rows = Array.from(document.querySelectorAll("#conversation-list .conv-row"));
      if (!rows.length) return;
      let at = rows.findIndex(function (r) { return r.dataset.keyboard === "true"; });
      if (at < 0) at = rows.findIndex(function (r) { return r.classList.contains("conv-selected"); });
      if (ev.key === "Enter") { if (at >= 0) { ev.preventDefault(); rows[at].click(); } return; }
      ev.preventDefault();
      const next = at < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, at + (ev.key === "ArrowDown" ? 1 : -1)));
      rows.forEach(function (r, i) {
        r.dataset.keyboard = i === next ? "true" : "false";
        r.style.outline = i === next ? "2px solid var(--accent-8)" : "";
        r.style.outlineOffset = i === next ? "-2px" : "";
      });
      rows[next].scrollIntoView({ block: "nearest" });
      return;
    }
    const target = { e: "resolve-button", "/": "inbox-search" }[ev.key];
    const el = target && document.getElementById(target);
    if (!el) return;
    ev.preventDefault();
    if (ev.key === "/") el.focus(); else el.click();
  });
  setInterval(function () {
    const beat = document.getElementById("viewing-heartbeat");
    if (beat && document.visibilityState === "visible") beat.click();
  }, 20000);
  // Online for auto-assign while this page is open, seen or not (a tab in the
  // background still hears new conversations).
  (function online() {
    const beat = document.getElementById("online-heartbeat");
    if (beat) beat.click();
    setTimeout(online, Number(beat && beat.dataset.every) || 30000);
  })();

  // Saved replies: "/" and a few letters as the whole reply offers the
  // matching ones (filled in by the server for this shopper); Enter or Tab or a
  // click puts the chosen one in the reply box, arrows move, Escape closes.
  let active = 0;
  const box = () => document.getElementById("saved-replies");
  const input = () => document.getElementById("reply-input");
  function shown() {
    const el = input(), list = box();
    if (!el || !list) return [];
    const m = /^\/([\w-]*)$/.exec(el.value);
    const found = [];
    list.querySelectorAll(".saved-reply").forEach(function (it) {
      const ok = !!m && it.dataset.shortcut.startsWith(m[1].toLowerCase());
      it.style.display = ok ? "" : "none";
      if (ok) found.push(it);
    });
    active = Math.min(active, Math.max(0, found.length - 1));
    found.forEach(function (it, i) { it.dataset.active = i === active ? "true" : "false"; });
    list.style.display = found.length ? "block" : "none";
    return found;
  }
  function choose(it) {
    const el = input();
    const body = it.querySelector(".saved-reply-body").textContent;
    Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value").set.call(el, body);
    el.dispatchEvent(new Event("input", { bubbles: true }));
    box().style.display = "none";
    el.focus();
  }
  document.addEventListener("input", function (ev) {
    if (ev.target && ev.target.id === "reply-input") { active = 0; shown(); }
  });
  // Capture, on window: before the page's Enter-sends listener.
  window.addEventListener("keydown", function (ev) {
    if (!ev.target || ev.target.id !== "reply-input" || !box() || box().style.display !== "block") return;
    const found = shown();
    if (!found.length) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      active = (active + (ev.key === "ArrowDown" ? 1 : found.length - 1)) % found.length;
      shown(); ev.preventDefault();
    } else if ((ev.key === "Enter" && !ev.shiftKey) || ev.key === "Tab") {
      ev.preventDefault(); ev.stopImmediatePropagation(); choose(found[active]);
    } else if (ev.key === "Escape") {
      box().style.display = "none";
    }
  }, true);
  document.addEventListener("mousedown", function (ev) {
    const it = ev.target.closest && ev.target.closest("#saved-replies .saved-reply");
    if (it) { ev.preventDefault(); choose(it); }
  });
})();
"""


def _snooze_menu() -> rx.Component:
    """Snooze until a time: presets, or a date and time on the store's clock."""
    return rx.popover.root(
        rx.popover.trigger(rx.button(rx.icon("alarm-clock", size=14), "Snooze", size="1", variant="soft",
                                     color_scheme="violet", id="snooze-button")),
        rx.popover.content(
            rx.vstack(
                rx.text("Bring it back…", size="1", weight="bold"),
                rx.popover.close(rx.button("In 1 hour", size="1", variant="soft",
                                           on_click=ChatState.snooze("1h"), id="snooze-1h",
                                           style={"width": "100%", "justify-content": "flex-start"})),
                rx.popover.close(rx.button("Tomorrow 9:00", size="1", variant="soft",
                                           on_click=ChatState.snooze("tomorrow"), id="snooze-tomorrow",
                                           style={"width": "100%", "justify-content": "flex-start"})),
                rx.form(
                    rx.vstack(
                        rx.text("At (store time, ", InboxState.store_timezone, ")", size="1", color_scheme="gray"),
                        rx.el.input(type="datetime-local", name="until", step="1", id="snooze-at", required=True,
                                    style={"width": "100%", "font": "inherit", "font-size": "13px",
                                           "padding": "4px 6px", "border": f"1px solid {rx.color('gray', 7)}",
                                           "border-radius": "var(--radius-2)",
                                           "background": rx.color("gray", 1), "color": rx.color("gray", 12)}),
                        rx.button("Snooze", type="submit", size="1", width="100%", id="snooze-at-send"),
                        spacing="1",
                        width="100%",
                    ),
                    on_submit=ChatState.snooze_at,
                    reset_on_submit=False,
                    width="100%",
                ),
                spacing="2",
                width="210px",
            ),
            size="1",
            id="snooze-menu",
        ),
    )


def _filing_buttons() -> rx.Component:
    """Resolve and snooze an open conversation; re-open a resolved one; wake a snoozed one."""
    return rx.match(
        ChatState.status,
        ("resolved", rx.button(rx.icon("rotate-ccw", size=14), "Re-open", size="1", variant="soft",
                               on_click=ChatState.reopen, id="reopen-button")),
        ("snoozed", rx.hstack(
            rx.badge(rx.icon("alarm-clock", size=12), "Snoozed until ", ChatState.wakes_text,
                     color_scheme="violet", variant="soft", id="snoozed-until"),
            rx.button(rx.icon("alarm-clock-off", size=14), "Unsnooze", size="1", variant="soft",
                      on_click=ChatState.unsnooze, id="unsnooze-button"),
            spacing="2", align="center")),
        rx.hstack(
            _snooze_menu(),
            rx.tooltip(
                rx.button(rx.icon("check", size=14), "Resolve", size="1", color_scheme="green",
                          on_click=ChatState.resolve, id="resolve-button"),
                content="Resolve (e)",
            ),
            spacing="2", align="center",
        ),
    )


def _workspace_controls() -> rx.Component:
    return rx.hstack(
        rx.select.root(
            rx.select.trigger(placeholder="Assign", id="assign-select", variant="soft"),
            rx.select.content(
                rx.select.item("Unassigned", value="0"),
                rx.foreach(ChatState.team_options, lambda o: rx.select.item(o.name, value=o.id)),
            ),
            value=ChatState.assignee,
            on_change=ChatState.assign,
            size="1",
        ),
        _filing_buttons(),
        rx.el.button(on_click=ChatState.still_viewing, id="viewing-heartbeat", style={"display": "none"},
                     aria_hidden="true", tab_index=-1),
        spacing="2",
        align="center",
    )


def _collision_bar() -> rx.Component:
    return rx.cond(
        (ChatState.viewers_text != "") | (ChatState.workspace_error != ""),
        rx.hstack(
            rx.cond(ChatState.viewers_text != "",
                    rx.hstack(rx.icon("eye", size=14), rx.text(ChatState.viewers_text, size="1", id="viewers-text"),
                              align="center", spacing="1")),
            rx.cond(ChatState.workspace_error != "",
                    rx.text(ChatState.workspace_error, size="1", color_scheme="red", id="workspace-error")),
            padding="4px 16px",
            width="100%",
            background=rx.color("amber", 2),
            border_bottom=BORDER,
            color=rx.color("amber", 11),
        ),
    )


def _saved_replies_menu() -> rx.Component:
    """The saved replies the reply box offers; shown and filtered in the page by WORKSPACE_SCRIPT."""
    return rx.box(
        rx.foreach(
            ChatState.saved_replies,
            lambda r: rx.box(
                rx.text("/", r.shortcut, size="1", weight="bold", color=rx.color("accent", 11)),
                rx.text(r.body, size="2", class_name="saved-reply-body", white_space="pre-wrap",
                        overflow="hidden", max_height="3.2em"),
                class_name="saved-reply",
                data_shortcut=r.shortcut,
                padding="6px 10px",
                cursor="pointer",
                _hover={"background": rx.color("accent", 3)},
                style={"&[data-active='true']": {"background": rx.color("accent", 4)}},
            ),
        ),
        id="saved-replies",
        display="none",
        position="absolute",
        bottom="100%",
        left="16px",
        right="16px",
        max_height="240px",
        overflow_y="auto",
        background=rx.color("gray", 1),
        border=BORDER,
        border_radius="8px",
        box_shadow="0 4px 16px rgba(0,0,0,0.12)",
        z_index="10",
    )


def _note_bubble(m) -> rx.Component:
    """A private note: yellow, across the panel, with its author; never in the widget."""
    return rx.box(
        rx.hstack(rx.icon("lock", size=12), rx.text("Private note · ", m.author, size="1", weight="medium"),
                  rx.spacer(), rx.text(m.time, size="1", opacity="0.7"), align="center", spacing="1"),
        rx.text(m.body, white_space="pre-wrap", word_break="break-word", size="2"),
        background=rx.color("amber", 3),
        border=f"1px dashed {rx.color('amber', 8)}",
        color=rx.color("amber", 12),
        padding="8px 12px",
        border_radius="10px",
        width="100%",
        class_name="msg msg-note",
        data_sender="note",
    )


def _chat_item(m) -> rx.Component:
    return rx.cond(
        m.sender == "note",
        _note_bubble(m),
        message_bubble(m, "admin", ChatState.shopper_seen_id, in_widget=False),
    )


def _agent_typing() -> rx.Component:
    return rx.cond(
        ChatState.agent_typing_seq > 0,
        rx.text(ChatState.agent_typing_text, key=ChatState.agent_typing_seq, class_name="typing-indicator",
                size="1", color_scheme="amber", padding_x="4px", id="agent-typing"),
    )


def _compose_mode() -> rx.Component:
    return rx.hstack(
        rx.segmented_control.root(
            rx.segmented_control.item("Reply", value="reply"),
            rx.segmented_control.item("Private note", value="note"),
            value=rx.cond(ChatState.note_mode, "note", "reply"),
            on_change=lambda v: ChatState.set_note_mode(v == "note"),
            size="1",
            id="compose-mode",
        ),
        padding="8px 16px 0",
        border_top=BORDER,
        width="100%",
    )


def _note_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.cond(ChatState.note_error != "",
                    rx.callout(ChatState.note_error, icon="triangle-alert", color_scheme="red", size="1",
                               width="100%", id="note-error")),
            rx.hstack(
                rx.text_area(name="note", id="note-input", rows="2", resize="none", width="100%",
                             max_length=ChatState.max_chars,
                             placeholder="A note for the team: the shopper never sees it",
                             background=rx.color("amber", 2),
                             custom_attrs={"data-send-button": "note-send"}),
                rx.button("Add note", type="submit", id="note-send", color_scheme="amber", height="auto"),
                width="100%",
                align="stretch",
            ),
            width="100%",
            spacing="1",
        ),
        on_submit=ChatState.send_note,
        reset_on_submit=False,
        padding="10px 16px",
        width="100%",
    )


@admin_page(route=routes.CONVERSATIONS, title="Conversations", on_load=[InboxState.load])
def conversations() -> rx.Component:
    return rx.hstack(
        rx.script(WORKSPACE_SCRIPT),
        rx.el.button(on_click=InboxState.still_here, id="online-heartbeat", style={"display": "none"},
                     aria_hidden="true", tab_index=-1, custom_attrs={"data-every": InboxState.online_every_ms}),
        _list_panel(),
        _chat_panel(),
        shopper_panel(recommendations_section()),
        related_dialog(),
        spacing="0",
        height="100%",
        width="100%",
    )
