"""Fetch a server's Prometheus exposition text.

An OpenAI-compatible base URL ends in ``/v1``; vLLM serves its metrics beside it, at
``/metrics`` of the same host. A server that answers 404 there does not expose
metrics (Ollama, llama.cpp without ``--metrics``): that is a fact to show, not an error.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

#: A vLLM server with many models and LoRA adapters writes a few hundred KB; more is
#: not a metrics page.
MAX_METRICS_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Scrape:
    """What one fetch found: the text, or why there is none."""

    text: str | None
    up: bool
    error: str = ""
    exposes_metrics: bool = True


def metrics_url(base_url: str) -> str:
    """``http://host:8000/v1`` -> ``http://host:8000/metrics``."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/metrics", "", ""))


def fetch_metrics(url: str, timeout_s: float) -> Scrape:
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            body = response.read(MAX_METRICS_BYTES + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return Scrape(None, up=True, exposes_metrics=False, error="no /metrics (HTTP 404)")
        return Scrape(None, up=True, error=f"HTTP {exc.code} from /metrics")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Scrape(None, up=False, error=f"unreachable: {reason}"[:300])
    if len(body) > MAX_METRICS_BYTES:
        return Scrape(None, up=True, error=f"/metrics is over {MAX_METRICS_BYTES} bytes")
    return Scrape(body.decode("utf-8", errors="replace"), up=True)
