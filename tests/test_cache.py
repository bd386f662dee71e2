"""Tests of the signed pickle cache (utils/cache/): format, safety, LRU, TTL, best effort."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import pickle
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from models.config import CacheSettings
from testkit.faults import refuse_writes_under
from utils.cache import MISS, CacheStats, DiskCache, disk_cache, make_key, open_cache
from utils.errors import BadInput, ConfigError, StorageError

# --------------------------------------------------------------------------- helpers


class Page(BaseModel):
    text: str
    confidence: float


@dataclass
class Box:
    x: int
    y: int


class TouchOnUnpickle:
    """An attacker's payload: unpickling it creates ``marker`` (a harmless stand-in)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class FakeClock:
    """Stands in for disk_cache._now_ns: every reading is 1 ms later, and it can jump."""

    def __init__(self) -> None:
        self.now_ns = time.time_ns()

    def __call__(self) -> int:
        self.now_ns += 1_000_000
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(disk_cache, "_now_ns", fake)
    return fake


def entry_file(cache: DiskCache, key: str) -> Path:
    return cache.root / f"{key}.pkl"


def temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*.tmp")]


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    "value",
    [
        {"text": "Итого 12,50 €", "lines": [1, 2, 3], "nested": {"ok": True}},
        ["a", 1, 2.5, None],
        ("tuple", 3),
        "plain text",
        b"\x00\xffbytes",
        42,
        3.25,
        Page(text="hello", confidence=0.9),
        Box(x=1, y=2),
        [Page(text="p1", confidence=0.5), Box(x=0, y=0)],
    ],
    ids=lambda value: type(value).__name__,
)
def test_round_trip_returns_an_equal_value(tmp_path: Path, value: object) -> None:
    cache = DiskCache(tmp_path)
    key = make_key("round-trip", repr(type(value)))

    assert cache.set(key, value) is True
    assert cache.get(key) == value
    # A second instance (another process, a restart) reads the same entry.
    assert DiskCache(tmp_path).get(key) == value


def test_cached_none_is_told_apart_from_a_miss(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cache.set("stored-none", None)

    assert cache.get("stored-none", default=MISS) is None
    assert cache.get("never-stored", default=MISS) is MISS
    assert cache.get("never-stored") is None
    assert cache.get("never-stored", default="fallback") == "fallback"


def test_set_overwrites_and_delete_removes(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cache.set("k", 1)
    cache.set("k", 2)
    assert cache.get("k") == 2

    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.get("k") is None


# --------------------------------------------------------------------------- make_key


def test_make_key_depends_on_content_not_identity() -> None:
    image = b"\x89PNG fake image bytes"
    same_bytes_other_object = bytes(bytearray(image))
    params = {"max_tokens": 256, "temperature": 0.0}

    assert make_key(image, "qwen", params) == make_key(same_bytes_other_object, "qwen", params)
    assert make_key(image, "qwen", params) != make_key(image, "qwen", {**params, "max_tokens": 257})
    assert make_key(image, "qwen", params) != make_key(image + b"!", "qwen", params)
    assert make_key(image, "qwen", params) != make_key(image, "got-ocr", params)


def test_make_key_ignores_dict_insertion_order() -> None:
    first = {"a": 1, "b": {"x": [1, 2], "y": None}}
    second = {"b": {"y": None, "x": [1, 2]}, "a": 1}

    assert list(first) != list(second)
    assert make_key(first) == make_key(second)


def test_make_key_keeps_part_boundaries_and_types_apart() -> None:
    assert make_key(b"ab", b"c") != make_key(b"a", b"bc")
    assert make_key("ab", "c") != make_key("abc")
    assert make_key("1") != make_key(1) != make_key(b"1")
    assert make_key(True) != make_key(1)
    assert make_key(None) != make_key()


def test_make_key_hashes_pydantic_models_by_content() -> None:
    assert make_key(Page(text="a", confidence=1.0)) == make_key(Page(text="a", confidence=1.0))
    assert make_key(Page(text="a", confidence=1.0)) != make_key(Page(text="b", confidence=1.0))
    assert make_key({"page": Page(text="a", confidence=1.0)}) == make_key(
        {"page": Page(text="a", confidence=1.0)}
    )


def test_make_key_returns_a_sha256_hex_string() -> None:
    key = make_key("x")
    assert len(key) == 64
    assert set(key) <= set("0123456789abcdef")


@pytest.mark.parametrize(
    "part",
    [object(), Path("a.png"), {1, 2}, Box(x=1, y=2), {1: "int key"}, [b"bytes inside a list"]],
    ids=["object", "path", "set", "dataclass", "int-dict-key", "nested-bytes"],
)
def test_make_key_refuses_values_without_a_content_encoding(part: object) -> None:
    with pytest.raises(TypeError):
        make_key("prefix", part)


# --------------------------------------------------------------------------- safety


def test_the_attack_payload_really_runs_when_unpickled(tmp_path: Path) -> None:
    """Guards the tests below: their payload would leave a marker if it were ever loaded."""
    marker = tmp_path / "payload-ran"
    pickle.loads(pickle.dumps(TouchOnUnpickle(marker)))
    assert marker.exists()


def test_payload_swapped_under_the_old_signature_is_never_unpickled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DiskCache(tmp_path / "cache")
    key = make_key("victim")
    cache.set(key, {"genuine": True})
    path = entry_file(cache, key)
    genuine_payload = pickle.dumps({"genuine": True}, protocol=pickle.HIGHEST_PROTOCOL)
    blob = path.read_bytes()
    assert blob.endswith(genuine_payload)
    signed_prefix = blob[: -len(genuine_payload)]  # header + the genuine HMAC
    marker = tmp_path / "payload-ran"
    path.write_bytes(signed_prefix + pickle.dumps(TouchOnUnpickle(marker)))

    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        assert cache.get(key, default=MISS) is MISS

    assert not marker.exists()
    assert not path.exists()
    assert "bad signature" in caplog.text
    assert str(marker) not in caplog.text  # payload bytes are never logged
    assert cache.stats().rejected == 1


def test_entry_signed_with_another_secret_is_never_unpickled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DiskCache(tmp_path / "cache")
    attacker = DiskCache(tmp_path / "attacker")  # same format, its own secret
    key = make_key("victim")
    marker = tmp_path / "payload-ran"
    attacker.set(key, TouchOnUnpickle(marker))
    forged = entry_file(attacker, key).read_bytes()
    path = entry_file(cache, key)
    path.write_bytes(forged)

    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        assert cache.get(key, default=MISS) is MISS

    assert not marker.exists()
    assert not path.exists()
    assert "rejected" in caplog.text
    # The forged file was a well-formed live entry: its own cache does run it.
    attacker.get(key)
    assert marker.exists()


def corrupt_flip_last_byte(blob: bytes) -> bytes:
    return blob[:-1] + bytes([blob[-1] ^ 0x01])


def corrupt_flip_timestamp(blob: bytes) -> bytes:
    return blob[:6] + bytes([blob[6] ^ 0x01]) + blob[7:]


@pytest.mark.parametrize(
    "corrupt",
    [
        corrupt_flip_last_byte,
        corrupt_flip_timestamp,
        lambda blob: blob[:20],  # cut inside the header + signature
        lambda blob: blob[: len(blob) // 2],  # cut inside the payload
        lambda blob: b"",
        lambda blob: b"XXXX" + blob[4:],  # wrong magic
        lambda blob: blob[:4] + bytes([99]) + blob[5:],  # unknown format version
    ],
    ids=["flipped-payload", "flipped-timestamp", "truncated-header", "truncated-payload", "empty",
         "wrong-magic", "wrong-version"],
)  # fmt: skip
def test_corrupt_entry_is_a_miss_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, corrupt
) -> None:
    cache = DiskCache(tmp_path)
    key = make_key("page", 1)
    cache.set(key, {"text": "x" * 500})
    path = entry_file(cache, key)
    path.write_bytes(corrupt(path.read_bytes()))

    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        assert cache.get(key, default=MISS) is MISS

    assert not path.exists()
    assert "rejected" in caplog.text
    stats = cache.stats()
    assert (stats.rejected, stats.misses, stats.hits) == (1, 1, 0)


def test_entry_renamed_to_another_key_is_rejected(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cheap, costly = make_key("cheap"), make_key("costly")
    cache.set(cheap, "cheap answer")
    os.replace(entry_file(cache, cheap), entry_file(cache, costly))

    assert cache.get(costly, default=MISS) is MISS
    assert not entry_file(cache, costly).exists()
    assert cache.stats().rejected == 1


def test_signed_entry_that_fails_to_load_is_a_miss_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DiskCache(tmp_path)
    cache.set("k", Box(x=1, y=2))
    # The class is gone since the entry was written (renamed in a new release).
    monkeypatch.delattr(sys.modules[__name__], "Box")

    assert cache.get("k", default=MISS) is MISS
    assert not entry_file(cache, "k").exists()
    assert cache.stats().rejected == 1


# --------------------------------------------------------------------------- secret


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_secret_is_created_with_mode_0600(tmp_path: Path) -> None:
    DiskCache(tmp_path)
    secret = tmp_path / ".secret"

    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_bytes()) == 32


def test_secret_is_reused_by_a_second_instance(tmp_path: Path) -> None:
    first = DiskCache(tmp_path)
    secret = (tmp_path / ".secret").read_bytes()
    first.set("k", [1, 2, 3])

    second = DiskCache(tmp_path)

    assert (tmp_path / ".secret").read_bytes() == secret
    assert second.get("k") == [1, 2, 3]


def test_instances_on_different_roots_get_different_secrets(tmp_path: Path) -> None:
    DiskCache(tmp_path / "a")
    DiskCache(tmp_path / "b")
    assert (tmp_path / "a" / ".secret").read_bytes() != (tmp_path / "b" / ".secret").read_bytes()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_loose_secret_permissions_are_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    DiskCache(tmp_path).set("k", "v")
    secret = tmp_path / ".secret"
    secret.chmod(0o644)

    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        cache = DiskCache(tmp_path)

    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "mode 644" in caplog.text
    assert cache.get("k") == "v"


def test_corrupt_secret_is_replaced_and_old_entries_are_rejected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    DiskCache(tmp_path).set("k", "v")
    (tmp_path / ".secret").write_bytes(b"short")

    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        cache = DiskCache(tmp_path)
        assert cache.get("k", default=MISS) is MISS

    assert len((tmp_path / ".secret").read_bytes()) == 32
    assert "secret" in caplog.text


# --------------------------------------------------------------------------- LRU and size cap


def test_least_recently_used_entry_is_evicted_first(tmp_path: Path, clock: FakeClock) -> None:
    cache = DiskCache(tmp_path, max_mb=0.05)  # 52,428 bytes: four 12 KB entries fit
    keys = [make_key("page", index) for index in range(5)]
    for key in keys[:4]:
        assert cache.set(key, os.urandom(12_000))
    assert cache.get(keys[0]) is not None  # oldest written, but now the most recently used

    cache.set(keys[4], os.urandom(12_000))

    present = [entry_file(cache, key).exists() for key in keys]
    assert present == [True, False, True, True, True]
    stats = cache.stats()
    assert stats.evictions == 1
    assert stats.entries == 4
    assert stats.size_bytes <= stats.max_bytes


def test_total_size_stays_under_the_cap(tmp_path: Path, clock: FakeClock) -> None:
    cache = DiskCache(tmp_path, max_mb=0.05)
    for index in range(20):
        cache.set(make_key(index), os.urandom(5_000 + 300 * index))
        assert cache.stats().size_bytes <= cache.max_bytes

    stats = cache.stats()
    assert stats.evictions > 0
    assert stats.entries < 20
    # The newest entry is never the one evicted.
    assert cache.get(make_key(19)) is not None


def test_entry_bigger_than_the_cap_is_not_stored(tmp_path: Path, clock: FakeClock) -> None:
    cache = DiskCache(tmp_path, max_mb=0.05)
    cache.set("small", b"s" * 1000)
    cache.set("big", b"old value")

    assert cache.set("big", os.urandom(60_000)) is False

    assert cache.get("big", default=MISS) is MISS  # no stale value under that key
    assert cache.get("small") == b"s" * 1000
    assert cache.stats().evictions == 0


# --------------------------------------------------------------------------- TTL


def test_entry_older_than_ttl_is_a_miss_and_removed(tmp_path: Path, clock: FakeClock) -> None:
    cache = DiskCache(tmp_path, ttl_seconds=60)
    cache.set("k", "fresh")

    clock.advance(50)
    assert cache.get("k") == "fresh"  # a hit, which also marks it recently used

    clock.advance(20)  # 70 s after the write: using it did not extend its life
    assert cache.get("k", default=MISS) is MISS
    assert not entry_file(cache, "k").exists()


def test_without_ttl_old_entries_stay(tmp_path: Path, clock: FakeClock) -> None:
    cache = DiskCache(tmp_path)
    cache.set("k", "kept")
    clock.advance(10 * 365 * 24 * 3600)
    assert cache.get("k") == "kept"


# --------------------------------------------------------------------------- stats and clear


def test_stats_are_persisted_and_summed_across_instances(tmp_path: Path) -> None:
    app = DiskCache(tmp_path)
    app.set("k", "v")
    app.get("k")
    app.get("k")
    app.get("missing")
    app.flush_stats()

    cli = DiskCache(tmp_path)  # e.g. `cli.py cache stats` in another process
    seen_by_cli = cli.stats()
    assert isinstance(seen_by_cli, CacheStats)
    assert (seen_by_cli.hits, seen_by_cli.misses, seen_by_cli.entries) == (2, 1, 1)

    cli.get("k")
    cli.flush_stats()
    assert app.stats().hits == 3


def test_corrupt_stats_file_is_reset_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DiskCache(tmp_path)
    (tmp_path / "stats.json").write_text("{not json", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        cache.get("missing")
        stats = cache.stats()

    assert (stats.hits, stats.misses) == (0, 1)
    assert "corrupt" in caplog.text
    assert DiskCache(tmp_path).stats().misses == 1  # the file was rewritten valid


def test_clear_removes_entries_and_counters_but_keeps_the_secret(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    secret = (tmp_path / ".secret").read_bytes()
    cache.set("a", 1)
    cache.set("b", 2)
    cache.get("a")

    assert cache.clear() == 2

    assert (tmp_path / ".secret").read_bytes() == secret
    stats = DiskCache(tmp_path).stats()
    assert (stats.entries, stats.size_bytes, stats.hits, stats.misses) == (0, 0, 0, 0)
    cache.set("a", 3)
    assert DiskCache(tmp_path).get("a") == 3  # same secret still signs and verifies


# --------------------------------------------------------------------------- writes


def test_failed_write_keeps_the_old_entry_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DiskCache(tmp_path)
    cache.set("k", "old")

    def crash_on_replace(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", crash_on_replace)
    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        assert cache.set("k", "new") is False  # not stored, and no exception: best effort
    monkeypatch.undo()

    assert "No space left" in caplog.text

    assert cache.get("k") == "old"
    assert temp_files(tmp_path) == []


def test_stale_temp_files_from_crashed_writers_are_cleaned(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cache.set("k", "v")
    stale = tmp_path / f".k.pkl.{'a' * 32}.tmp"
    fresh = tmp_path / f".k.pkl.{'b' * 32}.tmp"
    not_ours = [tmp_path / f".notes.txt.{'c' * 32}.tmp", tmp_path / ".k.pkl.crashed.tmp"]
    two_hours_ago = time.time() - 7200
    for temp in (stale, fresh, *not_ours):
        temp.write_bytes(b"half")
        if temp is not fresh:
            os.utime(temp, (two_hours_ago, two_hours_ago))

    cache.set("other", "v")

    assert not stale.exists()
    assert fresh.exists()
    assert all(temp.exists() for temp in not_ours)  # another program's temp files
    assert cache.stats().entries == 2


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".secret", "x" * 129, "a.b"])
def test_keys_that_could_escape_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    cache = DiskCache(tmp_path)
    with pytest.raises(BadInput):
        cache.set(name, 1)
    with pytest.raises(BadInput):
        cache.get(name)


def test_unpicklable_value_raises_bad_input(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    with pytest.raises(BadInput, match="cannot cache"):
        cache.set("k", threading.Lock())
    assert cache.get("k", default=MISS) is MISS


@pytest.mark.parametrize(
    "kwargs", [{"max_mb": 0}, {"max_mb": -1}, {"ttl_seconds": 0}, {"ttl_seconds": -5}]
)
def test_nonsense_limits_raise_config_error(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        DiskCache(tmp_path, **kwargs)


# --------------------------------------------------------------------------- best effort


def cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_stats_file_that_is_not_utf8_is_reset_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DiskCache(tmp_path)
    cache.set("k", "v")
    (tmp_path / "stats.json").write_bytes(b'{"schema_version": 1, "hits": \xff\xfe}')

    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        reader = DiskCache(tmp_path)  # e.g. `cli.py ocr`, then `cli.py cache stats`
        assert reader.get("k") == "v"
        stats = reader.stats()

    assert (stats.entries, stats.hits) == (1, 1)
    assert "corrupt" in caplog.text


@pytest.mark.parametrize(
    "error", [errno.EACCES, errno.EROFS, errno.ENOSPC], ids=["denied", "read-only-fs", "full"]
)
def test_unwritable_cache_keeps_serving_and_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: int
) -> None:
    DiskCache(tmp_path).set("old", "cached before")
    before = sorted(path.name for path in tmp_path.iterdir())
    refuse_writes_under(monkeypatch, tmp_path, error)

    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        cache = DiskCache(tmp_path)
        assert cache.get("old") == "cached before"
        for number in range(3):
            assert cache.set(f"new{number}", {"result": number}) is False
            assert cache.get(f"new{number}", default=MISS) is MISS
        cache.flush_stats()
        stats = cache.stats()

    assert (stats.entries, stats.hits, stats.misses) == (1, 1, 3)
    (warning,) = cache_warnings(caplog)  # once, not once per write
    assert "cannot be written" in warning and os.strerror(error) in warning
    assert sorted(path.name for path in tmp_path.iterdir()) == before
    with pytest.raises(StorageError):  # a user's explicit `cache clear` does hear about it
        cache.clear()


def test_cache_folder_that_cannot_be_created_disables_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refuse_writes_under(monkeypatch, tmp_path, errno.EROFS)

    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        cache = DiskCache(tmp_path / "cache")
        assert cache.set("k", "v") is False
        assert cache.get("k", default=MISS) is MISS
        stats = cache.stats()

    assert (stats.entries, stats.misses) == (0, 1)
    assert "disabled" in caplog.text
    assert not (tmp_path / "cache").exists()


def test_secret_that_is_a_directory_disables_the_cache_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".secret").mkdir()

    with caplog.at_level(logging.WARNING, logger="utils.cache"):
        cache = DiskCache(tmp_path)
        assert cache.set("k", "v") is False
        assert cache.get("k", default=MISS) is MISS

    assert "disabled" in caplog.text and "not a regular file" in caplog.text
    assert cache.stats().entries == 0


def test_clear_and_eviction_touch_only_the_caches_own_files(
    tmp_path: Path, clock: FakeClock
) -> None:
    """``cache_dir`` may point at a shared folder: other programs' files there stay."""
    others = {
        "notes.pkl": pickle.dumps({"someone": "else"}),  # a pickle with an entry-like name
        "abc.pkl": b"CVL",  # shorter than the magic
        "readme.txt": b"hello",
        "sub/deep.pkl": b"CVLC but in a sub-folder",
    }
    for name, data in others.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    old = time.time() - 10 * 365 * 24 * 3600  # oldest of all: first in line for eviction
    for name in others:
        os.utime(tmp_path / name, (old, old))
    cache = DiskCache(tmp_path, max_mb=0.05)

    for index in range(8):
        cache.set(make_key(index), os.urandom(12_000))
    stats = cache.stats()
    assert stats.evictions > 0 and stats.entries == 4  # others neither counted nor evicted
    assert cache.clear() == 4

    assert {name: (tmp_path / name).read_bytes() for name in others} == others
    assert sorted(path.name for path in tmp_path.glob("*.pkl")) == ["abc.pkl", "notes.pkl"]


def test_open_cache_takes_the_profiles_limits(tmp_path: Path) -> None:
    cache = open_cache(tmp_path, CacheSettings(max_mb=2, ttl_hours=1.5))

    assert (cache.root, cache.max_bytes, cache.ttl_seconds) == (tmp_path, 2 * 1024 * 1024, 5400)
    assert open_cache(tmp_path, CacheSettings()).ttl_seconds is None


@pytest.mark.parametrize("max_mb", [0, -1])
def test_profile_refuses_a_cache_cap_of_zero_or_less(max_mb: float) -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        CacheSettings(max_mb=max_mb)


# --------------------------------------------------------------------------- concurrency


def test_threads_share_one_cache_and_counters_add_up(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    gets_per_thread, thread_count = 40, 4
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for index in range(gets_per_thread):
                key = make_key(index % 5)
                if cache.get(key) is None:
                    cache.set(key, {"index": index % 5, "worker": worker})
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    stats = cache.stats()
    assert stats.hits + stats.misses == gets_per_thread * thread_count
    assert stats.misses >= 5
    assert (stats.entries, stats.rejected) == (5, 0)


def write_same_key_repeatedly(root: str, worker: int, rounds: int) -> None:
    cache = DiskCache(Path(root), max_mb=1)
    for round_index in range(rounds):
        cache.set("shared", {"worker": worker, "round": round_index, "pad": b"x" * 4096})


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_processes_writing_one_key_never_expose_a_half_entry(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    rounds = 60
    writers = [
        context.Process(target=write_same_key_repeatedly, args=(str(tmp_path), worker, rounds))
        for worker in range(2)
    ]
    reader = DiskCache(tmp_path, max_mb=1)
    for writer in writers:
        writer.start()
    seen = []
    while any(writer.is_alive() for writer in writers):
        value = reader.get("shared")
        if value is not None:
            seen.append(value["worker"])
    for writer in writers:
        writer.join()

    assert [writer.exitcode for writer in writers] == [0, 0]
    final = reader.get("shared")
    assert final["round"] == rounds - 1  # last writer wins, whole
    assert reader.stats().rejected == 0
    assert temp_files(tmp_path) == []
