"""Which role the profile gives a signed-in user.

The highest role any rule grants wins (admin over member over viewer); a user no
rule names gets ``auth.default_role``, which may be ``deny``. E-mail rules compare
case-insensitively and ignore an address the provider marks as not verified, so a
self-service account cannot claim an admin's address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.team import AuthSettings, Role

ROLES_BY_RANK: tuple[Role, ...] = ("admin", "member", "viewer")


def resolve_role(claims: Mapping[str, Any], settings: AuthSettings) -> Role | None:
    """The role for these ID-token claims; ``None`` when the user is denied."""
    email = _verified_email(claims)
    groups = set(group_names(claims.get(settings.groups_claim)))
    for role in ROLES_BY_RANK:
        members = getattr(settings.roles, role)
        if email and email in {address.strip().lower() for address in members.emails}:
            return role
        if groups & set(members.groups):
            return role
    return None if settings.default_role == "deny" else settings.default_role


def _verified_email(claims: Mapping[str, Any]) -> str:
    email = claims.get("email")
    # Some providers send the flag as a string; anything but true/"true" is not verified.
    verified = claims.get("email_verified", True)
    if isinstance(verified, str):
        verified = verified.strip().lower() == "true"
    if not isinstance(email, str) or verified is not True:
        return ""
    return email.strip().lower()


def group_names(value: Any) -> list[str]:
    """The group names in a groups claim (a string or a list; anything else: none)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []
