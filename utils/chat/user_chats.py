"""One user's conversations: where they live, who may touch them, what a new one starts
with. The Chat page and ``cli.py chat`` go through here, so a role without chat gets
``PermissionDenied`` from the service, not only a hidden page."""

from __future__ import annotations

from pathlib import Path

from models.chat.types import GenerationParams
from models.config import AppConfig
from utils.auth import Action, User, require
from utils.auth.audit import AuditLog
from utils.auth.personal import PersonalSettings
from utils.auth.user_data import chats_dir
from utils.chat.settings import default_params
from utils.chat.store import ChatStore


def user_chats_dir(data_dir: Path, user: User) -> Path:
    """The folder of ``user``'s conversations; ``PermissionDenied`` if they may not chat."""
    require(user, Action.CHAT)
    return chats_dir(data_dir, user)


def delete_conversation(store: ChatStore, data_dir: Path, user: User, conversation_id: str) -> bool:
    """Delete one of ``user``'s conversations (``store`` is theirs) and log it."""
    require(user, Action.MANAGE_OWN_DATA)
    deleted = store.delete(conversation_id)
    if deleted:
        AuditLog(data_dir).record(user, "delete conversation", conversation_id)
    return deleted


def new_chat_settings(
    config: AppConfig, personal: PersonalSettings, usable: list[str], fallback: str | None
) -> tuple[str | None, GenerationParams, str]:
    """Model, sampling and system prompt of a new conversation: the user's own defaults
    where they still apply, else the profile's (``fallback`` model)."""
    model_id = personal.chat_model if personal.chat_model in usable else fallback
    params = default_params(model_id, config)
    chosen = {
        name: getattr(personal, name)
        for name in ("temperature", "top_p", "max_new_tokens")
        if getattr(personal, name) is not None
    }
    return model_id, params.model_copy(update=chosen), personal.system_prompt
