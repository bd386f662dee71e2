"""The signed-in user: a stable id, what to call them, and their role.

The id is ``u`` + 32 hex digits of SHA-256 over issuer and subject: the same person
at the same provider always maps to the same folder, whatever their e-mail or name
becomes, and no claim text ever reaches a path.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.team import AuthSettings, Role
from utils.auth.roles import group_names, resolve_role

LOCAL_USER_ID = "local"
USER_ID_PATTERN = re.compile(r"^(local|u[0-9a-f]{32})$")
_MAX_CLAIM_CHARS = 320


class User(BaseModel):
    """One person using the app (or the local operator when sign-in is off)."""

    model_config = ConfigDict(frozen=True)

    user_id: str = Field(pattern=USER_ID_PATTERN.pattern)
    role: Role
    email: str = ""
    name: str = ""
    groups: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.user_id == LOCAL_USER_ID

    @property
    def label(self) -> str:
        """What the UI and the audit log call this user (untrusted text: escape it)."""
        return self.email or self.name or self.user_id


LOCAL_USER = User(user_id=LOCAL_USER_ID, role="admin", name="local operator")


def user_id_for(issuer: str, subject: str) -> str:
    """The folder-safe id of the subject ``subject`` at the provider ``issuer``."""
    # Length-prefixed: no (issuer, subject) pair can be spelled as another one.
    digest = hashlib.sha256(f"{len(issuer)}:{issuer}{subject}".encode()).hexdigest()
    return "u" + digest[:32]


def user_from_claims(claims: Mapping[str, Any], settings: AuthSettings) -> User | None:
    """The user an ID token's claims describe, or ``None`` when the profile denies them.

    Raises ``ValueError`` when the claims lack an issuer or a subject.
    """
    issuer, subject = str(claims.get("iss") or ""), str(claims.get("sub") or "")
    if not issuer or not subject:
        raise ValueError("the identity token has no issuer or no subject")
    role = resolve_role(claims, settings)
    if role is None:
        return None
    return User(
        user_id=user_id_for(issuer, subject),
        role=role,
        email=_claim_text(claims.get("email")),
        name=_claim_text(claims.get("name") or claims.get("preferred_username")),
        groups=tuple(group_names(claims.get(settings.groups_claim))),
    )


def _claim_text(value: Any) -> str:
    return str(value)[:_MAX_CLAIM_CHARS] if isinstance(value, str) else ""
