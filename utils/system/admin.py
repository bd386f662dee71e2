"""Admin actions on the machine's shared resources, each checked and logged.

Loading, unloading and downloading models, status checks and clearing the result
cache change what every user gets, so they need ``Action.MANAGE_MODELS``,
``CHECK_STATUS`` or ``CLEAR_CACHE`` (the admin role); a refusal is logged too.
"""

from __future__ import annotations

from pathlib import Path

from models.config import AppConfig
from models.registry import create_chat_backend
from models.runtime.manager import get_manager
from utils.auth import Action, User
from utils.auth.audit import AuditLog
from utils.cache import DiskCache
from utils.system.downloads import ProgressBar, download_entry
from utils.system.model_status import StatusReport, check_models, write_status


def load_model(model_id: str, config: AppConfig, user: User) -> None:
    audit = AuditLog(config.data_dir)
    audit.check(user, Action.MANAGE_MODELS, model_id)
    create_chat_backend(model_id, config)
    audit.record(user, "load model", model_id)


def unload_model(key: str, config: AppConfig, user: User) -> bool:
    audit = AuditLog(config.data_dir)
    audit.check(user, Action.MANAGE_MODELS, key)
    unloaded = get_manager(config.runtime).unload(key)
    audit.record(user, "unload model", key)
    return unloaded


def download_model(model_id: str, config: AppConfig, user: User, show: ProgressBar) -> Path:
    audit = AuditLog(config.data_dir)
    audit.check(user, Action.MANAGE_MODELS, model_id)
    path = download_entry(model_id, config, show)
    audit.record(user, "download model", model_id)
    return path


def run_status_check(config: AppConfig, user: User, profile: str) -> StatusReport:
    """Probe every model and server, then store the report (``write_status`` errors raise
    after the report is built: the caller still shows it)."""
    audit = AuditLog(config.data_dir)
    audit.check(user, Action.CHECK_STATUS, profile)
    report = check_models(config, profile=profile)
    audit.record(user, "check model status", profile)
    write_status(config, report)
    return report


def clear_cache(cache: DiskCache, config: AppConfig, user: User) -> int:
    audit = AuditLog(config.data_dir)
    audit.check(user, Action.CLEAR_CACHE, str(config.cache_dir))
    removed = cache.clear()
    audit.record(user, "clear cache", str(config.cache_dir), detail=f"{removed} entries")
    return removed
