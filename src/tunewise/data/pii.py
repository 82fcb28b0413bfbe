"""Personal data and secrets in text: find them, and replace them with typed placeholders.

Each kind is a regular expression for candidates plus, where the format has one, the check
that real identifiers pass, so that a number which merely looks like one is not reported:

| kind          | placeholder      | candidates                                          | checked by                  |
|---------------|------------------|-----------------------------------------------------|-----------------------------|
| `email`       | `<EMAIL>`        | `local@domain.tld`                                  | —                           |
| `phone`       | `<PHONE>`        | 7–15 digits in 3+ groups, or after `+` or `(area)`  | digit count, not a date     |
| `credit_card` | `<CREDIT_CARD>`  | 13–19 digits, optionally in groups                  | issuer prefix and Luhn      |
| `iban`        | `<IBAN>`         | country code, 2 check digits, 11–30 letters/digits  | ISO 13616 mod-97 = 1        |
| `ip_address`  | `<IP_ADDRESS>`   | dotted quads, colon-hex groups                      | `ipaddress.ip_address`      |
| `national_id` | `<NATIONAL_ID>`  | US SSN `123-45-6789`, UK NINO `AB 12 34 56 C`       | SSN area/group/serial rules |
| `secret`      | `<SECRET>`       | known token formats, values after `key=`... (below) | entropy of generic values   |

Secrets are AWS access keys, GitHub/OpenAI/Slack/Google tokens and private key blocks by their
formats, and high-entropy values after `key=`, `token:`, `password=`...; such a generic value
counts only with letters and digits and an entropy ≥ 3.5 bits/char.

Placeholders never match any pattern, so redacting redacted text changes nothing
(`redact(redact(t)) == redact(t)`). Where two matches overlap, the one found first in the table
order above the other wins (a card number is not also reported as a phone number), then the
longer one.

    spans = find_pii("mail me at ana@example.org")   # [Span(kind="email", start=11, end=26, ...)]
    text, counts = redact("mail me at ana@example.org")  # ("mail me at <EMAIL>", {"email": 1})
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["PII_KINDS", "PLACEHOLDERS", "Span", "find_pii", "iban_valid", "luhn_valid", "redact"]

PLACEHOLDERS: dict[str, str] = {
    "secret": "<SECRET>",
    "email": "<EMAIL>",
    "iban": "<IBAN>",
    "credit_card": "<CREDIT_CARD>",
    "national_id": "<NATIONAL_ID>",
    "ip_address": "<IP_ADDRESS>",
    "phone": "<PHONE>",
}
"""Kind -> the placeholder `redact` writes, in priority order (earlier wins an overlap)."""

PII_KINDS = tuple(PLACEHOLDERS)
"""Every kind `find_pii` reports."""


@dataclass(frozen=True)
class Span:
    """One match: `text[start:end]` is personal data or a secret of `kind`."""

    kind: str
    start: int
    end: int
    value: str


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a digit string (payment cards): True when it is valid."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35; mod 97 must be 1."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    try:
        return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1
    except ValueError:
        return False


def _card_issuer(digits: str) -> bool:
    # Issuer identification numbers of the major networks: a Luhn-valid number that no network
    # issues (1 in 10 random numbers passes Luhn) is not a card.
    n = len(digits)
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    two, four = int(digits[:2]), int(digits[:4])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16  # Mastercard
    if two in (34, 37):
        return n == 15  # American Express
    if digits.startswith("6011") or two == 65 or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19  # Discover
    if 3528 <= four <= 3589:
        return 16 <= n <= 19  # JCB
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19  # Diners Club
    return False


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
_NINO = re.compile(r"\b(?![DFIQUV])[A-Z](?![DFIOQUV])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_PHONE = re.compile(
    r"(?<![\w+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w-])"
    r"|(?<![\w+])\+\d{8,15}(?!\w)"
)
_SECRETS = [
    re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{50,255}\b"),
    re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),  # OpenAI / Anthropic-style keys
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API keys
    re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),  # Hugging Face tokens
]
# `api_key = "…"`, `token: …`, `password=…`: only the value is a secret, and only when it looks
# random (a password written as a word is not worth a placeholder, and prose says "token: yes").
_ASSIGNED = re.compile(
    r"(?i)\b(?:[a-z0-9_]*(?:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key|auth)[a-z0-9_]*)"
    r"[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+_.=~-]{16,})"
)
_MIN_SECRET_ENTROPY = 3.5


def _random_looking(value: str) -> bool:
    # Real keys mix letters and digits at high entropy; `your_email_password` and `changeme` are
    # placeholders in tutorials, not secrets.
    return (
        _entropy(value) >= _MIN_SECRET_ENTROPY
        and any(ch.isdigit() for ch in value)
        and any(ch.isalpha() for ch in value)
    )


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _ip_ok(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    if ":" in candidate:
        # "a::b" and clock times are not addresses worth a placeholder: ask for a digit and at
        # least three groups, or the full eight.
        groups = [g for g in candidate.split(":") if g]
        return any(ch.isdigit() for ch in candidate) and (len(groups) >= 3 or candidate.count(":") == 7)
    return True


def _phone_ok(candidate: str) -> bool:
    digits = _digits(candidate)
    if not 7 <= len(digits) <= 15:
        return False
    # Two bare groups are ranges and codes more often than numbers ("2000-2015", "555-1234"):
    # ask for three groups, or a country code or area code in brackets.
    groups = re.findall(r"\d+", candidate)
    if len(groups) < 3 and not candidate.startswith(("+", "(")) and "(" not in candidate:
        return False
    # Dotted groups are versions and references ("2010.06.011"), except the 555.123.4567 layout.
    if "." in candidate and not re.fullmatch(r"(?:\+\d{1,3}\.)?\d{3}\.\d{3}\.\d{4}", candidate):
        return False
    # Dates (2024-01-31, 31.01.2024), decimals and the SSN layout (3-2-4) are not phone numbers.
    return not re.fullmatch(
        r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d+\.\d+|\d{3}-\d{2}-\d{4}", candidate
    )


_FINDERS: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None, int]] = [
    *[("secret", pattern, None, 0) for pattern in _SECRETS],
    ("secret", _ASSIGNED, lambda v: _random_looking(v), 1),
    ("email", _EMAIL, None, 0),
    ("iban", _IBAN, iban_valid, 0),
    ("credit_card", _CARD, lambda s: _card_issuer(_digits(s)) and luhn_valid(_digits(s)), 0),
    ("national_id", _SSN, None, 0),
    ("national_id", _NINO, None, 0),
    ("ip_address", _IPV4, _ip_ok, 0),
    ("ip_address", _IPV6, _ip_ok, 0),
    ("phone", _PHONE, _phone_ok, 0),
]


def find_pii(text: str, kinds: Sequence[str] = PII_KINDS) -> list[Span]:
    """Every non-overlapping match of the given kinds, in text order.

    Args:
        text: any text.
        kinds: which of `PII_KINDS` to look for.

    Returns:
        `Span`s sorted by start; overlaps are resolved by kind priority, then length.
    """
    if not text:
        return []
    wanted = set(kinds)
    found: list[tuple[int, int, Span]] = []
    for priority, (kind, pattern, valid, group) in enumerate(_FINDERS):
        if kind not in wanted:
            continue
        for m in pattern.finditer(text):
            value = m.group(group)
            if valid is not None and not valid(value):
                continue
            found.append((priority, -(m.end(group) - m.start(group)), Span(kind, m.start(group), m.end(group), value)))
    taken: list[Span] = []
    for _, _, span in sorted(found, key=lambda f: (f[0], f[1], f[2].start)):
        if all(span.end <= s.start or span.start >= s.end for s in taken):
            taken.append(span)
    return sorted(taken, key=lambda s: s.start)


def redact(text: str, kinds: Sequence[str] = PII_KINDS) -> tuple[str, Counter[str]]:
    """Replace each match with its kind's placeholder (`<EMAIL>`, `<PHONE>`, ...).

    Returns:
        The redacted text and how many matches of each kind were replaced.
    """
    spans = find_pii(text, kinds)
    if not spans:
        return text, Counter()
    parts, at = [], 0
    for span in spans:
        parts += [text[at : span.start], PLACEHOLDERS[span.kind]]
        at = span.end
    parts.append(text[at:])
    return "".join(parts), Counter(s.kind for s in spans)
