"""Conversations in and out of the app: a JSON export with the images embedded, a
Markdown transcript, and the import of an export (everything checked before anything
is stored)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from pydantic import ValidationError

from models.chat.types import Usage
from utils.chat.conversation import (
    DEFAULT_TITLE,
    TITLE_MAX_CHARS,
    Conversation,
    StoredImage,
    StoredMessage,
    all_images,
    clean_title,
    new_conversation_id,
)
from utils.chat.images import ChatImages
from utils.chat.store import ChatStore
from utils.documents.uploads import sanitize_filename
from utils.errors import BadInput

EXPORT_FORMAT = "chatvlmllm-conversation"
EXPORT_FORMAT_VERSION = 1
#: Largest conversation file ``import_json`` accepts (base64 images included).
DEFAULT_MAX_IMPORT_MB = 200.0

_EXPORT_AGAIN = "Import a file made by “Export conversation”."
#: The mark ``imported_title`` adds; dropped before marking again (no "(imported) (imported)").
_IMPORTED_SUFFIX = re.compile(r" \(imported(?: [0-9]+)?\)$")


def export_json(conversation: Conversation, images: ChatImages) -> bytes:
    """A portable file: the conversation plus its images embedded as base64."""
    embedded: dict[str, dict[str, str]] = {}
    for image in all_images(conversation):
        if image.sha256 not in embedded:
            embedded[image.sha256] = {
                "ext": image.ext,
                "data": base64.b64encode(images.original_bytes(image)).decode("ascii"),
            }
    document = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "conversation": {
            **conversation.model_dump(mode="json"),
            "schema_version": Conversation.SCHEMA_VERSION,
        },
        "images": embedded,
    }
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


def import_json(
    store: ChatStore,
    data: bytes,
    filename: str = "conversation.json",
    max_mb: float = DEFAULT_MAX_IMPORT_MB,
) -> Conversation:
    """Read an ``export_json`` file into a new, saved conversation with a new id.

    Everything is checked before anything is stored: size, format, schema, and that
    each embedded image matches its hash; then each image is stored like an upload.
    """
    name = sanitize_filename(filename)
    raw = _parse_export(data, name, max_mb)
    conversation = _validate_imported(raw.get("conversation"), name)
    image_bytes = _decode_embedded_images(raw.get("images"), conversation, name)
    stored: dict[str, StoredImage] = {}
    for image in all_images(conversation):
        if image.sha256 not in stored:
            stored[image.sha256] = store.images.add(image_bytes[image.sha256], image.name)
    for message in conversation.messages:
        # Size and format come from the bytes, not from what the file claims.
        message.images = [
            stored[image.sha256].model_copy(update={"name": sanitize_filename(image.name)})
            for image in message.images
        ]
    taken = {summary.title for summary in store.list()}
    conversation.title = imported_title(conversation.title, taken)
    store.save(conversation)
    return conversation


def imported_title(title: str, taken: set[str]) -> str:
    """``title`` cleaned; marked "(imported)", numbered if need be, when another stored
    conversation has it already (re-importing an export must not make two identical
    entries in the list)."""
    cleaned = clean_title(title) or DEFAULT_TITLE
    base = _IMPORTED_SUFFIX.sub("", cleaned) or DEFAULT_TITLE
    candidate, number = cleaned, 1
    while candidate in taken:
        mark = " (imported)" if number == 1 else f" (imported {number})"
        candidate = clean_title(base, TITLE_MAX_CHARS - len(mark)) + mark
        number += 1
    return candidate


def export_markdown(conversation: Conversation) -> str:
    """A readable transcript; images by name, texts as they are (a download)."""
    params = conversation.params
    lines = [
        f"# {conversation.title}",
        "",
        f"- Model: {conversation.model_id or '(none)'}",
        f"- Created: {conversation.created_at}",
        f"- Updated: {conversation.updated_at}",
        f"- Settings: max_new_tokens={params.max_new_tokens}, "
        f"temperature={params.temperature:g}, top_p={params.top_p:g}",
        "",
    ]
    if conversation.system_prompt.strip():
        lines += ["## System prompt", "", conversation.system_prompt, ""]
    for message in conversation.messages:
        lines += _markdown_turn(message)
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- markdown


def _markdown_turn(message: StoredMessage) -> list[str]:
    speaker = "You" if message.role == "user" else "Assistant"
    lines = [f"## {speaker} ({message.created_at})", ""]
    lines += [f"[image: {image.name}, {image.width}×{image.height}]" for image in message.images]
    if message.images:
        lines.append("")
    if message.text:
        lines += [message.text, ""]
    if message.interrupted:
        lines += ["*(stopped before the answer was complete)*", ""]
    if message.error:
        lines += [f"*(failed: {message.error})*", ""]
    if message.usage is not None:
        lines += [_usage_line(message.usage), ""]
    return lines


def _usage_line(usage: Usage) -> str:
    parts = [f"{usage.model_id} via {usage.backend}"]
    if usage.completion_tokens is not None:
        parts.append(f"{usage.completion_tokens} tokens")
    parts.append(f"{usage.seconds:.1f} s")
    return "*" + ", ".join(parts) + "*"


# --------------------------------------------------------------------------- import checks


def _parse_export(data: bytes, name: str, max_mb: float) -> dict[str, Any]:
    if len(data) > max_mb * 1024 * 1024:
        raise BadInput(
            f"{name} is {len(data) / 1024 / 1024:.1f} MB, over the import limit of {max_mb:g} MB.",
            hint="Import a smaller conversation export.",
        )
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"{name} is not a JSON file.", hint=_EXPORT_AGAIN) from exc
    if not isinstance(raw, dict) or raw.get("format") != EXPORT_FORMAT:
        raise BadInput(f"{name} is not a conversation export of this app.", hint=_EXPORT_AGAIN)
    if raw.get("format_version") != EXPORT_FORMAT_VERSION:
        raise BadInput(
            f"{name} has export format version {raw.get('format_version')!r:.20}; "
            f"this app reads version {EXPORT_FORMAT_VERSION}.",
            hint="Export it again with this version of the app.",
        )
    return raw


def _validate_imported(raw: Any, name: str) -> Conversation:
    if not isinstance(raw, dict):  # no "conversation" key, or not an object
        raise BadInput(f"{name} holds no conversation.", hint="The file is damaged; export again.")
    version = raw.get("schema_version")
    if version != Conversation.SCHEMA_VERSION:
        raise BadInput(
            f"{name} holds a conversation of schema version {version!r:.20}; "
            f"this app reads version {Conversation.SCHEMA_VERSION}.",
            hint="Export it again with this version of the app.",
        )
    # The id in the file is ignored: an import always becomes a new conversation.
    try:
        return Conversation.model_validate({**raw, "id": new_conversation_id()})
    except ValidationError as exc:
        raise BadInput(
            f"{name} does not hold a valid conversation ({_describe_errors(exc)}).",
            hint="The file is damaged or was edited by hand; export it again.",
        ) from exc


def _decode_embedded_images(
    raw_images: Any, conversation: Conversation, name: str
) -> dict[str, bytes]:
    """The bytes of every image the conversation refers to, each checked against its hash."""
    if not isinstance(raw_images, dict):
        raise BadInput(f"{name} has no image section.", hint="The file is damaged; export again.")
    decoded: dict[str, bytes] = {}
    for image in all_images(conversation):
        if image.sha256 in decoded:
            continue
        entry = raw_images.get(image.sha256)
        blob = _decode_base64(entry.get("data") if isinstance(entry, dict) else None)
        if blob is None:
            raise BadInput(
                f"{name} lacks the image {image.name} that the conversation refers to.",
                hint="The file is incomplete or was edited by hand; export it again.",
            )
        if hashlib.sha256(blob).hexdigest() != image.sha256:
            raise BadInput(
                f"The image {image.name} in {name} does not match its checksum.",
                hint="The file was altered or damaged; export it again.",
            )
        decoded[image.sha256] = blob
    return decoded


def _decode_base64(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _describe_errors(exc: ValidationError) -> str:
    # Field paths and messages only: str(exc) would quote the file's content.
    parts = [
        f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
        for error in exc.errors()[:3]
    ]
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; {more} more" if more else "")
