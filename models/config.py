"""Typed configuration: the pydantic schema of the YAML profiles and ``load_config``.

A profile may declare ``extends: other.yaml``; it is deep-merged over that file
(mappings merge key by key, everything else replaces), so the model catalog is
written once in ``config.yaml`` and the other profiles hold only overrides.
What the app saves for the user (a connected server) goes to
``<data_dir>/overrides.yaml``, merged last and validated like the rest.
Every error names the file, the key path, what was found and what is allowed.
Files are read through ``models.safe_yaml``, which refuses YAML too big, too deep or
too alias-heavy to load safely; ``extends`` chains are at most ``MAX_EXTENDS_CHAIN`` long.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from models.monitoring import AlertSettings, MonitorSettings
from models.options import RapidOcrOptions, TesseractOptions
from models.safe_yaml import YamlRefused, load_yaml, read_yaml_text
from models.strict import Identifier, Strict
from models.team import AuthSettings
from models.templates import TemplateSpec, builtin_templates
from utils.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROFILE = REPO_ROOT / "config.yaml"
PROFILE_ENV_VAR = "CHATVLM_CONFIG"
MAX_EXTENDS_CHAIN = 4  # files in one chain, itself included: each may be MAX_YAML_BYTES
USER_OVERRIDES_FILE = "overrides.yaml"  # in the data folder: see user_overrides_path

Backend = Literal["transformers", "openai", "rapidocr", "tesseract"]
OCR_ONLY_BACKENDS = {"rapidocr", "tesseract"}


class UploadLimits(Strict):
    max_file_mb: float = Field(50, gt=0, le=2048)
    max_megapixels: float = Field(60, gt=0, le=1000)
    max_pages: int = Field(200, ge=1, le=10_000)
    pdf_dpi: int = Field(200, ge=50, le=600)
    max_side: int = Field(2500, ge=0, description="longest side in px for processing; 0 = none")


class AppSettings(Strict):
    title: str = "ChatVLMLLM"
    data_dir: Path = Path("results")
    cache_dir: Path = Path("cache")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    upload: UploadLimits = UploadLimits()


class Endpoint(Strict):
    """An OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio)."""

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    api_key_env: str | None = Field(None, description="name of the env var holding the key")
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    concurrency: int = Field(4, ge=1, le=256)


class ModelEntry(Strict):
    """One catalog entry: a VLM (in-process or served) or a classical OCR engine."""

    display_name: str
    backend: Backend
    task: Literal["chat", "ocr", "both"]
    source: str | None = Field(None, description="Hugging Face id or local folder")
    endpoint: str | None = Field(None, description="key in `endpoints` (openai backend)")
    served_name: str | None = Field(None, description="model name on the server")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device_map: str = "auto"
    quantization: Literal["none", "8bit", "4bit"] = "none"
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = None
    auto_class: Literal["AutoModelForImageTextToText", "AutoModelForCausalLM"] = (
        "AutoModelForImageTextToText"
    )
    max_new_tokens: int = Field(1024, ge=1, le=32_768)
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy decoding")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    ocr_style: Literal["chat", "got_ocr2"] = Field(
        "chat", description="how the model reads a page: a chat prompt, or GOT-OCR2's own mode"
    )
    min_pixels: int | None = Field(None, ge=1)
    max_pixels: int | None = Field(None, ge=1)
    prompts: dict[str, str] = Field(default_factory=dict)
    trust_remote_code: bool = False
    enabled: bool = True

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelEntry:
        if self.backend == "transformers" and not self.source:
            raise ValueError("a transformers model needs `source` (Hugging Face id or folder)")
        if self.backend == "openai" and not self.endpoint:
            raise ValueError("an openai model needs `endpoint` (a key of `endpoints`)")
        if self.backend in OCR_ONLY_BACKENDS and self.task != "ocr":
            raise ValueError(f"a {self.backend} engine can only have task 'ocr'")
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels is larger than max_pixels")
        return self


class RuntimeSettings(Strict):
    """How in-process models share the machine."""

    max_loaded_models: int = Field(2, ge=1, le=16)
    ram_budget_gb: float | None = Field(
        None, gt=0, description="RAM models may use; default: 80% of what is available"
    )
    vram_budget_gb: float | None = Field(
        None, gt=0, description="per-GPU memory models may use; default: 90% of the card"
    )


class OcrDefaults(Strict):
    engine: Identifier = "rapidocr"
    template: Identifier | None = None
    output_format: Literal["text", "markdown", "json"] = "text"
    auto_rotate: bool = False
    deskew: bool = False
    # Checked between pages and files (a page in progress finishes); null = no limit.
    file_time_budget_s: float | None = Field(
        600, gt=0, description="most seconds one file may take; the pages read are kept"
    )
    batch_time_budget_s: float | None = Field(
        1800, gt=0, description="most seconds one batch of files on the OCR page may take"
    )
    rapidocr: RapidOcrOptions = RapidOcrOptions()
    tesseract: TesseractOptions = TesseractOptions()


class BenchmarkDefaults(Strict):
    dataset: str = "builtin"
    limit: int | None = Field(None, ge=1)
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)
    # The page's users are anyone with a browser, so it may not read any folder the server
    # can; the CLI, run by the machine's own user, reads any folder it is given.
    dataset_roots: list[Path] | None = Field(
        None,
        description="folders the Benchmarks page may read datasets from, sub-folders included "
        "(relative: from the repository root); null = <data_dir>/datasets; [] = the built-in "
        "sample set only",
    )


class CacheSettings(Strict):
    max_mb: float = Field(
        512,
        gt=0,
        description="size cap of the result cache in MB; must be above 0 "
        "(to skip the cache for one CLI run, use `cli.py ocr --no-cache`)",
    )
    ttl_hours: float | None = Field(None, gt=0)


class AppConfig(Strict):
    """The resolved profile (after ``extends`` merging)."""

    app: AppSettings = AppSettings()
    models: dict[Identifier, ModelEntry] = Field(default_factory=dict)
    endpoints: dict[Identifier, Endpoint] = Field(default_factory=dict)
    runtime: RuntimeSettings = RuntimeSettings()
    ocr: OcrDefaults = OcrDefaults()
    templates: dict[Identifier, TemplateSpec] = Field(
        default_factory=builtin_templates,
        description="the built-in templates, plus the profile's, which add to them or "
        "replace one by name",
    )
    benchmark: BenchmarkDefaults = BenchmarkDefaults()
    cache: CacheSettings = CacheSettings()
    auth: AuthSettings = AuthSettings()
    monitor: MonitorSettings = MonitorSettings()
    alerts: AlertSettings = AlertSettings()

    @field_validator("templates", mode="before")
    @classmethod
    def _over_builtin_templates(cls, templates: Any) -> Any:
        # One copy of the built-in rules: a profile that repeated them would keep
        # running its old copy after the rules improve.
        if not isinstance(templates, dict):
            return templates  # the field's own validation says what is wrong
        return {**builtin_templates(), **templates}

    @model_validator(mode="after")
    def _references(self) -> AppConfig:
        for key, entry in self.models.items():
            if entry.endpoint and entry.endpoint not in self.endpoints:
                raise ValueError(
                    f"models.{key}.endpoint: '{entry.endpoint}' is not a key of `endpoints` "
                    f"(known: {', '.join(sorted(self.endpoints)) or 'none'})"
                )
        engine = self.models.get(self.ocr.engine)
        if engine is None or engine.task == "chat":
            raise ValueError(f"ocr.engine: '{self.ocr.engine}' is not an OCR-capable model")
        for rule in self.alerts.rules:
            if rule.endpoint and rule.endpoint not in self.endpoints:
                raise ValueError(f"alerts: rule '{rule.name}' names no endpoint '{rule.endpoint}'")
        if self.ocr.template and self.ocr.template not in self.templates:
            raise ValueError(f"ocr.template: '{self.ocr.template}' is not a key of `templates`")
        return self

    def path(self, folder: Path) -> Path:
        """A data folder from the config, relative paths taken from the repository root."""
        return folder if folder.is_absolute() else REPO_ROOT / folder

    @property
    def data_dir(self) -> Path:
        return self.path(self.app.data_dir)

    @property
    def cache_dir(self) -> Path:
        return self.path(self.app.cache_dir)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated profile plus where it came from."""

    config: AppConfig
    source: Path
    chain: tuple[Path, ...]
    sha256: str


def active_profile_path(explicit: str | os.PathLike | None = None) -> Path:
    """The profile to use: an explicit path, else ``$CHATVLM_CONFIG``, else config.yaml."""
    chosen = explicit or os.environ.get(PROFILE_ENV_VAR) or DEFAULT_PROFILE
    path = Path(chosen).expanduser()
    if path.is_absolute():
        return path
    try:
        return (Path.cwd() / path).resolve()
    except (OSError, RuntimeError):  # a symlink loop: reading it reports the problem
        return Path.cwd() / path


#: What a signed-in user's own overrides file may add: their connected servers, nothing
#: that changes the app for others (folders, sign-in, roles).
PERSONAL_SECTIONS = ("models", "endpoints")


def load_config(
    path: str | os.PathLike | None = None, personal_overrides: Path | None = None
) -> LoadedConfig:
    """Read, merge and validate a profile. Raises ``ConfigError`` with a precise message.

    ``personal_overrides`` is one signed-in user's overrides file (their connected
    servers), merged after the data folder's own; only its ``models`` and ``endpoints``
    count.
    """
    source = active_profile_path(path)
    layers = _read_chain(source)
    merged: dict[str, Any] = {}
    for _, raw in reversed(layers):
        merged = deep_merge(merged, raw)
    overrides = _user_overrides_file(merged)
    if overrides is not None:  # what the app saved for this data folder, merged last
        layers.insert(0, (overrides, _read_yaml_mapping(overrides)))
        merged = deep_merge(merged, layers[0][1])
    if personal_overrides is not None and personal_overrides.is_file():
        raw = _read_yaml_mapping(personal_overrides)
        layers.insert(0, (personal_overrides, {k: raw[k] for k in PERSONAL_SECTIONS if k in raw}))
        merged = deep_merge(merged, layers[0][1])
    try:
        config = AppConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, layers), hint=_HINT) from None
    digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()
    return LoadedConfig(
        config=config, source=source, chain=tuple(p for p, _ in layers), sha256=digest
    )


_HINT = "fix the file and restart; `python cli.py config check FILE` shows the resolved profile"
_LIMIT_HINT = "a profile is a few KB of plain YAML in a file: fix what the message names"
_MAX_PROBLEMS_LISTED = 20  # a hostile file can hold 100,000 errors; the first ones show what to fix


def user_overrides_path(data_dir: Path) -> Path:
    """The file the app writes the user's own additions to (a connected server), never
    a shipped profile: ``<data_dir>/overrides.yaml``, deep-merged over the profile."""
    return data_dir / USER_OVERRIDES_FILE


def _user_overrides_file(merged: dict[str, Any]) -> Path | None:
    """The overrides file of the merged profile's data folder, if there is one."""
    app = merged.get("app")
    folder = app.get("data_dir") if isinstance(app, dict) else None
    if not isinstance(folder, str | Path):
        folder = AppSettings().data_dir  # a bad value is reported by the validation
    folder = Path(folder)
    path = user_overrides_path(folder if folder.is_absolute() else REPO_ROOT / folder)
    try:
        return path if path.is_file() else None
    except (OSError, ValueError):  # a NUL byte, a name too long: validation says more
        return None


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; lists and scalars in ``override`` replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_chain(source: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The profile and the files it extends, most specific first, without ``extends``."""
    layers: list[tuple[Path, dict[str, Any]]] = []
    current: Path | None = source
    while current is not None:
        _check_chain(source, [p for p, _ in layers], current)
        raw = _read_yaml_mapping(current)
        parent = raw.pop("extends", None)
        layers.append((current, raw))
        current = _resolve_extends(current, parent) if parent is not None else None
    return layers


def _check_chain(source: Path, chain: list[Path], current: Path) -> None:
    if current in chain:
        cycle = " -> ".join(p.name for p in chain) + f" -> {current.name}"
        raise ConfigError(f"{source}: circular `extends`: {cycle}", hint=_HINT)
    if len(chain) >= MAX_EXTENDS_CHAIN:
        raise ConfigError(
            f"{source}: `extends` chain longer than {MAX_EXTENDS_CHAIN} files "
            f"({' -> '.join(p.name for p in chain)} -> ...)",
            hint="extend config.yaml directly; a profile holds only its overrides",
        )


def _resolve_extends(child: Path, parent: Any) -> Path:
    name = _shorten(repr(parent))  # repr: a NUL or a control character stays visible
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(
            f"{child}: extends: found {name}, expected a file name such as config.yaml",
            hint=_HINT,
        )
    try:
        target = (child.parent / parent).resolve()
        exists, regular = target.exists(), target.is_file()
    except (OSError, RuntimeError, ValueError) as exc:  # too long, symlink loop, NUL byte
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"{child}: extends: {name} cannot be used: {reason}", hint=_HINT
        ) from None
    if not exists:
        raise ConfigError(f"{child}: extends: {name} not found at {target}", hint=_HINT)
    if not regular:
        raise ConfigError(f"{child}: extends: {name} is not a file ({target})", hint=_HINT)
    return target


def _shorten(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters: a hostile value must not fill the message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The one way a profile file is read: size-capped, guarded YAML, a mapping on top."""
    try:
        data = load_yaml(read_yaml_text(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: profile not found", hint=_HINT) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the profile ({exc})", hint=_HINT) from None
    except YamlRefused as exc:
        raise ConfigError(f"{path}: {exc.problem}{_line(exc)}", hint=_LIMIT_HINT) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: YAML syntax error{_line(exc)}: {problem}", hint=_HINT) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: found a {type(data).__name__} at the top level, expected a mapping of "
            "sections (app, models, endpoints, ocr, templates, benchmark, cache)",
            hint=_HINT,
        )
    return data


def _line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def _describe_validation_error(
    exc: ValidationError, layers: list[tuple[Path, dict[str, Any]]]
) -> str:
    problems = []
    errors = exc.errors(include_url=False)
    for error in errors[:_MAX_PROBLEMS_LISTED]:
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "(top level)"
        where = _file_defining(loc, layers)
        found = _found(error)
        problems.append(f"{where}: {key}: {error['msg']}{found}")
    if len(errors) > _MAX_PROBLEMS_LISTED:
        problems.append(f"... and {len(errors) - _MAX_PROBLEMS_LISTED:,} more problems")
    return "invalid profile:\n  " + "\n  ".join(problems)


def _found(error: dict[str, Any]) -> str:
    if error["type"] in {"missing"} or error["type"].endswith("_error") and not error["loc"]:
        return ""
    value = error.get("input")
    if isinstance(value, dict | list):
        return ""
    return f" (found {value!r})"


def _file_defining(loc: tuple[str, ...], layers: list[tuple[Path, dict[str, Any]]]) -> Path:
    """The most specific file in the chain that sets the deepest existing part of ``loc``."""
    for depth in range(len(loc), 0, -1):
        for path, raw in layers:
            if _has_path(raw, loc[:depth]):
                return path
    return layers[0][0]


def _has_path(raw: Any, loc: tuple[str, ...]) -> bool:
    node = raw
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
