"""Where a model's files are: a local folder or the local Hugging Face cache.

Loading never touches the network: ``resolve_model_path`` finds a folder or a
cached snapshot and otherwise says which command downloads it. Downloading is a
separate, explicit step (``download_model``, used by ``cli.py models download``).

huggingface_hub reads ``HF_HUB_OFFLINE`` and the cache location from the
environment once, at import; this module reads them at call time, so a process
that changes them (tests, the CLI's flags) gets what it asked for, and passes
the cache folder to huggingface_hub explicitly.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from utils.errors import ModelUnavailable

logger = logging.getLogger(__name__)

# "org/name" or a bare "name", as the Hub spells repo ids.
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE_VALUES = {"1", "on", "yes", "true"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
# The progress bar snapshot_download feeds with the bytes written to disk.
_BYTES_BAR_NAME = "huggingface_hub.snapshot_download"

ProgressCallback = Callable[[int, int], None]


class CachedModel(BaseModel):
    """A model present on this machine, as the Models page lists it."""

    model_config = ConfigDict(extra="forbid")

    source: str
    path: Path
    size_bytes: int
    revision: str | None = None  # commit hash of a cached snapshot; None for a plain folder
    has_weights: bool = True  # False: e.g. only config.json was fetched by an earlier tool


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, from the environment as it is now."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def hub_offline() -> bool:
    """Whether downloads are switched off (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE_VALUES


def resolve_model_path(source: str, allow_download: bool = False) -> Path:
    """The folder holding ``source``'s files; no network unless ``allow_download``.

    ``source`` is a local folder (with config.json) or a Hub repo id found in the
    local cache. Raises ``ModelUnavailable`` naming the download command otherwise.
    """
    local = _local_folder(source)
    if local is not None:
        return local
    _require_repo_id(source)
    snapshot = _cached_snapshot(source)
    if snapshot is not None:
        _warn_if_incomplete(source, snapshot)
        return snapshot
    if allow_download and not hub_offline():
        return download_model(source)
    raise ModelUnavailable(
        f"'{source}' is not in the local Hugging Face cache ({hub_cache_dir()})",
        hint=f"python cli.py models download {source}  (on a machine with network; "
        "or set the entry's `source:` to a local folder holding the model)",
    )


def download_model(source: str, progress: ProgressCallback | None = None) -> Path:
    """Fetch ``source`` into the local cache and return its snapshot folder.

    ``progress(done_bytes, total_bytes)`` is called as files are written; the
    total grows while downloads start. Offline -> ``ModelUnavailable``.
    """
    local = _local_folder(source)
    if local is not None:
        return local  # already on disk: nothing to fetch
    _require_repo_id(source)
    if hub_offline():
        raise ModelUnavailable(
            f"offline: cannot download '{source}' because HF_HUB_OFFLINE (or "
            "TRANSFORMERS_OFFLINE) is set",
            hint="unset HF_HUB_OFFLINE and retry, or copy the model folder here and set the "
            "entry's `source:` to it",
        )
    from huggingface_hub import snapshot_download

    cache_dir = hub_cache_dir()
    logger.info("downloading %s into %s", source, cache_dir)
    kwargs: dict[str, Any] = {"cache_dir": str(cache_dir)}
    if progress is not None:
        kwargs["tqdm_class"] = reporting_progress_bar(progress)
    try:
        folder = Path(snapshot_download(source, **kwargs))
    except Exception as exc:
        raise _download_error(source, exc) from exc
    logger.info("downloaded %s (%d bytes)", source, _folder_size(folder))
    return folder


def cached_model_info(source: str) -> CachedModel | None:
    """What is on disk for ``source`` (folder or cached snapshot), or None."""
    try:
        local = _local_folder(source)
    except ModelUnavailable:
        return None
    if local is not None:
        folder, revision = local, None
    elif _REPO_ID.match(source) and (snapshot := _cached_snapshot(source)) is not None:
        folder, revision = snapshot, snapshot.name
    else:
        return None
    return CachedModel(
        source=source,
        path=folder,
        size_bytes=_folder_size(folder),
        revision=revision,
        has_weights=_has_weight_files(folder),
    )


def reporting_progress_bar(progress: ProgressCallback) -> type:
    """A tqdm class for ``snapshot_download`` that reports written bytes to ``progress``.

    snapshot_download creates several bars from this class (files, transfer,
    bytes on disk); only the bytes-on-disk one reports, told apart by its name.
    """
    from huggingface_hub.utils import tqdm as hf_tqdm

    class ReportingBar(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._reports = kwargs.get("name") == _BYTES_BAR_NAME
            self._done = 0  # counted here: a disabled tqdm does not count
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if self._reports:
                self._done += int(n or 0)
                progress(self._done, int(self.total or 0))
            return super().update(n)

    return ReportingBar


def _local_folder(source: str) -> Path | None:
    """``source`` as a model folder, None when it is not a path on this machine."""
    path = Path(source).expanduser()
    # A repo id has at most one "/" and never starts like a path; "org/name" may be either.
    looks_like_path = source.startswith(("/", ".", "~")) or source.count("/") > 1 or "\\" in source
    if path.is_dir():
        if (path / "config.json").is_file():
            return path.resolve()
        if looks_like_path or not _REPO_ID.match(source):
            raise ModelUnavailable(
                f"folder '{path}' has no config.json, so it is not a model folder",
                hint="point `source:` at the folder that save_pretrained / the download wrote",
            )
        return None  # e.g. a stray "org/name" folder in the cwd: treat it as a repo id
    if looks_like_path:
        raise ModelUnavailable(
            f"model folder '{path}' does not exist",
            hint="fix the entry's `source:` (a local folder or a Hugging Face id like org/name)",
        )
    return None


def _require_repo_id(source: str) -> None:
    if not _REPO_ID.match(source):
        raise ModelUnavailable(
            f"'{source}' is neither a model folder nor a Hugging Face id",
            hint="use a Hugging Face id like Qwen/Qwen2-VL-2B-Instruct or a local folder path",
        )


def _cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot of ``repo_id`` at ``main``, found without network."""
    cache_dir = hub_cache_dir()
    if not (cache_dir / ("models--" + repo_id.replace("/", "--"))).is_dir():
        return None  # skip importing huggingface_hub's download code for the common miss
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, cache_dir=str(cache_dir), local_files_only=True))
    except LocalEntryNotFoundError as exc:  # includes IncompleteSnapshotError
        logger.info("no complete cached snapshot for %s: %s", repo_id, exc)
        return None


def _warn_if_incomplete(source: str, folder: Path) -> None:
    if not (folder / "config.json").is_file() or not _has_weight_files(folder):
        logger.warning(
            "cached snapshot of %s at %s lacks config.json or weight files; loading may fail "
            "(re-run `python cli.py models download %s`)",
            source,
            folder,
            source,
        )


def _download_error(source: str, exc: Exception) -> ModelUnavailable:
    """A download failure as the user should read it, by huggingface_hub's error type."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return ModelUnavailable(
            f"'{source}' is gated on the Hugging Face Hub",
            hint="accept its licence on huggingface.co, then set HF_TOKEN (or `hf auth login`)",
        )
    if isinstance(exc, RepositoryNotFoundError | RevisionNotFoundError):
        return ModelUnavailable(
            f"'{source}' was not found on the Hugging Face Hub",
            hint="check the spelling of the id; private repos need HF_TOKEN",
        )
    if isinstance(exc, LocalEntryNotFoundError):
        return ModelUnavailable(
            f"offline: the Hugging Face Hub cannot be reached to download '{source}' ({exc})",
            hint="check the network or proxy settings, then retry",
        )
    if isinstance(exc, OSError):
        return ModelUnavailable(
            f"downloading '{source}' failed: {exc}",
            hint=f"check free disk space in {hub_cache_dir()} and the network, then retry",
        )
    return ModelUnavailable(f"downloading '{source}' failed: {exc}", hint="retry later")


def _has_weight_files(folder: Path) -> bool:
    return any(p.suffix in _WEIGHT_SUFFIXES for p in folder.iterdir() if p.is_file())


def _folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder``; cache snapshots are symlinks to blobs."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size  # stat follows the symlink to the blob
        except OSError:
            continue  # a dangling link from an interrupted download
    return total
