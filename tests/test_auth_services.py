"""The services refuse what a role may not do, whatever page or call asks (#12).

Each test makes the call a forged page request or a CLI call for that user would make,
and checks the refusal, that nothing changed, and the audit entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.chat.types import GenerationParams
from models.config import LoadedConfig, load_config, user_overrides_path
from testkit.fake_openai_server import FakeOpenAIServer
from testkit.profiles import write_test_profile
from testkit.render import encode, render_lines
from tests.test_benchmark import TRUTH, FakeEngine, FakeEngines, request, write_pairs_set
from utils.auth import LOCAL_USER, PermissionDenied, User, user_id_for
from utils.auth.audit import AuditLog
from utils.auth.user_data import user_root
from utils.bench.runner import run_benchmark
from utils.bench.runs import rescore
from utils.bench.store import delete_run, list_bench_runs, read_manifest, rename_run, run_exists
from utils.cache import open_cache
from utils.chat.connect import connect_server
from utils.chat.service import new_user_message
from utils.chat.store import ChatStore
from utils.chat.transfer import export_json, import_json
from utils.chat.user_chats import user_chats_dir
from utils.errors import BadInput
from utils.ocr.pipeline import DocumentResult, document_limits
from utils.ocr.runs import RunRecorder, list_ocr_runs, load_run
from utils.system.admin import clear_cache, load_model, run_status_check, unload_model


def person(sub: str, role: str) -> User:
    return User(user_id=user_id_for("https://idp.test", sub), role=role, email=f"{sub}@test")


ADMIN, ALICE, BOB, VIEWER = (
    person("admin", "admin"),
    person("alice", "member"),
    person("bob", "member"),
    person("val", "viewer"),
)


def last_entry(data_dir: Path):
    return AuditLog(data_dir).recent(1)[0]


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    return load_config(write_test_profile(tmp_path))


@pytest.fixture(scope="module")
def pairs_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pairs_set(tmp_path_factory.mktemp("sets") / "four", TRUTH)


@pytest.fixture
def fakes() -> FakeEngines:
    engines = FakeEngines()
    engines.add(FakeEngine())
    return engines


def started_by(user: User, loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines) -> str:
    return run_benchmark(loaded, request(pairs_set), engine_factory=fakes, user=user).run_id


def test_a_viewer_cannot_start_a_benchmark_and_the_refusal_is_logged(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    with pytest.raises(PermissionDenied, match="viewer"):
        started_by(VIEWER, loaded, pairs_set, fakes)
    data_dir = loaded.config.data_dir
    assert list_bench_runs(data_dir) == []
    entry = last_entry(data_dir)
    assert (entry.user_id, entry.outcome) == (VIEWER.user_id, "denied")
    assert entry.event == "run_benchmark"


def test_a_run_belongs_to_who_started_it_and_only_they_or_an_admin_change_it(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    data_dir = loaded.config.data_dir
    run_id = started_by(ALICE, loaded, pairs_set, fakes)
    manifest = read_manifest(data_dir, run_id)
    assert (manifest.owner_id, manifest.owner) == (ALICE.user_id, "alice@test")
    assert list_bench_runs(data_dir)[0].owner == "alice@test"  # team-visible, with its owner

    for intruder in (BOB, VIEWER):
        with pytest.raises(PermissionDenied):
            rename_run(data_dir, run_id, "mine now", user=intruder)
        with pytest.raises(PermissionDenied):
            delete_run(data_dir, run_id, user=intruder)
        with pytest.raises(PermissionDenied):
            rescore(data_dir, run_id, user=intruder)
        assert last_entry(data_dir).outcome == "denied"
    assert read_manifest(data_dir, run_id).name == manifest.name
    assert run_exists(data_dir, run_id)

    rename_run(data_dir, run_id, "Alice's run", user=ALICE)
    assert read_manifest(data_dir, run_id).name == "Alice's run"
    delete_run(data_dir, run_id, user=ADMIN)
    assert not run_exists(data_dir, run_id)
    entry = last_entry(data_dir)
    assert (entry.user_id, entry.target) == (ADMIN.user_id, run_id)
    assert entry.event == "delete benchmark run"


def test_a_run_from_before_sign_in_has_no_owner_and_only_admins_change_it(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    data_dir = loaded.config.data_dir
    run_id = started_by(LOCAL_USER, loaded, pairs_set, fakes)
    assert read_manifest(data_dir, run_id).owner_id is None
    with pytest.raises(PermissionDenied):
        delete_run(data_dir, run_id, user=ALICE)
    delete_run(data_dir, run_id, user=ADMIN)


def test_resuming_someone_elses_run_is_refused(
    loaded: LoadedConfig, pairs_set: Path, fakes: FakeEngines
) -> None:
    run_id = started_by(ALICE, loaded, pairs_set, fakes)
    with pytest.raises(PermissionDenied, match="resume"):
        run_benchmark(loaded, request(pairs_set, run_id=run_id), engine_factory=fakes, user=BOB)


def test_chat_and_ocr_are_refused_to_a_viewer(loaded: LoadedConfig) -> None:
    config = loaded.config
    with pytest.raises(PermissionDenied):
        user_chats_dir(config.data_dir, VIEWER)
    with pytest.raises(PermissionDenied):
        RunRecorder(config, {}, user=VIEWER)
    assert user_chats_dir(config.data_dir, ALICE) == (
        config.data_dir / "users" / ALICE.user_id / "chats"
    )
    assert user_chats_dir(config.data_dir, LOCAL_USER) == config.data_dir / "chats"


def test_ocr_runs_are_private_to_their_user(loaded: LoadedConfig) -> None:
    config = loaded.config
    recorder = RunRecorder(config, {"engine": "rapidocr"}, user=ALICE)
    recorder.add(DocumentResult(file="receipt.png", engine="rapidocr"), b"")
    run_id = recorder.run.run_id
    assert [r.run_id for r in list_ocr_runs(config, user=ALICE)] == [run_id]
    assert list_ocr_runs(config, user=BOB) == []
    assert load_run(config, run_id, user=BOB) is None  # "not found", as for a wrong id
    assert load_run(config, run_id, user=ALICE) is not None
    assert list_ocr_runs(config) == []  # nor in the single-user folder


@pytest.mark.parametrize("user", [ALICE, VIEWER])
def test_admin_actions_are_refused_to_others_and_logged(
    loaded: LoadedConfig, tmp_path: Path, user: User
) -> None:
    config = loaded.config
    cache = open_cache(tmp_path / "cache", config.cache)
    cache.set("key", {"value": 1})
    calls = [  # each would change what every user gets
        lambda: load_model("rapidocr", config, user),
        lambda: unload_model("anything", config, user),
        lambda: run_status_check(config, user, "profile.yaml"),
        lambda: clear_cache(cache, config, user),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied):
            call()
    assert cache.get("key") == {"value": 1}
    entries = AuditLog(config.data_dir).recent(10)
    assert [e.outcome for e in entries] == ["denied"] * len(calls)
    assert {e.user_id for e in entries} == {user.user_id}


def test_an_admin_status_check_is_done_and_logged(loaded: LoadedConfig) -> None:
    report = run_status_check(loaded.config, ADMIN, "profile.yaml")
    assert report.models
    entry = last_entry(loaded.config.data_dir)
    assert (entry.event, entry.outcome) == ("check model status", "ok")


def test_a_member_connects_a_server_for_themselves_only(loaded: LoadedConfig) -> None:
    data_dir = loaded.config.data_dir
    with FakeOpenAIServer(models=("m",)) as server:
        with pytest.raises(PermissionDenied):
            connect_server(data_dir, VIEWER, server.base_url, "m")
        model_id = connect_server(data_dir, ALICE, server.base_url, "m")
    assert user_overrides_path(user_root(data_dir, ALICE)).is_file()
    assert not user_overrides_path(data_dir).exists()  # not the team's overrides
    # The profile as Alice sees it: the shared one plus her own servers; others: unchanged.
    alices = load_config(loaded.source, user_overrides_path(user_root(data_dir, ALICE)))
    assert model_id in alices.config.models
    assert model_id not in load_config(loaded.source).config.models


def test_a_crafted_import_cannot_reach_another_users_conversation_or_images(
    loaded: LoadedConfig,
) -> None:
    data_dir = loaded.config.data_dir
    limits = document_limits(loaded.config)
    alices = ChatStore(user_chats_dir(data_dir, ALICE), limits)
    bobs = ChatStore(user_chats_dir(data_dir, BOB), limits)
    image = alices.images.add(encode(render_lines(["PRIVATE"])), "scan.png")
    secret = alices.new("m", GenerationParams())
    alices.append_messages(secret, [new_user_message("alice's secret", [image])])

    assert bobs.load(secret.id) is None and bobs.list() == []  # by id: not found
    export = json.loads(export_json(secret, alices.images))
    export["images"] = {}  # names Alice's image by its hash, without its bytes
    with pytest.raises(BadInput):
        import_json(bobs, json.dumps(export).encode(), "crafted.json")
    assert bobs.list() == [] and not list((bobs.root / "images").glob("*"))

    # A whole export Alice gave Bob is his own copy, under a new id; hers is untouched.
    copy = import_json(bobs, export_json(secret, alices.images), "shared.json")
    assert copy.id != secret.id and bobs.load(secret.id) is None
    assert alices.load(secret.id).messages[0].text == "alice's secret"
