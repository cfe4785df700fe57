"""Email on new conversations, delivered to a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import shutil
import socket
import ssl
import subprocess
import time
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from chatdash.services.notify import SmtpConfig, new_conversation_email, send_email, send_email_async
from chatdash.settings import Settings

SENDER = "Chatdash <chatdash@shop.example>"
RECIPIENTS = ["owner@shop.example", "support@shop.example"]
URL = "https://admin.shop.example/conversations/42?tab=chat&x=1"
EVIL = "Hi! <script>alert('pwned')</script> & <b>bold</b> \"quoted\""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """An aiosmtpd handler keeping what it accepted; optionally refusing the first N DATA."""

    def __init__(self, fail_first: int = 0, fail_reply: str = "451 4.3.0 Try again later",
                 delay: float = 0.0) -> None:
        self.fail_first = fail_first
        self.fail_reply = fail_reply
        self.delay = delay
        self.calls = 0
        self.received: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.calls <= self.fail_first:
            return self.fail_reply
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 2.0.0 OK"


@pytest.fixture
def smtp_server():
    """Start real SMTP servers on free loopback ports; all stopped afterwards."""
    started: list[Controller] = []

    def start(handler: Collector, **kwargs) -> Controller:
        controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), **kwargs)
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


def _config(controller_or_port, **overrides) -> SmtpConfig:
    port = controller_or_port if isinstance(controller_or_port, int) else controller_or_port.port
    values = {"host": "127.0.0.1", "port": port, "username": None, "password": None,
              "starttls": False, "sender": SENDER}
    values.update(overrides)
    return SmtpConfig(**values)


def _message(first_message: str = EVIL, label: str = "Alice (alice@example.com)") -> EmailMessage:
    return new_conversation_email("Demo Store", label, first_message, URL, SENDER, RECIPIENTS)


def _warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "chatdash.notify" and r.levelno == logging.WARNING]


# --- building the message ----------------------------------------------------


def test_email_has_subject_headers_text_and_escaped_html():
    msg = _message()
    assert msg["Subject"] == "New conversation on Demo Store: Alice (alice@example.com)"
    assert msg["From"] == SENDER
    assert msg["To"] == "owner@shop.example, support@shop.example"
    assert msg["Message-ID"].endswith("@shop.example>")
    assert msg["Date"]
    assert msg["Auto-Submitted"] == "auto-generated"
    plain = msg.get_body(("plain",)).get_content()
    assert "> " + EVIL in plain
    assert URL in plain
    html_part = msg.get_body(("html",)).get_content()
    assert "<script>" not in html_part
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html_part
    assert "&lt;b&gt;bold&lt;/b&gt;" in html_part and "&amp;" in html_part
    assert '<a href="https://admin.shop.example/conversations/42?tab=chat&amp;x=1">' in html_part


def test_shopper_label_cannot_inject_headers_or_html():
    msg = _message(label="Eve\r\nBcc: victim@example.com\n<img src=x onerror=alert(1)>")
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    assert msg["Bcc"] is None
    assert msg["Subject"].startswith("New conversation on Demo Store: Eve Bcc: victim@example.com")
    html_part = msg.get_body(("html",)).get_content()
    assert "<img" not in html_part
    assert "&lt;img src=x onerror=alert(1)&gt;" in html_part
    raw = msg.as_bytes()
    assert b"\nBcc:" not in raw


def test_long_label_and_message_are_bounded():
    msg = _message(first_message="word " * 5000, label="L" * 500)
    assert len(msg["Subject"]) < 200
    plain = msg.get_body(("plain",)).get_content()
    assert len(plain) < 4500
    assert plain.rstrip().endswith(URL)


def test_non_http_link_is_not_made_clickable():
    msg = new_conversation_email("S", "A", "hi", "javascript:alert(1)", SENDER, RECIPIENTS)
    html_part = msg.get_body(("html",)).get_content()
    assert "<a " not in html_part
    assert "javascript:alert(1)" in html_part  # shown as text only


def test_no_recipients_is_an_error():
    with pytest.raises(ValueError):
        new_conversation_email("S", "A", "hi", URL, SENDER, [])
    with pytest.raises(ValueError):
        new_conversation_email("S", "A", "hi", URL, SENDER, ["", "  "])


def test_smtp_config_from_settings_keeps_the_password_out_of_repr():
    settings = Settings(smtp_host="mail.example.com", smtp_port=587, smtp_username="mailer",
                        smtp_password="hunter2-secret", smtp_starttls=True, smtp_from="bot@example.com")
    config = SmtpConfig.from_settings(settings)
    assert config == SmtpConfig("mail.example.com", 587, "mailer", "hunter2-secret", True, "bot@example.com")
    assert "hunter2-secret" not in repr(config)
    blank = SmtpConfig.from_settings(Settings(smtp_username="", smtp_password=""))
    assert blank.username is None and blank.password is None


# --- delivery to a real server ------------------------------------------------


def test_email_arrives_with_recipients_subject_message_and_link(smtp_server):
    handler = Collector()
    server = smtp_server(handler)
    assert send_email(_config(server), _message()) is True
    assert handler.calls == 1
    [(mail_from, rcpt_tos, received)] = handler.received
    assert mail_from == "chatdash@shop.example"
    assert sorted(rcpt_tos) == sorted(RECIPIENTS)
    assert received["Subject"] == "New conversation on Demo Store: Alice (alice@example.com)"
    plain = received.get_body(("plain",)).get_content()
    assert EVIL in plain
    assert URL in plain
    html_part = received.get_body(("html",)).get_content()
    assert "<script>" not in html_part
    assert "&lt;script&gt;" in html_part
    assert "https://admin.shop.example/conversations/42?tab=chat&amp;x=1" in html_part


def test_non_ascii_and_long_lines_survive_transport(smtp_server):
    handler = Collector()
    server = smtp_server(handler)
    text = "Grüße aus Köln — ¿tienen talla 42? 👟 " + "x" * 2000 + "\nsecond line"
    assert send_email(_config(server), _message(first_message=text, label="Zoë")) is True
    [(_, _, received)] = handler.received
    assert received["Subject"] == "New conversation on Demo Store: Zoë"
    plain = received.get_body(("plain",)).get_content()
    assert "Grüße aus Köln — ¿tienen talla 42? 👟 " + "x" * 2000 in plain
    assert "> second line" in plain
    raw = received.as_bytes()
    assert max(len(line) for line in raw.split(b"\n")) <= 998  # RFC 5322 line limit


def test_closed_port_fails_after_all_attempts_with_backoff(caplog):
    config = _config(_free_port())  # bound then closed: nothing listens there
    caplog.set_level(logging.WARNING, logger="chatdash.notify")
    started = time.monotonic()
    assert send_email(config, _message(), attempts=3, backoff_seconds=0.05, timeout=2) is False
    elapsed = time.monotonic() - started
    warnings = _warnings(caplog)
    assert len(warnings) == 3
    assert [f"attempt {i}/3" in w.getMessage() for i, w in enumerate(warnings, 1)] == [True] * 3
    assert all("ConnectionRefusedError" in w.getMessage() for w in warnings)
    assert any(r.levelno == logging.ERROR and "giving up" in r.getMessage() for r in caplog.records)
    # Sleeps of 0.05 and 0.1 between the three attempts.
    assert 0.14 <= elapsed < 1.5


def test_single_attempt_does_not_sleep(caplog):
    caplog.set_level(logging.WARNING, logger="chatdash.notify")
    started = time.monotonic()
    assert send_email(_config(_free_port()), _message(), attempts=1, backoff_seconds=5) is False
    assert time.monotonic() - started < 1
    assert len(_warnings(caplog)) == 1


def test_temporary_failure_is_retried_and_delivered_once(smtp_server, caplog):
    handler = Collector(fail_first=1)
    server = smtp_server(handler)
    caplog.set_level(logging.WARNING, logger="chatdash.notify")
    assert send_email(_config(server), _message(), attempts=3, backoff_seconds=0.05) is True
    assert handler.calls == 2
    assert len(handler.received) == 1
    [warning] = _warnings(caplog)
    assert "attempt 1/3" in warning.getMessage() and "451" in warning.getMessage()


def test_permanent_failure_is_not_retried(smtp_server, caplog):
    handler = Collector(fail_first=10, fail_reply="554 5.7.1 Message rejected")
    server = smtp_server(handler)
    caplog.set_level(logging.WARNING, logger="chatdash.notify")
    assert send_email(_config(server), _message(), attempts=3, backoff_seconds=0.05) is False
    assert handler.calls == 1
    assert handler.received == []
    [warning] = _warnings(caplog)
    assert "permanently" in warning.getMessage() and "554" in warning.getMessage()


def test_retries_exhausted_on_a_server_that_keeps_deferring(smtp_server, caplog):
    handler = Collector(fail_first=10)
    server = smtp_server(handler)
    caplog.set_level(logging.WARNING, logger="chatdash.notify")
    assert send_email(_config(server), _message(), attempts=3, backoff_seconds=0.01) is False
    assert handler.calls == 3
    assert len(_warnings(caplog)) == 3


def _authenticator(expected_user: bytes, expected_password: bytes, seen: list):
    def authenticate(server, session, envelope, mechanism, auth_data):
        seen.append(mechanism)
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == expected_user
              and auth_data.password == expected_password)
        # handled=False: let aiosmtpd send the 535 itself (the default leaves the client waiting).
        return AuthResult(success=ok, handled=False)

    return authenticate


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_username_and_password(smtp_server, caplog):
    seen: list[str] = []
    handler = Collector()
    server = smtp_server(handler, authenticator=_authenticator(b"mailer", b"s3cret", seen),
                         auth_required=True, auth_require_tls=False)
    assert send_email(_config(server, username="mailer", password="s3cret"), _message()) is True
    assert len(handler.received) == 1 and seen
    caplog.set_level(logging.WARNING, logger="chatdash.notify")
    assert send_email(_config(server, username="mailer", password="wrong"), _message(),
                      attempts=3, backoff_seconds=0.05) is False
    assert len(handler.received) == 1
    [warning] = _warnings(caplog)  # 535 is permanent: one try
    assert "SMTPAuthenticationError" in warning.getMessage()
    assert "wrong" not in warning.getMessage()
    # Without credentials the server refuses the mail.
    assert send_email(_config(server), _message(), attempts=1) is False
    assert len(handler.received) == 1


@pytest.fixture
def tls_files(tmp_path, monkeypatch):
    """A self-signed certificate for 127.0.0.1, trusted by the default SSL context."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key


def test_starttls_then_login(smtp_server, tls_files, caplog):
    cert, key = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    seen: list[str] = []
    handler = Collector()
    server = smtp_server(handler, tls_context=server_tls, require_starttls=True,
                         authenticator=_authenticator(b"mailer", b"s3cret", seen), auth_required=True)
    config = _config(server, username="mailer", password="s3cret", starttls=True)
    assert send_email(config, _message()) is True
    assert len(handler.received) == 1 and seen
    # Without STARTTLS the server does not even offer AUTH: a configuration
    # error that retrying cannot fix, so one attempt only.
    caplog.set_level(logging.WARNING, logger="chatdash.notify")
    assert send_email(_config(server, username="mailer", password="s3cret"), _message(),
                      backoff_seconds=0.01) is False
    assert len(handler.received) == 1
    [warning] = _warnings(caplog)
    assert "permanently" in warning.getMessage()
    assert "AUTH extension not supported" in warning.getMessage()


def test_starttls_refuses_an_untrusted_certificate(smtp_server, tmp_path, caplog):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    handler = Collector()
    server = smtp_server(handler, tls_context=server_tls, require_starttls=True)
    caplog.set_level(logging.WARNING, logger="chatdash.notify")
    assert send_email(_config(server, starttls=True), _message(), attempts=2, backoff_seconds=0.01) is False
    assert handler.received == []
    warnings = _warnings(caplog)
    assert len(warnings) == 2  # a TLS failure is retried like any connection error
    assert all("SSLCertVerificationError" in w.getMessage() for w in warnings)


@pytest.mark.asyncio
async def test_send_email_async_delivers_without_blocking_the_loop(smtp_server):
    handler = Collector(delay=0.5)  # a slow server
    server = smtp_server(handler)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        assert await send_email_async(_config(server), _message(), attempts=1) is True
    finally:
        task.cancel()
    assert len(handler.received) == 1
    assert ticks >= 20  # the loop kept running during the ~0.5 s SMTP exchange


@pytest.mark.asyncio
async def test_send_email_async_passes_options_and_never_raises(caplog):
    caplog.set_level(logging.WARNING, logger="chatdash.notify")
    ok = await send_email_async(_config(_free_port()), _message(), attempts=2, backoff_seconds=0.01)
    assert ok is False
    assert len(_warnings(caplog)) == 2
