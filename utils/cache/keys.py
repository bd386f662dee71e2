"""Cache keys computed from the content of what a result depends on."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

_KEY_DOMAIN = b"chatvlmllm-cache-key-v1"


def make_key(*parts: object) -> str:
    """Return a SHA-256 hex key computed from the *content* of ``parts``.

    bytes-like parts are hashed as-is, str as UTF-8; None, bool, int, float, list,
    tuple, dict (str keys) and pydantic models (``model_dump(mode="json")``) through a
    canonical JSON encoding with sorted keys. Lists and tuples encode alike. Anything
    else raises ``TypeError``: an object id or repr would give a key that changes
    between runs or hides the content.
    """
    digest = hashlib.sha256(_KEY_DOMAIN)
    for part in parts:
        tag, data = _encode_key_part(part)
        # Tag and length keep ("ab", "c") and ("a", "bc") apart.
        digest.update(tag + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _encode_key_part(part: object) -> tuple[bytes, bytes]:
    if isinstance(part, bytes | bytearray | memoryview):
        return b"b", bytes(part)
    if isinstance(part, str):
        return b"s", part.encode("utf-8")
    tree = _to_json_tree(part)
    text = json.dumps(tree, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b"j", text.encode("utf-8")


def _to_json_tree(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, BaseModel):
        model_type = type(value)
        name = f"{model_type.__module__}.{model_type.__qualname__}"
        return {"__model__": name, "data": value.model_dump(mode="json")}
    if isinstance(value, list | tuple):
        return [_to_json_tree(item) for item in value]
    if isinstance(value, dict):
        return {_json_key(key): _to_json_tree(item) for key, item in value.items()}
    raise TypeError(
        f"make_key cannot hash a {type(value).__name__}; pass bytes, str, numbers, "
        "None, lists, tuples, dicts with str keys or pydantic models"
    )


def _json_key(key: object) -> str:
    # JSON turns 1 into "1": refusing non-str keys keeps {1: x} and {"1": x} apart.
    if not isinstance(key, str):
        raise TypeError(f"make_key needs str dict keys, got {type(key).__name__}")
    return key
