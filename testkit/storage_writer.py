"""Child process for the storage crash and concurrency tests (tests/test_storage.py).

Run as ``python -m testkit.storage_writer MODE PATH ...`` from the repo root.
The parent kills it with SIGKILL at random moments, or runs several at once, and
then checks what is on disk. Every record carries a checksum over its id and payload,
so a record that was only partly written can never pass as a complete one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import model_validator

from utils.storage import VersionedRecord, append_jsonl, atomic_write_json

#: Bytes accepted per os.write call in --short-writes mode.
SHORT_WRITE_BYTES = 64


def checksum(record_id: int, payload: str) -> str:
    return hashlib.sha256(f"{record_id}:{payload}".encode()).hexdigest()


def make_record(record_id: int, payload_size: int) -> dict[str, Any]:
    """A self-checking record; the payload letter changes with the id."""
    payload = chr(ord("a") + record_id % 26) * payload_size
    return {
        "schema_version": 1,
        "id": record_id,
        "payload": payload,
        "checksum": checksum(record_id, payload),
    }


class StressRecord(VersionedRecord):
    """What the children write; validation fails unless the record is whole."""

    id: int
    payload: str
    checksum: str

    @model_validator(mode="after")
    def _whole(self) -> StressRecord:
        if self.checksum != checksum(self.id, self.payload):
            raise ValueError("checksum does not match id and payload")
        return self


def _simulate_short_writes() -> None:
    """Make os.write accept a few bytes per call and take a moment doing it.

    POSIX lets a write be short (network and FUSE filesystems do this); here it
    stretches one append over many calls so that a SIGKILL lands mid-record, as a
    power cut would, and leaves a torn last line for the next append to repair.
    """
    real_write = os.write

    def short_write(fd: int, data: Any) -> int:
        time.sleep(0.0002)
        return real_write(fd, bytes(data[:SHORT_WRITE_BYTES]))

    os.write = short_write


def _announce(word: str) -> None:
    print(word, flush=True)


def _rewrite_forever(args: argparse.Namespace, rng: random.Random) -> None:
    _announce("started")
    record_id = args.start
    while True:
        atomic_write_json(args.path, make_record(record_id, rng.randrange(200_000)))
        record_id += 1


def _append_forever(args: argparse.Namespace, rng: random.Random) -> None:
    if args.short_writes:
        _simulate_short_writes()
    _announce("started")
    record_id = args.start
    while True:
        append_jsonl(args.path, make_record(record_id, rng.randrange(400)))
        _announce(str(record_id))  # only after append_jsonl returned: acknowledged
        record_id += 1


def _run_batch(args: argparse.Namespace, rng: random.Random, write: Callable[..., None]) -> None:
    _announce("ready")
    sys.stdin.readline()  # the parent says go once every worker is ready
    for index in range(args.count):
        write(args.path, make_record(args.worker * 100_000 + index, rng.randrange(2_000)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["rewrite-forever", "append-forever", "append", "rewrite"])
    parser.add_argument("path")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--short-writes", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if args.mode == "rewrite-forever":
        _rewrite_forever(args, rng)
    elif args.mode == "append-forever":
        _append_forever(args, rng)
    elif args.mode == "append":
        _run_batch(args, rng, append_jsonl)
    else:
        _run_batch(args, rng, atomic_write_json)


if __name__ == "__main__":
    main()
