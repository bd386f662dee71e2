"""Who a CLI command acts for.

Without ``--user`` it is the local operator (``LOCAL_USER``, role admin): whoever can run
the CLI can read and write the data folder anyway, so the CLI works exactly as it did
before sign-in existed. ``--user WHO`` (a user id or the e-mail of someone who signed in
to the app) acts as that person: their folder, their connected servers, and the role
today's profile gives them, checked like on the pages.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from models.config import AppConfig, LoadedConfig, load_config, user_overrides_path
from utils.auth import LOCAL_USER, Action, User
from utils.auth.accounts import find_account, user_of_account
from utils.auth.audit import AuditLog
from utils.auth.user_data import user_root


@dataclass(frozen=True)
class Acting:
    """The profile as this user sees it, and the user."""

    loaded: LoadedConfig
    user: User

    @property
    def config(self) -> AppConfig:
        return self.loaded.config

    def check(self, action: Action, target: str = "") -> None:
        """``PermissionDenied`` (and an audit entry) unless the user may ``action``."""
        AuditLog(self.config.data_dir).check(self.user, action, target)


def acting_as(args: argparse.Namespace) -> Acting:
    """The user ``--user`` names (``UnknownUser`` if nobody matches), else the local
    operator; a named user's own overrides (their connected servers) are merged in."""
    loaded = load_config(args.config)
    who = getattr(args, "user", None)
    if not who:
        return Acting(loaded, LOCAL_USER)
    user = named_user(loaded.config, who)
    personal = user_overrides_path(user_root(loaded.config.data_dir, user))
    return Acting(load_config(args.config, personal), user)


def named_user(config: AppConfig, who: str) -> User:
    """The signed-in user ``who`` names, with the role the profile gives them now."""
    return user_of_account(find_account(config.data_dir, who), config.auth)
