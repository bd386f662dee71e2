"""Where one user's data lives.

Sign-in off: the local operator's data stays where the single-user app always kept it
(``<data_dir>/chats``, ``<data_dir>/ocr``, ``<data_dir>/overrides.yaml``). Sign-in on:
``<data_dir>/users/<user id>/`` holds the same names. The id is checked against its
pattern before it becomes a path, so nothing a provider sends can point elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from utils.auth.identity import USER_ID_PATTERN, User

USERS_DIR_NAME = "users"
CHATS_DIR_NAME = "chats"
OCR_DIR_NAME = "ocr"
SETTINGS_FILE_NAME = "settings.json"
ACCOUNT_FILE_NAME = "account.json"


def users_dir(data_dir: Path) -> Path:
    return data_dir / USERS_DIR_NAME


def user_root(data_dir: Path, user: User) -> Path:
    """The folder of ``user``'s conversations, OCR runs and settings."""
    if user.is_local:
        return data_dir
    return user_root_by_id(data_dir, user.user_id)


def user_root_by_id(data_dir: Path, user_id: str) -> Path:
    if not USER_ID_PATTERN.fullmatch(user_id) or user_id == "local":
        raise ValueError(f"not a user id: {user_id!r}")
    return users_dir(data_dir) / user_id


def chats_dir(data_dir: Path, user: User) -> Path:
    return user_root(data_dir, user) / CHATS_DIR_NAME


def ocr_runs_dir(data_dir: Path, user: User) -> Path:
    return user_root(data_dir, user) / OCR_DIR_NAME
