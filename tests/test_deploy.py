"""Deployment files, checked by parsing (no Docker engine runs here): Dockerfile,
docker-compose.yml, .dockerignore, the docker profile, and the README's claims."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

import cli
from models.config import REPO_ROOT, load_config

COMPOSE_TEXT = (REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
# Compose interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}; `$$` is a literal `$`.
INTERPOLATED = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def instructions(keyword: str) -> list[str]:
    return [rest for key, rest in dockerfile_instructions() if key == keyword]


def readme_section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def healthcheck_text(service: str) -> str:
    test = SERVICES[service]["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


def compose_variables() -> set[str]:
    """Every variable compose reads from the environment or sets in a container."""
    names = set(INTERPOLATED.findall(COMPOSE_TEXT))
    for service in SERVICES.values():
        names |= set(service.get("environment") or {})
    return names


def volume_pairs(service: str) -> list[tuple[str, str]]:
    pairs = []
    for volume in SERVICES[service].get("volumes", []):
        # From the right: the source may hold `:` itself, as in ${HF_CACHE_DIR:-~/...}.
        source, target = volume.removesuffix(":ro").removesuffix(":rw").rsplit(":", 1)
        pairs.append((source, target))
    return pairs


def dockerignored(path: str) -> bool:
    patterns = [
        line.strip().rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        for pattern in patterns
        for prefix in prefixes
    )


# --- Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_base_and_tesseract_languages() -> None:
    assert instructions("FROM") == ["python:3.11-slim"]
    run = " ".join(instructions("RUN"))
    for package in ("tesseract-ocr", "tesseract-ocr-eng", "tesseract-ocr-rus"):
        assert re.search(rf"\b{package}\b", run), package


def test_dockerfile_runs_as_a_non_root_user_it_creates() -> None:
    users = instructions("USER")
    assert users and users[-1] not in {"root", "0"}
    run = " ".join(instructions("RUN"))
    assert re.search(rf"useradd .*\b{users[-1]}\b", run)


def test_dockerfile_healthcheck_uses_python_not_curl() -> None:
    (check,) = instructions("HEALTHCHECK")
    assert "/_stcore/health" in check and "python" in check
    assert "curl" not in check and "wget" not in check


def test_dockerfile_torch_flavour_argument() -> None:
    assert any(arg.startswith("TORCH_FLAVOR=") for arg in instructions("ARG"))
    run = " ".join(instructions("RUN"))
    assert "https://download.pytorch.org/whl/cpu" in DOCKERFILE
    assert "$TORCH_FLAVOR" in run and "cpu)" in run and "cuda)" in run
    # The CPU wheels come at the versions requirements.txt pins, not at versions of their own.
    assert "requirements.txt" in run and "torch|torchvision" in run
    pinned = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==\S+$", pinned, re.M) and re.search(r"^torchvision==", pinned, re.M)


def test_dockerfile_volumes_port_and_command_agree() -> None:
    volumes = " ".join(instructions("VOLUME"))
    assert "/app/results" in volumes and "/app/cache" in volumes
    assert instructions("EXPOSE") == ["8501"]
    (command,) = instructions("CMD")
    assert '"8501"' in command and "streamlit" in command
    assert instructions("WORKDIR") == ["/app"]


def test_dockerignore_keeps_data_caches_and_venv_out() -> None:
    for path in (".venv/bin/python", "results/chats/a.json", "cache/x.pkl", "data/sroie/1.jpg"):
        assert dockerignored(path), path
    assert dockerignored(".git/HEAD") and dockerignored("utils/__pycache__/x.pyc")
    for path in (
        "app.py",
        "config_docker.yaml",
        "requirements.txt",
        "app_pages/models.py",
        "ui.py",
    ):
        assert not dockerignored(path), path


# --- docker-compose.yml --------------------------------------------------------------------


def test_compose_services_and_the_cpu_only_default() -> None:
    assert set(SERVICES) == {"app", "vllm"}
    assert "profiles" not in SERVICES["app"]  # `docker compose up` starts the app alone
    assert SERVICES["vllm"]["profiles"] == ["gpu"]


def test_vllm_image_is_pinned() -> None:
    image = SERVICES["vllm"]["image"]
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", image), image


def test_every_published_port_is_on_loopback() -> None:
    ports = [port for service in SERVICES.values() for port in service.get("ports", [])]
    assert ports
    assert all(str(port).startswith("127.0.0.1:") for port in ports), ports


def test_vllm_reserves_nvidia_gpus() -> None:
    (device,) = SERVICES["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_vllm_command_serves_the_model_with_a_required_key() -> None:
    (script,) = SERVICES["vllm"]["command"]
    assert SERVICES["vllm"]["entrypoint"] == ["/bin/sh", "-c"]
    words = shlex.split(script.replace("$$", "$"))
    assert words[words.index("serve") - 1] == "vllm"
    assert words[words.index("serve") + 1] == "${VLLM_MODEL:-rednote-hilab/dots.ocr}"
    assert words[words.index("--api-key") + 1] == "$VLLM_API_KEY"
    assert words[words.index("--tensor-parallel-size") + 1].startswith(
        "${VLLM_TENSOR_PARALLEL_SIZE"
    )
    assert words[words.index("--port") + 1] == "8000"
    assert 'test -n "$$VLLM_API_KEY"' in script and "exit 1" in script
    assert "VLLM_API_KEY" in SERVICES["vllm"]["environment"]


def test_health_checks_use_the_health_endpoints() -> None:
    assert "/_stcore/health" in healthcheck_text("app")
    assert "127.0.0.1:8000/health" in healthcheck_text("vllm")
    for service in SERVICES:
        assert "curl" not in healthcheck_text(service)
        assert SERVICES[service]["healthcheck"]["retries"] >= 1


def test_hugging_face_cache_is_shared_by_both_services() -> None:
    app = dict((target, source) for source, target in volume_pairs("app"))
    vllm = dict((target, source) for source, target in volume_pairs("vllm"))
    assert app["/home/app/.cache/huggingface"] == vllm["/root/.cache/huggingface"]
    assert app["/app/results"] == "./results" and app["/app/cache"] == "./cache"
    assert "HF_HOME=/home/app/.cache/huggingface" in " ".join(instructions("ENV"))


def test_app_uses_the_docker_profile_that_reaches_vllm_by_service_name() -> None:
    environment = SERVICES["app"]["environment"]
    assert environment["CHATVLM_CONFIG"].endswith("/app/config_docker.yaml}")
    assert environment["VLLM_API_KEY"] == "${VLLM_API_KEY:-}"
    config = load_config(REPO_ROOT / "config_docker.yaml").config
    url = urlparse(config.endpoints["vllm"].base_url)
    assert url.hostname == "vllm" and url.hostname in SERVICES
    container_port = SERVICES["vllm"]["ports"][0].rsplit(":", 1)[1]
    assert str(url.port) == container_port
    assert SERVICES["app"]["build"]["args"]["TORCH_FLAVOR"] == "${TORCH_FLAVOR:-cpu}"


# --- the docker profile --------------------------------------------------------------------


def test_docker_profile_validates_and_keeps_the_catalog(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["config", "check", str(REPO_ROOT / "config_docker.yaml")]) == 0
    assert "vllm:8000" in capsys.readouterr().out
    docker = load_config(REPO_ROOT / "config_docker.yaml").config
    base = load_config(REPO_ROOT / "config.yaml").config
    assert docker.models == base.models
    assert docker.models["dots_ocr_vllm"].endpoint == "vllm"
    assert docker.endpoints["vllm"].api_key_env == "VLLM_API_KEY"
    assert docker.endpoints["vllm"].timeout_s == base.endpoints["vllm"].timeout_s


# --- the README's claims -------------------------------------------------------------------


def test_readme_env_variables_exist_in_the_deploy_files() -> None:
    section = readme_section("Docker and vLLM")
    named = set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)(?:=[^`]*)?`", section))
    assert {"VLLM_API_KEY", "VLLM_MODEL", "VLLM_TENSOR_PARALLEL_SIZE", "TORCH_FLAVOR"} <= named
    known = compose_variables() | {a.split("=")[0] for a in instructions("ARG")}
    assert named <= known, named - known


def test_readme_services_volumes_and_health_checks_exist() -> None:
    section = readme_section("Docker and vLLM")
    services = set(re.findall(r"^\| `([a-z][a-z0-9_-]*)` \|", section, re.M))
    assert services == set(SERVICES)
    for path in re.findall(r"`(\./[a-z_]+)`", section):
        assert any(source == path for s in SERVICES for source, _ in volume_pairs(s)), path
    assert "HF_CACHE_DIR" in COMPOSE_TEXT
    for endpoint in re.findall(r"`(/[_a-z]*/?health)`", section):
        assert any(endpoint in healthcheck_text(s) for s in SERVICES), endpoint
    assert SERVICES["vllm"]["image"] in section
    for profile in re.findall(r"--profile (\w+)", section):
        assert any(profile in s.get("profiles", []) for s in SERVICES.values()), profile
