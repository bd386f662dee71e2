"""The signed entry format: the only place in the code base that calls ``pickle.loads``.

Why signed: ``pickle.loads`` runs whatever code the bytes ask for, so an entry is
only unpickled after its HMAC, under a secret this app created, checks out.
One file per entry, ``<root>/<key>.pkl``::

    magic b"CVLC" | format version (u8) | written at, ns (u64) | HMAC-SHA256 (32) | pickle

The HMAC covers the header, the key and the payload, so a changed byte, a changed
timestamp or a file renamed to another key is rejected. The magic bytes also tell
the cache's own files apart from others in a shared folder.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import re
import struct
from pathlib import Path
from typing import Any, Final

from utils.errors import BadInput

MAGIC: Final = b"CVLC"
FORMAT_VERSION: Final = 1
ENTRY_SUFFIX: Final = ".pkl"

_HEADER = struct.Struct(">4sBQ")  # magic, format version, written-at in ns
_DIGEST_SIZE = 32
_PAYLOAD_OFFSET = _HEADER.size + _DIGEST_SIZE
# Letters, digits, '-' and '_' only: no path separators, no dots (so no '..' and
# no clash with .secret, .lock or stats.json).
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


class RejectedEntry(Exception):
    """An entry file that must not be (or could not be) unpickled; ``str()`` says why."""


def check_key(key: str) -> None:
    """Refuse a key that is not a plain file name stem (``BadInput``)."""
    if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key):
        raise BadInput(
            f"invalid cache key {key!r}",
            hint="use 1-128 letters, digits, '-' or '_' (make_key() returns a valid key)",
        )


def is_entry_name(name: str) -> bool:
    """Whether ``name`` is the file name of an entry (``<key>.pkl``)."""
    stem, suffix = name[: -len(ENTRY_SUFFIX)], name[-len(ENTRY_SUFFIX) :]
    return suffix == ENTRY_SUFFIX and _KEY_PATTERN.fullmatch(stem) is not None


def starts_like_an_entry(path: Path) -> bool:
    """Whether the file at ``path`` begins with the entry magic (False when unreadable)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def seal(secret: bytes, key: str, value: Any, written_ns: int) -> bytes:
    """The bytes of a signed entry holding ``value``; ``BadInput`` if pickle cannot store it."""
    payload = _pickle(value)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, written_ns)
    return header + _sign(secret, header, key, payload) + payload


def verify(blob: bytes, key: str, secret: bytes) -> tuple[int, memoryview]:
    """Return (written-at ns, payload) of a genuine entry; raise ``RejectedEntry`` otherwise."""
    if len(blob) < _PAYLOAD_OFFSET:
        raise RejectedEntry(f"truncated: {len(blob)} bytes")
    magic, version, written_ns = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise RejectedEntry("not a cache entry: wrong magic bytes")
    if version != FORMAT_VERSION:
        raise RejectedEntry(f"format version {version}, this app reads {FORMAT_VERSION}")
    stored_mac = blob[_HEADER.size : _PAYLOAD_OFFSET]
    payload = memoryview(blob)[_PAYLOAD_OFFSET:]
    expected_mac = _sign(secret, blob[: _HEADER.size], key, payload)
    if not hmac.compare_digest(stored_mac, expected_mac):
        raise RejectedEntry("bad signature")
    return written_ns, payload


def unpickle(payload: memoryview) -> Any:
    """The value in a payload that ``verify`` returned; ``RejectedEntry`` if it cannot load."""
    try:
        # Safe: verify() proved this app wrote exactly these bytes.
        return pickle.loads(payload)  # noqa: S301
    except Exception as exc:  # a class that moved or changed since it was stored
        raise RejectedEntry(f"unpickling failed ({type(exc).__name__})") from exc


def _pickle(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise BadInput(
            f"cannot cache a value of type {type(value).__name__}: {exc}",
            hint="cache plain data (dicts, lists, pydantic models, arrays), not open "
            "files, locks or local functions",
        ) from exc


def _sign(secret: bytes, header: bytes, key: str, payload: bytes | memoryview) -> bytes:
    mac = hmac.new(secret, header, hashlib.sha256)
    # The header has a fixed size and keys hold no NUL, so the parts cannot run together.
    mac.update(key.encode("utf-8") + b"\0")
    mac.update(payload)
    return mac.digest()
