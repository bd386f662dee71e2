"""Chat with a vision-language model about images, multi-turn, streamed, kept on disk."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import streamlit as st

import ui
from app_pages.chat_setup import NO_MODEL_PLACEHOLDER, show_no_model_state
from models.chat.types import GenerationParams
from models.registry import Availability, availabilities, chat_model_ids, create_chat_backend
from utils.auth.personal import read_personal_settings, save_personal_settings
from utils.chat.conversation import (
    Conversation,
    StoredImage,
    StoredMessage,
    is_conversation_id,
    replace_last_question,
    truncate_for_regenerate,
)
from utils.chat.service import save_question, stream_answer
from utils.chat.settings import default_params
from utils.chat.store import ChatStore
from utils.chat.transfer import export_json, export_markdown, import_json
from utils.chat.user_chats import delete_conversation, new_chat_settings, user_chats_dir
from utils.errors import AppError
from utils.ocr.pipeline import document_limits
from utils.safe_markdown import SafeStream, safe_markdown

CONVERSATION_KEY = "chat_conversation_id"
UNSENT_KEY = "chat_unsent_question"  # put back into the input after a refusal
PENDING_KEY = "chat_pending_answer"
FRESH_KEY = "chat_fresh_conversation"
SHOWN_KEY = "chat_shown_revision"  # (id, updated_at) of the conversation last rendered
URL_PARAM = "c"  # ?c=<conversation id>: refresh, back/forward and shared links reopen it
THUMBNAIL_PX = 240  # images in the conversation; the fullscreen button shows them whole
PICKER_SIZE = 20  # conversations offered when the URL names an unknown one
ANSWERING_KEY = "chat_answer_in_flight"  # (stop, saved) events of the answer streaming
ANSWER_SAVE_WAIT_S = 30.0  # a stopped answer is saved at its next chunk: well within this

logger = logging.getLogger(__name__)
loaded = ui.profile()
config = loaded.config
st.title("💬 Chat")
ui.show_errors_from_last_run()


@st.cache_resource(show_spinner=False)
def _store(root: str) -> ChatStore:
    """One store per user folder and server process (it caches parsed conversations)."""
    return ChatStore(Path(root), document_limits(config))


@st.cache_data(ttl=60, show_spinner=False)
def _statuses(profile_sha: str) -> dict[str, Availability]:
    return availabilities(config, "chat")


user = ui.current_user()
try:
    store = _store(str(user_chats_dir(config.data_dir, user)))
except AppError as exc:  # a role without chat (the page is not offered to it)
    ui.show_error(exc)
    st.stop()


def current_conversation() -> Conversation:
    """The tab's conversation: the one the URL names (a refresh, back/forward, a shared
    link), else the one this session had open, else the newest, else a new one."""
    conversation_id = st.session_state.get(CONVERSATION_KEY)
    requested = st.query_params.get(URL_PARAM)
    if requested and requested != conversation_id:
        conversation_id = requested_conversation_id(requested)
    conversation = store.load(conversation_id) if conversation_id else None
    fresh = st.session_state.get(FRESH_KEY)
    if conversation is None and fresh is not None and fresh.id == conversation_id:
        # A "New chat" is written with its first question; until then the URL names
        # nothing (a refresh of it would find no such conversation).
        st.query_params.pop(URL_PARAM, None)
        return fresh
    if conversation is None:
        recent = store.list()
        conversation = store.load(recent[0].id) if recent else None
    if conversation is None:
        return start_default_chat()
    open_conversation(conversation.id)
    return conversation


def requested_conversation_id(requested: str) -> str:
    """The id from the URL if it names a stored conversation; otherwise say so, offer
    the list, and stop the run. A malformed id is never looked up (it would name a path)."""
    if is_conversation_id(requested) and store.load(requested) is not None:
        return requested
    st.warning(
        f"There is no conversation {ui.untrusted(repr(requested)[:80])}: the link is "
        "wrong, or the conversation was deleted."
    )
    conversation_picker()
    st.stop()


def conversation_picker() -> None:
    """The stored conversations as buttons, newest first, and a way to start a new one."""
    summaries = store.list()
    st.markdown("**Open a conversation:**" if summaries else "There are no conversations yet.")
    for summary in summaries[:PICKER_SIZE]:
        label = f"💬 {ui.untrusted(summary.title)} ({summary.turns})"
        if st.button(label, key=f"open_{summary.id}"):
            open_conversation(summary.id)
            st.rerun()
    if st.button("➕ New chat", key="picker_new_chat"):
        start_default_chat()
        st.rerun()


def start_new_chat(
    model_id: str | None, params: GenerationParams | None = None, system_prompt: str = ""
) -> Conversation:
    """An empty conversation, open in this tab; stored with its first question."""
    params = params or default_params(model_id, config)
    fresh = store.new(model_id, params, system_prompt)
    st.session_state[FRESH_KEY] = fresh
    st.session_state[CONVERSATION_KEY] = fresh.id
    st.query_params.pop(URL_PARAM, None)
    return fresh


def start_default_chat() -> Conversation:
    """A new conversation with the user's own defaults (else the profile's)."""
    personal = read_personal_settings(config.data_dir, user)
    usable = [m for m, verdict in _statuses(loaded.sha256).items() if verdict.available]
    return start_new_chat(*new_chat_settings(config, personal, usable, default_model()))


def save_as_my_defaults(conversation: Conversation) -> None:
    try:
        save_personal_settings(
            config.data_dir,
            user,
            chat_model=conversation.model_id,
            system_prompt=conversation.system_prompt,
            **conversation.params.model_dump(),
        )
    except AppError as exc:
        ui.show_error(exc)
    else:
        st.toast("New chats will start with these settings.")


def open_conversation(conversation_id: str) -> None:
    """Show ``conversation_id`` from now on, and name it in the URL (refresh, links)."""
    st.session_state[CONVERSATION_KEY] = conversation_id
    if st.query_params.get(URL_PARAM) != conversation_id:
        st.query_params[URL_PARAM] = conversation_id


def default_model() -> str | None:
    """The first chat model that can run here, else the profile's first one."""
    return first_usable_model() or next(iter(chat_model_ids(config)), None)


def first_usable_model() -> str | None:
    return next((m for m, verdict in _statuses(loaded.sha256).items() if verdict.available), None)


def model_added() -> None:
    """A model was downloaded or a server connected: look at the models again."""
    _statuses.clear()
    st.rerun()


def conversation_sidebar(conversation: Conversation) -> None:
    with st.sidebar:
        st.subheader("Conversations")
        if st.button("➕ New chat", width="stretch"):
            start_new_chat(conversation.model_id, conversation.params, conversation.system_prompt)
            st.rerun()
        summaries = store.list()
        ids = [s.id for s in summaries]
        if conversation.id in ids:
            titles = {s.id: f"{s.title} ({s.turns})" for s in summaries}
            chosen = st.selectbox(
                "Open", ids, index=ids.index(conversation.id), format_func=titles.get
            )
            if chosen != conversation.id:
                open_conversation(chosen)
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
            delete_conversation(store, config.data_dir, user, conversation.id)
            st.session_state.pop(CONVERSATION_KEY, None)
            st.query_params.pop(URL_PARAM, None)
            st.rerun()
        st.download_button(
            "Export JSON",
            export_json(conversation, store.images),
            f"chat-{conversation.id}.json",
            "application/json",
        )
        st.download_button(
            "Export Markdown",
            export_markdown(conversation),
            f"chat-{conversation.id}.md",
            "text/markdown",
        )
        imported = st.file_uploader("Import a JSON export", type=["json"], key="chat_import")
        if imported is not None and st.button("Import"):
            try:
                new = import_json(store, imported.getvalue(), imported.name)
            except AppError as exc:
                ui.show_error(exc)
            else:
                open_conversation(new.id)
                st.rerun()


def model_sidebar(conversation: Conversation) -> None:
    statuses = _statuses(loaded.sha256)
    with st.sidebar:
        st.subheader("Model")
        ids = list(statuses)
        if not ids:
            st.error("The active profile has no chat models.")
            return
        # A model that cannot run here is not offered first: the first one that can is.
        runs = conversation.model_id in ids and statuses[conversation.model_id].available
        preferred = conversation.model_id if runs else first_usable_model()
        index = ids.index(preferred) if preferred in ids else 0
        chosen = st.selectbox(
            "Model",
            ids,
            index=index,
            format_func=lambda m: (
                ("" if statuses[m].available else "⚠️ ") + statuses[m].display_name
            ),
        )
        if chosen != conversation.model_id and not conversation.messages:
            # A fresh chat takes the model's own sampling settings.
            conversation.params = default_params(chosen, config)
        conversation.model_id = chosen
        verdict = statuses[conversation.model_id]
        (st.caption if verdict.available else st.warning)(ui.untrusted(verdict.detail))
        conversation.system_prompt = st.text_area(
            "System prompt", value=conversation.system_prompt, height=80
        )
        p = conversation.params
        conversation.params = GenerationParams(
            temperature=st.slider("Temperature", 0.0, 2.0, p.temperature, 0.05),
            top_p=st.slider("Top p", 0.05, 1.0, p.top_p, 0.05),
            max_new_tokens=st.number_input("Max new tokens", 1, 32_768, p.max_new_tokens),
        )
        if st.button("⭐ Use for my new chats", key="chat_save_defaults"):
            save_as_my_defaults(conversation)


def show_message(message: StoredMessage) -> None:
    with st.chat_message(message.role):
        if message.images:
            show_thumbnails(message.images)
        if message.text:
            st.markdown(safe_markdown(message.text))
        if message.error:
            st.error("Interrupted: " + ui.untrusted(message.error))
        elif message.interrupted:
            st.caption("⏹️ stopped before the end")
        if message.usage:
            st.caption(usage_line(message))


def show_thumbnails(images: list[StoredImage]) -> None:
    """Each image in a box of ``THUMBNAIL_PX``, side by side, wrapping. The box, not
    ``st.image(width=...)``, bounds the size: an int width would send the picture
    shrunk to it, and the element's fullscreen button (click to enlarge) would show
    the thumbnail blown up instead of the picture."""
    row = st.container(horizontal=True, gap="small")
    for image in images:
        with row.container(width=THUMBNAIL_PX):
            st.image(store.images.load(image), caption=ui.untrusted(image.name))


def usage_line(message: StoredMessage) -> str:
    u = message.usage
    parts = [f"{ui.untrusted(u.model_id)} · {u.backend}"]
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
    if (text.strip() or files) and not backend_ready(conversation, text):
        return
    images = []
    refused = 0
    for upload in files:
        try:
            images.append(store.images.add(upload.getvalue(), upload.name))
        except AppError as exc:
            refused += 1
            ui.error_after_rerun(exc.message, exc.hint)
    if refused:
        ui.error_after_rerun(
            "The question was not sent.",
            hint="Ask again with readable images (or without the refused ones).",
        )
        st.session_state[UNSENT_KEY] = text
        return
    if not text.strip() and not images:
        return
    try:
        save_question(store, conversation, text, images)
    except AppError as exc:
        ui.error_after_rerun(exc.message, exc.hint)
        st.session_state[UNSENT_KEY] = text
        return
    st.session_state[PENDING_KEY] = conversation.id


def backend_ready(conversation: Conversation, text: str) -> bool:
    """Whether the model can be created; checked before anything of the turn is saved
    (a question that never reaches a model would stay unanswered in the file)."""
    try:
        with st.spinner("Getting the model ready…"):
            create_chat_backend(conversation.model_id or "", config)
    except AppError as exc:
        ui.error_after_rerun("The question was not sent: " + exc.message, exc.hint)
        st.session_state[UNSENT_KEY] = text
        return False
    return True


def answer(conversation: Conversation) -> None:
    """Stream the answer to the last question; the service saves it however it ends."""
    st.session_state.pop(PENDING_KEY, None)
    try:
        backend = create_chat_backend(conversation.model_id or "", config)
    except AppError as exc:
        ui.show_error(exc)
        return
    in_flight = (threading.Event(), threading.Event())  # (stop it, it is saved)
    st.session_state[ANSWERING_KEY] = in_flight
    with st.chat_message("assistant"):
        st.button("⏹️ Stop", key="stop_generation")  # a click reruns: see stop_answer_in_flight
        safe = SafeStream()
        chunks = stream_answer(store, conversation, backend, conversation.params, in_flight[0])
        try:
            st.write_stream(_safe_chunks(chunks, safe))
        except AppError as exc:
            ui.show_error(exc)
        finally:
            # Also when Streamlit stops this run at a chunk: the answer so far is saved
            # now, not whenever the garbage collector finalises the generator.
            chunks.close()
            in_flight[1].set()
            if st.session_state.get(ANSWERING_KEY) is in_flight:
                st.session_state.pop(ANSWERING_KEY, None)
    st.rerun()


def stop_answer_in_flight() -> None:
    """Stop this session's answer if one is streaming, and wait until it is saved.

    A click during an answer (Stop, or any widget) starts this run at once, in a new
    thread, while the old run is still streaming (Streamlit's fast reruns). Drawn
    before the old run saved the partial answer, the page would show the question
    without it until a refresh.
    """
    in_flight = st.session_state.pop(ANSWERING_KEY, None)
    if in_flight is None:
        return
    stop, saved = in_flight
    stop.set()
    if not saved.wait(ANSWER_SAVE_WAIT_S):
        logger.warning("the stopped answer was not saved within %.0f s", ANSWER_SAVE_WAIT_S)


def _safe_chunks(chunks, safe: SafeStream):
    for chunk in chunks:
        if text := safe.feed(chunk):
            yield text
    if rest := safe.flush():
        yield rest


def last_turn_actions(conversation: Conversation, shown_revision: str) -> None:
    """Regenerate or edit the last turn, if the conversation is still as the user saw it
    (another tab or `cli.py chat` may have added turns since this page was drawn)."""
    if not conversation.messages:
        return
    cols = st.columns(2)
    if conversation.messages[-1].role == "assistant" and cols[0].button("🔁 Regenerate"):
        save_edit_and_answer(truncate_for_regenerate(conversation), shown_revision)
    with cols[1].popover("✏️ Edit last question"):
        last_question = next(
            (m.text for m in reversed(conversation.messages) if m.role == "user"), ""
        )
        edited = st.text_area("Question", value=last_question, key="edit_question")
        if st.button("Resend") and edited.strip():
            save_edit_and_answer(replace_last_question(conversation, edited), shown_revision)


def save_edit_and_answer(edited: Conversation, shown_revision: str) -> None:
    try:
        store.save_edit(edited, shown_revision)
    except AppError as exc:
        ui.error_after_rerun(exc.message, exc.hint)
    else:
        st.session_state[PENDING_KEY] = edited.id
    st.rerun()


def revision_shown_before(conversation: Conversation) -> str:
    """The revision of ``conversation`` the previous run drew (what a click acts on)."""
    shown = st.session_state.get(SHOWN_KEY)
    if shown is not None and shown[0] == conversation.id:
        return shown[1]
    return conversation.updated_at


stop_answer_in_flight()
model_usable = first_usable_model() is not None
conversation = current_conversation()
shown_revision = revision_shown_before(conversation)
conversation_sidebar(conversation)
model_sidebar(conversation)
for message in conversation.messages:
    show_message(message)
st.session_state[SHOWN_KEY] = (conversation.id, conversation.updated_at)
if not model_usable:
    show_no_model_state(config, model_added)
if st.session_state.get(PENDING_KEY) == conversation.id:
    answer(conversation)
last_turn_actions(conversation, shown_revision)
# No `file_type`: Streamlit would refuse some names (a NUL byte) with its own traceback;
# the store reads each file by its content and refuses anything but an image, by name.
if unsent := st.session_state.pop(UNSENT_KEY, None):
    st.session_state["chat_prompt"] = unsent  # the typed question is not lost
prompt = st.chat_input(
    "Ask about your images…" if model_usable else NO_MODEL_PLACEHOLDER,
    accept_file="multiple",
    disabled=not model_usable,
    key="chat_prompt",
    max_upload_size=ui.upload_limit_mb(config),
)
if prompt:
    add_user_message(conversation, prompt.text or "", list(prompt.files or []))
    st.rerun()
