"""The base of every config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """One section (or sub-section) of the config; an unknown key in it is an error."""

    # A typo must be an error, never a silently ignored key.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
