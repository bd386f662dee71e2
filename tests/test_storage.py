"""Tests for utils/storage/: atomic JSON, durable JSONL, locks, schema versions, read-only folders.

The crash tests kill a real child process (testkit/storage_writer.py) with
SIGKILL at random moments and check what is left on disk.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from filelock import FileLock
from pydantic import ValidationError

from testkit.faults import refuse_writes_under
from testkit.storage_writer import StressRecord, make_record
from utils.errors import StorageError
from utils.storage import (
    CorruptDataFile,
    MissingDataFile,
    VersionedRecord,
    append_jsonl,
    atomic,
    atomic_write_json,
    jsonl,
    list_corrupt,
    lock_path_for,
    new_run_id,
    read_json,
    read_json_or_none,
    read_jsonl,
    utc_now_iso,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRET = "top-secret-document-text"


# --------------------------------------------------------------------------- models


class Page(VersionedRecord):
    title: str
    words: list[str]
    score: float


class Note(VersionedRecord):
    """At version 2: a version 1 record (an older layout) cannot be read."""

    SCHEMA_VERSION = 2

    title: str
    text: str


@pytest.fixture
def storage_warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="utils.storage")
    return caplog


def _write_raw(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _temp_files(folder: Path) -> list[Path]:
    return [entry for entry in folder.iterdir() if entry.name.endswith(".tmp")]


# --------------------------------------------------------------------------- JSON files


def test_model_round_trips_through_a_json_file(tmp_path: Path) -> None:
    page = Page(title="Rechnung Nr. 7 — Zürich", words=["Summe", "€ 12,50"], score=0.875)
    path = tmp_path / "deep" / "folder" / "page.json"

    atomic_write_json(path, page)

    assert read_json(path, Page) == page
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["schema_version"] == Page.SCHEMA_VERSION
    assert "Zürich" in path.read_text(encoding="utf-8")  # stored as UTF-8, not \u escapes
    assert _temp_files(path.parent) == []


def test_rewrite_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "page.json"
    atomic_write_json(path, Page(title="long " * 1000, words=[], score=1.0))
    atomic_write_json(path, Page(title="short", words=[], score=2.0))

    assert read_json(path, Page).title == "short"


def test_records_built_in_code_get_the_current_version() -> None:
    assert Note(title="t", text="x").schema_version == 2


def test_validating_an_old_version_directly_fails() -> None:
    with pytest.raises(ValidationError, match="not the current version"):
        Note.model_validate({"schema_version": 1, "title": "t", "text": "x"})


def test_missing_file_raises_file_not_found_or_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"

    with pytest.raises(MissingDataFile) as raised:
        read_json(path, Page)

    assert isinstance(raised.value, FileNotFoundError)
    assert isinstance(raised.value, StorageError)
    assert read_json_or_none(path, Page) is None
    assert list(tmp_path.iterdir()) == []  # reading created nothing


def test_corrupt_json_is_moved_aside_and_others_keep_working(
    tmp_path: Path, storage_warnings: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "good.json"
    atomic_write_json(good, Page(title="fine", words=[], score=0.0))
    torn = b'{"schema_version": 1, "title": "' + SECRET.encode()
    bad = _write_raw(tmp_path / "bad.json", torn)

    assert read_json_or_none(bad, Page) is None

    assert not bad.exists()
    moved = list_corrupt(tmp_path / ".corrupt")
    assert len(moved) == 1
    assert moved[0].name.startswith("bad.") and moved[0].suffix == ".json"
    assert moved[0].read_bytes() == torn  # kept byte for byte, for a human to inspect
    assert "bad.json is corrupt" in storage_warnings.text
    assert SECRET not in storage_warnings.text
    assert read_json(good, Page).title == "fine"


def test_read_json_raises_after_moving_a_corrupt_file(tmp_path: Path) -> None:
    bad = _write_raw(tmp_path / "bad.json", "not json at all")

    with pytest.raises(CorruptDataFile) as raised:
        read_json(bad, Page)

    assert raised.value.hint
    assert len(list_corrupt(tmp_path / ".corrupt")) == 1


def test_json_failing_validation_goes_to_the_given_corrupt_dir(
    tmp_path: Path, storage_warnings: pytest.LogCaptureFixture
) -> None:
    record = {"schema_version": 1, "title": SECRET, "words": "not a list", "score": 1}
    bad = _write_raw(tmp_path / "data" / "page.json", json.dumps(record))

    assert read_json_or_none(bad, Page, corrupt_dir=tmp_path / "quarantine") is None

    assert len(list_corrupt(tmp_path / "quarantine")) == 1
    assert "words" in storage_warnings.text
    assert SECRET not in storage_warnings.text


def test_two_corrupt_copies_of_one_file_are_both_kept(tmp_path: Path) -> None:
    path = tmp_path / "page.json"
    for content in ("{", "[1, 2"):
        _write_raw(path, content)
        assert read_json_or_none(path, Page) is None

    kept = list_corrupt(tmp_path / ".corrupt")
    assert sorted(item.read_text() for item in kept) == ["[1, 2", "{"]


@pytest.mark.parametrize(
    "record",
    [
        {"schema_version": 3, "title": "from the future", "text": ""},
        {"title": "no version", "text": ""},
        {"schema_version": "2", "title": "version as text", "text": ""},
        {"schema_version": 0, "title": "version zero", "text": ""},
    ],
)
def test_unknown_or_missing_schema_version_is_invalid(tmp_path: Path, record: dict) -> None:
    path = _write_raw(tmp_path / "note.json", json.dumps(record))

    assert read_json_or_none(path, Note) is None
    assert len(list_corrupt(tmp_path / ".corrupt")) == 1


def test_record_of_an_older_version_is_invalid_and_moved_aside(tmp_path: Path) -> None:
    path = _write_raw(tmp_path / "note.json", json.dumps({"schema_version": 1, "body": "Hi"}))

    with pytest.raises(CorruptDataFile, match="older than this app reads"):
        read_json(path, Note)

    assert not path.exists()
    assert len(list_corrupt(tmp_path / ".corrupt")) == 1


def test_value_that_is_not_json_raises_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write_json(path, {"schema_version": 1, "ok": True})
    before = path.read_bytes()

    for bad_value in (object(), float("nan")):
        with pytest.raises(StorageError, match="not JSON") as raised:
            atomic_write_json(path, {"schema_version": 1, "value": bad_value})
        assert raised.value.hint

    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []


def test_failed_fsync_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    atomic_write_json(path, {"schema_version": 1, "generation": 1})
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    with pytest.raises(StorageError, match="No space left") as raised:
        atomic_write_json(path, {"schema_version": 1, "generation": 2})

    assert "disk space" in (raised.value.hint or "")
    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []


def test_temp_files_of_a_killed_writer_are_removed_on_next_write(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    hex32 = "0123456789abcdef" * 2
    stale = _write_raw(tmp_path / f".state.json.{hex32}.tmp", "half")
    other_file = _write_raw(tmp_path / f".state.json.bak.{hex32}.tmp", "another file's temp")
    look_alike = _write_raw(tmp_path / ".state.json.notatemp.tmp", "not ours")

    atomic_write_json(path, {"schema_version": 1})

    assert not stale.exists()
    assert other_file.exists() and look_alike.exists()


def test_lock_held_too_long_raises_storage_error(tmp_path: Path) -> None:
    json_path = tmp_path / "state.json"
    jsonl_path = tmp_path / "log.jsonl"
    atomic_write_json(json_path, {"schema_version": 1, "generation": 1})

    locks = tmp_path / ".locks"
    with FileLock(locks / "state.json.lock"), FileLock(locks / "log.jsonl.lock"):
        with pytest.raises(StorageError, match="locked by another writer") as raised:
            atomic_write_json(json_path, {"schema_version": 1, "generation": 2}, lock_timeout=0.1)
        assert raised.value.hint
        with pytest.raises(StorageError, match="locked by another writer"):
            append_jsonl(jsonl_path, {"schema_version": 1}, lock_timeout=0.1)

    assert json.loads(json_path.read_text())["generation"] == 1
    assert not jsonl_path.exists()


def test_lock_files_are_kept_in_one_hidden_folder(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "state.json", {"schema_version": 1})
    append_jsonl(tmp_path / "log.jsonl", {"schema_version": 1})

    assert sorted(path.name for path in tmp_path.iterdir()) == [".locks", "log.jsonl", "state.json"]
    assert lock_path_for(tmp_path / "state.json") == tmp_path / ".locks" / "state.json.lock"
    assert lock_path_for(tmp_path / "state.json").exists()
    assert lock_path_for(tmp_path / "log.jsonl").exists()


def test_list_corrupt_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert list_corrupt(tmp_path / ".corrupt") == []


# --------------------------------------------------------------------------- JSONL logs


def test_append_writes_one_compact_utf8_line_per_record(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "chat.jsonl"

    append_jsonl(path, Page(title="Straße\nzwei", words=["a"], score=1.5))
    append_jsonl(path, {"schema_version": 1, "title": "dict", "words": [], "score": 0})

    assert path.read_bytes().decode("utf-8").split("\n") == [
        '{"schema_version":1,"title":"Straße\\nzwei","words":["a"],"score":1.5}',
        '{"schema_version":1,"title":"dict","words":[],"score":0}',
        "",
    ]
    result = read_jsonl(path, Page)
    assert [page.title for page in result.records] == ["Straße\nzwei", "dict"]
    assert result.skipped == 0


def test_missing_jsonl_reads_as_empty(tmp_path: Path) -> None:
    result = read_jsonl(tmp_path / "absent.jsonl", Page)

    assert (result.records, result.skipped) == ([], 0)


def test_bad_jsonl_lines_are_skipped_counted_and_logged(
    tmp_path: Path, storage_warnings: pytest.LogCaptureFixture
) -> None:
    good = [
        json.dumps({"schema_version": 1, "title": f"page {n}", "words": [], "score": n})
        for n in range(3)
    ]
    lines = [
        good[0],
        "{not json " + SECRET,  # line 2
        good[1],
        json.dumps({"schema_version": 1, "title": SECRET, "words": 5, "score": 0}),  # line 4
        "",  # blank: holds no record, not counted
        json.dumps({"schema_version": 9, "title": "future", "words": [], "score": 0}),  # line 6
        good[2],
        json.dumps({"title": "no version", "words": [], "score": 0}),  # line 8
    ]
    data = "\n".join(lines).encode() + b"\n" + b'{"schema_version":1,"title":"\xff\xfe"}\n'
    path = _write_raw(tmp_path / "pages.jsonl", data)  # line 9 is not UTF-8

    result = read_jsonl(path, Page)

    assert [page.title for page in result.records] == ["page 0", "page 1", "page 2"]
    assert result.skipped == 5
    for number in (2, 4, 6, 8, 9):
        assert f"line {number} skipped" in storage_warnings.text
    assert "newer than this app knows" in storage_warnings.text
    assert SECRET not in storage_warnings.text


def test_many_bad_lines_log_a_total_instead_of_each(
    tmp_path: Path, storage_warnings: pytest.LogCaptureFixture
) -> None:
    path = _write_raw(tmp_path / "noise.jsonl", "garbage\n" * 100)

    assert read_jsonl(path, Page).skipped == 100
    assert len(storage_warnings.records) == jsonl._MAX_LOGGED_SKIPS + 1
    assert "100 lines skipped in all" in storage_warnings.text


def test_jsonl_records_of_an_older_version_are_skipped(
    tmp_path: Path, storage_warnings: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "notes.jsonl"
    _write_raw(path, json.dumps({"schema_version": 1, "body": "Old\nnote"}) + "\n")
    append_jsonl(path, Note(title="New", text="note"))

    result = read_jsonl(path, Note)

    assert result.records == [Note(title="New", text="note")]
    assert result.skipped == 1
    assert "line 1 skipped: schema_version 1 is older than this app reads" in storage_warnings.text


def test_torn_last_line_is_skipped_then_cut_by_the_next_append(
    tmp_path: Path, storage_warnings: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "log.jsonl"
    append_jsonl(path, make_record(0, 10))
    append_jsonl(path, make_record(1, 10))
    whole = path.read_bytes()
    with path.open("ab") as log:
        log.write(json.dumps(make_record(2, 50)).encode()[:40])  # a crash mid-append

    before = read_jsonl(path, StressRecord)
    assert [record.id for record in before.records] == [0, 1]
    assert before.skipped == 1
    assert "line 3 skipped: torn last line" in storage_warnings.text

    storage_warnings.clear()
    append_jsonl(path, make_record(2, 50))

    assert "torn line" in storage_warnings.text and "cut its last 40 bytes" in storage_warnings.text
    assert path.read_bytes().startswith(whole)
    after = read_jsonl(path, StressRecord)
    assert [record.id for record in after.records] == [0, 1, 2]
    assert after.skipped == 0


def test_torn_line_with_no_newline_before_it_is_cut_entirely(tmp_path: Path) -> None:
    path = _write_raw(tmp_path / "log.jsonl", '{"schema_version":1,"id":0,"pay')

    append_jsonl(path, make_record(0, 3))

    assert path.read_text().count("\n") == 1
    assert [record.id for record in read_jsonl(path, StressRecord).records] == [0]


def test_torn_line_longer_than_one_search_chunk_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    append_jsonl(path, make_record(0, 3))
    with path.open("ab") as log:
        log.write(b"x" * (3 * jsonl._TAIL_CHUNK + 17))

    append_jsonl(path, make_record(1, 3))

    result = read_jsonl(path, StressRecord)
    assert [record.id for record in result.records] == [0, 1]
    assert result.skipped == 0


# --------------------------------------------------------------------------- read-only folders


@pytest.fixture
def filled_folder(tmp_path: Path) -> Path:
    """A data folder with a JSON file and a JSONL log, and no lock files yet (e.g. restored)."""
    folder = tmp_path / "results"
    atomic_write_json(folder / "page.json", Page(title="kept", words=[], score=1.0))
    append_jsonl(folder / "log.jsonl", make_record(0, 5))
    shutil.rmtree(folder / ".locks")
    return folder


def _check_reads_work_and_writes_fail_clearly(folder: Path) -> None:
    before = sorted(path.name for path in folder.iterdir())

    assert read_json(folder / "page.json", Page).title == "kept"
    assert [record.id for record in read_jsonl(folder / "log.jsonl", StressRecord).records] == [0]
    for write in (
        lambda: atomic_write_json(folder / "page.json", Page(title="new", words=[], score=0.0)),
        lambda: append_jsonl(folder / "log.jsonl", make_record(1, 5)),
        lambda: atomic_write_json(folder / "new.json", {"schema_version": 1}),
    ):
        with pytest.raises(StorageError) as raised:
            write()
        assert f"the folder {folder} is read-only" in raised.value.message
        assert f"make {folder} writable" in (raised.value.hint or "")

    assert sorted(path.name for path in folder.iterdir()) == before


@pytest.mark.parametrize("error", [errno.EACCES, errno.EROFS], ids=["denied", "read-only-fs"])
def test_read_only_folder_is_read_and_writes_fail_naming_it(
    filled_folder: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    refuse_writes_under(monkeypatch, filled_folder, error)

    _check_reads_work_and_writes_fail_clearly(filled_folder)


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions; root ignores them"
)
def test_folder_made_read_only_by_chmod_is_read_and_writes_fail_naming_it(
    filled_folder: Path,
) -> None:
    filled_folder.chmod(0o555)
    try:
        _check_reads_work_and_writes_fail_clearly(filled_folder)
    finally:
        filled_folder.chmod(0o755)


def test_corrupt_file_in_a_read_only_folder_is_left_in_place(
    filled_folder: Path, monkeypatch: pytest.MonkeyPatch, storage_warnings
) -> None:
    bad = _write_raw(filled_folder / "bad.json", "{" + SECRET)
    refuse_writes_under(monkeypatch, filled_folder, errno.EROFS)

    assert read_json_or_none(bad, Page) is None
    with pytest.raises(CorruptDataFile, match="could not be moved aside"):
        read_json(bad, Page)

    assert bad.read_text() == "{" + SECRET
    assert not (filled_folder / ".corrupt").exists()
    assert "bad.json is corrupt" in storage_warnings.text
    assert "left in place" in storage_warnings.text
    assert SECRET not in storage_warnings.text


# --------------------------------------------------------------------------- ids


def test_run_ids_sort_by_time_and_differ_within_a_second() -> None:
    ids = {new_run_id() for _ in range(50)}

    assert len(ids) == 50
    for run_id in ids:
        assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", run_id)
        stamp = datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


@pytest.mark.parametrize(
    ("timespec", "pattern"),
    [
        ("seconds", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"),
        ("microseconds", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"),
    ],
)
def test_utc_timestamps_are_iso_8601_in_utc(timespec: str, pattern: str) -> None:
    stamp = utc_now_iso(timespec=timespec)

    assert re.fullmatch(pattern, stamp)
    assert abs((datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()) < 60


# --------------------------------------------------------------------------- child processes


def _start_child(*args: object) -> subprocess.Popen[str]:
    """Run testkit/storage_writer.py with the given arguments."""
    return subprocess.Popen(
        [sys.executable, "-m", "testkit.storage_writer", *map(str, args)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_at_random_moment(child: subprocess.Popen[str], rng: random.Random) -> list[str]:
    """SIGKILL the child 20-150 ms after it starts writing; return the lines it printed."""
    assert child.stdout is not None
    started = child.stdout.readline()
    assert started == "started\n", child.communicate(timeout=10)[1]
    time.sleep(rng.uniform(0.02, 0.15))
    child.send_signal(signal.SIGKILL)
    out, err = child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL, err  # it was still running, not crashed
    return out.split("\n")[:-1]  # the piece after the last newline is not a whole line


def _release_together(children: list[subprocess.Popen[str]]) -> None:
    """Wait until every child has imported everything, then let them all go at once."""
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


def _wait_ok(child: subprocess.Popen[str]) -> None:
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err


def _check_jsonl_on_disk(path: Path) -> tuple[list[int], bool]:
    """Every complete line is a whole record and ids run 0, 1, 2, ...; return ids and torn."""
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()
    ids = [StressRecord.model_validate_json(line).id for line in lines]
    assert ids == list(range(len(ids)))  # none lost, none twice, none half written
    return ids, bool(tail)


@pytest.mark.slow
def test_json_file_survives_sigkill_mid_rewrite(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    path = tmp_path / "state.json"
    atomic_write_json(path, make_record(0, 10))
    last_id = 0
    kills_mid_write = 0

    for round_number in range(50):
        child = _start_child(
            "rewrite-forever", path, "--start", last_id + 1, "--seed", round_number
        )
        _kill_at_random_moment(child, rng)

        record = StressRecord.model_validate_json(path.read_bytes())  # whole, checksum matches
        assert record.id >= last_id  # never an older version
        kills_mid_write += bool(_temp_files(tmp_path))
        last_id = record.id

    assert kills_mid_write > 0  # the kills did land mid-write
    assert last_id > 50  # and the children did write
    assert len(_temp_files(tmp_path)) <= 1  # each write cleans up after the last kill
    assert read_json(path, StressRecord).id == last_id
    assert not (tmp_path / ".corrupt").exists()


@pytest.mark.slow
def test_jsonl_log_survives_sigkill_mid_append(
    tmp_path: Path, storage_warnings: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(20240602)
    path = tmp_path / "log.jsonl"
    acknowledged: set[int] = set()
    ids: list[int] = []
    torn_rounds = 0

    for round_number in range(50):
        # Odd rounds stretch each append over many short writes, so kills tear records.
        slow = ["--short-writes"] if round_number % 2 else []
        child = _start_child("append-forever", path, "--start", len(ids), *slow)
        acknowledged.update(int(line) for line in _kill_at_random_moment(child, rng))

        ids, torn = _check_jsonl_on_disk(path)
        assert acknowledged <= set(ids)  # every acknowledged record is on disk
        result = read_jsonl(path, StressRecord)
        assert (len(result.records), result.skipped) == (len(ids), int(torn))
        torn_rounds += torn

    assert torn_rounds > 0  # the repair path was exercised (by the next child's append)
    storage_warnings.clear()
    append_jsonl(path, make_record(len(ids), 5))
    assert ("cut its last" in storage_warnings.text) == torn  # repaired exactly when torn
    final_ids, final_torn = _check_jsonl_on_disk(path)
    assert final_ids == [*ids, len(ids)] and not final_torn


@pytest.mark.slow  # ~4 s here: 1000 fsynced appends, disk-bound
def test_four_processes_appending_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    children = [
        _start_child("append", path, "--worker", worker, "--count", 250, "--seed", worker)
        for worker in range(4)
    ]
    _release_together(children)
    for child in children:
        _wait_ok(child)

    result = read_jsonl(path, StressRecord)

    assert result.skipped == 0
    assert len(result.records) == 1000
    assert len({record.id for record in result.records}) == 1000


def test_two_processes_rewriting_one_file_leave_it_valid(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"
    children = [
        _start_child("rewrite", path, "--worker", worker, "--count", 60, "--seed", worker)
        for worker in (1, 2)
    ]
    _release_together(children)
    reads = 0
    while any(child.poll() is None for child in children):
        if path.exists():  # every read sees a whole version, never half of one
            StressRecord.model_validate_json(path.read_bytes())
            reads += 1
        time.sleep(0.001)
    for child in children:
        _wait_ok(child)

    assert read_json(path, StressRecord).id in {100_059, 200_059}
    assert reads > 0
    assert _temp_files(tmp_path) == []
