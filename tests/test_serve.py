"""serve.py, the way `make run` and the Docker image start the app."""

from __future__ import annotations

import time
from pathlib import Path

from testkit.e2e_harness import AppServer, write_profile

LOADED = "OCR engine rapidocr loaded at start-up"


def test_the_default_engine_loads_with_the_server_before_any_visit(tmp_path: Path) -> None:
    """Under plain `streamlit run`, app.py (and so the load) runs only once a browser
    connects; no browser connects here."""
    with AppServer(write_profile(tmp_path), tmp_path / "app.log") as server:
        deadline = time.monotonic() + 90
        while LOADED not in server.log_tail() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert LOADED in server.log_tail(), server.log_tail()
