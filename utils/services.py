"""Builds the app-wide services from a validated profile.

Pages and the CLI call these instead of wiring paths and limits themselves,
so both use the same folders and settings.
"""

from __future__ import annotations

from models.config import AppConfig
from utils.cache import DiskCache


def open_cache(config: AppConfig) -> DiskCache:
    ttl = config.cache.ttl_hours * 3600 if config.cache.ttl_hours else None
    return DiskCache(config.cache_dir, max_mb=config.cache.max_mb, ttl_seconds=ttl)
