"""`python cli.py` with sign-in: `auth init|check|adopt`, `users list`, `audit`, and
`--user WHO` acting as someone who signed in, with their data and their role."""

from __future__ import annotations

import json
import stat
import sys
import tomllib
from functools import partial
from pathlib import Path

import pytest
from PIL import Image

import cli
import cli_commands.bench
from models.config import REPO_ROOT, AppConfig
from testkit.fake_openai_server import FakeOpenAIServer
from testkit.profiles import fake_server_model_yaml, write_test_profile
from testkit.render import encode
from utils.auth.accounts import remember_account
from utils.auth.audit import AuditLog
from utils.auth.identity import User, user_id_for
from utils.auth.personal import save_personal_settings
from utils.bench.datasets import LabelledItem
from utils.bench.engines import BenchEngine, Prediction, create_bench_engine
from utils.bench.runner import run_benchmark
from utils.bench.store import list_bench_runs

ISSUER = "https://idp.example"
SECRET = 'client "secret" \\ with quotes'
ROLES_YAML = """auth:
  mode: oidc
  roles:
    admin: {emails: [alice@example.com]}
    member: {groups: [team]}
    viewer: {emails: [vic@example.com]}
  default_role: deny
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- auth init


@pytest.fixture
def secrets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHATVLM_OIDC_CLIENT_SECRET", SECRET)
    return tmp_path / "dot-streamlit" / "secrets.toml"


def init(capsys, secrets_file: Path, *extra: str) -> tuple[int, str, str]:
    return run(
        capsys,
        "auth",
        "init",
        "--client-id",
        "chatvlm",
        "--server-metadata-url",
        "http://127.0.0.1:9400/.well-known/openid-configuration",
        "--redirect-uri",
        "http://127.0.0.1:8501/oauth2callback",
        "--secrets-file",
        str(secrets_file),
        *extra,
    )


def read_secrets(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def test_init_writes_a_private_secrets_file_and_prints_no_secret(
    secrets_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = init(capsys, secrets_file)

    assert code == 0, err
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    auth = read_secrets(secrets_file)["auth"]
    assert auth["client_secret"] == SECRET and auth["client_id"] == "chatvlm"
    assert auth["redirect_uri"] == "http://127.0.0.1:8501/oauth2callback"
    assert auth["server_metadata_url"].endswith("/.well-known/openid-configuration")
    assert len(auth["cookie_secret"]) >= 43  # 32 random bytes, base64
    assert SECRET not in out + err and auth["cookie_secret"] not in out + err
    assert "mode 0600" in out


def test_init_refuses_to_replace_auth_without_force_then_replaces_it(
    secrets_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_file.parent.mkdir(parents=True)
    secrets_file.write_text('api_key = "keep me"\n\n[other]\ntoken = "mine"\n')
    secrets_file.chmod(0o644)
    assert init(capsys, secrets_file)[0] == 0
    first = secrets_file.read_bytes()

    code, _, err = init(capsys, secrets_file)
    assert code == 1 and "already has an [auth] section" in err and "--force" in err
    assert secrets_file.read_bytes() == first

    assert init(capsys, secrets_file, "--force")[0] == 0
    before, after = tomllib.loads(first.decode()), read_secrets(secrets_file)
    assert after["auth"]["cookie_secret"] != before["auth"]["cookie_secret"]
    assert after["api_key"] == "keep me" and after["other"] == {"token": "mine"}
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_init_will_not_edit_an_auth_section_it_cannot_remove_cleanly(
    secrets_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_file.parent.mkdir(parents=True)
    secrets_file.write_text('auth.client_id = "dotted"\n')
    code, _, err = init(capsys, secrets_file, "--force")
    assert code == 1 and "remove the [auth] section by hand" in err
    assert secrets_file.read_text() == 'auth.client_id = "dotted"\n'
    secrets_file.write_text("[broken\n")
    code, _, err = init(capsys, secrets_file, "--force")
    assert code == 1 and "is not valid TOML" in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--redirect-uri", "http://127.0.0.1:8501/callback", "must end with /oauth2callback"),
        ("--redirect-uri", "javascript:alert(1)//oauth2callback", "http:// or https://"),
        ("--server-metadata-url", "ftp://idp/.well-known", "http:// or https://"),
        ("--server-metadata-url", "https://idp/ x", "must not contain spaces"),
        ("--client-id", "two\nlines", "one line of printable text"),
    ],
)
def test_init_checks_its_arguments(
    secrets_file: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    code, _, err = init(capsys, secrets_file, option, value)  # argparse keeps the last one
    assert code == 1 and message in err
    assert not secrets_file.exists()


def test_init_takes_the_secret_from_the_terminal_or_stops(
    secrets_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATVLM_OIDC_CLIENT_SECRET")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    code, _, err = init(capsys, secrets_file)
    assert code == 1 and "CHATVLM_OIDC_CLIENT_SECRET is not set" in err
    assert not secrets_file.exists()

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: "typed-secret")
    assert init(capsys, secrets_file)[0] == 0
    assert read_secrets(secrets_file)["auth"]["client_secret"] == "typed-secret"

    monkeypatch.setenv("OTHER_VAR", "from-other-var")
    assert init(capsys, secrets_file, "--force", "--client-secret-env", "OTHER_VAR")[0] == 0
    assert read_secrets(secrets_file)["auth"]["client_secret"] == "from-other-var"


def test_the_default_secrets_file_is_ignored_by_git() -> None:
    ignored = (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert ".streamlit/secrets.toml" in ignored


# --------------------------------------------------------------------------- auth check


@pytest.mark.parametrize(
    ("auth_yaml", "address", "code"),
    [
        ("", "0.0.0.0", 2),
        ("", "", 2),
        ("", None, 2),
        ("", "192.168.1.20", 2),
        ("", "127.0.0.1", 0),
        ("", "::1", 0),
        ("", "localhost", 0),
        ("auth:\n  allow_anonymous_network: true\n", "0.0.0.0", 0),
        ("auth:\n  allow_anonymous_network: true\n", "", 0),
        ("auth:\n  mode: oidc\n", "0.0.0.0", 0),
    ],
)
def test_check_refuses_anonymous_network_listening(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    auth_yaml: str,
    address: str | None,
    code: int,
) -> None:
    profile = write_test_profile(tmp_path, auth_yaml)
    args = ["auth", "check", "--config", str(profile)]
    got, out, err = run(capsys, *args, *([] if address is None else ["--address", address]))
    assert got == code
    if code == 2:
        assert "refusing to serve without sign-in" in err and "allow_anonymous_network" in err
    else:
        assert out.startswith("ok:")


def test_make_run_checks_the_address_before_starting_streamlit() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun: setup\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert '$(PY) cli.py auth check --address "$(HOST)"' in recipe[0]
    assert "serve.py" in recipe[1]


# --------------------------------------------------------------------------- --user


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A sign-in profile made active, and four people who signed in: name -> user id."""
    profile = write_test_profile(tmp_path, ROLES_YAML)
    monkeypatch.setenv("CHATVLM_CONFIG", str(profile))
    people = {
        "alice": {"email": "alice@example.com"},
        "bob": {"email": "bob@example.com", "groups": ["team"]},
        "carl": {"email": "carl@example.com", "groups": ["team"]},
        "vic": {"email": "vic@example.com"},
        "dan": {"email": "dan@example.com"},
        "eve": {"name": "\x1b]0;owned\x07Eve"},  # no e-mail: listed by this name
    }
    for subject, claims in people.items():
        remember_account(tmp_path / "results", {"iss": ISSUER, "sub": subject, **claims}, "groups")
    return {subject: user_id_for(ISSUER, subject) for subject in people}


def test_an_unknown_or_denied_user_is_a_clear_error(
    team: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--user", "nobody@example.com", "bench", "list")
    assert code == 1 and out == ""
    assert "no single user 'nobody@example.com'" in err and "users list" in err
    code, _, err = run(capsys, "bench", "list", "--user", "dan@example.com")
    assert code == 1 and "no role (default_role: deny)" in err


class PerfectEngine:
    name = "perfect"
    backend = "fake"
    concurrency = 1

    def run(self, item: LabelledItem) -> Prediction:
        return Prediction(text=item.text or "", fields={}, seconds=0.1)


def fake_or_catalog(name: str, config: AppConfig) -> BenchEngine:
    return PerfectEngine() if name == "perfect" else create_bench_engine(name, config)


@pytest.fixture
def labelled_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode(Image.new("RGB", (16, 16), "white")))
    (folder / "a.txt").write_text("HELLO", encoding="utf-8")
    with_fakes = partial(run_benchmark, engine_factory=fake_or_catalog)
    monkeypatch.setattr(cli_commands.bench, "run_benchmark", with_fakes)
    return folder


def test_a_viewer_may_read_results_but_not_run_a_benchmark(
    team: dict[str, str],
    labelled_set: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start = ["bench", "run", "--dataset", str(labelled_set), "--engine", "perfect"]
    for args in (["--user", "vic@example.com", *start], [*start, "--user", team["vic"]]):
        code, out, err = run(capsys, *args)
        assert code == 2 and out == ""
        assert "your role (viewer) may not run a benchmark" in err
    assert list_bench_runs(tmp_path / "results") == []
    refused = AuditLog(tmp_path / "results").recent()[0]
    assert (refused.user_id, refused.outcome) == (team["vic"], "denied")
    assert run(capsys, "--user", "vic@example.com", "bench", "list")[0] == 0


def test_runs_belong_to_who_started_them(
    team: dict[str, str],
    labelled_set: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start = ["bench", "run", "--dataset", str(labelled_set), "--engine", "perfect", "--json"]
    code, out, err = run(capsys, "--user", "bob@example.com", *start)
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    code, out, _ = run(capsys, "bench", "list")
    assert "bob@example.com" in out and "OWNER" in out

    code, _, err = run(capsys, "--user", "carl@example.com", "bench", "rename", run_id, "mine")
    assert code == 2 and "only its owner or an admin" in err
    assert run(capsys, "--user", "bob@example.com", "bench", "rename", run_id, "bob's")[0] == 0
    code, _, _ = run(capsys, "--user", "carl@example.com", "bench", "delete", run_id)
    assert code == 2
    assert run(capsys, "--user", "alice@example.com", "bench", "delete", run_id)[0] == 0
    assert list_bench_runs(tmp_path / "results") == []


@pytest.mark.parametrize(
    "args",
    [
        ["cache", "clear"],
        ["models", "status"],
        ["models", "download", "rapidocr"],
        ["users", "list"],
        ["audit"],
        ["chat", "hello"],
    ],
    ids=lambda args: " ".join(args),
)
def test_admin_commands_are_refused_to_a_viewer(
    team: dict[str, str], capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = run(capsys, "--user", "vic@example.com", *args)
    assert code == 2 and out == "" and "your role (viewer) may not" in err


def test_chat_as_a_user_uses_their_folder_and_their_own_server(
    team: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    bob_root = results / "users" / team["bob"]
    ask = ["chat", "--model", "fake_vlm", "hi"]
    with FakeOpenAIServer() as server:
        # Bob connected this server himself: it is in his overrides, not the profile.
        (bob_root / "overrides.yaml").write_text(fake_server_model_yaml(server.base_url))
        code, _, err = run(capsys, "--user", "bob@example.com", *ask)
        assert code == 0, err
        conversation_id = err.rsplit("conversation ", 1)[1].split("]")[0]
        code, _, err = run(capsys, *ask)  # the local operator has no such model
        assert code == 1 and "no chat model 'fake_vlm'" in err
        assert len(server.chat_requests) == 1
    assert [p.stem for p in (bob_root / "chats").glob("*.json")] == [conversation_id]
    assert not list(results.glob("chats/*.json"))
    other = ["chat", "--conversation", conversation_id, "again?"]
    code, _, err = run(capsys, "--user", "alice@example.com", *other)
    assert code == 1 and f"no saved conversation '{conversation_id}'" in err


def test_chat_as_a_user_starts_with_their_own_defaults(
    team: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    bob = User(user_id=team["bob"], role="member", email="bob@example.com")
    save_personal_settings(
        results, bob, chat_model="fake_vlm", system_prompt="Answer briefly.", max_new_tokens=7
    )
    with FakeOpenAIServer() as server:
        (results / "users" / team["bob"] / "overrides.yaml").write_text(
            fake_server_model_yaml(server.base_url)
        )
        code, _, err = run(capsys, "--user", "bob@example.com", "chat", "hi")
        assert code == 0, err
        code, _, err = run(capsys, "--user", "bob@example.com", "chat", "--max-tokens", "9", "hi")
        assert code == 0, err
    first, second = (request.body for request in server.chat_requests)
    assert first["model"] == second["model"]
    assert first["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert (first["max_tokens"], second["max_tokens"]) == (7, 9)


def test_users_list_shows_roles_as_the_profile_gives_them_now(
    team: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "users", "list")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert rows[team["alice"]].split()[2] == "admin"
    assert rows[team["bob"]].split()[2] == "member"
    assert rows[team["vic"]].split()[2] == "viewer"
    assert "deny" in rows[team["dan"]]
    assert "deny" in rows[team["eve"]]
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;owned\\x07Eve" in out
    assert run(capsys, "--user", "alice@example.com", "users", "list")[0] == 0


def test_audit_lists_recent_entries_newest_first(
    team: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--user", "vic@example.com", "cache", "clear")[0] == 2
    assert run(capsys, "cache", "clear")[0] == 0
    code, out, _ = run(capsys, "audit", "--limit", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["AT", "USER", "ROLE", "EVENT"]
    assert len(lines) == 3
    assert "clear cache" in lines[1] and "local operator" in lines[1]
    assert "vic@example.com" in lines[2] and "denied" in lines[2]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["audit", "--limit", "0"])
    assert exit_info.value.code == 2


# --------------------------------------------------------------------------- auth adopt


def test_adopt_gives_the_single_user_data_to_a_named_user_once(
    team: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    (results / "ocr").mkdir(parents=True)
    (results / "ocr" / "20250101T000000Z-abcdef.json").write_text("{}")
    (results / "chats" / "images").mkdir(parents=True)
    (results / "chats" / "images" / f"{'a' * 64}.png").write_bytes(b"png")

    code, out, err = run(capsys, "auth", "adopt", "--user", "bob@example.com")
    assert code == 0, err
    assert f"moved 2 file(s) to users/{team['bob']}/" in out
    bob_root = results / "users" / team["bob"]
    assert (bob_root / "ocr" / "20250101T000000Z-abcdef.json").read_text() == "{}"
    assert (bob_root / "chats" / "images" / f"{'a' * 64}.png").read_bytes() == b"png"

    code, out, _ = run(capsys, "auth", "adopt", "--user", "alice@example.com")
    assert code == 0 and out.startswith(
        f"nothing to do: the single-user data went to {team['bob']}"
    )
    code, _, err = run(capsys, "auth", "adopt", "--user", "nobody@example.com")
    assert code == 1 and "no single user" in err


def test_the_monitor_polls_shared_servers_whoever_runs_it(
    team: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = tmp_path / "results" / "users" / team["alice"] / "overrides.yaml"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text("endpoints:\n  mine:\n    base_url: http://127.0.0.1:9/mine/v1\n")
    code, out, err = run(capsys, "--user", "alice@example.com", "monitor", "--once")
    assert code == 0, err
    assert "vllm: DOWN" in out and "mine" not in out  # her own server is hers alone
