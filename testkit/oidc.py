"""A real OpenID Connect provider on 127.0.0.1 for the sign-in tests: oidc-provider-mock.

Its authorize page asks for a subject (a form field ``sub``) and issues signed ID
tokens for it, so Streamlit's ``st.login`` runs its whole code path: redirect,
code exchange, token validation, identity cookie. ``register_user`` gives a subject
the claims its tokens carry (e-mail, groups); an unregistered subject gets
``{"email": sub}``.

``write_auth_secrets`` writes the ``[auth]`` section the app's server needs, in a
file of its own that ``streamlit run --secrets.files`` reads, so the repo's
``.streamlit/`` is never touched.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from testkit.e2e_harness import LOCAL_HOST, free_port
from testkit.processes import log_tail, stop_process

CLIENT_ID = "chatvlm-e2e"
# The provider's own pages (authorize, end session) load this stylesheet from a CDN. The
# harness aborts it in the browser like any other remote request; tests accept only it.
PROVIDER_PAGE_ASSETS = frozenset({"https://cdn.jsdelivr.net/npm/@picocss/pico@2/css/pico.min.css"})
START_TIMEOUT_S = 30


class OidcProvider:
    """``python -m oidc_provider_mock`` on a free loopback port, in a subprocess."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.log_path = log_path
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        """What its tokens carry as ``iss`` (the mock names itself by the URL it is asked on)."""
        return f"http://{LOCAL_HOST}:{self.port}"

    @property
    def metadata_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def __enter__(self) -> OidcProvider:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        command = [
            sys.executable, "-m", "oidc_provider_mock",
            "--host", LOCAL_HOST,
            "--port", str(self.port),
        ]  # fmt: skip
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the OIDC provider exited at start; log:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.metadata_url, timeout=2) as reply:
                    if json.load(reply).get("issuer") == self.issuer:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the OIDC provider did not answer; log:\n{self.log_tail()}")

    def register_user(self, sub: str, claims: dict[str, Any]) -> None:
        """Make the tokens issued for ``sub`` carry ``claims`` (the mock's PUT /users/{sub})."""
        request = urllib.request.Request(
            f"{self.issuer}/users/{quote(sub, safe='')}",
            data=json.dumps(claims).encode(),
            headers={"Content-Type": "application/json"},
            method="PUT",
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            if reply.status != 204:
                raise RuntimeError(f"the OIDC provider refused user {sub!r}: {reply.status}")

    def log_tail(self, chars: int = 4000) -> str:
        return log_tail(self.log_path, chars)

    def stop(self) -> None:
        stop_process(self.process)


def write_auth_secrets(path: Path, app_url: str, provider: OidcProvider) -> Path:
    """A secrets.toml (mode 0600) whose ``[auth]`` signs the app at ``app_url`` in with
    ``provider``; a fresh random cookie secret each time."""
    values = {
        "redirect_uri": f"{app_url}/oauth2callback",
        "cookie_secret": secrets.token_hex(32),
        "client_id": CLIENT_ID,
        "client_secret": secrets.token_hex(16),  # the mock takes any secret
        "server_metadata_url": provider.metadata_url,
    }
    # json.dumps writes a valid TOML basic string for these ASCII values.
    lines = ["[auth]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    return path
