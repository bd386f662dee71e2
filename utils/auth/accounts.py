"""Accounts seen at sign-in, kept so the CLI can act for a user (``--user``).

``<data_dir>/users/<user id>/account.json`` holds the identity claims the app last
saw (issuer, subject, e-mail, name, groups). The role is never stored: it is
resolved from the profile each time, so a changed rule applies at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.team import AuthSettings
from utils.auth.identity import User, user_from_claims, user_id_for
from utils.auth.user_data import ACCOUNT_FILE_NAME, user_root_by_id, users_dir
from utils.errors import AppError
from utils.storage import VersionedRecord, atomic_write_json, read_json_or_none, utc_now_iso

_KEPT_CLAIMS = ("iss", "sub", "email", "email_verified", "name", "preferred_username")


class Account(VersionedRecord):
    user_id: str
    claims: dict[str, Any]
    last_seen: str

    @property
    def label(self) -> str:
        return str(self.claims.get("email") or self.claims.get("name") or self.user_id)


class UnknownUser(AppError):
    """``--user`` names nobody who has signed in (or more than one person)."""


def remember_account(data_dir: Path, claims: Mapping[str, Any], groups_claim: str) -> Account:
    """Save the claims of a signed-in user (called once per sign-in)."""
    kept = {name: claims[name] for name in _KEPT_CLAIMS if name in claims}
    if groups_claim in claims:
        kept["groups"] = claims[groups_claim]
    user_id = user_id_for(str(claims.get("iss") or ""), str(claims.get("sub") or ""))
    account = Account(user_id=user_id, claims=kept, last_seen=utc_now_iso())
    atomic_write_json(user_root_by_id(data_dir, user_id) / ACCOUNT_FILE_NAME, account)
    return account


def list_accounts(data_dir: Path) -> list[Account]:
    folder = users_dir(data_dir)
    if not folder.is_dir():
        return []
    accounts = []
    for entry in sorted(folder.iterdir()):
        account = _read_account(data_dir, entry.name)
        if account is not None:
            accounts.append(account)
    return accounts


def find_account(data_dir: Path, who: str) -> Account:
    """The account whose id or e-mail (any case) is ``who``; ``UnknownUser`` otherwise."""
    wanted = who.strip().lower()
    found = [
        account
        for account in list_accounts(data_dir)
        if wanted in (account.user_id, str(account.claims.get("email", "")).lower())
    ]
    if len(found) == 1:
        return found[0]
    reason = "several accounts match" if found else "nobody with that id or e-mail signed in"
    raise UnknownUser(
        f"no single user '{who}': {reason}",
        hint="`python cli.py users list` shows who has signed in; use their user id",
    )


def user_of_account(account: Account, settings: AuthSettings) -> User:
    """The account as a user with the role today's profile gives it (``deny`` is an error)."""
    claims = dict(account.claims)
    claims.setdefault(settings.groups_claim, claims.get("groups", []))
    user = user_from_claims(claims, settings)
    if user is None:
        raise UnknownUser(
            f"the profile gives '{account.label}' no role (default_role: deny)",
            hint="add their e-mail or group under auth.roles in the profile",
        )
    return user


def _read_account(data_dir: Path, user_id: str) -> Account | None:
    try:
        folder = user_root_by_id(data_dir, user_id)
    except ValueError:
        return None
    account = read_json_or_none(folder / ACCOUNT_FILE_NAME, Account)
    return account if account is not None and account.user_id == user_id else None
