"""Refuse to serve an app without sign-in on a network address.

``auth.mode: none`` gives everyone who reaches the port the admin role; that is only
right on the loopback interface, or behind a proxy that authenticates (the profile
then says ``allow_anonymous_network: true``).
"""

from __future__ import annotations

import ipaddress

from models.team import AuthSettings
from utils.errors import ConfigError

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(address: str) -> bool:
    """Whether a listen address is loopback only (an empty address means all interfaces)."""
    host = address.strip().strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.startswith("unix://"):  # a socket file is local
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen_address(address: str | None, auth: AuthSettings) -> None:
    """Raise ``ConfigError`` when ``address`` is reachable from the network without sign-in."""
    if auth.mode != "none" or auth.allow_anonymous_network or is_loopback(address or ""):
        return
    shown = address or "all interfaces (no server.address set)"
    raise ConfigError(
        f"refusing to serve without sign-in on {shown}: anyone who can reach it would be admin",
        hint="listen on 127.0.0.1 (make run HOST=127.0.0.1), turn sign-in on (auth.mode: "
        "oidc), or, only behind a proxy that authenticates, set auth.allow_anonymous_network: "
        "true in the profile",
    )
