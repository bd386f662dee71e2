"""Test profiles: the shipped config.yaml with the data folders moved elsewhere."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_test_profile(base: Path, extra: str = "", name: str = "profile.yaml") -> Path:
    """``base/name`` extending config.yaml, results/ and cache/ under ``base``; ``extra``
    is appended as more YAML (e.g. a ``models:`` section with test models)."""
    profile = base / name
    profile.write_text(
        f"extends: {REPO_ROOT / 'config.yaml'}\n"
        "app:\n"
        f"  data_dir: {base / 'results'}\n"
        f"  cache_dir: {base / 'cache'}\n" + extra,
        encoding="utf-8",
    )
    return profile
