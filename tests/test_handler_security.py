"""Admin event handlers check the session themselves: a raw websocket client
that never logged in gets nothing from them and changes nothing."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from chatdash.models import Message, TrainingRun
from chatdash.services import auth, store_settings
from chatdash.state.auth import AuthState
from chatdash.state.notifications import NotificationState
from chatdash.state.recommendations import RecommendationsState
from chatdash.state.settings_page import SettingsState
from tests.live_app import ADMIN_EMAIL
from tests.reflex_client import RawReflexClient


def _session_cookie(token: str) -> dict[str, str]:
    """The admin's HttpOnly session cookie, as the browser sends it with the socket's handshake."""
    return {"chatdash_admin": token}


def _try_to_enable_emails(client: RawReflexClient) -> None:
    client.call(SettingsState, "set_email_enabled", {"value": True}, path="/admin/settings")
    client.call(SettingsState, "set_recipients_text", {"value": "attacker@evil.test"},
                path="/admin/settings")
    client.call(SettingsState, "save", path="/admin/settings")
    client.call(SettingsState, "set_auto_assign", {"value": True}, path="/admin/settings")


def _training_runs(engine) -> int:
    with Session(engine) as s:
        return len(s.exec(select(TrainingRun)).all())


def _newest_model_version(engine) -> str:
    from chatdash.models import ModelArtifact

    with Session(engine) as s:
        return s.exec(select(ModelArtifact.version).order_by(ModelArtifact.created_at.desc())).first()


def _try_to_retrain(client: RawReflexClient) -> None:
    client.call(RecommendationsState, "load", path="/admin/settings")
    client.call(RecommendationsState, "retrain", path="/admin/settings")


def _email_settings(engine):
    """The store's settings these tests try to change: emails and auto-assign."""
    with Session(engine) as s:
        return store_settings.get_email_notifications(s), store_settings.get_auto_assign(s)


def _followup_settings(engine):
    with Session(engine) as s:
        return store_settings.get_offline_followup(s)


def test_admin_handlers_refuse_a_client_without_a_session(live_app, live_db):
    _shopper_conversation(live_db, "an unseen message")  # so the real count is not 0
    before, runs_before = _email_settings(live_db), _training_runs(live_db)
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/admin/settings")
        _try_to_retrain(client)
        _try_to_enable_emails(client)
        assert _email_settings(live_db) == before
        assert _training_runs(live_db) == runs_before  # no training started
        assert "attacker@evil.test" not in str(client.deltas)
        client.call(NotificationState, "refresh", path="/admin/conversations")
        assert client.seen_values(NotificationState).get("unseen_count", 0) == 0
    finally:
        client.close()


def test_forged_session_cookie_is_refused(live_app, live_db):
    before = _email_settings(live_db)
    client = RawReflexClient(live_app.backend, cookies=_session_cookie("forged-token-value"))
    try:
        client.hydrate(path="/admin/settings")
        _try_to_enable_emails(client)
        assert _email_settings(live_db) == before
    finally:
        client.close()


def test_the_same_calls_work_with_a_real_admin_session(live_app, live_db):
    """Proves the refusals above come from the session check, not a broken call."""
    with Session(live_db) as s:
        admin = auth.authenticate(s, ADMIN_EMAIL, "chatdash-test-pw")
        token = auth.start_session(s, admin.id, hours=1)
        s.commit()
    client = RawReflexClient(live_app.backend, cookies=_session_cookie(token))
    try:
        client.hydrate(path="/admin/settings")
        _try_to_enable_emails(client)
        saved, auto = _email_settings(live_db)
        assert saved.enabled and saved.recipients == ["attacker@evil.test"] and auto
        _shopper_conversation(live_db, "another unseen message")
        client.call(NotificationState, "refresh", path="/admin/conversations")
        assert client.seen_values(NotificationState)["unseen_count"] >= 1
    finally:
        client.close()
        with Session(live_db) as s:
            store_settings.save_email_notifications(s, store_settings.EmailNotifications())
            store_settings.save_auto_assign(s, False)
            auth.end_session(s, token)
            s.commit()


# ----- the chat: shoppers reach only their own conversation ---------------------

def _shopper_conversation(live_db, text: str):
    """A shopper with an open conversation holding one message, made directly."""
    from chatdash.models import Sender
    from chatdash.services import conversations as convs
    from chatdash.services import identity

    token = identity.issue_visitor_token("test-secret-key")
    visitor_id = identity.verify_visitor_token("test-secret-key", token)
    with Session(live_db) as s:
        shopper = convs.get_or_create_shopper(s, visitor_id)
        conv, _ = convs.start_conversation(s, shopper.id)
        convs.post_message(s, conv, Sender.SHOPPER, uuid.uuid4().hex, text)
        s.commit()
        return token, conv.id


def _admin_states() -> list[type]:
    """Every state class under AuthState: the admin's screens."""
    import chatdash.chatdash  # noqa: F401  (registers every page and state)

    found, stack = [], [AuthState]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.get_substates())
    return found


# Handlers anyone may call: they establish or end the session themselves.
PUBLIC_AUTH_HANDLERS = {"logout", "check_login", "redirect_if_logged_in"}


def _admin_handlers() -> list[tuple[type, str]]:
    # Reflex's built-in `setvar(name, value)` only calls the state's own
    # `set_<name>` handler, which is enumerated (and guarded) itself.
    return sorted(
        ((cls, name) for cls in _admin_states() for name in cls.event_handlers if name != "setvar"),
        key=lambda pair: (pair[0].get_full_name(), pair[1]),
    )


def test_every_admin_handler_checks_the_admin_session():
    """The one guard (`admin_event`) is on every handler of every admin state;
    only the session's own handlers are open."""
    open_handlers = []
    for cls, name in _admin_handlers():
        if cls is AuthState and name in PUBLIC_AUTH_HANDLERS:
            continue
        fn = cls.event_handlers[name].fn
        if not getattr(fn, "__admin_only__", False):
            open_handlers.append(f"{cls.__name__}.{name}")
    assert open_handlers == []
    names = {f"{cls.__name__}.{name}" for cls, name in _admin_handlers()}
    # The enumeration really sees the conversations page's handlers.
    assert {"InboxState.select", "ChatState.send_reply", "ProductSearchState.search",
            "ShopperPanelState.send_product"} <= names


def _payload_for(cls: type, name: str, conv_id: int) -> dict:
    import inspect

    params = list(inspect.signature(cls.event_handlers[name].fn).parameters)[1:]
    # Arguments a guarded handler would accept: only the session check stops them.
    form = {"reply": "injected reply", "note": "injected reply", "message": "injected reply",
            "until": "2099-01-01T09:00"}
    given = {"form_data": form, "choice": "1h", "value": True}
    return {p: given.get(p, conv_id) for p in params}


# Handlers only an owner may run: the store's settings and its team. Every
# other admin handler is an agent's (conversations). A new handler must take
# a side here, or the enumeration below fails.
OWNER_HANDLERS = {
    "SettingsState.load", "SettingsState.save", "SettingsState.set_email_enabled",
    "SettingsState.set_recipients_text", "SettingsState.set_ask_minutes", "SettingsState.save_followup",
    "SettingsState.set_auto_assign",
    "TeamState.load", "TeamState.invite", "TeamState.remove", "TeamState.reset_password",
    "TeamState.set_invite_email", "TeamState.set_invite_name",
    "RecommendationsState.load", "RecommendationsState.retrain",
}


def test_every_admin_handler_checks_the_role():
    """Each guarded handler names its role; exactly the owner's list needs an owner."""
    from chatdash.models import Role

    roles = {}
    for cls, name in _admin_handlers():
        if cls is AuthState and name in PUBLIC_AUTH_HANDLERS:
            continue
        roles[f"{cls.__name__}.{name}"] = getattr(cls.event_handlers[name].fn, "__role__", None)
    assert set(roles.values()) <= {Role.OWNER, Role.AGENT}, [k for k, v in roles.items() if v is None]
    assert {k for k, v in roles.items() if v == Role.OWNER} == OWNER_HANDLERS
    # The enumeration really sees the workspace's handlers, as an agent's.
    for name in ("ChatState.resolve", "ChatState.assign", "ChatState.send_note", "ChatState.still_viewing",
                 "ChatState.snooze", "ChatState.snooze_at", "ChatState.unsnooze", "InboxState.still_here",
                 "InboxState.set_filter", "InboxState.search", "SavedRepliesState.add",
                 "SavedRepliesState.remove", "VisitorsState.open_composer", "VisitorsState.start_chat",
                 "VisitorsState.set_composer_open", "InsightsState.load", "InsightsState.set_period",
                 "InsightsState.read", "MyNotificationsState.load", "MyNotificationsState.set_sound",
                 "MyNotificationsState.set_new_conversation", "MyNotificationsState.set_assigned_message"):
        assert roles[name] == Role.AGENT


def _agent_session(live_db) -> tuple[int, str]:
    from chatdash.models import Role

    with Session(live_db) as s:
        agent = auth.create_admin(s, f"agent-{uuid.uuid4().hex[:6]}@store.test", "agent-password-1", "Agent",
                                  role=Role.AGENT)
        token = auth.start_session(s, agent.id, hours=1)
        s.commit()
    return agent.id, token


def test_an_agent_cannot_run_the_owners_handlers(live_app, live_db):
    """An agent's real session calls every owner handler with real arguments:
    the settings, the team and every member's password stay as they were."""
    from chatdash.models import AdminUser
    from chatdash.state.team import TeamState

    agent_id, token = _agent_session(live_db)
    with Session(live_db) as s:
        owner = s.exec(select(AdminUser).where(AdminUser.email == ADMIN_EMAIL)).one()
        owner_id, owner_hash = owner.id, owner.password_hash
        team_before = len(s.exec(select(AdminUser)).all())
    before, runs_before = _email_settings(live_db), _training_runs(live_db)
    followup_before = _followup_settings(live_db)
    client = RawReflexClient(live_app.backend, cookies=_session_cookie(token))
    try:
        client.hydrate(path="/admin/settings")
        _try_to_retrain(client)
        _try_to_enable_emails(client)
        client.call(TeamState, "set_invite_email", {"value": "mole@evil.test"}, path="/admin/settings")
        client.call(TeamState, "invite", path="/admin/settings")
        client.call(TeamState, "reset_password", {"admin_id": owner_id}, path="/admin/settings")
        client.call(TeamState, "remove", {"admin_id": owner_id}, path="/admin/settings")
        client.call(TeamState, "load", path="/admin/settings")
        client.call(SettingsState, "set_ask_minutes", {"value": "0"}, path="/admin/settings")
        client.call(SettingsState, "save_followup", path="/admin/settings")
        assert _email_settings(live_db) == before
        assert _training_runs(live_db) == runs_before  # no training started
        assert _followup_settings(live_db) == followup_before
        with Session(live_db) as s:
            assert s.get(AdminUser, owner_id).password_hash == owner_hash
            assert len(s.exec(select(AdminUser)).all()) == team_before
            assert not s.exec(select(AdminUser).where(AdminUser.email == "mole@evil.test")).all()
        seen = str(client.deltas)
        assert ADMIN_EMAIL not in seen and "invite?t=" not in seen  # no team list, no link
        assert _newest_model_version(live_db) not in seen  # no model card
        # The agent's own work is open to them: the refusals above are the role's.
        secret_conv = _shopper_conversation(live_db, "an agent may read this")[1]
        from chatdash.state.inbox import InboxState

        client.call(InboxState, "select", {"conversation_id": secret_conv}, path="/admin/conversations")
        client.wait_for(lambda d: "an agent may read this" in str(d))
    finally:
        client.close()
        with Session(live_db) as s:
            auth.end_session(s, token)
            s.delete(s.get(AdminUser, agent_id))
            s.commit()


def test_admin_handlers_refuse_a_shopper_client(live_app, live_db):
    """A shopper's client calls every handler of every admin state with real ids."""
    secret = f"private order details {uuid.uuid4().hex[:6]}"
    _token, conv_id = _shopper_conversation(live_db, secret)
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/widget")
        for cls, name in _admin_handlers():
            if cls is AuthState and name in PUBLIC_AUTH_HANDLERS:
                continue
            client.call(cls, name, _payload_for(cls, name, conv_id), path=f"/admin/conversations?c={conv_id}")
        assert secret not in str(client.deltas)
        from chatdash.models import Conversation

        with Session(live_db) as s:
            assert not s.exec(select(Message).where(Message.body == "injected reply")).all()
            assert len(s.exec(select(Message).where(Message.conversation_id == conv_id)).all()) == 1
            conv = s.get(Conversation, conv_id)  # not resolved, snoozed or assigned by a stranger
            assert (conv.status, conv.snoozed_until, conv.assignee_id) == ("open", None, None)
            assert store_settings.get_auto_assign(s) is False
    finally:
        client.close()


def test_forged_visitor_token_never_reaches_another_conversation(live_app, live_db):
    from chatdash.state.widget import WidgetState

    secret = f"my address is 1 Main St {uuid.uuid4().hex[:6]}"
    token, _conv_id = _shopper_conversation(live_db, secret)
    visitor_id, _, sig = token.partition(".")
    forged = f"{visitor_id}.{'A' * len(sig)}"
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/widget")
        client.call(WidgetState, "load", path=f"/widget?v={forged}")
        client.call(WidgetState, "adopt_visitor", {"token": forged}, path="/widget")
        assert secret not in str(client.deltas)
        assert client.seen_values(WidgetState).get("visitor_token") not in (None, forged, token)
    finally:
        client.close()


def test_widget_refuses_oversize_and_malformed_sends_from_a_raw_client(live_app, live_db):
    from chatdash.state.widget import WidgetState

    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/widget")
        # What the page's script answers when it has no stored visitor token.
        client.call(WidgetState, "adopt_visitor", {"token": ""}, path="/widget")
        big = "y" * 4001
        client.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": big}}, path="/widget")
        client.call(WidgetState, "send", {"item": {"id": "bad id!", "text": "hello"}}, path="/widget")
        client.call(WidgetState, "send", {"item": ["not", "a", "dict"]}, path="/widget")
        client.call(WidgetState, "resend", {"items": "nope"}, path="/widget")
        errors = [v for d in client.deltas for k, v in d.get(WidgetState.get_full_name(), {}).items()
                  if k.removesuffix("_rx_state_") == "error" and v]
        assert any("at most 4,000 characters" in e for e in errors)
        assert any("Malformed" in e for e in errors)
        with Session(live_db) as s:
            assert not s.exec(select(Message).where(Message.body == big)).all()
            assert not s.exec(select(Message).where(Message.body == "hello")).all()
    finally:
        client.close()


def test_a_shopper_sending_too_fast_is_slowed_down(live_app, live_db):
    from chatdash.state.widget import WidgetState

    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/widget")
        client.call(WidgetState, "adopt_visitor", {"token": ""}, path="/widget")
        marker = uuid.uuid4().hex[:8]
        items = [{"id": f"{marker}{i:04d}x", "text": f"flood {marker} {i}"} for i in range(40)]
        client.call(WidgetState, "resend", {"items": items}, path="/widget")
        with Session(live_db) as s:
            stored = s.exec(select(Message).where(Message.body.like(f"flood {marker}%"))).all()
        assert len(stored) == 30  # the per-visitor limit: 30 a minute
    finally:
        client.close()


def test_widget_shown_marks_only_the_callers_own_replies_seen(live_app, live_db):
    """`shown` (the embed opened a collapsed chat) takes no argument: a client
    reaches only the conversation its own verified token resolved."""
    from chatdash.models import AdminUser, Conversation
    from chatdash.services import chat
    from chatdash.state.widget import WidgetState

    token, conv_id = _shopper_conversation(live_db, f"collapsed {uuid.uuid4().hex[:6]}")
    with Session(live_db) as s:
        admin = s.exec(select(AdminUser).where(AdminUser.email == ADMIN_EMAIL)).one()
    reply, _ = chat.admin_send(admin.id, conv_id, uuid.uuid4().hex, "a reply not read yet", engine=live_db)

    def shopper_seen() -> int:
        with Session(live_db) as s:
            return s.get(Conversation, conv_id).shopper_seen_message_id

    stranger = RawReflexClient(live_app.backend)
    owner = RawReflexClient(live_app.backend)
    try:
        stranger.hydrate(path="/widget")
        stranger.call(WidgetState, "adopt_visitor", {"token": ""}, path="/widget")
        stranger.call(WidgetState, "shown", {}, path="/widget")
        # The owner's collapsed chat leaves the reply unseen until it is shown.
        owner.hydrate(path=f"/widget?v={token}&collapsed=1")
        owner.call(WidgetState, "load", path=f"/widget?v={token}&collapsed=1")
        assert shopper_seen() < reply.id
        owner.call(WidgetState, "shown", {}, path=f"/widget?v={token}&collapsed=1")
        assert shopper_seen() == reply.id
    finally:
        stranger.close()
        owner.close()


# ----- starting a chat from the Visitors page ------------------------------------

def _visitor_on_store(live_app, live_db, token: str) -> int:
    """The shopper's store page sends its heartbeat to the live app: their shopper id."""
    import httpx

    from chatdash.models import Shopper
    from chatdash.services import identity

    r = httpx.post(f"{live_app.backend}/api/presence", timeout=30,
                   json={"visitor": token, "state": "alive", "url": "https://shop.test/tents", "title": "Tents"})
    assert r.status_code == 200, r.text
    visitor_id = identity.verify_visitor_token("test-secret-key", token)
    with Session(live_db) as s:
        return s.exec(select(Shopper.id).where(Shopper.visitor_id == visitor_id)).one()


def _try_to_start_a_chat(client: RawReflexClient, shopper_id: int, text: str) -> None:
    from chatdash.state.visitors import VisitorsState

    client.call(VisitorsState, "load", path="/admin/visitors")
    client.call(VisitorsState, "open_composer", {"shopper_id": shopper_id}, path="/admin/visitors")
    client.call(VisitorsState, "start_chat", {"form_data": {"message": text}}, path="/admin/visitors")


def _messages_saying(live_db, text: str) -> list[Message]:
    with Session(live_db) as s:
        return list(s.exec(select(Message).where(Message.body == text)).all())


def test_starting_a_chat_takes_an_agents_session(live_app, live_db):
    """Without a session (or with a forged one) the Visitors page's handlers
    list nobody and send nothing; an agent's real session, the same calls, does."""
    from chatdash.state.widget import WidgetState

    # The shopper has the chat open, with no conversation yet.
    widget = RawReflexClient(live_app.backend)
    widget.hydrate(path="/widget")
    widget.call(WidgetState, "adopt_visitor", {"token": ""}, path="/widget")
    visitor_token = widget.seen_values(WidgetState)["visitor_token"]
    shopper_id = _visitor_on_store(live_app, live_db, visitor_token)
    label = visitor_token[:6].upper()  # "Visitor XXXXXX" on the Visitors page
    text = f"Hi, can I help? {uuid.uuid4().hex[:6]}"
    agent_id, token = _agent_session(live_db)
    try:
        for cookies in (None, _session_cookie("forged-token-value")):
            stranger = RawReflexClient(live_app.backend, cookies=cookies)
            try:
                stranger.hydrate(path="/admin/visitors")
                _try_to_start_a_chat(stranger, shopper_id, text)
                assert label not in str(stranger.deltas)  # the visitor list never reached it
            finally:
                stranger.close()
        assert _messages_saying(live_db, text) == []

        agent = RawReflexClient(live_app.backend, cookies=_session_cookie(token))
        try:
            agent.hydrate(path="/admin/visitors")
            _try_to_start_a_chat(agent, shopper_id, text)
            assert label in str(agent.deltas)
            stored = _messages_saying(live_db, text)
            assert [(m.sender, m.admin_id) for m in stored] == [("admin", agent_id)]
            # The agent is sent to the conversation; the shopper's open chat shows the message.
            assert f"/admin/conversations?c={stored[0].conversation_id}" in str(agent.events)
            widget.wait_for(lambda d: text in str(d.get(WidgetState.get_full_name(), {})))
        finally:
            agent.close()
    finally:
        widget.close()
        from chatdash.models import AdminUser

        with Session(live_db) as s:
            auth.end_session(s, token)
            s.delete(s.get(AdminUser, agent_id))
            s.commit()


# ----- each member's own notification choices; the widget's email question ---------


def _choices(engine, admin_id: int) -> tuple[bool, bool, bool]:
    from chatdash.models import AdminUser

    with Session(engine) as s:
        a = s.get(AdminUser, admin_id)
        return a.notify_sound, a.notify_new_conversation, a.notify_assigned_message


def test_a_member_changes_only_their_own_notification_choices(live_app, live_db):
    """The handlers take no member id: an agent's calls change the agent's row,
    never the owner's; without a session, or with a value that is not on/off,
    nothing changes."""
    from chatdash.models import AdminUser
    from chatdash.state.settings_page import MyNotificationsState

    agent_id, token = _agent_session(live_db)
    with Session(live_db) as s:
        owner_id = s.exec(select(AdminUser).where(AdminUser.email == ADMIN_EMAIL)).one().id
    owner_before = _choices(live_db, owner_id)
    stranger = RawReflexClient(live_app.backend)
    agent = RawReflexClient(live_app.backend, cookies=_session_cookie(token))
    try:
        stranger.hydrate(path="/admin/settings")
        for name in ("set_sound", "set_new_conversation", "set_assigned_message"):
            stranger.call(MyNotificationsState, name, {"value": name != "set_sound"},
                          path="/admin/settings")
        assert _choices(live_db, agent_id) == (True, False, False)

        agent.hydrate(path="/admin/settings")
        agent.call(MyNotificationsState, "set_new_conversation", {"value": "yes"}, path="/admin/settings")
        agent.call(MyNotificationsState, "set_sound", {"value": {"admin_id": owner_id}}, path="/admin/settings")
        assert _choices(live_db, agent_id) == (True, False, False)
        agent.call(MyNotificationsState, "set_sound", {"value": False}, path="/admin/settings")
        agent.call(MyNotificationsState, "set_assigned_message", {"value": True}, path="/admin/settings")
        assert _choices(live_db, agent_id) == (False, False, True)
        assert _choices(live_db, owner_id) == owner_before
    finally:
        stranger.close()
        agent.close()
        with Session(live_db) as s:
            auth.end_session(s, token)
            s.delete(s.get(AdminUser, agent_id))
            s.commit()


# ----- Insights: what the store's product cards earned is for its staff only ------


def _a_sent_card(live_db) -> str:
    """A product card in a shopper's chat; returns the product's name."""
    from chatdash.models import AdminUser, CardSource, Product
    from chatdash.services import chat

    _token, conv_id = _shopper_conversation(live_db, "what would you suggest?")
    with Session(live_db) as s:
        admin = s.exec(select(AdminUser).where(AdminUser.email == ADMIN_EMAIL)).one()
        product = s.exec(select(Product).order_by(Product.id)).first()  # not the one other tests send
    chat.admin_send(admin.id, conv_id, uuid.uuid4().hex, product_id=product.id, source=CardSource.SEARCH,
                    engine=live_db)
    return product.name


def test_insights_handlers_refuse_a_client_without_a_session(live_app, live_db):
    from chatdash.state.insights import InsightsState

    name = _a_sent_card(live_db)
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/admin/insights")
        client.call(InsightsState, "load", path="/admin/insights")
        client.call(InsightsState, "set_period", {"value": "52"}, path="/admin/insights")
        client.call(InsightsState, "read", path="/admin/insights")
        seen = client.seen_values(InsightsState)
        assert not seen.get("loaded") and not seen.get("sent") and not seen.get("top_products")
        assert name not in str(client.deltas)
    finally:
        client.close()


def test_insights_handlers_answer_a_real_admin_session(live_app, live_db):
    """Proves the refusal above is the session check: the same calls, logged in."""
    from chatdash.state.insights import InsightsState

    name = _a_sent_card(live_db)
    _agent_id, token = _agent_session(live_db)
    client = RawReflexClient(live_app.backend, cookies=_session_cookie(token))
    try:
        client.hydrate(path="/admin/insights")
        client.call(InsightsState, "set_period", {"value": "52"}, path="/admin/insights")
        client.call(InsightsState, "read", path="/admin/insights")  # what the page runs next
        client.wait_for(lambda d: name in str(d))
        assert client.seen_values(InsightsState)["sent"] >= 1
        # A period the page does not offer changes nothing.
        client.call(InsightsState, "set_period", {"value": "9999"}, path="/admin/insights")
        assert client.seen_values(InsightsState)["period"] == "52"
    finally:
        client.close()
        with Session(live_db) as s:
            auth.end_session(s, token)
            s.commit()
def test_the_widgets_email_question_reaches_only_the_callers_own_shopper(live_app, live_db):
    """give_email and dismiss_email_ask act on the shopper of the caller's own
    verified visitor token; malformed answers get a clear error and store nothing."""
    from chatdash.models import Conversation, Shopper
    from chatdash.state.widget import WidgetState

    _token, victim_conv = _shopper_conversation(live_db, f"victim {uuid.uuid4().hex[:6]}")
    with Session(live_db) as s:
        victim = s.get(Shopper, s.get(Conversation, victim_conv).shopper_id)
        victim_email = victim.email
    client = RawReflexClient(live_app.backend)
    try:
        client.hydrate(path="/widget")
        client.call(WidgetState, "adopt_visitor", {"token": ""}, path="/widget")
        # No conversation yet: nothing to attach an email to.
        client.call(WidgetState, "give_email", {"form_data": {"email": "early@example.com"}}, path="/widget")
        client.call(WidgetState, "send", {"item": {"id": uuid.uuid4().hex, "text": "hello"}}, path="/widget")
        for bad in ("not a dict", {"email": ["a@b.com"]}, {"email": "x" * 10_000}, {"email": "nope"},
                    {"conversation_id": victim_conv, "email": 7}):
            client.call(WidgetState, "give_email", {"form_data": bad}, path="/widget")
        errors = [v for d in client.deltas for k, v in d.get(WidgetState.get_full_name(), {}).items()
                  if k.removesuffix("_rx_state_") == "email_error" and v]
        assert any("is not an email address" in e for e in errors)
        assert any("Enter an email address" in e for e in errors)
        with Session(live_db) as s:
            assert not s.exec(select(Shopper).where(Shopper.email == "early@example.com")).all()
        mine = f"mine-{uuid.uuid4().hex[:6]}@example.com"
        client.call(WidgetState, "give_email", {"form_data": {"email": mine, "conversation_id": victim_conv}},
                    path="/widget")
        client.call(WidgetState, "dismiss_email_ask", {}, path="/widget")
        with Session(live_db) as s:
            assert s.get(Shopper, victim.id).email == victim_email
            assert s.get(Conversation, victim_conv).email_ask_dismissed_at is None
            owner = s.exec(select(Shopper).where(Shopper.email == mine)).one()
            assert owner.id != victim.id
    finally:
        client.close()
