"""What the streaming chat path costs, counted in CPU instructions instead of seconds.

    python scripts/perf/chat_streaming_instructions.py [--answers 4] [--tokens 64]

``chat_streaming.py`` times the stream path against a bare encode + generate; on a
shared virtual machine its wall times move by 10-30 % from run to run, more than the
overhead being measured. Instructions executed do not depend on what else the
machine runs, so this script counts them with valgrind (cachegrind, no cache
simulation): three runs of the same child process (tiny random-weight model,
warm-up of both paths, then ``N`` answers of one path or the other):

- ``base``: ``N`` bare answers (encode + ``model.generate``);
- ``twice``: ``2N`` bare answers — the difference to ``base`` is what ``N`` bare
  answers cost;
- ``stream``: ``N`` answers through ``backend.stream()`` — the difference to
  ``base`` is what the stream path adds to ``N`` answers.

Prints instructions per answer of each path, the overhead in % and per generated
token. Needs ``valgrind`` (apt-get install valgrind); about 10 minutes on two cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

TARGET_OVERHEAD_PERCENT = 5.0
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def child(bare_answers: int, stream_answers: int, tokens: int) -> None:
    """The process valgrind runs: warm-up of both paths, then the answers asked for."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from models.chat.types import GenerationParams
    from scripts.perf.chat_streaming import build_backend, sample_messages

    torch.manual_seed(0)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="chat_streaming_ir_") as tmp:
        backend = build_backend("qwen2_vl", Path(tmp) / "qwen2_vl")
        backend.model.generation_config.min_new_tokens = tokens
        messages = sample_messages(448)

        def bare() -> None:
            inputs = backend.prepare_inputs(messages)
            backend.model.generate(**inputs, max_new_tokens=tokens, do_sample=False)

        def stream() -> None:
            answer = backend.stream(messages, GenerationParams(max_new_tokens=tokens))
            for _ in answer:
                pass
            assert answer.usage.completion_tokens == tokens

        bare()
        stream()
        for _ in range(bare_answers):
            bare()
        for _ in range(stream_answers):
            stream()


def count_instructions(bare_answers: int, stream_answers: int, tokens: int) -> int:
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(bare_answers),
        str(stream_answers),
        "--tokens",
        str(tokens),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=4, help="answers per path (N)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.tokens)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: sudo apt-get install valgrind")
        return 2
    n = args.answers
    runs = {"base": (n, 0), "twice": (2 * n, 0), "stream": (0, n)}
    with ThreadPoolExecutor(len(runs)) as pool:
        futures = {
            name: pool.submit(count_instructions, *plan, args.tokens) for name, plan in runs.items()
        }
        counts = {name: future.result() for name, future in futures.items()}
    bare = (counts["twice"] - counts["base"]) / n
    extra = (counts["stream"] - counts["base"]) / n
    print(f"tiny qwen2_vl, {args.tokens} new tokens, {n} answers per path, valgrind cachegrind")
    print(f"bare encode+generate  {bare / 1e6:10.1f} M instructions per answer")
    print(f"backend.stream()      {(bare + extra) / 1e6:10.1f} M instructions per answer")
    print(
        f"overhead              {extra / 1e6:+10.2f} M = {extra / bare * 100:+.2f} % "
        f"(target <= {TARGET_OVERHEAD_PERCENT:.0f} %), {extra / args.tokens / 1e3:+.1f} k "
        "instructions per token"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
