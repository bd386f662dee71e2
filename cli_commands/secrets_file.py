"""The ``[auth]`` section of Streamlit's ``secrets.toml``: what ``st.login`` needs to talk
to an OpenID Connect provider, written so that no secret leaks.

The file is created with mode 0600 (a temp file opened with that mode, then swapped
in atomically), the cookie secret is new on every write, and nothing here prints a
secret. Other sections of an existing file are kept; an existing ``[auth]`` is only
replaced when asked (a new cookie secret signs everyone out). Nothing is written
that does not parse back to exactly the intended content.
"""

from __future__ import annotations

import re
import secrets
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

from models.config import REPO_ROOT
from utils.errors import BadInput, StorageError
from utils.storage import replace_file

#: Where ``make run`` (Streamlit started in the repository) reads its secrets.
DEFAULT_SECRETS_FILE = REPO_ROOT / ".streamlit" / "secrets.toml"
SECRETS_FILE_MODE = 0o600
CALLBACK_PATH = "/oauth2callback"
_AUTH_HEADER = re.compile(r"^\s*\[\[?\s*auth\s*(\.[^\]]*)?\]\]?\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")


class OidcClient(BaseModel):
    """This app as a client of the identity provider."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redirect_uri: str
    client_id: str
    client_secret: str
    server_metadata_url: str

    @field_validator("redirect_uri")
    @classmethod
    def _callback(cls, value: str) -> str:
        _check_http_url(value, "--redirect-uri")
        if not urlsplit(value).path.endswith(CALLBACK_PATH):
            raise ValueError(f"--redirect-uri must end with {CALLBACK_PATH} (Streamlit's callback)")
        return value

    @field_validator("server_metadata_url")
    @classmethod
    def _metadata(cls, value: str) -> str:
        return _check_http_url(value, "--server-metadata-url")

    @field_validator("client_id", "client_secret")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value or not value.isprintable():
            raise ValueError("must be one line of printable text")
        return value


def auth_values(client: OidcClient) -> dict[str, str]:
    """The ``[auth]`` keys, with a fresh random cookie secret (signs Streamlit's cookie)."""
    return {
        "redirect_uri": client.redirect_uri,
        "cookie_secret": secrets.token_urlsafe(32),
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "server_metadata_url": client.server_metadata_url,
    }


def write_auth_section(path: Path, values: dict[str, str], *, force: bool) -> bool:
    """Write ``[auth]`` into the secrets file ``path`` (mode 0600, atomically); returns
    whether an existing ``[auth]`` was replaced. ``BadInput`` when one exists and not
    ``force``, or when the file is not TOML this can edit safely."""
    existing = _read_text(path)
    parsed = _parse(existing, path)
    replacing = "auth" in parsed
    if replacing and not force:
        raise BadInput(
            f"{path} already has an [auth] section",
            hint="pass --force to replace it (its new cookie secret signs everyone out)",
        )
    kept = _without_auth_section(existing) if replacing else existing
    text = (kept.rstrip() + "\n\n" if kept.strip() else "") + render_section("auth", values)
    others = {key: value for key, value in parsed.items() if key != "auth"}
    _check_round_trip(text, {**others, "auth": values}, path)
    _write_private(path, text)
    return replacing


def render_section(name: str, values: dict[str, str]) -> str:
    lines = [f"[{name}]"] + [f"{key} = {toml_string(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def toml_string(value: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    escaped = []
    for char in value:
        if char in {'"', "\\"}:
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _check_http_url(value: str, option: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname or not value.isprintable():
        raise ValueError(f"{option} must be an http:// or https:// URL")
    if any(char.isspace() for char in value):
        raise ValueError(f"{option} must not contain spaces")
    return value


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"cannot read {path}: {exc}", hint="fix or move the file, then retry"
        ) from exc


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(
            f"{path} is not valid TOML ({exc})", hint="fix or move the file, then retry"
        ) from None


def _without_auth_section(text: str) -> str:
    """``text`` without the lines of ``[auth]`` (and ``[auth.*]``) tables."""
    kept, inside = [], False
    for line in text.splitlines(keepends=True):
        if _ANY_HEADER.match(line):
            inside = bool(_AUTH_HEADER.match(line))
        if not inside:
            kept.append(line)
    return "".join(kept)


def _check_round_trip(text: str, expected: dict[str, Any], path: Path) -> None:
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        parsed = None
    if parsed != expected:
        raise BadInput(
            f"cannot replace the [auth] section of {path} safely (it is written in a way "
            "this command does not edit)",
            hint="remove the [auth] section by hand, then run the command again",
        )


def _write_private(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, text.encode("utf-8"), mode=SECRETS_FILE_MODE)
        path.chmod(SECRETS_FILE_MODE)  # an umask cannot add bits; this only makes it exact
    except OSError as exc:
        raise StorageError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="check the folder's permissions, or pass --secrets-file",
        ) from exc
