"""The shipped profiles validate; broken ones fail naming the file and the key."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from models.config import REPO_ROOT, deep_merge, load_config
from models.safe_yaml import MAX_EXPANDED_SIZE, MAX_NESTING, MAX_YAML_BYTES, YamlRefused, load_yaml
from models.templates import builtin_templates, templates_from_yaml
from testkit.hostile_profiles import CASES, LIMIT_HINT, HostileProfile, deep_brackets
from utils.errors import ConfigError

PROFILES = ["config.yaml", "config_optimized.yaml", "config_blackwell_optimized.yaml"]


@pytest.mark.parametrize("name", PROFILES)
def test_shipped_profiles_validate(name: str) -> None:
    loaded = load_config(REPO_ROOT / name)
    assert loaded.config.models["rapidocr"].backend == "rapidocr"
    assert loaded.config.ocr.engine == "rapidocr"
    assert len(loaded.sha256) == 64


def test_overrides_merge_over_the_catalog() -> None:
    base = load_config(REPO_ROOT / "config.yaml").config
    optimized = load_config(REPO_ROOT / "config_optimized.yaml").config
    blackwell = load_config(REPO_ROOT / "config_blackwell_optimized.yaml").config
    assert set(optimized.models) == set(base.models)
    assert optimized.models["qwen2_5_vl_7b"].quantization == "4bit"
    assert optimized.models["qwen2_5_vl_7b"].source == base.models["qwen2_5_vl_7b"].source
    assert blackwell.models["qwen3_vl_4b"].dtype == "bfloat16"
    assert blackwell.models["qwen3_vl_4b"].attn_implementation == "sdpa"
    assert not any(m.trust_remote_code for m in base.models.values())


def test_the_built_in_templates_are_the_ones_the_app_runs(tmp_path: Path) -> None:
    """One copy of the rules: a profile adds a template or replaces one by name, and
    every shipped profile runs the built-in receipt rules as they are today."""
    assert load_config().config.templates["receipt"] == builtin_templates()["receipt"]
    path = _child(
        tmp_path,
        "templates:\n"
        "  delivery_note:\n    fields:\n      supplier: {kind: company}\n"
        "  invoice:\n    fields:\n      number: {kind: keyword_value, keywords: [INV NO]}\n",
    )
    templates = load_config(path).config.templates
    assert set(templates) == set(builtin_templates()) | {"delivery_note"}
    assert list(templates["invoice"].fields) == ["number"]
    assert templates["receipt"] == builtin_templates()["receipt"]


def test_env_var_selects_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATVLM_CONFIG", str(REPO_ROOT / "config_optimized.yaml"))
    assert load_config().source.name == "config_optimized.yaml"


def test_deep_merge_replaces_lists_and_merges_mappings() -> None:
    merged = deep_merge({"a": {"x": 1, "y": [1, 2]}, "b": 1}, {"a": {"y": [3]}, "c": 2})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _child(folder: Path, body: str) -> Path:
    """A profile extending the shipped config.yaml with ``body`` as overrides."""
    base = REPO_ROOT / "config.yaml"
    return _write(folder, "child.yaml", f"extends: {base}\n" + textwrap.dedent(body))


BROKEN_OVERRIDES = [
    # (overrides, text the error must contain)
    ("app:\n  upload:\n    max_file_mb: lots\n", ["app.upload.max_file_mb", "'lots'"]),
    ("models:\n  qwen2_vl_2b:\n    colour: red\n", ["models.qwen2_vl_2b.colour", "Extra"]),
    (
        "models:\n  qwen2_vl_2b:\n    quantization: 16bit\n",
        ["models.qwen2_vl_2b.quantization", "'16bit'", "'4bit'"],
    ),
    ("models:\n  qwen2_vl_2b:\n    max_new_tokens: -5\n", ["models.qwen2_vl_2b.max_new_tokens"]),
    (
        "models:\n  qwen2_vl_2b:\n    trust_remote_code: maybe\n",
        ["models.qwen2_vl_2b.trust_remote_code", "'maybe'"],
    ),
    (
        "models:\n  broken:\n    display_name: B\n    backend: transformers\n    task: chat\n",
        ["models.broken", "source"],
    ),
    (
        "models:\n  remote:\n    display_name: R\n    backend: openai\n    task: chat\n"
        "    endpoint: nowhere\n",
        ["models.remote.endpoint", "nowhere"],
    ),
    ("models:\n  rapidocr:\n    task: chat\n", ["models.rapidocr", "task 'ocr'"]),
    ("endpoints:\n  vllm:\n    base_url: ftp://example\n", ["endpoints.vllm.base_url"]),
    ("ocr:\n  engine: smolvlm_256m\n", ["ocr.engine", "smolvlm_256m"]),
    ("ocr:\n  template: no_such_template\n", ["ocr.template", "no_such_template"]),
    ("telemetry: true\n", ["telemetry", "Extra"]),
    ("app:\n  log_level: LOUD\n", ["app.log_level", "'LOUD'"]),
    (
        "models:\n  Bad Key!:\n    display_name: x\n    backend: rapidocr\n    task: ocr\n",
        ["models.Bad Key!"],
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), BROKEN_OVERRIDES)
def test_broken_override_names_file_and_key(
    tmp_path: Path, overrides: str, expected: list[str]
) -> None:
    path = _child(tmp_path, overrides)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, message
    assert "child.yaml" in message or "config.yaml" in message


def test_error_names_the_file_that_set_the_bad_value(tmp_path: Path) -> None:
    path = _child(tmp_path, "models:\n  qwen2_vl_2b:\n    quantization: 3bit\n")
    with pytest.raises(ConfigError, match=r"child\.yaml: models\.qwen2_vl_2b\.quantization"):
        load_config(path)


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", "models:\n  x: [1, 2\n  y: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: YAML syntax error at line \d+"):
        load_config(path)


def test_missing_extends_target(tmp_path: Path) -> None:
    path = _write(tmp_path, "orphan.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"orphan\.yaml: extends: 'nowhere\.yaml' not found"):
        load_config(path)


def test_circular_extends(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "extends: b.yaml\n")
    _write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match=r"circular `extends`: a\.yaml -> b\.yaml -> a\.yaml"):
        load_config(tmp_path / "a.yaml")


def test_extends_must_be_a_file_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "weird.yaml", "extends: [a, b]\n")
    with pytest.raises(ConfigError, match=r"weird\.yaml: extends: found \['a', 'b'\]"):
        load_config(path)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "list.yaml", "- just\n- a list\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: found a list at the top level"):
        load_config(path)


def test_missing_profile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="profile not found"):
        load_config(tmp_path / "absent.yaml")


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = _write(
        tmp_path,
        "evil.yaml",
        f"app: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path "
        f"['{marker}']]\n",
    )
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_config(path)
    assert not marker.exists()


# --- hostile profiles (issue 14): a ConfigError naming the file, never a traceback -------


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_profile_is_a_config_error(tmp_path: Path, case: HostileProfile) -> None:
    path = case.write(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(tmp_path / case.expected[0]) in message, message
    for fragment in case.expected[1:]:
        assert fragment in message, message
    assert len(message) < 4000, "a hostile file must not fill the message"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_profile_through_config_check(tmp_path: Path, case: HostileProfile) -> None:
    path = case.write(tmp_path)
    proc = subprocess.run(
        [sys.executable, "cli.py", "config", "check", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # before the fix: over 120 s for 50 MB
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stdout == ""
    for fragment in case.expected:
        assert fragment in proc.stderr, proc.stderr


def test_limit_errors_say_what_a_profile_should_be(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(deep_brackets(tmp_path))
    assert caught.value.hint and LIMIT_HINT in caught.value.hint


def test_anchors_and_merge_keys_within_the_limits_still_load(tmp_path: Path) -> None:
    path = _child(
        tmp_path,
        """\
        models:
          small: &small_vlm
            display_name: Small
            backend: transformers
            task: both
            source: org/small
            prompts: &prompts {ocr: Read the page., chat: Describe it.}
          small_4bit:
            <<: *small_vlm
            display_name: Small (4-bit)
            quantization: 4bit
          other:
            display_name: Other
            backend: transformers
            task: chat
            source: org/other
            prompts: *prompts
        """,
    )
    models = load_config(path).config.models
    assert models["small_4bit"].source == "org/small"
    assert models["small_4bit"].quantization == "4bit"
    assert (
        models["other"].prompts
        == models["small"].prompts
        == {
            "ocr": "Read the page.",
            "chat": "Describe it.",
        }
    )


def test_a_profile_of_exactly_the_size_limit_loads(tmp_path: Path) -> None:
    path = _child(tmp_path, "")
    padding = MAX_YAML_BYTES - path.stat().st_size
    with path.open("a", encoding="utf-8") as handle:
        handle.write("#" * (padding - 1) + "\n")
    assert path.stat().st_size == MAX_YAML_BYTES
    assert load_config(path).config.models
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n")
    with pytest.raises(ConfigError, match="larger than the size limit"):
        load_config(path)


@pytest.mark.parametrize(
    ("depth", "refused"), [(MAX_NESTING - 1, False), (MAX_NESTING, False), (MAX_NESTING + 1, True)]
)
def test_nesting_limit_counts_every_level(depth: int, refused: bool) -> None:
    text = "[" * depth + "]" * depth
    if refused:
        with pytest.raises(YamlRefused, match=f"nested deeper than {MAX_NESTING} levels"):
            load_yaml(text)
    else:
        assert load_yaml(text) is not None


def test_expansion_limit_counts_aliases_as_copies() -> None:
    anchor = "x" * 1000
    fits = MAX_EXPANDED_SIZE // 1002 - 2
    text = f"a: &a {anchor}\nb: [{', '.join(['*a'] * fits)}]\n"
    assert len(load_yaml(text)["b"]) == fits
    too_many = f"a: &a {anchor}\nb: [{', '.join(['*a'] * (fits + 10))}]\n"
    with pytest.raises(YamlRefused, match="aliases expand it"):
        load_yaml(too_many)


def test_templates_yaml_goes_through_the_same_guard() -> None:
    with pytest.raises(ConfigError, match="user.yaml: not valid YAML: nested deeper than 64"):
        templates_from_yaml("t: " + "[" * 20_000 + "]" * 20_000, source="user.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        templates_from_yaml("t: &t {fields: *t}\n")


# ------------------------------------------------------------- the user's overrides file

_SERVER_OVERRIDES = """\
endpoints:
  my_server:
    base_url: http://127.0.0.1:9/v1
models:
  my_model:
    display_name: My served model
    backend: openai
    task: chat
    endpoint: my_server
    served_name: served-name
"""


def _profile_with_data_dir(tmp_path: Path) -> Path:
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        f"extends: {REPO_ROOT / 'config.yaml'}\napp:\n  data_dir: {tmp_path / 'results'}\n"
    )
    return profile


def test_user_overrides_file_is_merged_last_and_validated(tmp_path: Path) -> None:
    profile = _profile_with_data_dir(tmp_path)
    (tmp_path / "results").mkdir()
    overrides = tmp_path / "results" / "overrides.yaml"
    overrides.write_text(_SERVER_OVERRIDES)
    loaded = load_config(profile)
    entry = loaded.config.models["my_model"]
    assert entry.backend == "openai" and entry.served_name == "served-name"
    assert loaded.config.endpoints["my_server"].base_url == "http://127.0.0.1:9/v1"
    assert "qwen2_vl_2b" in loaded.config.models  # the catalog is still there
    assert loaded.chain[0] == overrides


def test_a_broken_user_overrides_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    profile = _profile_with_data_dir(tmp_path)
    (tmp_path / "results").mkdir()
    overrides = tmp_path / "results" / "overrides.yaml"
    overrides.write_text(_SERVER_OVERRIDES.replace("endpoint: my_server", "endpoint: nowhere"))
    with pytest.raises(ConfigError) as raised:
        load_config(profile)
    assert str(overrides) in raised.value.message and "nowhere" in raised.value.message
    overrides.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError) as raised:
        load_config(profile)
    assert str(overrides) in raised.value.message
