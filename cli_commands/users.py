"""`python cli.py users list` and `python cli.py audit`: who has signed in, and what
happened (admins only; the local operator is one)."""

from __future__ import annotations

import argparse

from cli_commands.acting import acting_as
from cli_commands.tables import printable, table
from models.config import AuthSettings
from utils.auth import Action
from utils.auth.accounts import Account, UnknownUser, list_accounts, user_of_account
from utils.auth.audit import AuditEntry, AuditLog


def run_users_list(args: argparse.Namespace) -> int:
    acting = acting_as(args)
    acting.check(Action.READ_AUDIT_LOG, "users")
    accounts = list_accounts(acting.config.data_dir)
    if not accounts:
        print("nobody has signed in yet (users appear here after their first sign-in)")
        return 0
    rows = [["USER ID", "E-MAIL / NAME", "ROLE", "LAST SEEN"]]
    rows += [_account_row(account, acting.config.auth) for account in accounts]
    print(table(rows))
    return 0


def _account_row(account: Account, auth: AuthSettings) -> list[str]:
    return [account.user_id, printable(account.label), _role_now(account, auth), account.last_seen]


def _role_now(account: Account, auth: AuthSettings) -> str:
    """The role today's profile gives the account (``deny``: none)."""
    try:
        return user_of_account(account, auth).role
    except (UnknownUser, ValueError):  # denied, or claims without issuer or subject
        return "deny"


def run_audit(args: argparse.Namespace) -> int:
    acting = acting_as(args)
    acting.check(Action.READ_AUDIT_LOG)
    entries = AuditLog(acting.config.data_dir).recent(args.limit)
    if not entries:
        print("the audit log is empty")
        return 0
    rows = [["AT", "USER", "ROLE", "EVENT", "TARGET", "OUTCOME", "DETAIL"]]
    rows += [_entry_row(entry) for entry in entries]
    print(table(rows))
    return 0


def _entry_row(entry: AuditEntry) -> list[str]:
    cells = [entry.at, entry.user, entry.role, entry.event, entry.target, entry.outcome]
    return [printable(cell) for cell in [*cells, entry.detail]]
