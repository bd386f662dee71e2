"""Chat with a vision-language model about images, multi-turn, streamed, kept on disk."""

from __future__ import annotations

import streamlit as st

import ui
from models.chat.types import GenerationParams
from models.registry import chat_model_ids, create_chat_backend, model_status
from utils.chat.service import new_user_message, stream_answer
from utils.chat.store import (
    ChatStore,
    Conversation,
    StoredMessage,
    replace_last_question,
    truncate_for_regenerate,
)
from utils.errors import AppError
from utils.ocr.pipeline import document_limits
from utils.safe_markdown import SafeStream, safe_markdown

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
CONVERSATION_KEY = "chat_conversation_id"
PENDING_KEY = "chat_pending_answer"
FRESH_KEY = "chat_fresh_conversation"

loaded = ui.profile()
config = loaded.config
st.title("💬 Chat")
ui.show_errors_from_last_run()


@st.cache_resource(show_spinner=False)
def _store(root: str) -> ChatStore:
    return ChatStore(config.data_dir / "chats", document_limits(config))


@st.cache_data(ttl=60, show_spinner=False)
def _statuses(profile_sha: str) -> dict[str, tuple[bool, str, str]]:
    return {
        mid: (s.available, s.detail, s.display_name)
        for mid in chat_model_ids(config)
        for s in [model_status(mid, config)]
    }


store = _store(str(config.data_dir))


def current_conversation() -> Conversation:
    """The tab's conversation: reopened from disk after a refresh, else a new one."""
    conversation_id = st.session_state.get(CONVERSATION_KEY)
    conversation = store.load(conversation_id) if conversation_id else None
    fresh = st.session_state.get(FRESH_KEY)
    if conversation is None and fresh is not None and fresh.id == conversation_id:
        conversation = fresh  # a "New chat" is written with its first question
    if conversation is None:
        recent = store.list()
        conversation = store.load(recent[0].id) if recent else None
    if conversation is None:
        model = default_model()
        conversation = store.new(model, model_defaults(model))
    st.session_state[CONVERSATION_KEY] = conversation.id
    return conversation


def model_defaults(model_id: str | None) -> GenerationParams:
    """The catalog entry's sampling defaults (max_new_tokens, temperature, top_p)."""
    entry = config.models.get(model_id or "")
    if entry is None:
        return GenerationParams()
    return GenerationParams(
        max_new_tokens=entry.max_new_tokens, temperature=entry.temperature, top_p=entry.top_p
    )


def default_model() -> str | None:
    usable = [mid for mid, (ok, _, _) in _statuses(loaded.sha256).items() if ok]
    return usable[0] if usable else next(iter(chat_model_ids(config)), None)


def conversation_sidebar(conversation: Conversation) -> None:
    with st.sidebar:
        st.subheader("Conversations")
        if st.button("➕ New chat", width="stretch"):
            fresh = store.new(
                conversation.model_id, conversation.params, conversation.system_prompt
            )
            st.session_state[CONVERSATION_KEY] = fresh.id
            st.session_state[FRESH_KEY] = fresh
            st.rerun()
        summaries = store.list()
        ids = [s.id for s in summaries]
        if conversation.id in ids:
            titles = {s.id: f"{s.title} ({s.turns})" for s in summaries}
            chosen = st.selectbox(
                "Open", ids, index=ids.index(conversation.id), format_func=titles.get
            )
            if chosen != conversation.id:
                st.session_state[CONVERSATION_KEY] = chosen
                st.rerun()
            manage_conversation(conversation)


def manage_conversation(conversation: Conversation) -> None:
    with st.expander("Rename, delete, export"):
        title = st.text_input("Title", value=conversation.title, max_chars=120)
        if st.button("Rename") and title.strip():
            store.rename(conversation.id, title.strip())
            st.rerun()
        confirm = st.checkbox("I want to delete this conversation")
        if confirm and st.button("Delete for good", type="primary"):
            store.delete(conversation.id)
            st.session_state.pop(CONVERSATION_KEY, None)
            st.rerun()
        st.download_button(
            "Export JSON",
            store.export_json(conversation),
            f"chat-{conversation.id}.json",
            "application/json",
        )
        st.download_button(
            "Export Markdown",
            store.export_markdown(conversation),
            f"chat-{conversation.id}.md",
            "text/markdown",
        )
        imported = st.file_uploader("Import a JSON export", type=["json"], key="chat_import")
        if imported is not None and st.button("Import"):
            try:
                new = store.import_json(imported.getvalue())
            except AppError as exc:
                ui.show_error(exc)
            else:
                st.session_state[CONVERSATION_KEY] = new.id
                st.rerun()


def model_sidebar(conversation: Conversation) -> None:
    statuses = _statuses(loaded.sha256)
    with st.sidebar:
        st.subheader("Model")
        ids = list(statuses)
        if not ids:
            st.error("The active profile has no chat models.")
            return
        index = ids.index(conversation.model_id) if conversation.model_id in ids else 0
        chosen = st.selectbox(
            "Model",
            ids,
            index=index,
            format_func=lambda m: ("" if statuses[m][0] else "⚠️ ") + statuses[m][2],
        )
        if chosen != conversation.model_id and not conversation.messages:
            conversation.params = model_defaults(chosen)  # a fresh chat takes the model's own
        conversation.model_id = chosen
        ok, detail, _ = statuses[conversation.model_id]
        (st.caption if ok else st.warning)(detail)
        conversation.system_prompt = st.text_area(
            "System prompt", value=conversation.system_prompt, height=80
        )
        p = conversation.params
        conversation.params = GenerationParams(
            temperature=st.slider("Temperature", 0.0, 2.0, p.temperature, 0.05),
            top_p=st.slider("Top p", 0.05, 1.0, p.top_p, 0.05),
            max_new_tokens=st.number_input("Max new tokens", 1, 32_768, p.max_new_tokens),
        )


def show_message(message: StoredMessage) -> None:
    with st.chat_message(message.role):
        if message.images:
            cols = st.columns(min(len(message.images), 4))
            for i, image in enumerate(message.images):
                cols[i % len(cols)].image(store.load_image(image), caption=image.name)
        if message.text:
            st.markdown(safe_markdown(message.text))
        if message.error:
            st.error(f"Interrupted: {message.error}")
        elif message.interrupted:
            st.caption("⏹️ stopped before the end")
        if message.usage:
            st.caption(usage_line(message))


def usage_line(message: StoredMessage) -> str:
    u = message.usage
    parts = [f"{u.model_id} · {u.backend}"]
    if u.images:
        parts.append(f"{u.images} image(s), {u.image_pixels / 1e6:.2f} MP")
    if u.prompt_tokens is not None or u.completion_tokens is not None:
        parts.append(f"{u.prompt_tokens or '?'} → {u.completion_tokens or '?'} tokens")
    parts.append(f"{u.seconds:.1f} s")
    if u.tokens_per_second:
        parts.append(f"{u.tokens_per_second:.1f} tok/s")
    return " · ".join(parts)


def add_user_message(conversation: Conversation, text: str, files: list) -> None:
    """Attach the images and queue the question; nothing is sent if an image is refused
    (the model would answer about a picture it never saw). The page reruns right after
    this, so refusals are shown on the next run."""
    images = []
    refused = 0
    for upload in files:
        try:
            images.append(store.add_image(upload.getvalue(), upload.name))
        except AppError as exc:
            refused += 1
            ui.error_after_rerun(exc.message, exc.hint)
    if refused:
        ui.error_after_rerun(
            "The question was not sent.",
            hint="Ask again with readable images (or without the refused ones).",
        )
        return
    if not text.strip() and not images:
        return
    conversation.messages.append(new_user_message(text, images))
    store.save(conversation)
    st.session_state[PENDING_KEY] = conversation.id


def answer(conversation: Conversation) -> None:
    """Stream the answer to the last question; the service saves it however it ends."""
    st.session_state.pop(PENDING_KEY, None)
    try:
        backend = create_chat_backend(conversation.model_id or "", config)
    except AppError as exc:
        ui.show_error(exc)
        return
    with st.chat_message("assistant"):
        st.button("⏹️ Stop", key="stop_generation")  # a click reruns: the stream is closed
        safe = SafeStream()
        chunks = stream_answer(store, conversation, backend, conversation.params)
        try:
            st.write_stream(_safe_chunks(chunks, safe))
        except AppError as exc:
            ui.show_error(exc)
    st.rerun()


def _safe_chunks(chunks, safe: SafeStream):
    for chunk in chunks:
        if text := safe.feed(chunk):
            yield text
    if rest := safe.flush():
        yield rest


def last_turn_actions(conversation: Conversation) -> None:
    if not conversation.messages:
        return
    cols = st.columns(2)
    if conversation.messages[-1].role == "assistant" and cols[0].button("🔁 Regenerate"):
        conversation = truncate_for_regenerate(conversation)
        store.save(conversation)
        st.session_state[PENDING_KEY] = conversation.id
        st.rerun()
    with cols[1].popover("✏️ Edit last question"):
        last_question = next(
            (m.text for m in reversed(conversation.messages) if m.role == "user"), ""
        )
        edited = st.text_area("Question", value=last_question, key="edit_question")
        if st.button("Resend") and edited.strip():
            conversation = replace_last_question(conversation, edited)
            store.save(conversation)
            st.session_state[PENDING_KEY] = conversation.id
            st.rerun()


conversation = current_conversation()
conversation_sidebar(conversation)
model_sidebar(conversation)
for message in conversation.messages:
    show_message(message)
if st.session_state.get(PENDING_KEY) == conversation.id:
    answer(conversation)
last_turn_actions(conversation)
prompt = st.chat_input(
    "Ask about your images…", accept_file="multiple", file_type=IMAGE_TYPES, key="chat_prompt"
)
if prompt:
    add_user_message(conversation, prompt.text or "", list(prompt.files or []))
    st.rerun()
