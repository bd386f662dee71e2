"""What the test kit's server subprocesses share: stopping one, reading its log."""

from __future__ import annotations

import subprocess
from pathlib import Path


def stop_process(process: subprocess.Popen | None) -> None:
    """Terminate ``process`` (kill it if it lingers 10 s); nothing if it already ended."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def log_tail(log_path: Path, chars: int = 4000) -> str:
    try:
        return log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "(no log)"
