"""`python cli.py auth init|check|adopt`: set up sign-in, check the listen address, hand
the single-user data to a user."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from cli_commands.acting import named_user
from cli_commands.secrets_file import (
    DEFAULT_SECRETS_FILE,
    OidcClient,
    auth_values,
    write_auth_section,
)
from cli_commands.tables import printable
from models.config import load_config
from utils.auth import LOCAL_USER
from utils.auth.adoption import AdoptionResult, adopt_single_user_data, read_journal
from utils.auth.bind import check_listen_address, is_loopback
from utils.errors import BadInput, ConfigError

DEFAULT_SECRET_ENV = "CHATVLM_OIDC_CLIENT_SECRET"
_LISTED = 20  # conflicts and skipped files printed by `auth adopt`


# --------------------------------------------------------------------------- init


def run_auth_init(args: argparse.Namespace) -> int:
    """Write the ``[auth]`` secrets; prints where and which keys, never their values."""
    client = _client(args, _client_secret(args.client_secret_env))
    path = Path(args.secrets_file).expanduser() if args.secrets_file else DEFAULT_SECRETS_FILE
    replaced = write_auth_section(path, auth_values(client), force=args.force)
    print(
        f"{'replaced' if replaced else 'wrote'} [auth] in {path} (mode 0600): redirect_uri, "
        f"client_id, server_metadata_url, client_secret, a new random cookie_secret"
    )
    if _plain_http_outside_loopback(client.redirect_uri):
        print(
            "warning: the redirect URI is plain http on a network address: the sign-in "
            "cookie would travel unencrypted; serve https (a reverse proxy) there",
            file=sys.stderr,
        )
    print("next: set auth.mode: oidc and auth.roles in the profile, then `make run`")
    return 0


def _client(args: argparse.Namespace, secret: str) -> OidcClient:
    try:
        return OidcClient(
            redirect_uri=args.redirect_uri,
            client_id=args.client_id,
            client_secret=secret,
            server_metadata_url=args.server_metadata_url,
        )
    except ValidationError as exc:
        # The messages only: the input may be the client secret.
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise BadInput(problems, hint="see `python cli.py auth init --help`") from None


def _problem(error: dict) -> str:
    field = str(error["loc"][0]) if error["loc"] else "value"
    return f"{field}: {str(error['msg']).removeprefix('Value error, ')}"


def _client_secret(env_name: str) -> str:
    """From the environment variable ``env_name``, else asked for (hidden) on a terminal."""
    secret = os.environ.get(env_name, "")
    if not secret and sys.stdin.isatty():
        secret = getpass.getpass(f"client secret (input hidden; or set {env_name}): ")
    if not secret:
        raise BadInput(
            f"no client secret: ${env_name} is not set and there is no terminal to ask on",
            hint=f"export {env_name}=<the secret from your identity provider's client "
            "settings>, or pass --client-secret-env NAME",
        )
    return secret


def _plain_http_outside_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname or "")


# --------------------------------------------------------------------------- check


def run_auth_check(args: argparse.Namespace) -> int:
    """Exit 2 when the profile would serve without sign-in on a network address."""
    auth = load_config(args.config).config.auth
    try:
        check_listen_address(args.address, auth)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = args.address or "all interfaces"
    print(f"ok: auth.mode {auth.mode} may listen on {where}")
    return 0


# --------------------------------------------------------------------------- adopt


def run_auth_adopt(args: argparse.Namespace) -> int:
    """The local operator hands the single-user data to the user ``--user`` names."""
    config = load_config(args.config).config
    owner = named_user(config, args.user)
    result = adopt_single_user_data(config.data_dir, LOCAL_USER, owner=owner)
    if config.auth.mode == "none":
        print(
            "note: sign-in is off in this profile, so the app shows the local operator's "
            "folders; the adopted data shows once auth.mode is oidc",
            file=sys.stderr,
        )
    if result.already_adopted:
        journal = read_journal(config.data_dir)
        when = f" on {journal.finished_at}" if journal is not None else ""
        print(f"nothing to do: the single-user data went to {result.owner_id}{when}")
        return 0
    if result.owner_id != owner.user_id:
        print(
            f"note: an interrupted adoption for {result.owner_id} was finished instead; "
            "that data stays theirs",
            file=sys.stderr,
        )
    print(adoption_report(result))
    return 0


def adoption_report(result: AdoptionResult) -> str:
    folder = f"users/{result.owner_id}/"
    if not (result.moved or result.already_there or result.conflicts):
        return "nothing to do: there is no single-user data (chats/, ocr/) to adopt"
    lines = [
        f"moved {len(result.moved)} file(s) to {folder}; {len(result.already_there)} were "
        "already there (same bytes)"
    ]
    lines += _listed(
        f"{len(result.conflicts)} kept aside (the name held other bytes), in {folder}:",
        result.conflicts,
    )
    lines += _listed(
        f"{len(result.left_in_place)} left in place (links, temp files: not data):",
        result.left_in_place,
    )
    return "\n".join(lines)


def _listed(title: str, paths: tuple[str, ...]) -> list[str]:
    if not paths:
        return []
    shown = [f"  {printable(path)}" for path in paths[:_LISTED]]
    more = [f"  ... {len(paths) - _LISTED} more"] if len(paths) > _LISTED else []
    return [title, *shown, *more]
