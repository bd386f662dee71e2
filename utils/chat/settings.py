"""Which model a conversation may use and the sampling settings it starts with.

One source for the Chat page and ``cli.py chat``: a model must be an enabled chat
entry of the profile, and a new conversation takes that entry's own
``max_new_tokens`` / ``temperature`` / ``top_p`` (what the user did not set).
"""

from __future__ import annotations

from models.chat.types import GenerationParams
from models.config import AppConfig, ModelEntry
from models.registry import chat_model_ids
from utils.errors import ModelUnavailable


def require_chat_model(model_id: str | None, config: AppConfig) -> ModelEntry:
    """The profile entry of ``model_id``, if it is an enabled model that can chat.

    Raises ``ModelUnavailable`` naming the model and, as the hint, what to use instead.
    """
    usable = chat_model_ids(config)
    choices = f"use one of: {', '.join(usable)}" if usable else "add a chat model to the profile"
    entry = config.models.get(model_id or "")
    if entry is None:
        raise ModelUnavailable(f"no chat model '{model_id or ''}' in the profile", hint=choices)
    if entry.task == "ocr":
        raise ModelUnavailable(
            f"'{model_id}' is an OCR engine, not a chat model",
            hint=f"{choices}, or set `task: both` for it in the profile",
        )
    if not entry.enabled:
        raise ModelUnavailable(
            f"the chat model '{model_id}' is disabled in the profile",
            hint=f"{choices}, or set `enabled: true` for it in the profile",
        )
    return entry


def default_params(model_id: str | None, config: AppConfig) -> GenerationParams:
    """The sampling settings a new conversation with ``model_id`` starts with.

    No model (a profile without chat models) gives the generic defaults; a model that
    cannot chat raises ``ModelUnavailable`` (see ``require_chat_model``).
    """
    if model_id is None:
        return GenerationParams()
    entry = require_chat_model(model_id, config)
    return GenerationParams(
        max_new_tokens=entry.max_new_tokens, temperature=entry.temperature, top_p=entry.top_p
    )


def default_chat_model(config: AppConfig) -> str:
    """The first enabled chat model of the profile; ``ModelUnavailable`` when there is none."""
    usable = chat_model_ids(config)
    if not usable:
        raise ModelUnavailable(
            "the profile has no enabled chat model",
            hint="add one under `models:` with `task: chat` or `task: both`",
        )
    return usable[0]
