"""A stored conversation as a model sees it: system prompt, then turns with images."""

from __future__ import annotations

from PIL import Image

from models.chat.types import PromptMessage
from utils.chat.conversation import Conversation, StoredMessage
from utils.chat.images import ChatImages


def to_prompt(
    conversation: Conversation, images: ChatImages, upto: int | None = None
) -> list[PromptMessage]:
    """The prompt for the next answer, images loaded from ``images``.

    ``upto`` limits it to ``messages[:upto]``. Interrupted partial answers stay in the
    context; answers with no text (failed before the first token) are left out, and
    the questions around them merged, since some chat templates insist that user and
    assistant turns alternate.
    """
    prompt: list[PromptMessage] = []
    if conversation.system_prompt.strip():
        prompt.append(PromptMessage(role="system", content=[conversation.system_prompt]))
    for message in conversation.messages[:upto]:
        if message.role == "assistant" and not message.text.strip():
            continue
        content = _message_content(message, images)
        if prompt and prompt[-1].role == message.role:
            prompt[-1].content.extend(content)
        else:
            prompt.append(PromptMessage(role=message.role, content=content))
    return prompt


def _message_content(message: StoredMessage, images: ChatImages) -> list[str | Image.Image]:
    # Images before the text: the order VLM chat templates are trained on.
    content: list[str | Image.Image] = [images.load(image) for image in message.images]
    if message.text or not content:
        content.append(message.text)
    return content
