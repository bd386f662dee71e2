"""The one small helper module shared by app.py and the pages (Streamlit lives here).

It loads the active profile once per process, and shows ``AppError``s the same
way everywhere: what happened, then what to do.

Streamlit renders Markdown in alerts, captions, labels and image captions. Any
string that came from a file, a server, a model or a user goes through
``untrusted`` before it is put into one: it then shows exactly as written and
cannot load an image, draw math or style the page.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from models.config import (
    AppConfig,
    CacheSettings,
    LoadedConfig,
    active_profile_path,
    load_config,
    user_overrides_path,
)
from utils.auth import LOCAL_USER, Action, User, can
from utils.auth.audit import AuditLog
from utils.auth.bind import check_listen_address
from utils.auth.user_data import user_root
from utils.cache import DiskCache, open_cache
from utils.documents.limits import DocumentLimits
from utils.errors import AppError, ConfigError
from utils.logging_setup import setup_logging
from utils.monitor.alerts import AlertEngine
from utils.monitor.poller import MonitorThread, PointsHook
from utils.ocr.preload import preload_default_engine
from utils.safe_markdown import escape_markdown
from utils.storage import CORRUPT_DIR_NAME, list_corrupt

PAGE_ICON = "📄"
_NOTICES_KEY = "ui_notices_after_rerun"
_USER_KEY = "auth_current_user"  # set by app.py on every run, before the page runs
_CORRUPT_NAMES_SHOWN = 5


@st.cache_resource(show_spinner=False)
def _load_profile(path: str, stamp: tuple = (), personal: str | None = None) -> LoadedConfig:
    """``stamp`` (modification times of the overrides files) is part of the cache key: a
    server connected in another app process on the same data folder shows up here."""
    loaded = load_config(path, Path(personal) if personal else None)
    setup_logging(loaded.config.data_dir, loaded.config.app.log_level)
    return loaded


@st.cache_resource(show_spinner=False)
def _shared_cache(cache_dir: str, max_mb: float, ttl_hours: float | None) -> DiskCache:
    return open_cache(Path(cache_dir), CacheSettings(max_mb=max_mb, ttl_hours=ttl_hours))


def _alert_rules(config: AppConfig) -> PointsHook:
    return AlertEngine(config).on_points


@st.cache_resource(show_spinner=False)
def _monitor(data_dir: str, _config: AppConfig) -> MonitorThread:
    return MonitorThread(_config, hook_for=_alert_rules).start()


def start_monitor(config: AppConfig) -> None:
    """The server poller and alert rules of this process (once per process; of several
    processes on one data folder, one polls: see utils.monitor). ``config`` is the shared
    profile, never one with a user's own servers; when it changes (a server connected on
    the Models page, here or in another process) the poller follows it."""
    if config.monitor.enabled and (config.endpoints or config.alerts.rules):
        _monitor(str(config.data_dir), config).follow(config)


@st.cache_resource(show_spinner=False)
def _ocr_preload(engine: str, options: str, _config: AppConfig) -> None:
    preload_default_engine(_config)


def preload_ocr_engine(config: AppConfig) -> None:
    """Load the default OCR engine in the background, once per process and engine."""
    options = getattr(config.ocr, config.models[config.ocr.engine].backend, None)
    _ocr_preload(config.ocr.engine, options.model_dump_json() if options else "", config)


def cache(config: AppConfig) -> DiskCache:
    """The result cache, one per server process: every page counts its hits and misses in
    the same object, so the Models page shows what the OCR page just did."""
    return _shared_cache(str(config.cache_dir), config.cache.max_mb, config.cache.ttl_hours)


def upload_limit_mb(config: AppConfig) -> int:
    """What the uploaders announce and take: the profile's limit in whole MB, never over
    the server's own cap (``server.maxUploadSize``), which would refuse a file first."""
    profile_mb = DocumentLimits(**config.app.upload.model_dump()).uploader_mb
    return min(profile_mb, st.get_option("server.maxUploadSize"))


def profile() -> LoadedConfig:
    """The active profile, with the signed-in user's own servers; on a broken one, show
    the error and stop this run."""
    return _profile(with_personal=True)


def shared_profile() -> LoadedConfig:
    """The active profile as every user shares it: without anyone's own servers."""
    return _profile(with_personal=False)


def _profile(with_personal: bool) -> LoadedConfig:
    _started_at()  # first call fixes the start time that report_moved_aside counts from
    path = str(active_profile_path())
    try:
        first = _load_profile(path)  # where the data folder is
        shared_stamp = (_mtime(user_overrides_path(first.config.data_dir)),)
        shared = _load_profile(path, shared_stamp)
        personal = _personal_overrides(shared.config) if with_personal else None
        if personal is None:
            return shared
        return _load_profile(path, (*shared_stamp, _mtime(personal)), str(personal))
    except ConfigError as exc:
        st.error("The configuration could not be loaded.")
        st.code(exc.message, language=None)
        st.info(untrusted(exc.hint or "Fix the profile and reload the page."))
        st.stop()
        raise  # st.stop() raises; this line only tells type checkers so


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return 0.0


def _personal_overrides(config: AppConfig) -> Path | None:
    user = st.session_state.get(_USER_KEY)
    if user is None or user.is_local:
        return None
    path = user_overrides_path(user_root(config.data_dir, user))
    return path if path.is_file() else None


def current_user() -> User:
    """The user of this tab (app.py signs them in before any page runs)."""
    user = st.session_state.get(_USER_KEY)
    if user is not None:
        return user
    if _load_profile(str(active_profile_path())).config.auth.mode == "none":
        return LOCAL_USER
    st.stop()  # a page run without app.py's sign-in: show nothing
    raise AssertionError("unreachable")


def set_current_user(user: User) -> None:
    st.session_state[_USER_KEY] = user


def allowed(action: Action) -> bool:
    """Whether this tab's user may ``action`` (pages hide what they may not use)."""
    return can(current_user(), action)


def audit(config: AppConfig) -> AuditLog:
    return AuditLog(config.data_dir)


def refuse_unsafe_listen(config: AppConfig) -> None:
    """Serve nothing when the server listens on the network without sign-in."""
    try:
        check_listen_address(st.get_option("server.address"), config.auth)
    except ConfigError as exc:
        show_error(exc)
        st.stop()


def reload_profile() -> None:
    """Read the profile again on the next ``profile()`` (the app saved the user's overrides)."""
    _load_profile.clear()


def untrusted(text: object) -> str:
    """``text`` made literal for any Markdown-rendering element (alert, caption, label)."""
    return escape_markdown(text)


def table(data, **options) -> None:
    """A read-only table whose missing values are blank cells, not the word "None"."""
    st.dataframe(data, hide_index=True, placeholder="", **options)


def show_error(exc: AppError) -> None:
    """What happened, then what to do; both may quote file names or server replies."""
    st.error(untrusted(exc.message))
    if exc.hint:
        st.caption("What to do: " + untrusted(exc.hint))


def error_after_rerun(message: str, hint: str | None = None) -> None:
    """Keep an error to show on the next run: a page that calls ``st.rerun()`` right
    after ``st.error`` would wipe the message before anyone saw it."""
    st.session_state.setdefault(_NOTICES_KEY, []).append((message, hint))


def show_errors_from_last_run() -> None:
    for message, hint in st.session_state.pop(_NOTICES_KEY, []):
        show_error(AppError(message, hint=hint))


@st.cache_resource(show_spinner=False)
def _started_at() -> float:
    """When this server process first ran the app (cached once per process)."""
    return time.time()


def moved_aside_since_start(data_dir: Path) -> list[Path]:
    """Files the storage layer moved into ``<data_dir>/.corrupt`` since the app started.

    A move sets the file's ctime, so older moves (seen in an earlier run of the
    server) are not reported again.
    """
    started = _started_at()
    moved = []
    for path in list_corrupt(data_dir / CORRUPT_DIR_NAME):
        try:
            if path.stat().st_ctime >= started:
                moved.append(path)
        except FileNotFoundError:  # removed by hand since it was listed
            continue
    return moved


def report_moved_aside(data_dir: Path) -> None:
    """A sidebar warning naming the damaged data files set aside since the app started."""
    moved = moved_aside_since_start(data_dir)
    if not moved:
        return
    names = ", ".join(untrusted(path.name) for path in moved[-_CORRUPT_NAMES_SHOWN:])
    more = len(moved) - _CORRUPT_NAMES_SHOWN
    with st.sidebar:
        st.warning(
            f"{len(moved)} damaged data file(s) were moved aside to "
            f"{untrusted(data_dir / CORRUPT_DIR_NAME)}: {names}"
            + (f" and {more} more" if more > 0 else "")
            + ". The app carries on without them; inspect or restore them by hand."
        )
