"""Deployment files, checked by parsing (no Docker engine runs here): Dockerfile,
docker-compose.yml with its `auth` profile (Keycloak and its realm file), .dockerignore,
the docker profiles, and the README's claims."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

import cli
from models.config import REPO_ROOT, load_config
from utils.auth.bind import check_listen_address
from utils.errors import ConfigError

COMPOSE_TEXT = (REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
# Compose interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}; `$$` is a literal `$`.
INTERPOLATED = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
WITH_DEFAULT = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}$")
KEYCLOAK_DIR = REPO_ROOT / "deploy" / "keycloak"
REALM = json.loads((KEYCLOAK_DIR / "realm-chatvlm.json").read_text(encoding="utf-8"))
KEYCLOAK_PROFILE = KEYCLOAK_DIR / "config_docker_keycloak.yaml"


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
    assert '"8501"' in command and '"serve.py"' in command
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
    assert set(SERVICES) == {"app", "vllm", "keycloak", "proxy"}
    assert "profiles" not in SERVICES["app"]  # `docker compose up` starts the app alone
    assert SERVICES["vllm"]["profiles"] == ["gpu"]
    assert SERVICES["keycloak"]["profiles"] == ["auth"]
    assert SERVICES["proxy"]["profiles"] == ["scale"]
    # The app does not wait on a service that only one profile starts.
    assert "depends_on" not in SERVICES["app"]


def test_vllm_image_is_pinned() -> None:
    image = SERVICES["vllm"]["image"]
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", image), image


def test_keycloak_image_is_pinned() -> None:
    image = SERVICES["keycloak"]["image"]
    assert re.fullmatch(r"quay\.io/keycloak/keycloak:\d+\.\d+\.\d+", image), image


def test_every_published_port_is_on_loopback() -> None:
    ports = [port for service in SERVICES.values() for port in service.get("ports", [])]
    assert ports
    assert all(str(port).startswith("127.0.0.1:") for port in ports), ports


def test_the_app_can_be_scaled_behind_a_sticky_proxy() -> None:
    (app_port,) = SERVICES["app"]["ports"]
    published = r"127\.0\.0\.1:\$\{APP_PORT:-8501\}-\$\{APP_PORT_LAST:-8501\}:8501"
    assert re.fullmatch(published, app_port)
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+-alpine", SERVICES["proxy"]["image"])
    conf = (REPO_ROOT / "deploy" / "nginx" / "chatvlm.conf").read_text(encoding="utf-8")
    # Sticky by the proxy's own cookie, WebSocket upgraded, to the app service's replicas.
    assert "hash $chatvlm_route consistent;" in conf and "server app:8501;" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert 'Set-Cookie "chatvlm_route=$chatvlm_route' in conf


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
    keycloak = healthcheck_text("keycloak")
    assert "/dev/tcp/127.0.0.1/9000" in keycloak and "GET /health/ready" in keycloak
    assert SERVICES["keycloak"]["environment"]["KC_HEALTH_ENABLED"] == "true"
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


def test_files_the_compose_services_mount_exist() -> None:
    sources = [source for service in SERVICES for source, _ in volume_pairs(service)]
    local = [local_source(source) for source in sources]
    checked = [path for path in local if path is not None and not path.startswith("./results")]
    assert "./deploy/keycloak/realm-chatvlm.json" in checked
    assert "./deploy/no-sign-in.secrets.toml" in checked
    for path in checked:
        if path != "./cache":
            assert (REPO_ROOT / path).is_file(), path


def local_source(source: str) -> str | None:
    """A mount's source in this repository (``./...``, or the default of ``${VAR:-./...}``)."""
    default = WITH_DEFAULT.match(source)
    path = default.group(1) if default else source
    return path if path.startswith("./") else None


# --- the `auth` profile: Keycloak and the app's secrets ------------------------------------


def test_app_mounts_a_secrets_file_read_only_with_no_sign_in_by_default() -> None:
    (volume,) = [v for v in SERVICES["app"]["volumes"] if "secrets.toml" in v]
    source, target = volume_pairs("app")[SERVICES["app"]["volumes"].index(volume)]
    assert volume.endswith(":ro") and target == "/app/.streamlit/secrets.toml"
    assert source.startswith("${CHATVLM_SECRETS_FILE:-")
    default = REPO_ROOT / local_source(source)
    assert tomllib.loads(default.read_text(encoding="utf-8")) == {}  # no [auth], no secret
    # The real one never reaches git or the image.
    assert ".streamlit/secrets.toml" in (REPO_ROOT / ".gitignore").read_text(encoding="utf-8")
    assert dockerignored(".streamlit/secrets.toml")


def test_keycloak_refuses_to_start_without_its_secrets() -> None:
    keycloak = SERVICES["keycloak"]
    (script,) = keycloak["command"]
    assert keycloak["entrypoint"] == ["/bin/bash", "-c"]
    for variable in ("CHATVLM_OIDC_CLIENT_SECRET", "KC_BOOTSTRAP_ADMIN_PASSWORD"):
        assert f'test -n "$${variable}"' in script
        assert keycloak["environment"][variable].endswith(":-}")  # no default secret
    words = shlex.split(script.replace("$$", "$").split(";")[-1])
    assert words == ["exec", "/opt/keycloak/bin/kc.sh", "start-dev", "--import-realm"]
    (realm_mount,) = volume_pairs("keycloak")
    assert realm_mount == (
        "./deploy/keycloak/realm-chatvlm.json",
        "/opt/keycloak/data/import/realm-chatvlm.json",
    )


def test_keycloak_issuer_is_the_address_the_browser_uses() -> None:
    environment = SERVICES["keycloak"]["environment"]
    (port,) = SERVICES["keycloak"]["ports"]
    host_side = port.rsplit(":", 1)[0].removeprefix("127.0.0.1:")
    assert environment["KC_HOSTNAME"] == f"http://127.0.0.1:{host_side}"
    assert environment["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true"
    assert port.endswith(":8080")  # what http://keycloak:8080 in the secrets file reaches


def test_realm_has_a_confidential_client_for_the_app_and_no_secret() -> None:
    assert REALM["realm"] == "chatvlm" and REALM["registrationAllowed"] is False
    (client,) = REALM["clients"]
    assert client["clientId"] == "chatvlm" and client["publicClient"] is False
    assert client["secret"] == "${CHATVLM_OIDC_CLIENT_SECRET}"  # filled in at import
    (app_port,) = re.findall(r"\$\{APP_PORT:-(\d+)\}", SERVICES["app"]["ports"][0])
    callback = f"http://127.0.0.1:{app_port}"
    assert client["redirectUris"] == [callback + "/oauth2callback"]
    # st.logout sends the user back to the redirect URI: it must be allowed too.
    assert client["attributes"]["post.logout.redirect.uris"] == callback + "/oauth2callback"
    assert client["directAccessGrantsEnabled"] is False and client["implicitFlowEnabled"] is False
    # No accounts ship with the realm, so no passwords: users are added in the console.
    assert "users" not in REALM and '"credentials"' not in json.dumps(REALM)


def test_realm_groups_reach_the_id_token_and_match_the_profiles_roles() -> None:
    (client,) = REALM["clients"]
    (mapper,) = client["protocolMappers"]
    assert mapper["protocolMapper"] == "oidc-group-membership-mapper"
    config = mapper["config"]
    assert config["id.token.claim"] == "true" and config["full.path"] == "false"
    auth = load_config(KEYCLOAK_PROFILE).config.auth
    assert config["claim.name"] == auth.groups_claim
    realm_groups = {group["name"] for group in REALM["groups"]}
    assert realm_groups == {"chatvlm-admins", "chatvlm-members", "chatvlm-viewers"}
    named = {
        name for role in ("admin", "member", "viewer") for name in getattr(auth.roles, role).groups
    }
    assert named == realm_groups


def test_keycloak_docker_profile_turns_sign_in_on_over_the_docker_profile() -> None:
    keycloak = load_config(KEYCLOAK_PROFILE).config
    docker = load_config(REPO_ROOT / "config_docker.yaml").config
    assert keycloak.auth.mode == "oidc" and keycloak.auth.default_role == "deny"
    assert keycloak.auth.allow_anonymous_network is False
    assert keycloak.endpoints == docker.endpoints and keycloak.models == docker.models
    assert not dockerignored("deploy/keycloak/config_docker_keycloak.yaml")
    in_container = "/app/" + KEYCLOAK_PROFILE.relative_to(REPO_ROOT).as_posix()
    assert in_container in (REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8")


# --- the docker profile --------------------------------------------------------------------


def test_docker_profile_serves_without_sign_in_only_on_a_loopback_published_port() -> None:
    """The container listens on 0.0.0.0; the app allows that without sign-in only because
    compose publishes the app on the host's loopback."""
    (command,) = instructions("CMD")
    assert '"--server.address", "0.0.0.0"' in command
    docker = load_config(REPO_ROOT / "config_docker.yaml").config.auth
    assert docker.mode == "none" and docker.allow_anonymous_network
    check_listen_address("0.0.0.0", docker)
    assert all(port.startswith("127.0.0.1:") for port in SERVICES["app"]["ports"])
    # The image's own default profile (a plain `docker run`) refuses the same address.
    with pytest.raises(ConfigError):
        check_listen_address("0.0.0.0", load_config(REPO_ROOT / "config.yaml").config.auth)


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


def test_readme_keycloak_example_matches_the_compose_profile() -> None:
    section = readme_section("Teams: sign-in and roles")
    example = section[section.index("### Keycloak with Docker Compose") :]
    (client,) = REALM["clients"]
    assert f"--client-id {client['clientId']}" in example
    assert f"--redirect-uri {client['redirectUris'][0]}" in example
    (port,) = SERVICES["keycloak"]["ports"]
    container_port = port.rsplit(":", 1)[1]
    realm_path = f"/realms/{REALM['realm']}/.well-known/openid-configuration"
    # Inside compose the app reaches Keycloak by service name; on the host by its port.
    assert f"http://keycloak:{container_port}{realm_path}" in example
    assert SERVICES["keycloak"]["environment"]["KC_HOSTNAME"].startswith("http://127.0.0.1:")
    assert f"http://127.0.0.1:8180{realm_path}" in example and "KEYCLOAK_PORT:-8180" in port
    in_container = "/app/" + KEYCLOAK_PROFILE.relative_to(REPO_ROOT).as_posix()
    assert f"CHATVLM_CONFIG={in_container}" in example
    assert "CHATVLM_SECRETS_FILE=./.streamlit/secrets.toml" in example
    assert "--profile auth" in example and SERVICES["keycloak"]["image"] in example
    named = set(re.findall(r"\b(CHATVLM_[A-Z_]+|KEYCLOAK_[A-Z_]+|KC_[A-Z_]+)\b", example))
    assert named <= compose_variables(), named - compose_variables()
