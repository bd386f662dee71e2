"""`python cli.py chat`: one question about images, the answer streamed to the terminal.

The turn is kept like a Chat page turn: a conversation in the user's chats folder
(``<data_dir>/chats`` for the local operator, ``<data_dir>/users/<id>/chats`` with
``--user``) that the page lists too (pass --conversation ID to continue one; another
user's id is "no saved conversation"). Sampling settings not given on the command
line come from the conversation; a new one starts, as on the page, with the user's
own defaults (saved with ⭐ on the Chat page), else the model's entry in the profile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from models.chat.types import GenerationParams
from models.config import AppConfig
from models.registry import create_chat_backend
from utils.auth import User
from utils.auth.personal import read_personal_settings
from utils.chat.conversation import Conversation
from utils.chat.service import save_question, stream_answer
from utils.chat.settings import default_chat_model, require_chat_model
from utils.chat.store import ChatStore
from utils.chat.user_chats import new_chat_settings, user_chats_dir
from utils.errors import BadInput
from utils.ocr.pipeline import document_limits


def run_chat_command(args: argparse.Namespace, config: AppConfig, user: User) -> int:
    """One turn for ``user`` (``PermissionDenied`` when their role may not chat)."""
    store = ChatStore(user_chats_dir(config.data_dir, user), document_limits(config))
    conversation = _conversation(store, args, config, user)
    require_chat_model(conversation.model_id, config)
    params = _with_overrides(conversation.params, args)
    images = [store.images.add(_read(path), Path(path).name) for path in args.image]
    save_question(store, conversation, args.question, images)
    backend = create_chat_backend(conversation.model_id or "", config)
    for chunk in stream_answer(store, conversation, backend, params):
        print(chunk, end="", flush=True)
    print()
    usage = conversation.messages[-1].usage
    if usage is not None:
        print(
            f"[{usage.model_id} · {usage.prompt_tokens} → {usage.completion_tokens} tokens · "
            f"{usage.seconds:.1f} s · conversation {conversation.id}]",
            file=sys.stderr,
        )
    return 0


def _conversation(
    store: ChatStore, args: argparse.Namespace, config: AppConfig, user: User
) -> Conversation:
    if args.conversation:
        conversation = store.load(args.conversation)
        if conversation is None:
            raise BadInput(f"no saved conversation '{args.conversation}'")
        return conversation
    model, params, system_prompt = _new_chat_settings(args, config, user)
    return store.new(model, _with_overrides(params, args), args.system or system_prompt)


def _new_chat_settings(
    args: argparse.Namespace, config: AppConfig, user: User
) -> tuple[str | None, GenerationParams, str]:
    """The user's own defaults (⭐ on the Chat page) as a new chat there starts with them;
    ``--model`` replaces their model but keeps their sampling."""
    personal = read_personal_settings(config.data_dir, user)
    if args.model:
        return new_chat_settings(config, personal, [args.model], args.model)
    chat_models = [key for key, entry in config.models.items() if entry.task != "ocr"]
    return new_chat_settings(config, personal, chat_models, default_chat_model(config))


def _with_overrides(params: GenerationParams, args: argparse.Namespace) -> GenerationParams:
    """``params`` with the sampling options given on the command line (None: not given)."""
    given = {
        "max_new_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
    }
    merged = {**params.model_dump(), **{k: v for k, v in given.items() if v is not None}}
    try:
        return GenerationParams.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise BadInput(f"bad sampling option ({problems})") from None


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {Path(path).name}: {exc.strerror}") from None
