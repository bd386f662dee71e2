"""The auth core without Streamlit: role resolution, user ids and folders, the unsafe-bind
refusal, the permission matrix, the audit log, remembered accounts and a user's own
overrides file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from models.config import REPO_ROOT, AuthSettings, load_config
from testkit.profiles import fake_server_model_yaml, write_test_profile
from utils.auth import LOCAL_USER, Action, PermissionDenied, User, can, require
from utils.auth import audit as audit_module
from utils.auth.accounts import (
    UnknownUser,
    find_account,
    list_accounts,
    remember_account,
    user_of_account,
)
from utils.auth.audit import AuditEntry, AuditLog, audit_path
from utils.auth.bind import check_listen_address, is_loopback
from utils.auth.identity import user_from_claims, user_id_for
from utils.auth.permissions import may_manage_run
from utils.auth.roles import resolve_role
from utils.auth.user_data import chats_dir, ocr_runs_dir, user_root, user_root_by_id, users_dir
from utils.errors import ConfigError

ISSUER = "https://id.example.org/realms/team"
USER_ID = r"^u[0-9a-f]{32}$"


def settings(**fields: Any) -> AuthSettings:
    return AuthSettings.model_validate({"mode": "oidc", **fields})


TEAM = settings(
    roles={
        "admin": {"emails": ["Boss@Example.COM"], "groups": ["chatvlm-admins"]},
        "member": {"emails": ["dev@example.com"], "groups": ["chatvlm-members"]},
        "viewer": {"emails": ["guest@example.com"], "groups": ["chatvlm-viewers"]},
    },
    default_role="deny",
)


def claims(sub: str = "sub-1", **more: Any) -> dict[str, Any]:
    return {"iss": ISSUER, "sub": sub, **more}


def person(role: str, sub: str = "sub-1") -> User:
    return User(user_id=user_id_for(ISSUER, sub), role=role, email=f"{sub}@example.com")


# --- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "role"),
    [
        ("boss@example.com", "admin"),
        ("BOSS@EXAMPLE.COM", "admin"),
        ("  Boss@example.com ", "admin"),
        ("Dev@Example.com", "member"),
        ("guest@EXAMPLE.com", "viewer"),
        ("stranger@example.com", None),
    ],
)
def test_email_rules_compare_case_insensitively(email: str, role: str | None) -> None:
    assert resolve_role(claims(email=email), TEAM) == role


def test_an_unverified_email_is_ignored() -> None:
    assert resolve_role(claims(email="boss@example.com", email_verified=False), TEAM) is None
    assert resolve_role(claims(email="boss@example.com", email_verified=True), TEAM) == "admin"
    # A group rule still applies to an account whose address is not verified.
    unverified = claims(email="boss@example.com", email_verified=False, groups=["chatvlm-viewers"])
    assert resolve_role(unverified, TEAM) == "viewer"


def test_email_claim_that_is_not_text_grants_nothing() -> None:
    assert resolve_role(claims(email=["boss@example.com"]), TEAM) is None
    assert resolve_role(claims(email=None), TEAM) is None


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        (["chatvlm-members"], "member"),
        ("chatvlm-members", "member"),  # some providers send one group as a string
        (("chatvlm-viewers",), "viewer"),
        (["other", 7, None, "chatvlm-admins"], "admin"),  # non-text items are skipped
        ([], None),
        ({"chatvlm-admins": True}, None),  # neither a list nor a string: no groups
        (42, None),
    ],
)
def test_groups_claim_as_list_or_string(groups: Any, role: str | None) -> None:
    assert resolve_role(claims(groups=groups), TEAM) == role


def test_a_custom_groups_claim_is_the_one_read() -> None:
    custom = TEAM.model_copy(update={"groups_claim": "realm_groups"})
    assert resolve_role(claims(realm_groups=["chatvlm-admins"]), custom) == "admin"
    assert resolve_role(claims(groups=["chatvlm-admins"]), custom) is None


def test_group_names_match_exactly() -> None:
    assert resolve_role(claims(groups=["/chatvlm-admins"]), TEAM) is None
    assert resolve_role(claims(groups=["CHATVLM-ADMINS"]), TEAM) is None


@pytest.mark.parametrize(
    "token",
    [
        claims(email="guest@example.com", groups=["chatvlm-admins"]),
        claims(email="boss@example.com", groups=["chatvlm-viewers"]),
        claims(email="dev@example.com", groups=["chatvlm-viewers", "chatvlm-admins"]),
    ],
)
def test_the_highest_role_any_rule_grants_wins(token: dict[str, Any]) -> None:
    assert resolve_role(token, TEAM) == "admin"


@pytest.mark.parametrize("default", ["admin", "member", "viewer"])
def test_default_role_for_users_no_rule_names(default: str) -> None:
    team = TEAM.model_copy(update={"default_role": default})
    assert resolve_role(claims(email="stranger@example.com"), team) == default
    assert resolve_role(claims(), team) == default
    # A rule still beats the default, upwards and downwards.
    assert resolve_role(claims(groups="chatvlm-viewers"), team) == "viewer"
    assert resolve_role(claims(groups="chatvlm-admins"), team) == "admin"


def test_default_role_deny_gives_no_user() -> None:
    assert AuthSettings().default_role == "deny"
    assert user_from_claims(claims(email="stranger@example.com"), TEAM) is None
    assert user_from_claims(claims(email="dev@example.com"), TEAM).role == "member"


def test_user_from_claims_keeps_bounded_text_and_groups() -> None:
    user = user_from_claims(
        claims(email="dev@example.com", name="D" * 5000, groups=["chatvlm-members", 3]), TEAM
    )
    assert user.email == "dev@example.com" and user.label == "dev@example.com"
    assert len(user.name) == 320
    assert user.groups == ("chatvlm-members",)
    named = user_from_claims(claims(preferred_username="dev", groups="chatvlm-members"), TEAM)
    assert named.name == "dev" and named.label == "dev"


def test_unknown_role_names_in_the_profile_are_refused() -> None:
    with pytest.raises(ValidationError):
        settings(default_role="superuser")
    with pytest.raises(ValidationError):
        settings(roles={"owner": {"emails": ["a@example.com"]}})


# --- user ids and folders --------------------------------------------------------------------

HOSTILE_SUBJECTS = [
    "../x",
    "/etc/passwd",
    "..\\..\\windows",
    "a" * 10_000,
    "Ünïcødé-用户-🙂",
    "nul\0byte",
    "local",
    "u" + "0" * 32,
    "sub\nwith newline",
    " ",
]


@pytest.mark.parametrize("subject", HOSTILE_SUBJECTS)
def test_hostile_subjects_become_a_plain_id_under_users(tmp_path: Path, subject: str) -> None:
    user = user_from_claims(claims(subject, groups="chatvlm-members"), TEAM)
    assert user.user_id == user_id_for(ISSUER, subject)
    assert user.user_id.startswith("u") and len(user.user_id) == 33
    assert re.fullmatch(USER_ID, user.user_id)
    assert not user.is_local
    root = user_root(tmp_path, user)
    assert root.parent == users_dir(tmp_path) and root.name == user.user_id
    assert root.resolve().is_relative_to((tmp_path / "users").resolve())
    assert chats_dir(tmp_path, user).parent == root and ocr_runs_dir(tmp_path, user).parent == root


def test_same_issuer_and_subject_give_the_same_id() -> None:
    first = user_from_claims(claims("abc", email="dev@example.com"), TEAM)
    again = user_from_claims(claims("abc", email="dev@example.com", name="Renamed"), TEAM)
    assert first.user_id == again.user_id == user_id_for(ISSUER, "abc")


def test_the_id_depends_on_issuer_and_subject_not_on_the_email() -> None:
    ids = {
        user_id_for(ISSUER, "abc"),
        user_id_for("https://other.example.org", "abc"),
        user_id_for(ISSUER, "abd"),
        user_id_for(ISSUER, "ABC"),
        user_id_for(ISSUER, "nul\0byte"),
        user_id_for(ISSUER, "nulbyte"),
    }
    assert len(ids) == 6
    moved = claims("abc", email="new-address@example.com", groups="chatvlm-members")
    assert user_from_claims(moved, TEAM).user_id == user_id_for(ISSUER, "abc")


@pytest.mark.parametrize(
    "token",
    [
        claims(""),
        {"iss": "", "sub": "abc"},
        {"sub": "abc"},
        {"iss": ISSUER},
        {"iss": ISSUER, "sub": None},
    ],
)
def test_a_token_without_issuer_or_subject_is_refused(token: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no issuer or no subject"):
        user_from_claims({**token, "groups": "chatvlm-admins"}, TEAM)


def test_local_user_keeps_the_single_user_folders(tmp_path: Path) -> None:
    assert LOCAL_USER.is_local and LOCAL_USER.role == "admin"
    assert user_root(tmp_path, LOCAL_USER) == tmp_path
    assert chats_dir(tmp_path, LOCAL_USER) == tmp_path / "chats"
    assert ocr_runs_dir(tmp_path, LOCAL_USER) == tmp_path / "ocr"


@pytest.mark.parametrize(
    "user_id",
    [
        "../x",
        "local",
        "U" + "a" * 32,
        "u" + "A" * 32,
        "u" + "a" * 31,
        "u" + "a" * 33,
        "u" + "g" * 32,
        "u" + "a" * 32 + "\n",
        "u" + "a" * 32 + "/..",
        "",
        ".",
        "users",
    ],
)
def test_user_root_by_id_refuses_anything_but_a_user_id(tmp_path: Path, user_id: str) -> None:
    with pytest.raises(ValueError, match="not a user id"):
        user_root_by_id(tmp_path, user_id)


def test_user_root_by_id_accepts_a_real_id(tmp_path: Path) -> None:
    user_id = user_id_for(ISSUER, "abc")
    assert user_root_by_id(tmp_path, user_id) == tmp_path / "users" / user_id


@pytest.mark.parametrize("user_id", ["../x", "u" + "a" * 32 + "\n", "admin", ""])
def test_a_user_record_refuses_a_bad_id(user_id: str) -> None:
    with pytest.raises(ValidationError):
        User(user_id=user_id, role="member")


# --- the unsafe-bind refusal ----------------------------------------------------------------

NO_SIGN_IN = AuthSettings()
BEHIND_A_PROXY = AuthSettings(allow_anonymous_network=True)
SIGN_IN = AuthSettings(mode="oidc")
NETWORK = ["0.0.0.0", "", None, "::", "[::]", "192.168.1.2", "10.0.0.1", "example.com", "::ffff:1"]
LOOPBACK = ["127.0.0.1", "::1", "[::1]", "localhost", "LOCALHOST", " 127.0.0.1 ", "127.0.0.2"]


@pytest.mark.parametrize("address", NETWORK)
def test_network_addresses_are_refused_without_sign_in(address: str | None) -> None:
    with pytest.raises(ConfigError) as raised:
        check_listen_address(address, NO_SIGN_IN)
    assert "refusing to serve without sign-in" in raised.value.message
    assert "allow_anonymous_network" in raised.value.hint and "oidc" in raised.value.hint
    if address:
        assert address in raised.value.message
    else:
        assert "all interfaces" in raised.value.message


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_addresses_are_accepted_without_sign_in(address: str) -> None:
    assert is_loopback(address)
    check_listen_address(address, NO_SIGN_IN)


@pytest.mark.parametrize("address", NETWORK + LOOPBACK)
@pytest.mark.parametrize("auth", [BEHIND_A_PROXY, SIGN_IN], ids=["anonymous-allowed", "oidc"])
def test_sign_in_or_an_explicit_allowance_accepts_any_address(
    address: str | None, auth: AuthSettings
) -> None:
    check_listen_address(address, auth)


# --- permissions -----------------------------------------------------------------------------

# The issue's words, written out here so a change to ROLE_ACTIONS has to change this too.
EXPECTED: dict[str, set[Action]] = {
    "admin": set(Action),
    "member": {
        Action.VIEW_BENCHMARKS,
        Action.CHAT,
        Action.RUN_OCR,
        Action.RUN_BENCHMARK,
        Action.MANAGE_OWN_DATA,
        Action.CONNECT_SERVER,
    },
    "viewer": {Action.VIEW_BENCHMARKS},
}
ADMIN_ONLY = {
    Action.MANAGE_MODELS,
    Action.CHECK_STATUS,
    Action.CLEAR_CACHE,
    Action.MANAGE_ANY_RUN,
    Action.READ_AUDIT_LOG,
    Action.ADOPT_DATA,
}


def test_the_expected_matrix_covers_every_action() -> None:
    assert EXPECTED["member"] | ADMIN_ONLY == set(Action)
    assert not EXPECTED["member"] & ADMIN_ONLY


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
@pytest.mark.parametrize("action", list(Action), ids=lambda action: action.name)
def test_permission_matrix(role: str, action: Action) -> None:
    user = person(role)
    allowed = action in EXPECTED[role]
    assert can(user, action) is allowed
    if allowed:
        require(user, action)
    else:
        with pytest.raises(PermissionDenied) as raised:
            require(user, action)
        assert f"your role ({role}) may not {action.value}" == raised.value.message
        assert raised.value.hint


def test_the_local_operator_may_do_everything() -> None:
    assert all(can(LOCAL_USER, action) for action in Action)


def test_may_manage_run_owner_or_admin() -> None:
    owner, other = person("member", "owner"), person("member", "other")
    admin, viewer = person("admin", "admin"), person("viewer", "viewer")
    assert may_manage_run(owner, owner.user_id)
    assert not may_manage_run(other, owner.user_id)
    assert not may_manage_run(owner, None)  # a run from before sign-in: admins only
    assert may_manage_run(admin, owner.user_id) and may_manage_run(admin, None)
    assert may_manage_run(LOCAL_USER, owner.user_id)
    # A member demoted to viewer no longer manages the runs they started.
    assert not may_manage_run(viewer, viewer.user_id)


# --- audit log -------------------------------------------------------------------------------


def test_audit_records_and_reads_newest_first(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    assert log.recent() == []
    admin = person("admin", "admin")
    for number in range(5):
        log.record(admin, "delete conversation", f"c{number}")
    assert log.path == audit_path(tmp_path) == tmp_path / "audit" / "audit.jsonl"
    assert [entry.target for entry in log.recent()] == ["c4", "c3", "c2", "c1", "c0"]
    assert [entry.target for entry in log.recent(limit=2)] == ["c4", "c3"]
    newest = log.recent()[0]
    assert newest.user_id == admin.user_id and newest.user == admin.email
    assert newest.role == "admin" and newest.outcome == "ok" and newest.at


def test_audit_check_logs_a_refusal_and_lets_allowed_actions_pass(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    viewer = person("viewer", "viewer")
    log.check(person("admin"), Action.CLEAR_CACHE)  # allowed: nothing to log
    assert log.recent() == []
    with pytest.raises(PermissionDenied, match="may not clear the result cache"):
        log.check(viewer, Action.CLEAR_CACHE, "cache/")
    (entry,) = log.recent()
    assert (entry.event, entry.target, entry.outcome) == ("clear_cache", "cache/", "denied")
    assert entry.user_id == viewer.user_id and "viewer" in entry.detail


def test_audit_deny_logs_then_raises(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    member = person("member")
    with pytest.raises(PermissionDenied) as raised:
        log.deny(member, "delete benchmark run", "run-1", "it belongs to someone else")
    assert "delete benchmark run run-1" in raised.value.message
    assert "belongs to someone else" in raised.value.message
    (entry,) = log.recent()
    assert (entry.event, entry.target, entry.outcome) == ("delete benchmark run", "run-1", "denied")


def test_audit_refused_account_and_long_text(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.record_refused_account(user_id_for(ISSUER, "x"), "x" * 10_000, "no role")
    log.record(person("member"), "e" * 10_000, "t" * 10_000, detail="d" * 10_000)
    refused, long = reversed(log.recent())
    assert (refused.role, refused.event, refused.outcome) == ("none", "sign-in", "denied")
    assert len(refused.user) == 500
    assert len(long.event) == len(long.target) == len(long.detail) == 500


def test_audit_rotates_past_the_size_limit_and_keeps_the_old_file(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    old = person("admin")
    log.record(old, "first")
    line = log.path.read_bytes()
    copies = audit_module.ROTATE_BYTES // len(line) + 1
    log.path.write_bytes(line * copies)  # just past the limit, every line a valid entry

    log.record(old, "after rotation")

    (rotated,) = log.path.parent.glob("audit-*.jsonl")
    assert rotated.read_bytes() == line * copies  # nothing lost, nothing rewritten
    assert [entry.event for entry in log.recent()] == ["after rotation"]
    log.record(old, "again")  # the new file is small: no second rotation
    assert len(list(log.path.parent.glob("audit-*.jsonl"))) == 1
    assert [entry.event for entry in log.recent()] == ["again", "after rotation"]


def test_a_torn_last_line_is_skipped_then_cut(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    member = person("member")
    log.record(member, "one")
    log.record(member, "two")
    with log.path.open("ab") as file:  # a crash in the middle of an append
        file.write(b'{"schema_version": 1, "at": "2025-')
    assert [entry.event for entry in log.recent()] == ["two", "one"]
    log.record(member, "three")
    lines = log.path.read_bytes().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["one", "two", "three"]


_APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from utils.auth.audit import AuditLog
    from utils.auth.identity import User
    log = AuditLog(Path(sys.argv[2]))
    user = User(user_id=sys.argv[3], role="member")
    for number in range(200):
        log.record(user, "append", f"{sys.argv[3]}-{number}")
    """
)


@pytest.mark.slow
def test_two_processes_appending_lose_nothing(tmp_path: Path) -> None:
    writers = [user_id_for(ISSUER, name) for name in ("a", "b")]
    processes = [
        subprocess.Popen([sys.executable, "-c", _APPENDER, str(REPO_ROOT), str(tmp_path), user])
        for user in writers
    ]
    assert [process.wait(timeout=120) for process in processes] == [0, 0]
    lines = audit_path(tmp_path).read_bytes().splitlines()
    entries = [AuditEntry.model_validate_json(line) for line in lines]
    assert len(entries) == 400
    for user in writers:
        targets = [entry.target for entry in entries if entry.user_id == user]
        assert targets == [f"{user}-{number}" for number in range(200)]  # in order, once each


# --- accounts --------------------------------------------------------------------------------


def test_remember_and_find_accounts_by_id_or_email(tmp_path: Path) -> None:
    alice = remember_account(
        tmp_path,
        claims("alice", email="Alice@Example.com", groups=["chatvlm-members"], secret="x"),
        "groups",
    )
    remember_account(tmp_path, claims("bob", email="bob@example.com"), "groups")
    assert alice.user_id == user_id_for(ISSUER, "alice")
    assert "secret" not in alice.claims and alice.claims["groups"] == ["chatvlm-members"]
    assert (user_root_by_id(tmp_path, alice.user_id) / "account.json").is_file()
    assert [a.user_id for a in list_accounts(tmp_path)] == sorted(
        [alice.user_id, user_id_for(ISSUER, "bob")]
    )
    for who in (alice.user_id, "alice@example.com", "ALICE@EXAMPLE.COM", " Alice@Example.com "):
        assert find_account(tmp_path, who).user_id == alice.user_id
    assert find_account(tmp_path, "bob@example.com").label == "bob@example.com"


def test_a_second_sign_in_updates_the_same_account(tmp_path: Path) -> None:
    remember_account(tmp_path, claims("alice", email="old@example.com"), "groups")
    remember_account(tmp_path, claims("alice", email="new@example.com"), "groups")
    (account,) = list_accounts(tmp_path)
    assert account.claims["email"] == "new@example.com"
    with pytest.raises(UnknownUser):
        find_account(tmp_path, "old@example.com")


def test_unknown_or_ambiguous_accounts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownUser, match="nobody"):
        find_account(tmp_path, "nobody@example.com")
    remember_account(tmp_path, claims("one", email="shared@example.com"), "groups")
    remember_account(tmp_path, claims("two", email="Shared@Example.com"), "groups")
    with pytest.raises(UnknownUser, match="several accounts match") as raised:
        find_account(tmp_path, "shared@example.com")
    assert "users list" in raised.value.hint
    assert find_account(tmp_path, user_id_for(ISSUER, "two")).claims["sub"] == "two"


def test_stray_folders_and_foreign_account_files_are_not_accounts(tmp_path: Path) -> None:
    alice = remember_account(tmp_path, claims("alice", email="a@example.com"), "groups")
    (users_dir(tmp_path) / "not-a-user").mkdir()
    (users_dir(tmp_path) / ".adopted.json").write_text("{}", encoding="utf-8")
    copied = users_dir(tmp_path) / user_id_for(ISSUER, "mallory")
    copied.mkdir()
    # Alice's account file copied into another folder does not make that folder hers.
    (copied / "account.json").write_bytes(
        (user_root_by_id(tmp_path, alice.user_id) / "account.json").read_bytes()
    )
    assert [account.user_id for account in list_accounts(tmp_path)] == [alice.user_id]


def test_user_of_account_takes_the_role_from_todays_profile(tmp_path: Path) -> None:
    account = remember_account(
        tmp_path, claims("dev", email="dev@example.com", groups=["chatvlm-viewers"]), "groups"
    )
    assert user_of_account(account, TEAM).role == "member"  # e-mail rule beats the group
    # The e-mail rule removed from the profile: the stored groups decide, at once.
    demoted = settings(roles={"viewer": {"groups": ["chatvlm-viewers"]}})
    assert user_of_account(account, demoted).role == "viewer"
    # A renamed groups claim still finds the groups saved at sign-in.
    custom = settings(
        groups_claim="realm_groups", roles={"viewer": {"groups": ["chatvlm-viewers"]}}
    )
    assert user_of_account(account, custom).role == "viewer"


def test_user_of_account_with_deny_is_an_error(tmp_path: Path) -> None:
    account = remember_account(tmp_path, claims("x", email="stranger@example.com"), "groups")
    with pytest.raises(UnknownUser, match="no role") as raised:
        user_of_account(account, TEAM)
    assert "auth.roles" in raised.value.hint
    assert user_of_account(account, settings(default_role="viewer")).role == "viewer"


# --- a user's own overrides file -------------------------------------------------------------


def test_personal_overrides_add_models_and_endpoints_only(tmp_path: Path) -> None:
    profile = write_test_profile(tmp_path)
    shared = load_config(profile).config
    personal = tmp_path / "users" / user_id_for(ISSUER, "dev") / "overrides.yaml"
    personal.parent.mkdir(parents=True)
    personal.write_text(
        fake_server_model_yaml("http://127.0.0.1:9/v1")
        + "auth:\n  mode: oidc\n  default_role: admin\n  allow_anonymous_network: true\n"
        + f"app:\n  data_dir: {tmp_path / 'elsewhere'}\n  title: Mine\n"
        + "cache:\n  max_mb: 1\n",
        encoding="utf-8",
    )

    mine = load_config(profile, personal)

    assert mine.config.endpoints["fake"].base_url == "http://127.0.0.1:9/v1"
    assert mine.config.models["fake_vlm"].endpoint == "fake"
    assert set(shared.models) < set(mine.config.models)
    assert mine.config.auth == shared.auth and mine.config.auth.mode == "none"
    assert mine.config.app == shared.app and mine.config.cache == shared.cache
    assert mine.chain[0] == personal and mine.sha256 != load_config(profile).sha256


def test_personal_overrides_cannot_break_the_profile_with_ignored_keys(tmp_path: Path) -> None:
    profile = write_test_profile(tmp_path)
    personal = tmp_path / "mine.yaml"
    personal.write_text("auth:\n  mode: bogus\napp: 7\nunknown_section: {}\n", encoding="utf-8")
    assert load_config(profile, personal).config == load_config(profile).config
    assert load_config(profile, tmp_path / "missing.yaml").config == load_config(profile).config


def test_an_invalid_personal_model_names_the_personal_file(tmp_path: Path) -> None:
    profile = write_test_profile(tmp_path)
    personal = tmp_path / "mine.yaml"
    personal.write_text("models:\n  broken:\n    backend: teleport\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(profile, personal)
    assert "mine.yaml" in raised.value.message and "broken" in raised.value.message
