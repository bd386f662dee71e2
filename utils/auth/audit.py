"""The audit log: who did what, when — sign-ins, sign-outs, admin actions, deletions
and refused attempts.

One JSONL file, ``<data_dir>/audit/audit.jsonl``, with the storage layer's rules
(locked, fsynced appends; a torn line is cut, a bad line skipped). Past
``ROTATE_BYTES`` it is renamed to ``audit-<UTC time>.jsonl`` and a new one starts;
rotated files are kept (an audit trail is not pruned by the app).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NoReturn

from utils.auth.identity import User
from utils.auth.permissions import Action, PermissionDenied, require
from utils.storage import VersionedRecord, append_jsonl, read_jsonl, utc_now_iso
from utils.storage.rotation import rotate_if_over

AUDIT_DIR_NAME = "audit"
AUDIT_FILE_NAME = "audit.jsonl"
ROTATE_BYTES = 5 * 1024 * 1024
_TEXT_LIMIT = 500

Outcome = Literal["ok", "denied", "failed"]


class AuditEntry(VersionedRecord):
    at: str
    user_id: str
    user: str  # e-mail or name at the time, for people reading the log
    role: str
    event: str
    target: str = ""
    outcome: Outcome = "ok"
    detail: str = ""


def audit_path(data_dir: Path) -> Path:
    return data_dir / AUDIT_DIR_NAME / AUDIT_FILE_NAME


class AuditLog:
    """Append and read the audit entries of one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.path = audit_path(data_dir)

    def record(
        self, user: User, event: str, target: str = "", outcome: Outcome = "ok", detail: str = ""
    ) -> AuditEntry:
        return self._append(user.user_id, user.label, user.role, event, target, outcome, detail)

    def record_refused_account(self, user_id: str, label: str, detail: str) -> AuditEntry:
        """A sign-in the profile gives no role (``default_role: deny``)."""
        return self._append(user_id, label, "none", "sign-in", "", "denied", detail)

    def _append(
        self,
        user_id: str,
        label: str,
        role: str,
        event: str,
        target: str,
        outcome: Outcome,
        detail: str,
    ) -> AuditEntry:
        entry = AuditEntry(
            at=utc_now_iso(),
            user_id=user_id,
            user=label[:_TEXT_LIMIT],
            role=role,
            event=event[:_TEXT_LIMIT],
            target=target[:_TEXT_LIMIT],
            outcome=outcome,
            detail=detail[:_TEXT_LIMIT],
        )
        rotate_if_over(self.path, ROTATE_BYTES, _stamped)
        append_jsonl(self.path, entry)
        return entry

    def check(self, user: User, action: Action, target: str = "") -> None:
        """``require`` that also logs a refusal before raising ``PermissionDenied``."""
        try:
            require(user, action)
        except PermissionDenied as exc:
            self.record(user, action.name.lower(), target, outcome="denied", detail=exc.message)
            raise

    def deny(self, user: User, event: str, target: str, reason: str) -> NoReturn:
        """Log a refused attempt, then raise ``PermissionDenied`` saying why."""
        self.record(user, event, target, outcome="denied", detail=reason)
        raise PermissionDenied(
            f"you may not {event} {target}: {reason}".replace("  ", " "),
            hint="ask an admin of this app",
        )

    def recent(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries of the current file, newest first."""
        return list(reversed(read_jsonl(self.path, AuditEntry).records[-limit:]))


def _stamped(path: Path) -> Path:
    """``audit-<UTC time>.jsonl``: rotated audit files are all kept."""
    return path.with_name(f"audit-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.jsonl")
