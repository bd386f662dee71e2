"""A user's own defaults: the chat model, system prompt and sampling a new conversation
starts with, and the OCR engine, template and alphabet the OCR page opens with.

Kept in ``settings.json`` of the user's folder (``<data_dir>/settings.json`` without
sign-in). A missing or damaged file means "no personal defaults", never an error.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from models.options import Characters
from utils.auth.identity import User
from utils.auth.user_data import SETTINGS_FILE_NAME, user_root
from utils.storage import VersionedRecord, atomic_write_json, read_json_or_none


class PersonalSettings(VersionedRecord):
    chat_model: str | None = None
    system_prompt: str = Field("", max_length=20_000)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_new_tokens: int | None = Field(None, ge=1, le=32_768)
    ocr_engine: str | None = None
    ocr_template: str | None = None
    ocr_characters: Characters | None = None  # RapidOCR's alphabet; None: the profile's


def personal_settings_path(data_dir: Path, user: User) -> Path:
    return user_root(data_dir, user) / SETTINGS_FILE_NAME


def read_personal_settings(data_dir: Path, user: User) -> PersonalSettings:
    path = personal_settings_path(data_dir, user)
    stored = read_json_or_none(path, PersonalSettings, corrupt_dir=data_dir / ".corrupt")
    return stored or PersonalSettings()


def save_personal_settings(data_dir: Path, user: User, **changes: object) -> PersonalSettings:
    """Store ``changes`` over the user's current settings; returns what is now stored."""
    current = read_personal_settings(data_dir, user)
    updated = PersonalSettings.model_validate({**current.model_dump(), **changes})
    atomic_write_json(personal_settings_path(data_dir, user), updated)
    return updated
