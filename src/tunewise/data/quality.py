"""Row-level text quality: repetition, non-text, toxicity, and demographic terms.

The repetition rules follow the Gopher quality filters (Rae et al. 2021, appendix A), which
catch degenerate model output and scraped boilerplate without any model (the n-gram rule uses
Gopher's longest n, 10, with a higher share: short instruction answers repeat 5-grams such as
"in the 2021 season" by design):

| rule                      | fires when                                                          |
|---------------------------|---------------------------------------------------------------------|
| repeated lines            | more than 30 % of a row's non-empty lines (at least 3) repeat another line of it |
| top word 2-gram           | the most frequent word 2-gram covers more than 20 % of the words (rows of 20+ words) |
| repeated word 10-grams    | more than 20 % of the words sit in a 10-gram that occurs more than once (rows of 20+ words) |

An answer (or text) is *non-text* when it has 40 or more characters and fewer than half of them are letters
or whitespace (hex dumps, tables of numbers, markup).

Toxicity comes from `alt-profanity-check` (the `toxicity` extra: `pip install 'tunewise[toxicity]'`),
a calibrated linear SVM over TF-IDF word features whose model ships inside the package (no
download): `toxicity_scores` returns the probability that a text is offensive. Demographic terms
come from the lexicon in `tunewise.data.demographics`.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Any

from tunewise.extras import EXTRAS, MissingExtraError, require

__all__ = ["TOXICITY_FEATURE", "load_toxicity_classifier", "non_text", "repetition", "toxicity_scores"]

_WORD = re.compile(r"\w+")
REPEATED_LINE_SHARE = 0.3
TOP_2GRAM_SHARE = 0.2
REPEATED_NGRAM = 10
REPEATED_NGRAM_SHARE = 0.2
NON_TEXT_MIN_CHARS = 40
NON_TEXT_LETTER_SHARE = 0.5


def repetition(text: str) -> str | None:
    """Which Gopher repetition rule the text breaks, in words, or None when it breaks none."""
    lines = [line.strip().casefold() for line in text.splitlines() if line.strip()]
    if len(lines) >= 3:
        repeated = len(lines) - len(set(lines))
        if repeated / len(lines) > REPEATED_LINE_SHARE:
            return f"{repeated} of {len(lines)} lines repeat another line"
    words = _WORD.findall(text.casefold())
    if len(words) < 20:
        return None
    pairs = Counter(pairwise(words))
    ((top, count),) = pairs.most_common(1)
    if count * 2 / len(words) > TOP_2GRAM_SHARE and count > 2:
        return f"the 2-gram {' '.join(top)!r} covers {count * 2 / len(words):.0%} of the words"
    n = REPEATED_NGRAM
    grams = Counter(zip(*(words[i:] for i in range(n))))
    covered = [False] * len(words)
    for i, gram in enumerate(zip(*(words[i:] for i in range(n)))):
        if grams[gram] > 1:
            covered[i : i + n] = [True] * n
    share = sum(covered) / len(words)
    if share > REPEATED_NGRAM_SHARE:
        return f"{share:.0%} of the words are in repeated {n}-grams"
    return None


def non_text(text: str) -> float | None:
    """The share of letters and whitespace when it is below half (a non-text row), else None."""
    if len(text) < NON_TEXT_MIN_CHARS:
        return None
    share = sum(ch.isalpha() or ch.isspace() for ch in text) / len(text)
    return share if share < NON_TEXT_LETTER_SHARE else None


TOXICITY_FEATURE = "the data audit's toxicity check (data.check.toxicity)"


@lru_cache(maxsize=1)
def load_toxicity_classifier() -> Any:
    """The offensive-language classifier of alt-profanity-check (the `toxicity` extra), loaded once.

    Raises:
        MissingExtraError: it is not installed, or its bundled model does not load with the installed
            scikit-learn; the message names `tunewise[toxicity]`, which installs the matching pair.
    """
    with warnings.catch_warnings():
        # The bundled model was pickled by the scikit-learn version the package pins; a
        # mismatch warns, and scores from a mismatched pickle are not to be trusted.
        warnings.simplefilter("error")
        try:
            return require("profanity_check", feature=TOXICITY_FEATURE)
        except MissingExtraError:
            raise
        except Exception as e:  # any failure here means: no usable classifier
            extra, package = EXTRAS["profanity_check"]
            raise MissingExtraError(package, extra, TOXICITY_FEATURE, f"{type(e).__name__}: {e}") from None


def toxicity_scores(texts: Sequence[str]) -> list[float]:
    """Probability that each text is offensive (profanity, insults), from alt-profanity-check.

    Raises:
        MissingExtraError: alt-profanity-check is not installed (`pip install 'tunewise[toxicity]'`).
    """
    if not texts:
        return []
    return [float(p) for p in load_toxicity_classifier().predict_prob(list(texts))]
