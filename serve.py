"""Start the web app: ``python serve.py [streamlit run options]``.

The same server as ``streamlit run app.py [options]`` (``make run`` and the Docker
image use this file), plus the one thing Streamlit has no start-up hook for: the
profile's default OCR engine starts loading when the server process starts. Under
plain ``streamlit run`` it starts when the first browser runs app.py, and a receipt
uploaded right away waits for the load, which then also competes with the first
page's own imports for the CPU. Everything below runs in the server's process, so
the pages find the engine in the same registry, loaded.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"


def preload_before_the_first_visit() -> None:
    """Start loading the default OCR engine in the background; say when it is ready.

    A profile that does not load is left alone: app.py shows its error on the first page.
    """
    from models.config import active_profile_path, load_config
    from utils.errors import AppError
    from utils.ocr.preload import preload_default_engine

    started = time.perf_counter()
    try:
        config = load_config(active_profile_path()).config
    except AppError:
        return

    def report(loaded: bool) -> None:
        seconds = time.perf_counter() - started
        state = "loaded" if loaded else "not loaded (the OCR page says why)"
        message = f"OCR engine {config.ocr.engine} {state} at start-up in {seconds:.1f} s"
        print(message, file=sys.stderr, flush=True)

    preload_default_engine(config, on_done=report)


def main() -> None:
    preload_before_the_first_visit()
    from streamlit.web import cli as streamlit_cli

    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    streamlit_cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
