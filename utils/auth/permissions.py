"""What each role may do, checked where the work is done.

Pages hide what a role cannot use, but the services call ``require`` too: a forged
call from a page, or a CLI call made for a user, gets ``PermissionDenied`` (and an
audit entry) instead of doing the work.
"""

from __future__ import annotations

from enum import Enum

from models.team import Role
from utils.auth.identity import User
from utils.errors import AppError


class Action(Enum):
    VIEW_BENCHMARKS = "view benchmark results"
    CHAT = "chat with a model"
    RUN_OCR = "run OCR"
    RUN_BENCHMARK = "run a benchmark"
    MANAGE_OWN_DATA = "manage their own conversations, OCR runs and settings"
    CONNECT_SERVER = "connect a model server"
    MANAGE_MODELS = "load, unload or download models"
    CHECK_STATUS = "run model status checks"
    CLEAR_CACHE = "clear the result cache"
    MANAGE_ANY_RUN = "rename or delete anyone's benchmark runs"
    READ_AUDIT_LOG = "read the audit log"
    ADOPT_DATA = "adopt single-user data"


_MEMBER_ACTIONS = frozenset(
    {
        Action.VIEW_BENCHMARKS,
        Action.CHAT,
        Action.RUN_OCR,
        Action.RUN_BENCHMARK,
        Action.MANAGE_OWN_DATA,
        Action.CONNECT_SERVER,
    }
)
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    "admin": frozenset(Action),
    "member": _MEMBER_ACTIONS,
    "viewer": frozenset({Action.VIEW_BENCHMARKS}),
}


class PermissionDenied(AppError):
    """The user's role does not allow what they asked for."""


def can(user: User, action: Action) -> bool:
    return action in ROLE_ACTIONS[user.role]


def require(user: User, action: Action) -> None:
    """Raise ``PermissionDenied`` unless ``user`` may do ``action``."""
    if not can(user, action):
        raise PermissionDenied(
            f"your role ({user.role}) may not {action.value}",
            hint="ask an admin of this app for a role that allows it",
        )


def may_manage_run(user: User, owner_id: str | None) -> bool:
    """Rename or delete a benchmark run: its owner or an admin (ownerless runs: admins)."""
    if can(user, Action.MANAGE_ANY_RUN):
        return True
    return owner_id is not None and owner_id == user.user_id and can(user, Action.RUN_BENCHMARK)
