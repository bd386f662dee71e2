"""The profile's `auth:` section: sign-in mode and who gets which role."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# The profile's key pattern (same as models.config.Identifier).
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Role = Literal["admin", "member", "viewer"]


class RoleMembers(Strict):
    """Who gets one role: e-mail addresses (verified ones) and/or group names."""

    emails: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class RoleRules(Strict):
    admin: RoleMembers = RoleMembers()
    member: RoleMembers = RoleMembers()
    viewer: RoleMembers = RoleMembers()


class AuthSettings(Strict):
    """Who may use the app. Secrets (client secret, cookie secret) are never here: they
    live in ``.streamlit/secrets.toml`` (``cli.py auth init`` writes one)."""

    mode: Literal["none", "oidc"] = Field(
        "none", description="none: one local user, no sign-in; oidc: OpenID Connect sign-in"
    )
    allow_anonymous_network: bool = Field(
        False,
        description="let `mode: none` listen on a non-loopback address (only behind a proxy "
        "that authenticates)",
    )
    roles: RoleRules = RoleRules()
    groups_claim: str = Field("groups", min_length=1, description="ID-token claim with groups")
    default_role: Role | Literal["deny"] = Field(
        "deny", description="role of a signed-in user no rule names; deny = no access"
    )
