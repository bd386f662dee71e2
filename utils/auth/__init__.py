"""Who is using the app and what they may do: identities, roles, permissions,
per-user data folders, the audit log.

With ``auth.mode: none`` there is one user, the local operator (role admin), whose
data lives where it always did (``<data_dir>/chats``, ``<data_dir>/ocr``). With
``auth.mode: oidc`` every signed-in user gets ``<data_dir>/users/<user id>/``, the id
derived from the token's issuer and subject (never an e-mail or a name).
Checks live here and in the services that call ``require``, not only in hidden buttons.
"""

from utils.auth.identity import LOCAL_USER, User, user_from_claims, user_id_for
from utils.auth.permissions import Action, PermissionDenied, can, require

__all__ = [
    "LOCAL_USER",
    "Action",
    "PermissionDenied",
    "User",
    "can",
    "require",
    "user_from_claims",
    "user_id_for",
]
