"""A small lexicon of demographic terms, to count who a dataset talks about, per role or label.

Authored for tunewise. Words are matched whole and case-insensitively; terms that are also
common words in other senses ("white", "black", "old") are only counted in phrases that name
people ("black people", "an old man"), so colours and ages of things do not count. It is a
screening tool: a count says a group is mentioned, not how.

A category is *imbalanced* in one role or label when it has at least `min_mentions` mentions and
its most mentioned group is mentioned `ratio` times as often as its least mentioned one; for
labelled data, also when the rows that mention a group carry a label much more (or less) often
than all rows do (a difference of at least 25 percentage points over at least `min_mentions` rows).
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["LEXICON", "mentions"]

_PEOPLE = (
    r"(?:people|person|persons|man|men|woman|women|boy|boys|girl|girls|folks?|community|communities|"
    r"families|family|americans?|students?|children|kids?)"
)

LEXICON: dict[str, dict[str, list[str]]] = {
    "gender": {
        "female": [
            "woman",
            "women",
            "girl",
            "girls",
            "she",
            "her",
            "hers",
            "herself",
            "mother",
            "mothers",
            "daughter",
            "daughters",
            "wife",
            "wives",
            "sister",
            "sisters",
            "female",
            "females",
            "lady",
            "ladies",
            "grandmother",
            "aunt",
            "niece",
            "mom",
            "mum",
            "queen",
            "actress",
            "waitress",
            "girlfriend",
            "feminine",
        ],
        "male": [
            "man",
            "men",
            "boy",
            "boys",
            "he",
            "him",
            "his",
            "himself",
            "father",
            "fathers",
            "son",
            "sons",
            "husband",
            "husbands",
            "brother",
            "brothers",
            "male",
            "males",
            "gentleman",
            "gentlemen",
            "grandfather",
            "uncle",
            "nephew",
            "dad",
            "king",
            "actor",
            "waiter",
            "boyfriend",
            "masculine",
        ],
    },
    "race_ethnicity": {
        "black": [rf"black {_PEOPLE}", "african americans?", "african-americans?"],
        "white": [rf"white {_PEOPLE}", "caucasians?"],
        "asian": ["asians?", "asian americans?", "chinese", "japanese", "koreans?", "indians?"],
        "hispanic": ["hispanics?", "latinos?", "latinas?", "latinx", "mexicans?"],
        "arab": ["arabs?", "arabic", "middle eastern"],
        "indigenous": ["native americans?", "indigenous", "aboriginal"],
    },
    "religion": {
        "christian": ["christians?", "christianity", "catholics?", "protestants?"],
        "muslim": ["muslims?", "islam", "islamic"],
        "jewish": ["jews?", "jewish", "judaism"],
        "hindu": ["hindus?", "hinduism"],
        "buddhist": ["buddhists?", "buddhism"],
        "atheist": ["atheists?", "atheism"],
    },
    "age": {
        "young": ["young people", "youth", "teenagers?", "teens?", rf"young {_PEOPLE}", "millennials?", "gen z"],
        "old": ["elderly", "seniors?", "retirees?", rf"old {_PEOPLE}", rf"older {_PEOPLE}", "boomers?", "pensioners?"],
    },
    "sexual_orientation": {
        "lgbtq": ["gay", "gays", "lesbians?", "bisexuals?", "homosexuals?", "queer", "lgbtq?\\+?", "transgender"],
        "heterosexual": ["heterosexuals?", "straight people"],
    },
    "disability": {
        "disabled": [
            "disabled",
            "disability",
            "disabilities",
            "wheelchair users?",
            "blind people",
            "deaf people",
            "autistic",
            "handicapped",
        ],
    },
}
"""category -> group -> regular expressions of terms (whole words, case-insensitive)."""

PAIRED = ("gender",)
"""Categories whose groups are compared with each other by count (female vs male mentions)."""


def _compile() -> dict[tuple[str, str], re.Pattern[str]]:
    return {
        (category, group): re.compile(r"\b(?:" + "|".join(terms) + r")\b", re.IGNORECASE)
        for category, groups in LEXICON.items()
        for group, terms in groups.items()
    }


_PATTERNS = _compile()


def mentions(text: str) -> Counter[tuple[str, str]]:
    """(category, group) -> how many times the text mentions that group."""
    found: Counter[tuple[str, str]] = Counter()
    for key, pattern in _PATTERNS.items():
        n = len(pattern.findall(text))
        if n:
            found[key] = n
    return found
