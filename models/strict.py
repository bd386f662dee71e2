"""What every profile section's schema shares: no unknown keys, and the key pattern."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

#: A key of the profile (a model, an endpoint, a template, an alert rule).
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]


class Strict(BaseModel):
    """A section of the profile: a key it does not know is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")
