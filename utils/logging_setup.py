"""Standard logging: a rotating file under ``<data_dir>/logs/`` plus stderr.

Messages never carry image bytes or whole model outputs at INFO; modules log
sizes, names and timings instead.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_configured: set[Path] = set()


def setup_logging(data_dir: Path, level: str = "INFO") -> Path | None:
    """Attach a rotating file handler (5 x 2 MB) once per process and folder.

    A data folder that cannot take the log (read-only, full) leaves logging on
    stderr with a warning: the app still serves what it can read. Returns the log
    file, or None when there is none.
    """
    log_dir = data_dir / "logs"
    log_file = log_dir / "app.log"
    root = logging.getLogger()
    root.setLevel(level)
    if log_file in _configured:
        return log_file
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=2_000_000, backupCount=5, encoding="utf-8"
        )
    except OSError as exc:
        logging.getLogger(__name__).warning("no log file in %s: %s", log_dir, exc)
        return None
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    _configured.add(log_file)
    return log_file
