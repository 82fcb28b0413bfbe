"""Personal data and secrets: planted values are found exactly, look-alikes are not, redaction is idempotent."""

from __future__ import annotations

import pytest

from tunewise.data.pii import PLACEHOLDERS, find_pii, iban_valid, luhn_valid, redact

PLANTED = [
    ("email", "write to ana.lopez+news@mail.example.org today", "ana.lopez+news@mail.example.org"),
    ("phone", "call +1 (555) 123-4567 after six", "+1 (555) 123-4567"),
    ("phone", "office: 020 7946 0958.", "020 7946 0958"),
    ("phone", "or 555.123.4567 at night", "555.123.4567"),
    ("credit_card", "card 4111 1111 1111 1111 expires soon", "4111 1111 1111 1111"),
    ("credit_card", "amex 378282246310005 on file", "378282246310005"),
    ("iban", "pay GB82 WEST 1234 5698 7654 32 now", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "to DE89370400440532013000.", "DE89370400440532013000"),
    ("ip_address", "server 192.168.10.42 is down", "192.168.10.42"),
    ("ip_address", "v6 2001:db8::8a2e:370:7334 works", "2001:db8::8a2e:370:7334"),
    ("national_id", "SSN 123-45-6789 on the form", "123-45-6789"),
    ("national_id", "NI number AB 12 34 56 C", "AB 12 34 56 C"),
    ("secret", "aws AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
    ("secret", "token ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ ok", "ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"),
    ("secret", "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"),
    ("secret", 'api_key = "a8F3kL9qZ2xV7mN4pR6tY1wE"', "a8F3kL9qZ2xV7mN4pR6tY1wE"),
    (
        "secret",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    ),
]

NOT_PII = [
    "In 1999 the town had 3,000 people and 2000-2015 was a boom.",
    "The date 2024-01-31 at 12:30:45, pi is 3.14159, version 1.2.3.",
    "card 4111 1111 1111 1112 fails Luhn",  # one digit off
    "GB82WEST12345698765433 fails mod 97",  # last digit changed
    "SSN 000-12-3456 and 666-12-3456 are never issued",
    "password=hello is a word, not a random secret",
    "std::vector and a::b are C++ names",
    "999.1.1.1 is not an address",
    'password = "your_email_password" in a tutorial',
    "see doi 10.1016/j.2010.06.011 and version 2010.06.011",
]


@pytest.mark.parametrize(("kind", "text", "value"), PLANTED, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(PLANTED)])
def test_planted_values_are_found_exactly(kind: str, text: str, value: str) -> None:
    spans = find_pii(text)
    assert [(s.kind, s.value) for s in spans] == [(kind, value)]
    assert text[spans[0].start : spans[0].end] == value


@pytest.mark.parametrize("text", NOT_PII)
def test_look_alikes_are_not_reported(text: str) -> None:
    assert find_pii(text) == []


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")


def test_redaction_uses_typed_placeholders_and_is_idempotent() -> None:
    text = "\n".join(t for _, t, _ in PLANTED)
    once, counts = redact(text)
    assert sum(counts.values()) == len(PLANTED)
    for kind, _, value in PLANTED:
        assert value not in once
        assert PLACEHOLDERS[kind] in once
    again, more = redact(once)
    assert again == once and not more


def test_only_the_requested_kinds_are_redacted() -> None:
    text, counts = redact("ana@example.org, 192.168.0.1", kinds=["email"])
    assert text == "<EMAIL>, 192.168.0.1" and counts == {"email": 1}
