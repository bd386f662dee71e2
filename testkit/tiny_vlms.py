"""Tiny random-weight vision-language models, built locally for tests and benchmarks.

Each ``build_*`` function writes a complete checkpoint folder (config, ≈1 MB of
random weights, processor with its chat template, a byte-level BPE tokenizer
trained here with the ``tokenizers`` library) that loads back with
``AutoProcessor`` + ``AutoModelForImageTextToText`` and no network. The
architectures are the real transformers classes, shrunk: text hidden 64,
2 layers, 4 heads, 2 KV heads; vision 2 layers, width 32. Their answers are
noise; what they exercise is the real code path (templates, image tokens,
generation, streaming, quantization).

Usage::

    from testkit.tiny_vlms import build_qwen2_vl
    folder = build_qwen2_vl(tmp_path / "qwen2_vl")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

TEXT_LAYERS = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
)
# head_dim = 64 / 4 = 16; multimodal RoPE splits head_dim / 2 = 8 frequencies over (t, h, w).
MROPE_SECTION = [2, 3, 3]
SEED = 1234

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
IDEFICS3_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    *[f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)],
]
GOT_OCR2_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<img>",
    "</img>",
    "<imgpad>",
]

# ChatML-style template of the Qwen VL family: each image becomes
# <|vision_start|><|image_pad|><|vision_end|>, which the processor expands to one
# pad token per visual token.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# SmolVLM / Idefics3 style: "User:<image>text<end_of_utterance>\nAssistant:".
IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %} {{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>"
    "{% elif item['type'] == 'text' %} {{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

_TRAINING_TEXT = (
    "invoice receipt total amount date page table row column name address number "
    "the of and to in is for on with as by at from this that text image document "
    "describe read write what where when which price tax sum paid due item qty "
    "first second third line word letter markdown format answer question hello"
)
_WORDS = _TRAINING_TEXT.split()


def _training_lines(count: int = 400) -> list[str]:
    """Deterministic pseudo-sentences, enough for a ≈600-token BPE vocabulary."""
    lines = []
    for i in range(count):
        words = [_WORDS[(i * 7 + j * 13) % len(_WORDS)] for j in range(6 + i % 9)]
        lines.append(" ".join(words) + f" {i} {i * 37 % 1000}.")
    return lines


def train_tokenizer(special_tokens: list[str], eos: str, pad: str, **extra: str) -> Any:
    """A byte-level BPE fast tokenizer that knows the family's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_training_lines(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eos, pad_token=pad, **extra)


def _token_ids(tokenizer: Any, **named: str) -> dict[str, int]:
    return {key: tokenizer.convert_tokens_to_ids(token) for key, token in named.items()}


def _save(folder: Path, model: Any, processor: Any, eos_id: int, pad_id: int) -> Path:
    """Random weights + generation defaults (eos/pad) + processor, written to ``folder``."""
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = pad_id
    model.generation_config.do_sample = False
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _random_model(model_class: Any, config: Any) -> Any:
    """The model with seeded random weights, so every build answers the same way."""
    import torch

    torch.manual_seed(SEED)
    return model_class(config).eval()


def _qwen_text_config(tokenizer: Any, ids: dict[str, int], **extra: Any) -> dict[str, Any]:
    return dict(
        TEXT_LAYERS,
        vocab_size=len(tokenizer),
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": MROPE_SECTION,
        },
        bos_token_id=ids["eos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        **extra,
    )


def _qwen_tokenizer() -> tuple[Any, dict[str, int]]:
    tokenizer = train_tokenizer(QWEN_SPECIAL_TOKENS, eos="<|im_end|>", pad="<|endoftext|>")
    ids = _token_ids(
        tokenizer,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        image="<|image_pad|>",
        video="<|video_pad|>",
        vision_start="<|vision_start|>",
        vision_end="<|vision_end|>",
    )
    return tokenizer, ids


def _qwen_token_fields(ids: dict[str, int]) -> dict[str, int]:
    return dict(
        image_token_id=ids["image"],
        video_token_id=ids["video"],
        vision_start_token_id=ids["vision_start"],
        vision_end_token_id=ids["vision_end"],
    )


def build_qwen2_vl(folder: Path, vision_width: int = 32) -> Path:
    """Qwen2-VL: 14 px patches merged 2x2, so one visual token per 28x28 pixels.

    bitsandbytes' 4-bit CPU kernels need every linear layer's input width to be a
    multiple of their block size (64): build with ``vision_width=64`` to quantize.
    """
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer, ids = _qwen_tokenizer()
    config = Qwen2VLConfig(
        text_config=_qwen_text_config(tokenizer, ids),
        vision_config=dict(
            depth=2, embed_dim=vision_width, hidden_size=64, num_heads=2, mlp_ratio=2
        ),
        **_qwen_token_fields(ids),
    )
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    model = _random_model(Qwen2VLForConditionalGeneration, config)
    return _save(folder, model, processor, ids["eos"], ids["pad"])


def build_qwen2_5_vl(folder: Path) -> Path:
    """Qwen2.5-VL: Qwen2-VL's processor, a windowed-attention vision tower."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer, ids = _qwen_tokenizer()
    config = Qwen2_5_VLConfig(
        text_config=_qwen_text_config(tokenizer, ids),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            fullatt_block_indexes=[1],
        ),
        **_qwen_token_fields(ids),
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    model = _random_model(Qwen2_5_VLForConditionalGeneration, config)
    return _save(folder, model, processor, ids["eos"], ids["pad"])


def build_qwen3_vl(folder: Path) -> Path:
    """Qwen3-VL: 16 px patches merged 2x2 (one visual token per 32x32), deepstack features."""
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tokenizer, ids = _qwen_tokenizer()
    text = _qwen_text_config(tokenizer, ids, head_dim=16)
    text["rope_parameters"]["mrope_interleaved"] = True
    text.pop("bos_token_id")
    text.pop("eos_token_id")
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            num_position_embeddings=256,
            deepstack_visual_indexes=[1],
        ),
        **_qwen_token_fields(ids),
    )
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(),
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    model = _random_model(Qwen3VLForConditionalGeneration, config)
    return _save(folder, model, processor, ids["eos"], ids["pad"])


# Idefics3 tiles: the vision tower sees 64 px tiles in 8 px patches (8x8 = 64 patches),
# pixel-shuffled by 2 -> 16 image tokens per tile; images are resized to ≤ 128 px, so
# at most a 2x2 grid of tiles plus one global view.
IDEFICS3_TILE = 64
IDEFICS3_PATCH = 8
IDEFICS3_SCALE = 2


def build_idefics3(folder: Path) -> Path:
    """Idefics3, the architecture of SmolVLM (image splitting into tiles + a global view)."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    tokenizer = train_tokenizer(
        IDEFICS3_SPECIAL_TOKENS, eos="<end_of_utterance>", pad="<|endoftext|>"
    )
    ids = _token_ids(tokenizer, eos="<end_of_utterance>", pad="<|endoftext|>", image="<image>")
    text = dict(
        TEXT_LAYERS,
        model_type="llama",
        vocab_size=len(tokenizer),
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
    )
    config = Idefics3Config(
        text_config=text,
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=IDEFICS3_TILE,
            patch_size=IDEFICS3_PATCH,
        ),
        scale_factor=IDEFICS3_SCALE,
        image_token_id=ids["image"],
        pad_token_id=ids["pad"],
    )
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": 2 * IDEFICS3_TILE},
        max_image_size={"longest_edge": IDEFICS3_TILE},
    )
    image_seq_len = (IDEFICS3_TILE // IDEFICS3_PATCH) ** 2 // IDEFICS3_SCALE**2
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=IDEFICS3_CHAT_TEMPLATE,
    )
    model = _random_model(Idefics3ForConditionalGeneration, config)
    return _save(folder, model, processor, ids["eos"], ids["pad"])


# GOT-OCR2's processor always inserts 256 image tokens per page: the vision tower
# must produce a 64x64 patch grid (two stride-2 convolutions -> 16x16 = 256).
GOT_IMAGE_SIZE = 128
GOT_PATCH = 2


def build_got_ocr2(folder: Path) -> Path:
    """GOT-OCR2: no chat template; the processor writes the OCR prompt around the image."""
    from transformers import (
        GotOcr2Config,
        GotOcr2ForConditionalGeneration,
        GotOcr2ImageProcessor,
        GotOcr2Processor,
    )

    tokenizer = train_tokenizer(GOT_OCR2_SPECIAL_TOKENS, eos="<|im_end|>", pad="<|endoftext|>")
    ids = _token_ids(tokenizer, eos="<|im_end|>", pad="<|endoftext|>", image="<imgpad>")
    text = dict(
        TEXT_LAYERS,
        model_type="qwen2",
        vocab_size=len(tokenizer),
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        tie_word_embeddings=True,
    )
    config = GotOcr2Config(
        text_config=text,
        vision_config=dict(
            hidden_size=32,
            output_channels=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=GOT_IMAGE_SIZE,
            patch_size=GOT_PATCH,
            mlp_dim=64,
            window_size=8,
            global_attn_indexes=[],
        ),
        image_token_index=ids["image"],
    )
    image_processor = GotOcr2ImageProcessor(
        size={"height": GOT_IMAGE_SIZE, "width": GOT_IMAGE_SIZE}
    )
    processor = GotOcr2Processor(image_processor=image_processor, tokenizer=tokenizer)
    model = _random_model(GotOcr2ForConditionalGeneration, config)
    return _save(folder, model, processor, ids["eos"], ids["pad"])


BUILDERS: dict[str, Callable[..., Path]] = {
    "qwen2_vl": build_qwen2_vl,
    "qwen2_5_vl": build_qwen2_5_vl,
    "qwen3_vl": build_qwen3_vl,
    "idefics3": build_idefics3,
    "got_ocr2": build_got_ocr2,
}


class TinyVlmFolders:
    """Builds each tiny model once under ``root`` and hands out its folder.

    Wrap it in a session-scoped fixture, e.g.::

        @pytest.fixture(scope="session")
        def tiny_vlms(tmp_path_factory):
            return TinyVlmFolders(tmp_path_factory.mktemp("tiny_vlms"))
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, Path] = {}

    def __call__(self, name: str, **options: Any) -> Path:
        """The folder of tiny model ``name`` (a key of ``BUILDERS``) built with ``options``."""
        label = name + "".join(f"-{key}{value}" for key, value in sorted(options.items()))
        if label not in self._built:
            self._built[label] = BUILDERS[name](self.root / label, **options)
        return self._built[label]
