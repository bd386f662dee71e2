"""How long the Chat page's save-after-every-turn takes as a conversation grows.

    python scripts/perf/chat_store_speed.py [--turns 100] [--images 4]

Builds a conversation of ``--turns`` question/answer pairs (questions of a few hundred
characters, answers of one to three thousand, usage attached, a few photo-sized images),
saving after every turn into a temp folder the way the page does (``append_messages``:
lock, read the file again, append, write). Prints the mean and
p95 milliseconds per save and the final file size (target: under 20 ms per save at 100
turns), then the time to load() the finished conversation, list() cold and warm, and
to_prompt() cold and warm.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from PIL import Image  # noqa: E402

from models.chat.types import GenerationParams, Usage  # noqa: E402
from utils.chat.conversation import StoredImage, StoredMessage  # noqa: E402
from utils.chat.prompt import to_prompt  # noqa: E402
from utils.chat.store import ChatStore  # noqa: E402
from utils.documents.limits import DocumentLimits  # noqa: E402

_VOCABULARY = (
    "the total amount invoice receipt date vendor line item price tax subtotal paid cash card "
    "change address phone number table column row value document page header footer signed "
    "according to shown above below left right first second third because therefore"
)
_WORDS = _VOCABULARY.split()


def prose(rng: random.Random, chars: int) -> str:
    """Sentences of ordinary words, about ``chars`` long, with some markdown lines."""
    parts: list[str] = []
    length = 0
    while length < chars:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 16)))
        line = sentence.capitalize() + ("." if rng.random() < 0.8 else ":\n- item 12.50 EUR")
        parts.append(line)
        length += len(line) + 1
    return " ".join(parts)[:chars]


def photo_bytes(rng: random.Random, size: tuple[int, int]) -> bytes:
    """A JPEG of noise-like content, so it compresses like a photo, not a flat colour."""
    small = Image.frombytes(
        "RGB", (size[0] // 8, size[1] // 8), rng.randbytes(size[0] * size[1] // 64 * 3)
    )
    buffer = io.BytesIO()
    small.resize(size, Image.Resampling.BILINEAR).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def attach_images(store: ChatStore, rng: random.Random, count: int) -> list[StoredImage]:
    images = []
    for number in range(count):
        data = photo_bytes(rng, (1600, 1200))
        elapsed = timed(
            lambda data=data, number=number: images.append(
                store.images.add(data, f"photo {number + 1}.jpg")
            )
        )
        print(f"images.add, {len(data) / 1024:.0f} KiB 1600x1200 JPEG: {elapsed:.1f} ms")
    return images


def run(turns: int, image_count: int, root: Path) -> None:
    rng = random.Random(7)
    store = ChatStore(root / "chats", DocumentLimits())
    images = attach_images(store, rng, image_count)
    image_turns = {
        round(index * turns / max(image_count, 1)): image for index, image in enumerate(images)
    }
    conversation = store.new("Qwen2.5-VL-3B", GenerationParams(max_new_tokens=1024))
    usage = Usage(
        model_id="Qwen2.5-VL-3B",
        backend="transformers",
        prompt_tokens=1800,
        completion_tokens=420,
        seconds=9.3,
    )

    save_ms: list[float] = []
    for turn in range(turns):
        attached = [image_turns[turn]] if turn in image_turns else []
        turn_messages = [
            StoredMessage(role="user", text=prose(rng, rng.randint(80, 500)), images=attached),
            StoredMessage(role="assistant", text=prose(rng, rng.randint(1000, 3000)), usage=usage),
        ]
        save_ms.append(
            timed(
                lambda turn_messages=turn_messages: store.append_messages(
                    conversation, turn_messages
                )
            )
        )

    path = store.root / f"{conversation.id}.json"
    print(
        f"save, {turns} turns: mean {statistics.mean(save_ms):.2f} ms, p95 {p95(save_ms):.2f} ms, "
        f"last {save_ms[-1]:.2f} ms, max {max(save_ms):.2f} ms"
    )
    print(f"final file: {path.stat().st_size / 1024:.0f} KiB")
    load_ms = [timed(lambda: store.load(conversation.id)) for _ in range(20)]
    print(f"load, {turns} turns: mean {statistics.mean(load_ms):.2f} ms, p95 {p95(load_ms):.2f} ms")
    cold = ChatStore(store.root, DocumentLimits())
    print(f"list (1 conversation): cold {timed(cold.list):.2f} ms, warm {timed(cold.list):.2f} ms")
    prompt_cold = timed(lambda: to_prompt(conversation, cold.images))
    prompt_warm = timed(lambda: to_prompt(conversation, cold.images))
    print(f"to_prompt ({image_count} images): cold {prompt_cold:.1f} ms, warm {prompt_warm:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chat_store_speed_") as folder:
        run(args.turns, args.images, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
