"""Crash-safe file storage: atomic JSON files, durable JSONL logs, versioned records.

Rules this package keeps (see DESIGN.md, "Storage rules"):

- A JSON file is replaced whole (``atomic``): temp file in the same folder, fsync,
  ``os.replace``, fsync of the folder. A reader sees the old file or the new one.
- A JSONL record is one line, appended and fsynced before ``append_jsonl`` returns
  (``jsonl``); a torn last line left by a crash is cut off by the next append.
- Writers of a file take its lock, ``<folder>/.locks/<file name>.lock`` (``locks``),
  so two browser tabs or the CLI beside the app never interleave. A folder the app
  cannot write is still readable; writing there raises ``StorageError`` naming it.
- Every record carries ``schema_version`` (``records``); a record of another
  version is invalid, not guessed at. A JSON file that fails to parse or validate is
  moved to a ``.corrupt/`` folder with a logged warning; a bad JSONL line is skipped
  and counted. Logs name files, lines and reasons, never file contents.
- Run ids and timestamps come from ``ids``.
"""

from utils.storage.atomic import atomic_write_bytes, fsync_dir, replace_file, temp_target
from utils.storage.errors import CorruptDataFile, MissingDataFile
from utils.storage.ids import new_run_id, utc_now_iso
from utils.storage.jsonl import JsonlRead, append_jsonl, read_jsonl
from utils.storage.locks import LOCK_TIMEOUT_S, holding_lock, lock_path_for
from utils.storage.records import (
    CORRUPT_DIR_NAME,
    VersionedRecord,
    atomic_write_json,
    list_corrupt,
    read_json,
    read_json_or_none,
)

__all__ = [
    "CORRUPT_DIR_NAME",
    "LOCK_TIMEOUT_S",
    "CorruptDataFile",
    "JsonlRead",
    "MissingDataFile",
    "VersionedRecord",
    "append_jsonl",
    "atomic_write_bytes",
    "atomic_write_json",
    "fsync_dir",
    "holding_lock",
    "list_corrupt",
    "lock_path_for",
    "new_run_id",
    "read_json",
    "read_json_or_none",
    "read_jsonl",
    "replace_file",
    "temp_target",
    "utc_now_iso",
]
