"""Test profiles: the shipped config.yaml with the data folders moved elsewhere."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_test_profile(
    base: Path, extra: str = "", name: str = "profile.yaml", monitor: bool = False
) -> Path:
    """``base/name`` extending config.yaml, results/ and cache/ under ``base``; ``extra``
    is appended as more YAML (e.g. a ``models:`` section with test models).

    The server monitor is off unless ``monitor``: otherwise every app a test starts
    would poll config.yaml's servers in the background for the rest of the session.
    """
    profile = base / name
    profile.write_text(
        f"extends: {REPO_ROOT / 'config.yaml'}\n"
        "app:\n"
        f"  data_dir: {base / 'results'}\n"
        f"  cache_dir: {base / 'cache'}\n"
        + extra  # may go on with more `app:` keys: it comes right after them
        + ("" if monitor else "\nmonitor:\n  enabled: false\n"),
        encoding="utf-8",
    )
    return profile


def fake_server_model_yaml(base_url: str, timeout_s: float = 5) -> str:
    """Profile YAML for a chat model ``fake_vlm`` served by a local fake OpenAI server."""
    return (
        "endpoints:\n"
        "  fake:\n"
        f"    base_url: {base_url}\n"
        f"    timeout_s: {timeout_s}\n"
        "    max_retries: 0\n"
        "models:\n"
        "  fake_vlm:\n"
        "    display_name: Fake VLM\n"
        "    backend: openai\n"
        "    task: chat\n"
        "    endpoint: fake\n"
        "    served_name: fake-vlm\n"
    )


def tiny_model_yaml(model_id: str, folder: Path) -> str:
    """A catalog entry (under ``models:``) for a tiny random-weight VLM in ``folder``."""
    return (
        f"  {model_id}:\n"
        "    display_name: Tiny Qwen2-VL\n"
        "    backend: transformers\n"
        "    task: both\n"
        f"    source: {folder}\n"
        "    dtype: float32\n"
        "    device_map: cpu\n"
        "    max_new_tokens: 8\n"
    )
