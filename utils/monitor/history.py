"""Server points on disk: ``<data_dir>/monitor/<endpoint>.jsonl``, one line per poll.

Past ``max_bytes`` the file becomes ``<endpoint>.1.jsonl`` (replacing the one before)
and a new one starts, so a server's history never takes more than twice that, and a
restart of the app keeps the last hours. Appends are the storage layer's (locked,
fsynced, a torn line cut), so two app processes never interleave.
"""

from __future__ import annotations

import re
from pathlib import Path

from utils.monitor.points import ServerPoint
from utils.storage import append_jsonl, read_jsonl
from utils.storage.rotation import one_older, rotate_if_over

MONITOR_DIR_NAME = "monitor"
_ENDPOINT = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class MetricsHistory:
    def __init__(self, data_dir: Path, max_bytes: int) -> None:
        self.folder = data_dir / MONITOR_DIR_NAME
        self.max_bytes = max_bytes

    def path(self, endpoint: str) -> Path:
        if not _ENDPOINT.fullmatch(endpoint):  # profile keys only; never a path from outside
            raise ValueError(f"not an endpoint key: {endpoint!r}")
        return self.folder / f"{endpoint}.jsonl"

    def append(self, point: ServerPoint) -> None:
        path = self.path(point.endpoint)
        rotate_if_over(path, self.max_bytes, one_older)
        append_jsonl(path, point)

    def read(self, endpoint: str, since: float = 0.0) -> list[ServerPoint]:
        """The points at or after ``since`` (epoch seconds), oldest first."""
        path = self.path(endpoint)
        points: list[ServerPoint] = []
        for file in (one_older(path), path):
            points.extend(p for p in read_jsonl(file, ServerPoint).records if p.at >= since)
        return points
