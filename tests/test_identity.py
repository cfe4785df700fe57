"""Signed visitor tokens and store-verified customers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from chatdash.services import identity

SECRET = "visitor-signing-secret"
STORE_SECRET = "store-shared-secret"


def test_visitor_token_round_trip_and_shape():
    token = identity.issue_visitor_token(SECRET)
    visitor_id, sig = token.split(".")
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", visitor_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", sig)
    assert identity.verify_visitor_token(SECRET, token) == visitor_id


def test_visitor_signature_matches_the_documented_construction():
    token = identity.issue_visitor_token(SECRET)
    visitor_id, sig = token.split(".")
    digest = hmac.new(SECRET.encode(), f"visitor:{visitor_id}".encode(), hashlib.sha256).digest()
    assert sig == base64.urlsafe_b64encode(digest).decode()[:32]


def test_visitor_tokens_are_unique():
    tokens = {identity.issue_visitor_token(SECRET) for _ in range(1000)}
    assert len(tokens) == 1000
    assert len({t.split(".")[0] for t in tokens}) == 1000


def _flip(ch: str) -> str:
    return "B" if ch == "A" else "A"


def test_tampered_visitor_id_is_refused():
    token = identity.issue_visitor_token(SECRET)
    visitor_id, sig = token.split(".")
    for i in (0, 11, 23):
        forged = visitor_id[:i] + _flip(visitor_id[i]) + visitor_id[i + 1 :]
        assert identity.verify_visitor_token(SECRET, f"{forged}.{sig}") is None
    # Someone else's id with my signature.
    other_id = identity.issue_visitor_token(SECRET).split(".")[0]
    assert identity.verify_visitor_token(SECRET, f"{other_id}.{sig}") is None


def test_tampered_signature_is_refused():
    token = identity.issue_visitor_token(SECRET)
    visitor_id, sig = token.split(".")
    for i in (0, 15, 31):
        forged = sig[:i] + _flip(sig[i]) + sig[i + 1 :]
        assert identity.verify_visitor_token(SECRET, f"{visitor_id}.{forged}") is None
    assert identity.verify_visitor_token(SECRET, f"{visitor_id}.{sig[:-1]}") is None
    assert identity.verify_visitor_token(SECRET, f"{visitor_id}.{sig}A") is None
    assert identity.verify_visitor_token(SECRET, f"{visitor_id}.") is None
    assert identity.verify_visitor_token(SECRET, visitor_id) is None


def test_token_signed_with_another_secret_is_refused():
    token = identity.issue_visitor_token("another-secret")
    assert identity.verify_visitor_token(SECRET, token) is None
    assert identity.verify_visitor_token("another-secret", token) is not None


def test_empty_secret_neither_signs_nor_verifies():
    with pytest.raises(ValueError):
        identity.issue_visitor_token("")
    token = identity.issue_visitor_token(SECRET)
    assert identity.verify_visitor_token("", token) is None


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "",
        ".",
        "a.b",
        "a.b.c",
        "x" * 10_000,
        "." * 10_000,
        "é" * 24 + "." + "é" * 32,
        "ünïcödé.sïgnätürë",
        "\x00" * 24 + "." + "\x00" * 32,
        "\ud800" * 24 + "." + "A" * 32,  # lone surrogates
        b"bytes.token",
        12345,
        ["a", "b"],
        {"token": "x"},
    ],
    ids=lambda g: repr(g)[:30],
)
def test_garbage_visitor_tokens_are_refused_without_raising(garbage):
    assert identity.verify_visitor_token(SECRET, garbage) is None


def test_valid_token_with_extra_parts_or_whitespace_is_refused():
    token = identity.issue_visitor_token(SECRET)
    for bad in (f" {token}", f"{token} ", f"{token}\n", f"{token}.x", f"x.{token}", token.replace(".", "..")):
        assert identity.verify_visitor_token(SECRET, bad) is None


def test_non_ascii_lookalike_of_a_valid_token_is_refused():
    token = identity.issue_visitor_token(SECRET)
    # Fullwidth 'Ａ' (U+FF21) instead of an ASCII letter in the signature.
    visitor_id, sig = token.split(".")
    assert identity.verify_visitor_token(SECRET, f"{visitor_id}.\uff21{sig[1:]}") is None


# --- customers -------------------------------------------------------------


def test_customer_hmac_known_answer():
    expected = hmac.new(b"store-shared-secret", b"customer-42", hashlib.sha256).hexdigest()
    assert identity.customer_hmac(STORE_SECRET, "customer-42") == expected
    # A fixed vector (RFC 4231 test case 2), so the construction cannot drift.
    assert (
        identity.customer_hmac("Jefe", "what do ya want for nothing?")
        == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_customer_hmac_utf8():
    expected = hmac.new("sécret".encode(), "clïent-7".encode(), hashlib.sha256).hexdigest()
    assert identity.customer_hmac("sécret", "clïent-7") == expected
    assert identity.verify_customer("sécret", "clïent-7", expected)


def test_verify_customer_accepts_the_store_hmac():
    given = hmac.new(STORE_SECRET.encode(), b"cust_1001", hashlib.sha256).hexdigest()
    assert identity.verify_customer(STORE_SECRET, "cust_1001", given)
    # Hex is case-insensitive and surrounding whitespace from templates is tolerated.
    assert identity.verify_customer(STORE_SECRET, "cust_1001", given.upper())
    assert identity.verify_customer(STORE_SECRET, "cust_1001", f" {given}\n")


def test_verify_customer_refuses_wrong_hmac():
    given = identity.customer_hmac(STORE_SECRET, "cust_1001")
    assert not identity.verify_customer(STORE_SECRET, "cust_1002", given)
    assert not identity.verify_customer("another-secret", "cust_1001", given)
    flipped = ("0" if given[0] != "0" else "1") + given[1:]
    assert not identity.verify_customer(STORE_SECRET, "cust_1001", flipped)
    assert not identity.verify_customer(STORE_SECRET, "cust_1001", given[:-1])
    assert not identity.verify_customer(STORE_SECRET, "cust_1001", given + "0")
    # The HMAC of the id with the secret as message (arguments swapped) is not it.
    swapped = hmac.new(b"cust_1001", STORE_SECRET.encode(), hashlib.sha256).hexdigest()
    assert not identity.verify_customer(STORE_SECRET, "cust_1001", swapped)
    # A plain SHA-256 of the id is not it either.
    assert not identity.verify_customer(STORE_SECRET, "cust_1001", hashlib.sha256(b"cust_1001").hexdigest())


@pytest.mark.parametrize(
    ("customer_id", "given"),
    [
        ("cust_1", ""),
        ("cust_1", None),
        ("cust_1", "   "),
        ("cust_1", "z" * 64),
        ("cust_1", "é" * 64),
        ("cust_1", "0" * 10_000),
        ("cust_1", b"0" * 64),
        ("", "GOOD"),
        (None, "GOOD"),
        (42, "GOOD"),
        ("x" * 129, "GOOD"),
        ("\ud800", "0" * 64),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_verify_customer_refuses_empty_oversize_and_garbage(customer_id, given):
    if given == "GOOD":
        given = identity.customer_hmac(STORE_SECRET, str(customer_id))
    assert identity.verify_customer(STORE_SECRET, customer_id, given) is False


def test_customer_id_length_limit_is_128():
    cid = "c" * 128
    assert identity.verify_customer(STORE_SECRET, cid, identity.customer_hmac(STORE_SECRET, cid))
    cid = "c" * 129
    assert not identity.verify_customer(STORE_SECRET, cid, identity.customer_hmac(STORE_SECRET, cid))


def test_empty_store_secret_verifies_nothing():
    given = hmac.new(b"", b"cust_1", hashlib.sha256).hexdigest()
    assert not identity.verify_customer("", "cust_1", given)
