"""Connect an OpenAI-compatible server (Ollama, vLLM, llama.cpp) as a chat model.

The server is asked what it serves before anything is saved; the new endpoint and
model go to the user's overrides file (``models.config.user_overrides_path``), never
to a shipped profile, and the profile loader merges that file over the profile.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from models.chat.openai_client import probe_endpoint
from models.config import Endpoint, ModelEntry, deep_merge, user_overrides_path
from models.safe_yaml import YamlRefused, load_yaml, read_yaml_text
from utils.auth import Action, User, require
from utils.auth.audit import AuditLog
from utils.auth.user_data import user_root
from utils.errors import BadInput, ModelUnavailable
from utils.storage import atomic_write_bytes

PROBE_TIMEOUT_S = 5.0  # a local server answers its model list in far less


def connect_server(
    data_dir: Path, user: User, base_url: str, served_name: str, api_key_env: str = ""
) -> str:
    """Check that ``base_url`` serves ``served_name``, save it as a chat model in the
    overrides file of ``user``'s folder (the data folder's own without sign-in: then it is
    everyone's), and return the new model's catalog id.

    Raises ``BadInput`` for a malformed URL or a model the server does not serve (the
    hint lists what it serves), ``ModelUnavailable`` when the server does not answer.
    """
    require(user, Action.CONNECT_SERVER)
    served_name = served_name.strip()
    if not served_name:
        raise BadInput("no model name", hint="type the model name the server serves")
    endpoint = _endpoint(base_url.strip(), api_key_env.strip())
    status = probe_endpoint(endpoint, timeout_s=PROBE_TIMEOUT_S)
    if not status.reachable or status.error:
        raise ModelUnavailable(
            f"{endpoint.base_url} did not answer: {status.error or 'unreachable'}",
            hint="start the server (e.g. `ollama serve`) and check the URL, port and `/v1`",
        )
    if served_name not in status.models:
        served = ", ".join(status.models) or "no model"
        raise BadInput(
            f"{endpoint.base_url} does not serve '{served_name}'",
            hint=f"it serves: {served}; type one of these names",
        )
    model_id = _model_id(served_name)
    entry = ModelEntry(
        display_name=f"{served_name} (server)",
        backend="openai",
        task="chat",
        endpoint=model_id,  # one endpoint per model: a later server moves no other
        served_name=served_name,
    )
    _save_overrides(user_root(data_dir, user), model_id, entry, endpoint)
    AuditLog(data_dir).record(user, "connect model server", f"{endpoint.base_url} {served_name}")
    return model_id


def _endpoint(base_url: str, api_key_env: str) -> Endpoint:
    try:
        return Endpoint(base_url=base_url, api_key_env=api_key_env or None)
    except ValidationError:
        raise BadInput(
            f"'{base_url[:200]}' is not a server URL",
            hint="use the server's OpenAI-compatible address, e.g. http://localhost:11434/v1",
        ) from None


def _model_id(served_name: str) -> str:
    """A catalog id (lowercase, ``[a-z0-9_.-]``) made from the served name."""
    slug = re.sub(r"[^a-z0-9_.-]+", "_", served_name.lower()).strip("_.-")
    return f"server_{slug}"[:64]


def _save_overrides(data_dir: Path, model_id: str, entry: ModelEntry, endpoint: Endpoint) -> None:
    path = user_overrides_path(data_dir)
    current = _read_overrides(path)
    added = {
        "endpoints": {model_id: endpoint.model_dump(exclude_defaults=True)},
        "models": {model_id: entry.model_dump(exclude_defaults=True)},
    }
    text = yaml.safe_dump(deep_merge(current, added), sort_keys=False, allow_unicode=True)
    atomic_write_bytes(path, text.encode("utf-8"))


def _read_overrides(path: Path) -> dict[str, Any]:
    """The overrides saved so far (the profile loader has read and validated them)."""
    try:
        data = load_yaml(read_yaml_text(path))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, YamlRefused, yaml.YAMLError) as exc:
        raise BadInput(
            f"{path} cannot be read ({exc})", hint="fix or delete that file, then try again"
        ) from None
    return data if isinstance(data, dict) else {}
