"""One exception tree for everything tunewise reports to a user.

Every error a user can cause (a bad config key, a missing file, a malformed row, an unknown
model) is a `TunewiseError`. Its message is one paragraph that names the culprit — the file and
line, or the config key — and says what to do. The CLI prints it without a traceback and exits
non-zero; library callers catch `TunewiseError`.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "ModelError", "TunewiseError"]


class TunewiseError(Exception):
    """Base class of every error tunewise raises on purpose."""


class ConfigError(TunewiseError):
    """The config (YAML file or `key=value` overrides) is invalid.

    Attributes:
        problems: one line per problem, each starting with its key path, all found at once.
    """

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in {source or 'the config'}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class DataError(TunewiseError):
    """A dataset file is missing, unreadable, empty or holds a malformed row."""


class ModelError(TunewiseError):
    """A model name, alias or path cannot be resolved or loaded."""
