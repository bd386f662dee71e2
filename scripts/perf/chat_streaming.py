"""What the streaming chat path costs on top of a bare ``model.generate``.

    python scripts/perf/chat_streaming.py [--family qwen2_vl] [--runs 15] [--tokens 64]

Builds a tiny random-weight VLM (testkit/tiny_vlms.py) into a temp folder,
loads it through ``models.chat.hf_loading.load_backend`` and times, on the same prompt
(one image + a question), greedy, exactly ``--tokens`` new tokens each
(``min_new_tokens`` is forced so every run is the same length):

- bare:   ``model.generate(**inputs)`` with the inputs encoded once, beforehand;
- bare + encoding: the same, encoding the prompt each time (what a bare script
  answering a new question does);
- stream: ``backend.stream(messages, params)`` consumed to the end — chat
  template, image processing, worker thread, streamer decoding, usage.

Prints median wall times, the overhead of the stream path in %, its time to
first chunk, and the parts the overhead is made of (input encoding measured
alone; the rest is thread + streamer). Target: overhead <= 5 %; both baselines are
printed. Runs alternate between the two paths so machine noise hits both alike; the
per-round differences are printed with their spread, and the fastest run of each
kind is compared too (load elsewhere only adds time, so minima are the steadiest
figure on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from PIL import Image  # noqa: E402

from models.chat.hf_backend import HFVisionBackend  # noqa: E402
from models.chat.hf_loading import load_backend  # noqa: E402
from models.chat.types import GenerationParams, PromptMessage  # noqa: E402
from models.config import ModelEntry, RuntimeSettings  # noqa: E402
from testkit.tiny_vlms import BUILDERS  # noqa: E402

TARGET_OVERHEAD_PERCENT = 5.0


def build_backend(family: str, folder: Path) -> HFVisionBackend:
    BUILDERS[family](folder)
    entry = ModelEntry(
        display_name=f"tiny {family}", backend="transformers", task="chat", source=str(folder)
    )
    return load_backend(f"bench_{family}", entry, RuntimeSettings())


def sample_messages(image_side: int) -> list[PromptMessage]:
    image = Image.new("RGB", (image_side, image_side * 3 // 4), (230, 230, 220))
    return [PromptMessage("user", [image, "What is the total amount on this receipt?"])]


def time_bare(backend: HFVisionBackend, inputs: object, tokens: int) -> float:
    started = time.perf_counter()
    output = backend.model.generate(**inputs, max_new_tokens=tokens, do_sample=False)
    elapsed = time.perf_counter() - started
    produced = output.shape[-1] - inputs["input_ids"].shape[-1]
    assert produced == tokens, f"bare generate made {produced} tokens, expected {tokens}"
    return elapsed


def time_prefill(backend: HFVisionBackend, inputs: object) -> float:
    """A bare generate of one token: the floor for the time to first chunk."""
    config = backend.model.generation_config
    saved, config.min_new_tokens = config.min_new_tokens, None
    try:
        started = time.perf_counter()
        backend.model.generate(**inputs, max_new_tokens=1, do_sample=False)
        return time.perf_counter() - started
    finally:
        config.min_new_tokens = saved


CPU: dict[str, list[float]] = {"stream": [], "full": []}  # process CPU seconds, all threads


def time_stream(
    backend: HFVisionBackend, messages: list[PromptMessage], tokens: int
) -> tuple[float, float]:
    cpu = time.process_time()
    started = time.perf_counter()
    stream = backend.stream(messages, GenerationParams(max_new_tokens=tokens))
    for _ in stream:
        pass
    elapsed = time.perf_counter() - started
    CPU["stream"].append(time.process_time() - cpu)
    usage = stream.usage
    assert usage.completion_tokens == tokens, f"stream made {usage.completion_tokens} tokens"
    return elapsed, usage.first_token_seconds or elapsed


def time_bare_with_encoding(
    backend: HFVisionBackend, messages: list[PromptMessage], tokens: int
) -> float:
    cpu = time.process_time()
    started = time.perf_counter()
    inputs = backend.prepare_inputs(messages)
    backend.model.generate(**inputs, max_new_tokens=tokens, do_sample=False)
    elapsed = time.perf_counter() - started
    CPU["full"].append(time.process_time() - cpu)
    return elapsed


def time_encoding(backend: HFVisionBackend, messages: list[PromptMessage]) -> float:
    started = time.perf_counter()
    backend.prepare_inputs(messages)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="qwen2_vl", choices=sorted(BUILDERS))
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--image-side", type=int, default=448)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch intra-op threads (0 = torch's default); use 1 on a busy 2-core machine, "
        "where OpenMP threads of the main thread wait on each other and distort the baseline",
    )
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)

    with tempfile.TemporaryDirectory(prefix="chat_streaming_") as tmp:
        backend = build_backend(args.family, Path(tmp) / args.family)
        # Every run produces exactly --tokens tokens, whatever the random weights say.
        backend.model.generation_config.min_new_tokens = args.tokens
        messages = sample_messages(args.image_side)
        inputs = backend.prepare_inputs(messages)
        for _ in range(2):  # warm-up: allocator, kernels, lazy imports
            time_bare(backend, inputs, args.tokens)
            time_stream(backend, messages, args.tokens)
        CPU["stream"].clear()

        bare, stream, first, encode, prefill, full = [], [], [], [], [], []
        for _ in range(args.runs):
            bare.append(time_bare(backend, inputs, args.tokens))
            full.append(time_bare_with_encoding(backend, messages, args.tokens))
            prefill.append(time_prefill(backend, inputs))
            seconds, first_chunk = time_stream(backend, messages, args.tokens)
            stream.append(seconds)
            first.append(first_chunk)
            encode.append(time_encoding(backend, messages))

    report(args, inputs["input_ids"].shape[-1], bare, stream, first, encode, prefill)
    full_s, stream_s = statistics.median(full), statistics.median(stream)
    print(f"bare encode+generate  median {full_s * 1000:8.1f} ms")
    print(f"overhead vs that      {(stream_s / full_s - 1) * 100:+7.1f} %  (thread + streamer)")
    report_paired(args.tokens, full, stream, first, encode, prefill)
    return 0


def report_paired(tokens, full, stream, first, encode, prefill) -> None:
    """Differences within each round (the runs alternate), so a slow patch of the machine
    hits both sides of a difference: steadier than a difference of medians."""
    extra = [s - f for s, f in zip(stream, full, strict=True)]
    late = [c - (e + p) for c, e, p in zip(first, encode, prefill, strict=True)]
    over_prefill = [c - p for c, p in zip(first, prefill, strict=True)]
    middle = statistics.median(extra)
    percent = middle / statistics.median(full) * 100
    print("paired, per round (median, p25..p75):")
    print(
        f"  stream - (encode+generate) {_ms(extra)}  = {percent:+.1f} % "
        f"(target <= {TARGET_OVERHEAD_PERCENT:.0f} %), {middle / tokens * 1e6:+.0f} µs per token"
    )
    print(f"  first chunk - (encode + prefill) {_ms(late)}  (target <= +5 ms)")
    print(f"  first chunk - prefill alone      {_ms(over_prefill)}")
    report_fastest(tokens, full, stream, first, encode, prefill)
    cpu_extra = [s - f for s, f in zip(CPU["stream"], CPU["full"], strict=True)]
    cpu_percent = statistics.median(cpu_extra) / statistics.median(CPU["full"]) * 100
    print(
        f"  CPU time, stream - (encode+generate) {_ms(cpu_extra)} = {cpu_percent:+.1f} %, "
        f"{statistics.median(cpu_extra) / tokens * 1e6:+.0f} µs per token (what it costs in "
        "work, whatever else the machine runs)"
    )


def report_fastest(tokens, full, stream, first, encode, prefill) -> None:
    """The fastest run of each kind. Load elsewhere on the machine only ever adds time,
    so the minimum is the steadiest estimate of what a path itself costs (timeit's
    reasoning); the medians and their spread are printed above."""
    extra = min(stream) - min(full)
    print(
        f"fastest of {len(full)}: stream {min(stream) * 1000:.1f} ms, encode+generate "
        f"{min(full) * 1000:.1f} ms: {extra / min(full) * 100:+.1f} % "
        f"(target <= {TARGET_OVERHEAD_PERCENT:.0f} %), {extra / tokens * 1e6:+.0f} µs per token"
    )
    late = min(first) - (min(encode) + min(prefill))
    print(
        f"  first chunk {min(first) * 1000:.1f} ms - (encode {min(encode) * 1000:.1f} + "
        f"prefill {min(prefill) * 1000:.1f}) = {late * 1000:+.1f} ms (target <= +5 ms)"
    )


def _ms(values: list[float]) -> str:
    quartiles = statistics.quantiles(values, n=4)
    median = statistics.median(values)
    return f"{median * 1000:+6.1f} ms ({quartiles[0] * 1000:+.1f}..{quartiles[2] * 1000:+.1f})"


def report(args, prompt_tokens, bare, stream, first, encode, prefill) -> None:
    bare_s, stream_s = statistics.median(bare), statistics.median(stream)
    encode_s = statistics.median(encode)
    overhead = (stream_s / bare_s - 1) * 100
    print(
        f"model: tiny {args.family}, prompt {prompt_tokens} tokens, "
        f"{args.tokens} new tokens, {args.runs} runs, torch threads {_torch_threads()}"
    )
    print(f"bare model.generate   median {bare_s * 1000:8.1f} ms")
    print(f"backend.stream()      median {stream_s * 1000:8.1f} ms")
    print(f"overhead              {overhead:+7.1f} %  (target <= {TARGET_OVERHEAD_PERCENT:.0f} %)")
    print(f"  of which encoding   median {encode_s * 1000:8.1f} ms (template + image processing)")
    print(f"  thread + streamer   {(stream_s - bare_s - encode_s) * 1000:+8.1f} ms")
    print(f"time to first chunk   median {statistics.median(first) * 1000:8.1f} ms")
    print(f"  bare first token    median {statistics.median(prefill) * 1000:8.1f} ms (prefill)")
    print(f"per token (bare)      {bare_s / args.tokens * 1000:8.2f} ms")


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
