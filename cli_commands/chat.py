"""`python cli.py chat`: one question about images, the answer streamed to the terminal.

The turn is kept like a Chat page turn: a conversation under results/chats/
that the page lists too (pass --conversation ID to continue one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.chat.types import GenerationParams
from models.config import AppConfig
from models.registry import create_chat_backend
from utils.chat.service import new_user_message, stream_answer
from utils.chat.store import ChatStore
from utils.errors import BadInput
from utils.ocr.pipeline import document_limits


def run_chat_command(args: argparse.Namespace, config: AppConfig) -> int:
    store = ChatStore(config.data_dir / "chats", document_limits(config))
    params = GenerationParams(
        max_new_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p
    )
    conversation = _conversation(store, args, params, config)
    images = [store.add_image(_read(path), Path(path).name) for path in args.image]
    conversation.messages.append(new_user_message(args.question, images))
    store.save(conversation)
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


def _conversation(store: ChatStore, args: argparse.Namespace, params, config: AppConfig):
    if args.conversation:
        conversation = store.load(args.conversation)
        if conversation is None:
            raise BadInput(f"no saved conversation '{args.conversation}'")
        return conversation
    model = args.model or next((k for k, m in config.models.items() if m.task != "ocr"), None)
    if model is None or model not in config.models:
        raise BadInput(f"no chat model '{model}' in the profile")
    return store.new(model, params, args.system)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {Path(path).name}: {exc.strerror}") from None
